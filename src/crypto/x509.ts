/**
 * Building X.509 certificates. node has no API for that, so node-forge lays out the
 * TBSCertificate (names, validity, extensions) with its ASN.1 encoder; the subject's
 * SubjectPublicKeyInfo is taken verbatim from node (so any key type works, not only forge's
 * RSA), and node:crypto signs. Parsing and chain checks use node's X509Certificate.
 */
import { createHash, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { isSigner, type SigningKey } from './signer.js';
import forge from 'node-forge';
import { spkiDer } from './keys.js';
import { OID, oidDerContent } from './oids.js';
import { InputError } from '../errors.js';

const { asn1 } = forge;

export interface CertificateRequest {
  /** "CN=Alice,O=Shop,C=NL" */
  readonly subject: string;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Positive serial as hex; random 16 bytes when absent. */
  readonly serialHex?: string;
  readonly isCa: boolean;
  /** forge keyUsage flags, e.g. { digitalSignature: true, nonRepudiation: true } */
  readonly keyUsage: Record<string, boolean>;
  readonly extKeyUsage?: readonly string[];
  /** subjectAltName entries: DNS names and IP addresses (TLS clients match these, not the CN). */
  readonly subjectAltNames?: { readonly dns?: readonly string[]; readonly ip?: readonly string[] };
  /** Extra extensions in forge's form (e.g. the RFC 3820 proxyCertInfo of a warrant). */
  readonly extraExtensions?: readonly object[];
  /**
   * RFC 3820 3.4: a proxy certificate's subject is its issuer's subject with one CN appended.
   * When set, `subject` is ignored and the issuer's name is copied byte for byte plus this CN.
   */
  readonly proxyCommonName?: string;
}

export interface Issuer {
  /** Absent for a self-signed root. */
  readonly certificate?: X509Certificate;
  /** A key file's KeyObject or a key in a token: see ./signer.ts. */
  readonly privateKey: SigningKey;
}

const DN_SHORT_NAMES = new Set(['CN', 'O', 'OU', 'C', 'L', 'ST', 'serialNumber', 'E']);

/** Parses "CN=Alice, O=Shop\, Inc., C=NL" into forge attributes; commas escape with a backslash. */
export function parseDistinguishedName(dn: string): { shortName?: string; name?: string; value: string }[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i]!;
    if (ch === '\\' && i + 1 < dn.length) {
      current += dn[++i];
    } else if (ch === ',') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((part) => {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (eq <= 0 || !value) throw new InputError(`subject "${dn}" is not a distinguished name`, 'write it as "CN=Name,O=Org,C=NL"');
    if (!DN_SHORT_NAMES.has(key)) {
      throw new InputError(`subject attribute "${key}" is not supported`, `use ${[...DN_SHORT_NAMES].join(', ')}`);
    }
    if (key === 'serialNumber') return { name: 'serialNumber', value };
    if (key === 'E') return { name: 'emailAddress', value };
    if (key === 'C' && !/^[A-Z]{2}$/.test(value)) throw new InputError(`country "${value}" must be two capital letters`);
    return { shortName: key, value };
  });
}

export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and non-zero, 16 bytes, as RFC 5280 asks
  return bytes.toString('hex');
}

function binary(buf: Uint8Array): string {
  return Buffer.from(buf).toString('binary');
}

export function signatureAlgorithm(key: KeyObject): { oid: string; asn1: forge.asn1.Asn1 } {
  const isRsa = key.asymmetricKeyType === 'rsa';
  const oid = isRsa ? OID.sha256WithRSAEncryption : OID.ecdsaWithSHA256;
  if (!isRsa && key.asymmetricKeyType !== 'ec') throw new TypeError(`cannot sign certificates with ${key.asymmetricKeyType} keys`);
  const seq = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes())];
  // RFC 4055: RSA algorithm identifiers carry NULL parameters; RFC 5758: ECDSA ones carry none.
  if (isRsa) seq.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''));
  return { oid, asn1: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, seq) };
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifier(key: KeyObject): string {
  // forge would otherwise parse the BIT STRING's contents as nested ASN.1 (its default).
  const fromDer = asn1.fromDer as unknown as (der: string, options: { decodeBitStrings: boolean }) => forge.asn1.Asn1;
  const spki = fromDer(binary(spkiDer(key)), { decodeBitStrings: false });
  const bitString = (spki.value as forge.asn1.Asn1[])[1]!.value as string;
  return createHash('sha1').update(Buffer.from(bitString.slice(1), 'binary')).digest('binary');
}

/**
 * The DER TBSCertificate for a request, and the algorithm the issuer's key signs it with.
 * `issuerKey` may be the public half: a card signs without its private key leaving it.
 */
export function buildTbsCertificate(req: CertificateRequest, issuer: { certificate?: X509Certificate; issuerKey: KeyObject }): { tbs: Buffer; algorithm: { oid: string; asn1: forge.asn1.Asn1 } } {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = req.serialHex ?? randomSerialHex();
  cert.validity.notBefore = req.notBefore;
  cert.validity.notAfter = req.notAfter;
  cert.setSubject(parseDistinguishedName(req.subject));
  cert.setIssuer(parseDistinguishedName(req.subject)); // replaced below by the issuer's exact name
  // A placeholder so forge can lay out the TBS; the real SPKI is spliced in below.
  const one = new forge.jsbn.BigInteger('1');
  cert.publicKey = forge.pki.setRsaPublicKey(one, one);

  const issuerKeyId = issuer.certificate ? keyIdentifier(issuer.certificate.publicKey) : keyIdentifier(req.publicKey);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: req.isCa, critical: true },
    { name: 'keyUsage', critical: true, ...req.keyUsage },
    {
      name: 'subjectKeyIdentifier',
      value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, keyIdentifier(req.publicKey)),
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuerKeyId },
  ];
  if (req.extKeyUsage?.length) {
    extensions.push({
      name: 'extKeyUsage',
      value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true,
        req.extKeyUsage.map((oid) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, oidDerContent(oid).toString('binary')))),
    });
  }
  const san = req.subjectAltNames;
  if (san && (san.dns?.length || san.ip?.length)) {
    extensions.push({
      name: 'subjectAltName',
      altNames: [...(san.dns ?? []).map((value) => ({ type: 2, value })), ...(san.ip ?? []).map((ip) => ({ type: 7, ip }))],
    });
  }
  extensions.push(...(req.extraExtensions ?? []));
  cert.setExtensions(extensions as never);

  const algorithm = signatureAlgorithm(issuer.issuerKey);
  cert.siginfo.algorithmOid = algorithm.oid;
  // getTBSCertificate is public in forge but missing from its type definitions.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  const fields = tbs.value as forge.asn1.Asn1[];
  fields[2] = algorithm.asn1;
  if (issuer.certificate) {
    // Copy the issuer's subject name byte for byte: chain building matches names exactly.
    const issuerTbs = (asn1.fromDer(binary(issuer.certificate.raw)).value as forge.asn1.Asn1[])[0]!;
    fields[3] = (issuerTbs.value as forge.asn1.Asn1[])[5]!;
    if (req.proxyCommonName !== undefined) {
      const name = asn1.fromDer(asn1.toDer(fields[3]!).getBytes());
      const cn = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer('2.5.4.3').getBytes()),
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, forge.util.encodeUtf8(req.proxyCommonName)),
        ]),
      ]);
      (name.value as forge.asn1.Asn1[]).push(cn);
      fields[5] = name;
    }
  } else if (req.proxyCommonName !== undefined) {
    throw new TypeError('a proxy certificate needs its issuer certificate');
  }
  fields[6] = asn1.fromDer(binary(spkiDer(req.publicKey)));

  return { tbs: Buffer.from(asn1.toDer(tbs).getBytes(), 'binary'), algorithm };
}

function assembleCertificate(tbs: Buffer, algorithm: { asn1: forge.asn1.Asn1 }, signature: Buffer): X509Certificate {
  const certAsn1 = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.fromDer(binary(tbs)),
    algorithm.asn1,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + binary(signature)),
  ]);
  return new X509Certificate(Buffer.from(asn1.toDer(certAsn1).getBytes(), 'binary'));
}

export function buildCertificate(req: CertificateRequest, issuer: Issuer): X509Certificate {
  const key = issuer.privateKey;
  const { tbs, algorithm } = buildTbsCertificate(req, { ...(issuer.certificate ? { certificate: issuer.certificate } : {}), issuerKey: isSigner(key) ? key.publicKey : key });
  return assembleCertificate(tbs, algorithm, isSigner(key) ? key.sign('sha256', tbs) : sign('sha256', tbs, key));
}

/** For an issuer whose key signs elsewhere (a smart card): `sign` gets the DER TBSCertificate. */
export async function buildCertificateWithSigner(req: CertificateRequest, issuer: { certificate: X509Certificate; sign(tbs: Buffer): Promise<Buffer> }): Promise<X509Certificate> {
  const { tbs, algorithm } = buildTbsCertificate(req, { certificate: issuer.certificate, issuerKey: issuer.certificate.publicKey });
  const certificate = assembleCertificate(tbs, algorithm, await issuer.sign(tbs));
  if (!certificate.verify(issuer.certificate.publicKey)) throw new Error('the issuer\'s signature on the new certificate does not verify');
  return certificate;
}

export function certificateFromPem(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new InputError(`${what} is not a PEM or DER X.509 certificate`);
  }
}

/** Splits a PEM bundle into certificates, in file order. */
export function certificatesFromPemBundle(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new InputError(`${what} holds no PEM certificate`);
  return blocks.map((b) => certificateFromPem(b, what));
}

export interface RawExtension {
  readonly critical: boolean;
  /** DER of the extension's value (the contents of its extnValue OCTET STRING). */
  readonly value: Buffer;
}

/** A certificate's extensions, read with forge's ASN.1 decoder (node has no API). */
function extensionList(certificate: X509Certificate): forge.asn1.Asn1[][] {
  const cert = asn1.fromDer(binary(certificate.raw));
  const tbs = (cert.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[];
  const wrapper = tbs.find((f) => f.tagClass === asn1.Class.CONTEXT_SPECIFIC && f.type === 3);
  if (!wrapper) return [];
  return ((wrapper.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[]).map((ext) => ext.value as forge.asn1.Asn1[]);
}

const isCritical = (parts: forge.asn1.Asn1[]) => parts.length === 3 && parts[1]!.type === asn1.Type.BOOLEAN && parts[1]!.value === '\xff';

/** One extension of a certificate by OID. */
export function readExtension(certificate: X509Certificate, oid: string): RawExtension | undefined {
  const wanted = oidDerContent(oid).toString('binary');
  for (const parts of extensionList(certificate)) {
    if (parts[0]!.value !== wanted) continue;
    const octets = parts[parts.length - 1]!.value as string;
    return { critical: isCritical(parts), value: Buffer.from(octets, 'binary') };
  }
  return undefined;
}

/** The OIDs (dotted) of the extensions marked critical: RFC 5280 4.2 says a user that does not know one must reject the certificate. */
export function criticalExtensionOids(certificate: X509Certificate): string[] {
  return extensionList(certificate).filter(isCritical).map((parts) => asn1.derToOid(forge.util.createBuffer(parts[0]!.value as string)));
}
