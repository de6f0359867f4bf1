/**
 * Warrants (claims 10-11, patent figure 2): a manager X lets the QTM server sign as X with a key
 * S the server holds, for named customers only. A warrant is an RFC 3820 proxy certificate:
 * issued by X's own end-entity certificate to S, subject = X's subject + CN=<serial>, with a
 * critical proxyCertInfo whose ProxyPolicy carries the qtm warrant policy (./policy.ts).
 * `openssl verify -allow_proxy_certs` accepts the chain; the customer list is enforced here.
 *
 *   ProxyCertInfo ::= SEQUENCE { pCPathLenConstraint INTEGER OPTIONAL,   -- 0: S cannot delegate
 *                                proxyPolicy SEQUENCE { policyLanguage OBJECT IDENTIFIER,
 *                                                       policy OCTET STRING OPTIONAL } }
 */
import type { SigningKey } from '../crypto/signer.js';
import type { KeyObject, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { keyFingerprint } from '../crypto/keys.js';
import { OID, oidDerContent } from '../crypto/oids.js';
import { buildCertificate, buildCertificateWithSigner, randomSerialHex, readExtension, type CertificateRequest } from '../crypto/x509.js';
import { DecodeError, RefusedError } from '../errors.js';
import { decodePolicy, encodePolicy, type CustomerRef, type WarrantPolicy } from './policy.js';
import type { Revocations } from './revocations.js';

const { asn1 } = forge;

export interface Warrant {
  readonly certificate: X509Certificate;
  /** Upper-case hex, as openssl prints it. */
  readonly serial: string;
  readonly policy: WarrantPolicy;
  readonly pathLength?: number;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

function proxyCertInfo(policy: Buffer): object {
  const value = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x00'),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, oidDerContent(OID.warrantPolicy).toString('binary')),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, policy.toString('binary')),
    ]),
  ]);
  return { id: OID.proxyCertInfo, critical: true, value };
}

export interface IssueWarrantInput {
  /** X: the manager's certificate and key (X's own end-entity certificate issues the warrant). */
  readonly issuer: { readonly certificate: X509Certificate; readonly privateKey: SigningKey };
  /** S: the server's proxy signing key (its private half never leaves the server). */
  readonly subjectKey: KeyObject;
  readonly customers: readonly CustomerRef[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

function warrantRequest(input: Omit<IssueWarrantInput, 'issuer'>, issuer: X509Certificate): CertificateRequest {
  if (!(issuer.keyUsage ?? []).includes(OID.ekuWarrantIssuing)) {
    throw new RefusedError('the issuing certificate is not a manager\'s (no warrant-issuing extended key usage)', 'issue the manager a certificate with `qtm ca issue --role manager` or a card with `qtm card issue --role manager`');
  }
  if (input.notAfter <= input.notBefore) throw new RefusedError('the warrant would end before it starts');
  const serialHex = randomSerialHex();
  return {
    subject: 'CN=unused', // replaced: RFC 3820 names a proxy after its issuer
    proxyCommonName: serialHex.toUpperCase(),
    publicKey: input.subjectKey,
    notBefore: input.notBefore,
    notAfter: new Date(Math.min(input.notAfter.getTime(), Date.parse(issuer.validTo))),
    serialHex,
    isCa: false,
    keyUsage: { digitalSignature: true, nonRepudiation: true },
    extraExtensions: [proxyCertInfo(encodePolicy({ version: 1, customers: input.customers }))],
  };
}

export function issueWarrant(input: IssueWarrantInput): X509Certificate {
  return buildCertificate(warrantRequest(input, input.issuer.certificate), input.issuer);
}

/** X's key on a manager's card: the card checks the TBSCertificate is a warrant it issues, and signs it. */
export async function issueWarrantWithCard(
  input: Omit<IssueWarrantInput, 'issuer'> & { readonly issuer: { readonly certificate: X509Certificate; sign(tbs: Buffer): Promise<Buffer> } },
): Promise<X509Certificate> {
  return buildCertificateWithSigner(warrantRequest(input, input.issuer.certificate), input.issuer);
}

/** Reads a warrant's policy; anything that is not a qtm warrant is a DecodeError. */
export function parseWarrant(certificate: X509Certificate): Warrant {
  const ext = readExtension(certificate, OID.proxyCertInfo);
  if (!ext) throw new DecodeError('warrant', 'the certificate has no RFC 3820 proxyCertInfo extension: it is not a warrant');
  if (!ext.critical) throw new DecodeError('warrant', 'proxyCertInfo must be critical (RFC 3820)');
  let seq: forge.asn1.Asn1[];
  try {
    seq = asn1.fromDer(ext.value.toString('binary')).value as forge.asn1.Asn1[];
  } catch {
    throw new DecodeError('warrant', 'proxyCertInfo is not valid DER');
  }
  let pathLength: number | undefined;
  if (seq[0]?.type === asn1.Type.INTEGER) {
    const bytes = Buffer.from(seq.shift()!.value as string, 'binary');
    if (bytes.length === 0 || bytes.length > 4 || bytes[0]! & 0x80) throw new DecodeError('warrant', 'pCPathLenConstraint is not a small non-negative integer');
    pathLength = bytes.readUIntBE(0, bytes.length);
  }
  const policySeq = seq[0]?.value as forge.asn1.Asn1[] | undefined;
  if (!Array.isArray(policySeq) || seq.length !== 1) throw new DecodeError('warrant', 'proxyCertInfo must hold one ProxyPolicy');
  const language = policySeq[0];
  if (language?.type !== asn1.Type.OID || language.value !== oidDerContent(OID.warrantPolicy).toString('binary')) {
    throw new DecodeError('warrant', 'the proxy policy is not in the qtm warrant policy language');
  }
  const policyBytes = policySeq[1]?.type === asn1.Type.OCTETSTRING ? Buffer.from(policySeq[1].value as string, 'binary') : undefined;
  if (!policyBytes) throw new DecodeError('warrant', 'the proxy policy is empty');
  const notBefore = new Date(certificate.validFrom);
  const notAfter = new Date(certificate.validTo);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) throw new DecodeError('warrant', 'the validity period is not a valid time');
  return {
    certificate,
    serial: certificate.serialNumber.toUpperCase(),
    policy: decodePolicy(policyBytes),
    ...(pathLength !== undefined ? { pathLength } : {}),
    notBefore,
    notAfter,
  };
}

function subjectAttributes(cert: X509Certificate): string[] {
  return cert.subject.split('\n');
}

/**
 * Whether the policy names this customer. `issuingCa` is the certificate that issued the
 * customer's (from its verified chain); subject-named customers need it.
 */
export function coversCustomer(policy: WarrantPolicy, customer: X509Certificate, issuingCa: X509Certificate | undefined): boolean {
  const fp = keyFingerprint(customer.publicKey);
  const attributes = subjectAttributes(customer).filter((a) => !a.startsWith('serialNumber=')).sort();
  return policy.customers.some((c) => {
    if ('fingerprint' in c) return c.fingerprint === fp;
    if (!issuingCa || keyFingerprint(issuingCa.publicKey) !== c.issuer || !customer.checkIssued(issuingCa) || !customer.verify(issuingCa.publicKey)) return false;
    const wanted = [...c.subject].sort();
    return wanted.length === attributes.length && wanted.every((a, i) => a === attributes[i]);
  });
}

export function describeCustomers(policy: WarrantPolicy): string {
  return policy.customers.map((c) => ('fingerprint' in c ? `key ${c.fingerprint.slice(0, 16)}…` : `${c.subject.join(', ')} (CA ${c.issuer.slice(0, 16)}…)`)).join('; ');
}

export interface WarrantContext {
  /** X's certificate: the warrant must be issued by it. */
  readonly manager: X509Certificate;
  readonly customer: X509Certificate;
  readonly customerIssuer: X509Certificate | undefined;
  /** The transaction time. */
  readonly at: Date;
  readonly revocations?: Revocations;
}

/** Every reason the warrant does not let S sign for X with this customer at this time. */
export function warrantProblems(w: Warrant, c: WarrantContext): string[] {
  const problems: string[] = [];
  const managerName = c.manager.subject.replace(/\n/g, ', ');
  if (!w.certificate.checkIssued(c.manager) || !w.certificate.verify(c.manager.publicKey)) {
    problems.push(`warrant ${w.serial} is not signed by "${managerName}"`);
  } else if (w.certificate.subject !== `${c.manager.subject}\nCN=${w.serial}`) {
    problems.push(`warrant ${w.serial} subject is not "${managerName}, CN=${w.serial}" (RFC 3820)`);
  }
  if (!(c.manager.keyUsage ?? []).includes(OID.ekuWarrantIssuing)) problems.push(`"${managerName}" is not a manager who may issue warrants`);
  if (w.pathLength !== 0) problems.push(`warrant ${w.serial} lets S delegate further (path length must be 0)`);
  const t = c.at.getTime();
  if (t < w.notBefore.getTime()) problems.push(`warrant ${w.serial} is not valid until ${w.notBefore.toISOString()}`);
  if (t > w.notAfter.getTime()) problems.push(`warrant ${w.serial} expired at ${w.notAfter.toISOString()}`);
  const revoked = c.revocations?.lookup(w.serial, keyFingerprint(c.manager.publicKey));
  if (revoked && revoked.getTime() <= t) problems.push(`warrant ${w.serial} was revoked at ${revoked.toISOString()}`);
  if (!coversCustomer(w.policy, c.customer, c.customerIssuer)) {
    problems.push(`warrant ${w.serial} does not cover "${c.customer.subject.replace(/\n/g, ', ')}" (it covers ${describeCustomers(w.policy)})`);
  }
  return problems;
}
