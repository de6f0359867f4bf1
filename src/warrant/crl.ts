/**
 * Warrant revocation lists: X.509 v2 CRLs (RFC 5280 section 5) that the warrant's issuer X signs
 * with its own key (a file, or a manager's card by PSO COMPUTE DIGITAL SIGNATURE (CRL), see
 * docs/CARD.md). Nobody else can add, drop or backdate an entry: the server that the list
 * restricts holds no key that signs it. `openssl crl -in X.crl -CAfile X.pem -noout` checks one.
 *
 *   CertificateList ::= SEQUENCE { tbsCertList TBSCertList, signatureAlgorithm AlgorithmIdentifier,
 *                                  signatureValue BIT STRING }
 *   TBSCertList ::= SEQUENCE {
 *       version              INTEGER 1 (v2),
 *       signature            AlgorithmIdentifier,    -- sha256WithRSAEncryption (NULL) or ecdsa-with-SHA256
 *       issuer               Name,                   -- X's subject, byte for byte
 *       thisUpdate           Time,
 *       nextUpdate           Time,                   -- qtm: always present
 *       revokedCertificates  SEQUENCE OF SEQUENCE { userCertificate INTEGER (the warrant serial),
 *                                                   revocationDate Time } OPTIONAL,   -- absent when empty
 *       crlExtensions   [0]  EXPLICIT SEQUENCE { authorityKeyIdentifier (X's key), cRLNumber INTEGER } }
 *
 * Time is UTCTime through 2049 and GeneralizedTime after, in whole seconds (RFC 5280 5.1.2.4).
 */
import { asSigner, type SigningKey } from '../crypto/signer.js';
import { readFileSync } from 'node:fs';
import { createHash, sign as nodeSign, verify as nodeVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { keyFingerprint } from '../crypto/keys.js';
import { OID, oidDerContent } from '../crypto/oids.js';
import { unsignedIntegerContent } from '../crypto/integers.js';
import { keyIdentifier, readExtension, signatureAlgorithm } from '../crypto/x509.js';
import { DecodeError, InputError } from '../errors.js';

const { asn1 } = forge;
type Node = forge.asn1.Asn1;

const FORMAT = 'revocation list (CRL)';
const CRL_NUMBER = '2.5.29.20';
const AUTHORITY_KEY_ID = '2.5.29.35';
const bin = (b: Uint8Array) => Buffer.from(b).toString('binary');
const der = (n: Node) => Buffer.from(asn1.toDer(n).getBytes(), 'binary');
const seq = (items: Node[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
const oidNode = (oid: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, bin(oidDerContent(oid)));

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

export interface CrlEntry {
  /** The warrant's serial, upper-case hex as openssl prints it. */
  readonly serial: string;
  readonly revocationDate: Date;
}

export interface CrlContent {
  readonly crlNumber: bigint;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly entries: readonly CrlEntry[];
}

export interface Crl extends CrlContent {
  /** DER of the whole CertificateList. */
  readonly der: Buffer;
  /** DER of the TBSCertList: what the issuer signed. */
  readonly tbs: Buffer;
  /** DER of the issuer Name. */
  readonly issuerName: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
}

/** What a verified list says: the issuer's key is known to have signed it. */
export interface RevocationList extends Crl {
  /** SHA-256 fingerprint of the issuer's key (as warrants and packages name keys). */
  readonly issuerFingerprint: string;
  /** When the warrant was revoked by this list, or undefined. */
  lookup(serial: string, issuerFingerprint: string): Date | undefined;
}

/** Upper-case hex in whole bytes, as openssl prints a serial. */
export function evenHex(n: bigint): string {
  const h = n.toString(16).toUpperCase();
  return h.length % 2 ? '0' + h : h;
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function timeNode(d: Date): Node {
  return d.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
}

function serialBytes(serialHex: string): string {
  if (!/^[0-9A-Fa-f]{1,40}$/.test(serialHex)) throw new RangeError(`"${serialHex}" is not a certificate serial`);
  return unsignedIntegerContent(BigInt('0x' + serialHex));
}

function issuerNameNode(issuer: X509Certificate): Node {
  const tbs = (asn1.fromDer(bin(issuer.raw)).value as Node[])[0]!;
  return (tbs.value as Node[])[5]!;
}

function extension(oid: string, value: Node): Node {
  return seq([oidNode(oid), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, der(value).toString('binary'))]);
}

/**
 * The DER TBSCertList X signs. `issuer` gives the name (byte for byte) and the key identifier;
 * the algorithm follows its key type. Times are cut to whole seconds.
 */
export function buildTbsCertList(content: CrlContent, issuer: X509Certificate): { tbs: Buffer; algorithm: Node } {
  if (content.nextUpdate <= content.thisUpdate) throw new RangeError('nextUpdate must be after thisUpdate');
  const algorithm = signatureAlgorithm(issuer.publicKey).asn1;
  const fields: Node[] = [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x01'),
    algorithm,
    issuerNameNode(issuer),
    timeNode(wholeSeconds(content.thisUpdate)),
    timeNode(wholeSeconds(content.nextUpdate)),
  ];
  if (content.entries.length) {
    fields.push(seq(content.entries.map((e) => seq([
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, serialBytes(e.serial)),
      timeNode(wholeSeconds(e.revocationDate)),
    ]))));
  }
  const aki = seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, keyIdentifier(issuer.publicKey))]);
  fields.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [seq([
    extension(AUTHORITY_KEY_ID, aki),
    extension(CRL_NUMBER, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, unsignedIntegerContent(content.crlNumber))),
  ])]));
  return { tbs: der(seq(fields)), algorithm };
}

function assemble(tbs: Buffer, algorithm: Node, signature: Buffer): Buffer {
  return der(seq([asn1.fromDer(bin(tbs)), algorithm, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + bin(signature))]));
}

/** X signs with its key file. */
export function issueCrl(content: CrlContent, issuer: { certificate: X509Certificate; privateKey: SigningKey }): RevocationList {
  const { tbs, algorithm } = buildTbsCertList(content, issuer.certificate);
  // A key file or a key in a token (src/crypto/signer.ts): ECDSA comes back as DER either way.
  return verifyCrl(decodeCrl(assemble(tbs, algorithm, asSigner(issuer.privateKey).sign('sha256', tbs))), issuer.certificate);
}

/** X's key signs elsewhere (a manager's card): `sign` gets the DER TBSCertList. */
export async function issueCrlWithSigner(content: CrlContent, issuer: { certificate: X509Certificate; sign(tbs: Buffer): Promise<Buffer> }): Promise<RevocationList> {
  const { tbs, algorithm } = buildTbsCertList(content, issuer.certificate);
  return verifyCrl(decodeCrl(assemble(tbs, algorithm, await issuer.sign(tbs))), issuer.certificate);
}

const isU = (n: Node | undefined, type: number): n is Node => n !== undefined && n.tagClass === asn1.Class.UNIVERSAL && n.type === type;
const kids = (n: Node | undefined): Node[] => (n && Array.isArray(n.value) ? (n.value as Node[]) : []);

function readTime(n: Node | undefined, what: string): Date {
  let d: Date | undefined;
  try {
    if (isU(n, asn1.Type.UTCTIME) && /^\d{12}Z$/.test(n.value as string)) d = asn1.utcTimeToDate(n.value as string);
    if (isU(n, asn1.Type.GENERALIZEDTIME) && /^\d{14}Z$/.test(n.value as string)) d = asn1.generalizedTimeToDate(n.value as string);
  } catch {
    d = undefined;
  }
  if (!d || Number.isNaN(d.getTime())) fail(`${what} is not a UTCTime or GeneralizedTime in seconds, Z`);
  return d;
}

function readPositive(n: Node | undefined, what: string): bigint {
  if (!isU(n, asn1.Type.INTEGER)) fail(`${what} is not an INTEGER`);
  const b = Buffer.from(n.value as string, 'binary');
  if (b.length === 0 || b.length > 21 || b[0]! & 0x80) fail(`${what} is not a positive integer of at most 20 bytes`);
  return BigInt('0x' + b.toString('hex'));
}

/** Reads PEM ("X509 CRL") or DER; a DecodeError for anything but a v2 CRL of the shape above. */
export function decodeCrl(input: Buffer | string): Crl {
  let bytes: Buffer;
  const text = typeof input === 'string' ? input : input.subarray(0, 64).toString('latin1');
  if (text.includes('-----BEGIN X509 CRL-----')) {
    const s = typeof input === 'string' ? input : input.toString('latin1');
    const m = /^-----BEGIN X509 CRL-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END X509 CRL-----\r?\n?$/.exec(s.trim() + '\n');
    if (!m) fail('not one PEM "X509 CRL" block');
    bytes = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  } else {
    bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  }
  if (bytes.length === 0) fail('empty');
  if (bytes.length > 1 << 20) fail('larger than 1 MiB');
  let root: Node;
  try {
    root = asn1.fromDer(bin(bytes), { strict: true, parseAllBytes: true, decodeBitStrings: false } as never);
  } catch {
    fail('not valid DER (truncated, or not a CRL)');
  }
  const [tbsNode, algNode, sigNode, ...more] = kids(root);
  if (!isU(root, asn1.Type.SEQUENCE) || !isU(tbsNode, asn1.Type.SEQUENCE) || !isU(algNode, asn1.Type.SEQUENCE) || !isU(sigNode, asn1.Type.BITSTRING) || more.length) fail('not a CertificateList');
  const t = [...kids(tbsNode)];
  if (!isU(t[0], asn1.Type.INTEGER) || t[0].value !== '\x01') fail('not a version 2 CRL');
  t.shift();
  const [alg, issuer, thisU, nextU] = t.splice(0, 4);
  if (!isU(alg, asn1.Type.SEQUENCE) || !der(alg).equals(der(algNode))) fail('the signature algorithms inside and outside the signed part differ');
  const algOid = kids(alg)[0];
  const algorithm = algOid?.value === bin(oidDerContent(OID.sha256WithRSAEncryption)) ? OID.sha256WithRSAEncryption
    : algOid?.value === bin(oidDerContent(OID.ecdsaWithSHA256)) ? OID.ecdsaWithSHA256 : fail('signature algorithm is not sha256WithRSAEncryption or ecdsa-with-SHA256');
  if (!isU(issuer, asn1.Type.SEQUENCE)) fail('issuer is not a Name');
  const thisUpdate = readTime(thisU, 'thisUpdate');
  if (!nextU || !(isU(nextU, asn1.Type.UTCTIME) || isU(nextU, asn1.Type.GENERALIZEDTIME))) fail('nextUpdate is missing (qtm lists always say when the next one is due)');
  const nextUpdate = readTime(nextU, 'nextUpdate');
  const entries: CrlEntry[] = [];
  if (isU(t[0], asn1.Type.SEQUENCE)) {
    for (const [i, e] of kids(t.shift()).entries()) {
      const [serial, date, ext] = kids(e);
      if (!isU(e, asn1.Type.SEQUENCE) || ext !== undefined && !isU(ext, asn1.Type.SEQUENCE) || kids(e).length > 3) fail(`entry ${i} is not a revoked certificate`);
      entries.push({ serial: evenHex(readPositive(serial, `entry ${i} serial`)), revocationDate: readTime(date, `entry ${i} revocationDate`) });
    }
  }
  const extWrapper = t.shift();
  if (!extWrapper || extWrapper.tagClass !== asn1.Class.CONTEXT_SPECIFIC || extWrapper.type !== 0 || t.length) fail('crlExtensions [0] must end the list');
  let crlNumber: bigint | undefined;
  for (const ext of kids(kids(extWrapper)[0])) {
    const parts = kids(ext);
    const id = parts[0];
    const critical = parts.length === 3 && isU(parts[1], asn1.Type.BOOLEAN) && parts[1].value !== '\x00';
    const octets = parts[parts.length - 1];
    if (!isU(id, asn1.Type.OID) || !isU(octets, asn1.Type.OCTETSTRING)) fail('an extension is malformed');
    if (id.value === bin(oidDerContent(CRL_NUMBER))) {
      if (crlNumber !== undefined) fail('two cRLNumber extensions');
      try {
        crlNumber = readPositive(asn1.fromDer(octets.value as string, { strict: true, parseAllBytes: true } as never), 'cRLNumber');
      } catch (err) {
        if (err instanceof DecodeError) throw err;
        fail('cRLNumber is not DER');
      }
    } else if (critical && id.value !== bin(oidDerContent(AUTHORITY_KEY_ID))) {
      fail('an unknown critical extension');
    }
  }
  if (crlNumber === undefined) fail('no cRLNumber extension');
  const sig = Buffer.from(sigNode.value as string, 'binary');
  if (sig.length < 2 || sig[0] !== 0) fail('the signature BIT STRING has unused bits');
  return {
    der: bytes, tbs: der(tbsNode), issuerName: der(issuer), signatureAlgorithm: algorithm, signature: sig.subarray(1),
    crlNumber, thisUpdate, nextUpdate, entries,
  };
}

export type CrlProblem = 'issuer' | 'signature' | 'crl-sign';

/** Why `issuer` did not sign this list, or undefined when it did. */
export function crlSignatureProblem(crl: Crl, issuer: X509Certificate): { kind: CrlProblem; message: string } | undefined {
  const name = issuer.subject.replace(/\n/g, ', ');
  if (!crl.issuerName.equals(der(issuerNameNode(issuer)))) return { kind: 'issuer', message: `the revocation list is not issued by "${name}"` };
  const expected = issuer.publicKey.asymmetricKeyType === 'rsa' ? OID.sha256WithRSAEncryption : OID.ecdsaWithSHA256;
  let ok = false;
  try {
    ok = crl.signatureAlgorithm === expected && nodeVerify('sha256', crl.tbs, issuer.publicKey, crl.signature);
  } catch {
    ok = false;
  }
  if (!ok) return { kind: 'signature', message: `the revocation list naming "${name}" is not signed by its key` };
  if (!hasCrlSign(issuer)) return { kind: 'crl-sign', message: `"${name}" may not sign revocation lists (no cRLSign key usage: reissue its certificate)` };
  return undefined;
}

/** keyUsage cRLSign (bit 6), read from the certificate's own extension. */
export function hasCrlSign(cert: X509Certificate): boolean {
  const ext = readExtension(cert, '2.5.29.15');
  if (!ext) return false;
  try {
    const bits = Buffer.from(asn1.fromDer(bin(ext.value), { decodeBitStrings: false } as never).value as string, 'binary');
    return bits.length >= 2 && (bits[1]! & 0x02) !== 0; // bits[0] counts unused bits; cRLSign is bit 6
  } catch {
    return false;
  }
}

/** The list as X's word: a DecodeError-free list whose signature `issuer` made. */
export function verifyCrl(crl: Crl, issuer: X509Certificate): RevocationList {
  const problem = crlSignatureProblem(crl, issuer);
  if (problem) throw new DecodeError(FORMAT, problem.message);
  const issuerFingerprint = keyFingerprint(issuer.publicKey);
  return {
    ...crl,
    issuerFingerprint,
    lookup(serial: string, fp: string) {
      if (fp !== issuerFingerprint) return undefined;
      const wanted = evenHex(BigInt('0x' + serial));
      return crl.entries.find((e) => e.serial === wanted)?.revocationDate;
    },
  };
}

export function crlPem(der: Buffer): string {
  return `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END X509 CRL-----\n`;
}

export function crlDigest(crl: Crl): string {
  return createHash('sha256').update(crl.der).digest('hex');
}

/** A CRL file that must be `issuer`'s: exit 2 naming the file and what is wrong otherwise. */
export function readCrlFile(file: string, issuer: X509Certificate): RevocationList;
export function readCrlFile(file: string): Crl;
export function readCrlFile(file: string, issuer?: X509Certificate): RevocationList | Crl {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new InputError(`${file}: cannot read the revocation list (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, undefined, 'E_CRL');
  }
  try {
    const crl = decodeCrl(bytes);
    return issuer ? verifyCrl(crl, issuer) : crl;
  } catch (err) {
    if (err instanceof DecodeError) throw new InputError(`${file}: ${err.message}`, 'ask the warrant issuer for its current list (`qtm warrant revoke`)', 'E_CRL');
    throw err;
  }
}
