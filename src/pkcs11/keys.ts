/**
 * Keys in a PKCS#11 token: signing keys behind the Signer interface, and the SAM's AES master key
 * behind the Sam interface. Private and secret keys are generated inside the token as
 * CKA_SENSITIVE, not CKA_EXTRACTABLE, usable only to sign; no function here returns their value.
 *
 * Signatures: RSA with CKM_SHA256_RSA_PKCS (CKM_SHA1_RSA_PKCS for profile v1); P-256 with
 * CKM_ECDSA over a digest taken on the host (SoftHSM has no CKM_ECDSA_SHA256), its raw r||s
 * converted to DER. Diversification: CKM_AES_CMAC of 0x01 || serial || AID || label (AN10922).
 */
import { createHash, createPublicKey, randomBytes, type KeyObject, type X509Certificate } from 'node:crypto';
import { ecdsaRawToDer, type Signer, type SignatureHash } from '../crypto/signer.js';
import { diversificationInput, type CardKeys, type KeyLabel } from '../crypto/diversify.js';
import type { KeySpec } from '../crypto/keys.js';
import { QTM_AID } from '../protocol/card-application.js';
import type { Sam } from '../sam/sam.js';
import { InputError } from '../errors.js';
import { assertLabelFree, attribute, ck, ckr, findObject, findObjects, openSession, tokenRef, ulongArray, type Handle, type TokenRef, type TokenSession } from './token.js';
import { X509Certificate as X509 } from 'node:crypto';
import forge from 'node-forge';

/** DER OID of prime256v1 (CKA_EC_PARAMS). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');

const b64u = (b: Buffer) => b.toString('base64url');

function objectLabel(ref: TokenRef): string {
  if (ref.uri.object === undefined) throw new InputError(`${ref.text} names no object`, 'add object=LABEL to the URI: the new key gets that label', 'E_PKCS11_OBJECT');
  return ref.uri.object;
}

function publicKeyOfPrivate(s: TokenSession, priv: Handle): { publicKey: KeyObject; keyType: 'rsa' | 'ec' } {
  const keyType = attribute(s, priv, 'CKA_KEY_TYPE').readUIntLE(0, 4);
  const id = attribute(s, priv, 'CKA_ID');
  const label = attribute(s, priv, 'CKA_LABEL').toString('utf8');
  const pubs = findObjects(s, 'public', id.length ? { id } : { label });
  const pub = pubs.length === 1 ? pubs[0]! : findObjects(s, 'public', { label, id })[0];
  if (keyType === ck('CKK_RSA')) {
    // The private object of an RSA key carries its modulus and public exponent.
    return { keyType: 'rsa', publicKey: createPublicKey({ key: { kty: 'RSA', n: b64u(attribute(s, priv, 'CKA_MODULUS')), e: b64u(attribute(s, priv, 'CKA_PUBLIC_EXPONENT')) }, format: 'jwk' }) };
  }
  if (keyType === ck('CKK_EC')) {
    if (!pub) throw new InputError(`token "${s.label}" holds no public key for the EC key "${label}"`, 'generate keys with qtm so both halves are stored', 'E_PKCS11_OBJECT');
    if (!attribute(s, pub, 'CKA_EC_PARAMS').equals(P256_PARAMS)) throw new InputError(`the EC key "${label}" in token "${s.label}" is not on P-256`, 'qtm signs with P-256 or RSA keys', 'E_PKCS11_OBJECT');
    let point = attribute(s, pub, 'CKA_EC_POINT');
    if (point[0] === 0x04 && point.length === 67 && point[1] === 65) point = point.subarray(2); // DER OCTET STRING wrapping
    if (point.length !== 65 || point[0] !== 0x04) throw new InputError(`the EC point of "${label}" in token "${s.label}" is not an uncompressed P-256 point`, undefined, 'E_PKCS11_OBJECT');
    return { keyType: 'ec', publicKey: createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33)) }, format: 'jwk' }) };
  }
  throw new InputError(`the key "${label}" in token "${s.label}" is neither RSA nor EC`, 'qtm signs with RSA or P-256 keys', 'E_PKCS11_OBJECT');
}

function signerFor(s: TokenSession, priv: Handle): Signer {
  const { publicKey, keyType } = publicKeyOfPrivate(s, priv);
  const sigLength = keyType === 'rsa' ? (publicKey.asymmetricKeyDetails?.modulusLength ?? 4096) / 8 : 64;
  const sign = (mechanism: number, data: Buffer): Buffer => {
    try {
      s.p11.C_SignInit(s.handle, { mechanism }, priv);
      return Buffer.from(s.p11.C_Sign(s.handle, data, Buffer.alloc(sigLength)));
    } catch (err) {
      throw new InputError(`token "${s.label}" refused to sign (${ckr(err) ?? (err as Error).message})`, undefined, 'E_PKCS11');
    }
  };
  return {
    kind: 'signer',
    describe: `${keyType} key in ${s.ref.text}`,
    publicKey,
    keyType,
    sign(hash: SignatureHash, data: Uint8Array): Buffer {
      if (keyType === 'rsa') return sign(ck(hash === 'sha256' ? 'CKM_SHA256_RSA_PKCS' : 'CKM_SHA1_RSA_PKCS'), Buffer.from(data));
      return ecdsaRawToDer(sign(ck('CKM_ECDSA'), createHash(hash).update(data).digest()));
    },
  };
}

/** The private key a URI names, as a Signer (logs in once per token per process). */
export function tokenSigner(uri: string, moduleFlag?: string): Signer {
  const s = openSession(tokenRef(uri, moduleFlag));
  return signerFor(s, findObject(s, 'private'));
}

/** Generates a key pair in the token under the URI's object label: the private half sensitive, never extractable, sign only. */
export function generateTokenKeyPair(uri: string, spec: KeySpec, moduleFlag?: string): Signer {
  const s = openSession(tokenRef(uri, moduleFlag));
  const label = objectLabel(s.ref);
  assertLabelFree(s, label);
  const id = s.ref.uri.id ?? randomBytes(8);
  const common = [{ type: ck('CKA_TOKEN'), value: true }, { type: ck('CKA_LABEL'), value: label }, { type: ck('CKA_ID'), value: id }];
  const priv = [...common, { type: ck('CKA_PRIVATE'), value: true }, { type: ck('CKA_SIGN'), value: true }, { type: ck('CKA_DECRYPT'), value: false },
    { type: ck('CKA_UNWRAP'), value: false }, { type: ck('CKA_DERIVE'), value: false }, { type: ck('CKA_SENSITIVE'), value: true }, { type: ck('CKA_EXTRACTABLE'), value: false }];
  const pub = [...common, { type: ck('CKA_PRIVATE'), value: false }, { type: ck('CKA_VERIFY'), value: true }, { type: ck('CKA_ENCRYPT'), value: false }, { type: ck('CKA_WRAP'), value: false }];
  let pair: { privateKey: Handle };
  try {
    pair = spec === 'p256'
      ? s.p11.C_GenerateKeyPair(s.handle, { mechanism: ck('CKM_EC_KEY_PAIR_GEN') }, [...pub, { type: ck('CKA_EC_PARAMS'), value: P256_PARAMS }], priv)
      : s.p11.C_GenerateKeyPair(s.handle, { mechanism: ck('CKM_RSA_PKCS_KEY_PAIR_GEN') },
        [...pub, { type: ck('CKA_MODULUS_BITS'), value: { rsa1024: 1024, rsa2048: 2048, rsa3072: 3072 }[spec] }, { type: ck('CKA_PUBLIC_EXPONENT'), value: Buffer.from([1, 0, 1]) }], priv);
  } catch (err) {
    throw new InputError(`token "${s.label}" could not generate a ${spec} key (${ckr(err) ?? (err as Error).message})`, undefined, 'E_PKCS11');
  }
  return signerFor(s, pair.privateKey);
}

/** Stores a certificate beside its key (same label and id), so `--signer URI` finds both. */
export function storeTokenCertificate(uri: string, certificate: X509Certificate, moduleFlag?: string): void {
  const s = openSession(tokenRef(uri, moduleFlag));
  const label = objectLabel(s.ref);
  const priv = findObject(s, 'private');
  s.p11.C_CreateObject(s.handle, [
    { type: ck('CKA_CLASS'), value: ck('CKO_CERTIFICATE') }, { type: ck('CKA_CERTIFICATE_TYPE'), value: ck('CKC_X_509') },
    { type: ck('CKA_TOKEN'), value: true }, { type: ck('CKA_PRIVATE'), value: false }, { type: ck('CKA_LABEL'), value: label },
    { type: ck('CKA_ID'), value: attribute(s, priv, 'CKA_ID') }, { type: ck('CKA_VALUE'), value: certificate.raw },
    { type: ck('CKA_SUBJECT'), value: subjectDer(certificate.raw) },
  ]);
}

/**
 * The DER subject Name of a certificate (CKA_SUBJECT). node:crypto gives the subject only as text,
 * so node-forge's ASN.1 reader parses the certificate: TBSCertificate is [0] version (explicit,
 * optional), serial, signature, issuer, validity, subject.
 */
function subjectDer(cert: Buffer): Buffer {
  const certificate = forge.asn1.fromDer(forge.util.createBuffer(cert.toString('binary')));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0]!;
  const fields = tbs.value as forge.asn1.Asn1[];
  const versioned = fields[0]!.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && fields[0]!.type === 0;
  const subject = fields[versioned ? 5 : 4];
  if (!subject || subject.type !== forge.asn1.Type.SEQUENCE) throw new InputError('the certificate has no subject Name where X.509 puts it', 'issue it again with qtm ca issue', 'E_DECODE');
  return Buffer.from(forge.asn1.toDer(subject).getBytes(), 'binary');
}

/**
 * Removes what a failed command created under a label it had checked was free (assertLabelFree),
 * so an error leaves the token as it was.
 */
export function destroyNewObjects(uri: string, moduleFlag?: string): void {
  const s = openSession(tokenRef(uri, moduleFlag));
  const label = objectLabel(s.ref);
  for (const cls of ['cert', 'private', 'public', 'secret-key'] as const) {
    for (const h of findObjects(s, cls, { label })) s.p11.C_DestroyObject(s.handle, h);
  }
}

/** Runs `create` (which makes new objects labelled as the URI says); on any error removes them. */
export function creatingIn<T>(uri: string, create: () => T): T {
  const s = openSession(tokenRef(uri));
  assertLabelFree(s, objectLabel(s.ref));
  try {
    return create();
  } catch (err) {
    try {
      destroyNewObjects(uri);
    } catch { /* the original error says more */ }
    throw err;
  }
}

/** The certificates stored beside the key a URI names (the key's certificate first). */
export function tokenCertificates(uri: string, moduleFlag?: string): X509Certificate[] {
  const s = openSession(tokenRef(uri, moduleFlag));
  const priv = findObject(s, 'private');
  const certs = findObjects(s, 'cert', { id: attribute(s, priv, 'CKA_ID') }).map((h) => new X509(attribute(s, h, 'CKA_VALUE')));
  if (!certs.length) throw new InputError(`token "${s.label}" holds no certificate for the key ${s.ref.text}`, 'issue one with `qtm ca issue --pkcs11 URI`', 'E_PKCS11_OBJECT');
  return certs;
}

function masterKeyTemplate(label: string): { type: number; value: number | boolean | string | Buffer }[] {
  return [
    { type: ck('CKA_CLASS'), value: ck('CKO_SECRET_KEY') }, { type: ck('CKA_KEY_TYPE'), value: ck('CKK_AES') },
    { type: ck('CKA_TOKEN'), value: true }, { type: ck('CKA_PRIVATE'), value: true }, { type: ck('CKA_LABEL'), value: label },
    { type: ck('CKA_SENSITIVE'), value: true }, { type: ck('CKA_EXTRACTABLE'), value: false },
    { type: ck('CKA_SIGN'), value: true }, { type: ck('CKA_VERIFY'), value: false }, { type: ck('CKA_ENCRYPT'), value: false },
    { type: ck('CKA_DECRYPT'), value: false }, { type: ck('CKA_WRAP'), value: false }, { type: ck('CKA_UNWRAP'), value: false },
    { type: ck('CKA_DERIVE'), value: false }, { type: ck('CKA_ALLOWED_MECHANISMS'), value: ulongArray([ck('CKM_AES_CMAC')]) },
  ];
}

function samFor(s: TokenSession, key: Handle): Sam {
  const kcv = attribute(s, key, 'CKA_CHECK_VALUE').subarray(0, 3).toString('hex').toUpperCase();
  const diversify = (serial: Uint8Array, label: KeyLabel): Buffer => {
    // AN10922: CMAC of 0x01 || D; standard CMAC pads exactly as AN10922 for 16 < |M| <= 32.
    const m = Buffer.concat([Buffer.of(0x01), diversificationInput(serial, QTM_AID, label)]);
    if (m.length <= 16 || m.length > 32) throw new RangeError(`AN10922 diversification input must be 16 to 31 bytes, got ${m.length - 1}`);
    try {
      s.p11.C_SignInit(s.handle, { mechanism: ck('CKM_AES_CMAC') }, key);
      return Buffer.from(s.p11.C_Sign(s.handle, m, Buffer.alloc(16)));
    } catch (err) {
      throw new InputError(`token "${s.label}" refused the AES-CMAC diversification (${ckr(err) ?? (err as Error).message})`, 'the master key must allow CKM_AES_CMAC (create it with `qtm sam init --pkcs11`)', 'E_PKCS11');
    }
  };
  return { kcv, cardKeys: (serial): CardKeys => ({ kEnc: diversify(serial, 'ENC'), kMac: diversify(serial, 'MAC') }) };
}

/** The SAM whose master key is the AES key the URI names. */
export function tokenSam(uri: string, moduleFlag?: string): Sam {
  const s = openSession(tokenRef(uri, moduleFlag));
  return samFor(s, findObject(s, 'secret-key'));
}

/** What `qtm sam info URI` shows: the check value and the key's protection attributes, never its value. */
export function tokenMasterKeyInfo(uri: string, moduleFlag?: string): { uri: string; kcv: string; attributes: Record<string, boolean> } {
  const s = openSession(tokenRef(uri, moduleFlag));
  const key = findObject(s, 'secret-key');
  const names = ['CKA_SENSITIVE', 'CKA_ALWAYS_SENSITIVE', 'CKA_EXTRACTABLE', 'CKA_NEVER_EXTRACTABLE', 'CKA_SIGN', 'CKA_ENCRYPT', 'CKA_DECRYPT', 'CKA_WRAP'];
  const attributes = Object.fromEntries(names.map((n) => [n.slice(4).toLowerCase(), attribute(s, key, n)[0] === 1]));
  return { uri: s.ref.text, kcv: samFor(s, key).kcv, attributes };
}

/** `qtm sam init --pkcs11`: a fresh AES-128 master key generated inside the token. */
export function generateTokenMasterKey(uri: string, moduleFlag?: string): Sam {
  const s = openSession(tokenRef(uri, moduleFlag));
  const label = objectLabel(s.ref);
  assertLabelFree(s, label);
  let key: Handle;
  try {
    key = s.p11.C_GenerateKey(s.handle, { mechanism: ck('CKM_AES_KEY_GEN') }, [...masterKeyTemplate(label), { type: ck('CKA_VALUE_LEN'), value: 16 }].filter((a) => a.type !== ck('CKA_KEY_TYPE') && a.type !== ck('CKA_CLASS')));
  } catch (err) {
    throw new InputError(`token "${s.label}" could not generate an AES master key (${ckr(err) ?? (err as Error).message})`, undefined, 'E_PKCS11');
  }
  return samFor(s, key);
}

/**
 * Imports a known AES-128 master key into the token with the same attributes as a generated one.
 * For tests only (the file SAM and the token SAM must give the same card keys): in production
 * the master key is generated inside the token and never exists outside it.
 */
export function importTokenMasterKeyForTest(uri: string, masterKey: Buffer, moduleFlag?: string): Sam {
  const s = openSession(tokenRef(uri, moduleFlag));
  const label = objectLabel(s.ref);
  assertLabelFree(s, label);
  return samFor(s, s.p11.C_CreateObject(s.handle, [...masterKeyTemplate(label), { type: ck('CKA_VALUE'), value: masterKey }]));
}
