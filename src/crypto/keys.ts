/**
 * Key pairs, fingerprints and the raw signature operations of the QTM package, all on
 * node:crypto (OpenSSL). Keys are parsed once into KeyObjects and reused: re-parsing PEM for
 * every signature costs several times the signature itself.
 */
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  pbkdf2Sync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import forge from 'node-forge';
import type { Profile } from '../protocol/profile.js';
import { isSigner, type SigningKey } from './signer.js';

export type KeySpec = 'rsa1024' | 'rsa2048' | 'rsa3072' | 'p256';

export function generateKeyPair(spec: KeySpec): { privateKey: KeyObject; publicKey: KeyObject } {
  if (spec === 'p256') return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const modulusLength = { rsa1024: 1024, rsa2048: 2048, rsa3072: 3072 }[spec];
  return generateKeyPairSync('rsa', { modulusLength, publicExponent: 0x10001 });
}

export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** SPEC 2: a fingerprint is the digest of the key's DER SubjectPublicKeyInfo. */
export function fingerprint(key: KeyObject, profile: Profile): Buffer {
  return createHash(profile.hash).update(spkiDer(key)).digest();
}

/**
 * SHA-256 of a key's DER SubjectPublicKeyInfo, whatever the profile: how warrants name keys and
 * how the fair exchange names its TTP.
 */
export function keyFingerprint(key: KeyObject): string {
  return createHash('sha256').update(spkiDer(key)).digest('hex');
}

/** SPEC 2: a content ID is the digest of the exact content bytes. */
export function contentId(content: Uint8Array, profile: Profile): Buffer {
  return createHash(profile.hash).update(content).digest();
}

/**
 * The signature every party makes over package bytes: RSA PKCS#1 v1.5 or ECDSA (DER), with the
 * profile's hash over the exact bytes. `openssl dgst -sha256 -verify pub.pem -signature s f`
 * checks it.
 */
export function signBytes(profile: Profile, privateKey: SigningKey, data: Uint8Array): Buffer {
  return isSigner(privateKey) ? privateKey.sign(profile.hash, data) : sign(profile.hash, data, privateKey);
}

export function verifyBytes(profile: Profile, publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(profile.hash, data, publicKey, signature);
  } catch {
    // OpenSSL throws on some malformed signatures (bad DER for ECDSA); that is a failed check.
    return false;
  }
}

export function rsaModulusBytes(key: KeyObject): number | undefined {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  return key.asymmetricKeyType === 'rsa' && bits ? bits / 8 : undefined;
}

/**
 * Key files at rest (CA, TLS, receipt, warrant keys): PKCS#8 EncryptedPrivateKeyInfo, PBES2 with
 * PBKDF2-HMAC-SHA256 at 600,000 iterations (OWASP 2023) and AES-256-CBC, which `openssl pkey`
 * opens. KeyObject.export cannot choose the count (OpenSSL's default, 2,048), and node-forge's
 * encryptPrivateKeyInfo runs PBKDF2 in JavaScript (3.5 s a key at this count); so the structure is
 * built with node-forge's DER encoder and the KDF and cipher are OpenSSL's (node:crypto). Reading
 * is OpenSSL's (createPrivateKey), so files written before keep opening; `qtm key rewrap`
 * rewrites them with these parameters.
 */
export const KEY_FILE_KDF = { iterations: 600_000, prf: 'hmacWithSHA256', cipher: 'aes-256-cbc', saltBytes: 16 } as const;

export function encryptPrivateKey(key: KeyObject, passphrase: string): string {
  const iterations = KEY_FILE_KDF.iterations;
  const salt = randomBytes(KEY_FILE_KDF.saltBytes);
  const iv = randomBytes(16);
  const kek = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv(KEY_FILE_KDF.cipher, kek, iv);
  const plain = key.export({ type: 'pkcs8', format: 'der' });
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  plain.fill(0);
  kek.fill(0);
  const { asn1, pki } = forge;
  const seq = (...items: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
  const oid = (name: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(pki.oids[name]!).getBytes());
  const octets = (b: Buffer) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, b.toString('binary'));
  const integer = (n: number) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
  const nul = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '');
  // RFC 8018 A.2 and A.4, as OpenSSL writes it (no keyLength: AES-256 fixes it).
  const info = seq(
    seq(oid('pkcs5PBES2'), seq(
      seq(oid('pkcs5PBKDF2'), seq(octets(salt), integer(iterations), seq(oid(KEY_FILE_KDF.prf), nul))),
      seq(oid('aes256-CBC'), octets(iv)),
    )),
    octets(encrypted),
  );
  return pki.encryptedPrivateKeyToPem(info).replace(/\r\n/g, '\n');
}

/** The KDF parameters of an encrypted PKCS#8 key file (parsed by node-forge), or undefined if it is not PBES2/PBKDF2. */
export function keyFileKdf(pem: string): { iterations: number; prf: string; cipher: string } | undefined {
  try {
    const info = forge.pki.encryptedPrivateKeyFromPem(pem);
    const alg = (info.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[];
    if (forge.asn1.derToOid(alg[0]!.value as string) !== forge.pki.oids['pkcs5PBES2']) return undefined;
    const [kdf, enc] = alg[1]!.value as forge.asn1.Asn1[];
    const kdfParts = kdf!.value as forge.asn1.Asn1[];
    if (forge.asn1.derToOid(kdfParts[0]!.value as string) !== forge.pki.oids['pkcs5PBKDF2']) return undefined;
    const params = kdfParts[1]!.value as forge.asn1.Asn1[];
    const iterations = forge.asn1.derToInteger(params[1]!.value as string);
    const prfSeq = params.find((p, i) => i >= 2 && p.type === forge.asn1.Type.SEQUENCE);
    const prfOid = prfSeq ? forge.asn1.derToOid((prfSeq.value as forge.asn1.Asn1[])[0]!.value as string) : undefined;
    const encOid = forge.asn1.derToOid((enc!.value as forge.asn1.Asn1[])[0]!.value as string);
    return { iterations, prf: prfOid ? (forge.pki.oids[prfOid] ?? prfOid) : 'hmacWithSHA1', cipher: forge.pki.oids[encOid] ?? encOid };
  } catch {
    return undefined;
  }
}

export function decryptPrivateKey(pem: string, passphrase: string): KeyObject {
  return createPrivateKey({ key: pem, format: 'pem', passphrase });
}
