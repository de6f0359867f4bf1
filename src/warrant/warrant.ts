/**
 * Warrants (claims 10-11, patent figure 2): a manager X lets the QTM server sign as X with a key
 * S the server holds, for named customers only. A warrant is an RFC 3820 proxy certificate:
 * issued by X's own end-entity certificate to S, subject = X's subject + CN=<serial>, with a
 * critical proxyCertInfo whose ProxyPolicy carries the qtm warrant policy (./policy.ts).
 * `openssl verify -allow_proxy_certs` accepts the chain; the customer list is enforced here.
 * The extension's ASN.1 definition, encoder and decoder are in ../crypto/proxy-cert-info.ts.
 */
import type { SigningKey } from '../crypto/signer.js';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { keyFingerprint } from '../crypto/keys.js';
import { decodeProxyCertInfo, proxyCertInfoAsn1, type ProxyCertInfo } from '../crypto/proxy-cert-info.js';
import { OID, oidDerContent } from '../crypto/oids.js';
import { buildCertificate, buildCertificateWithSigner, criticalExtensionOids, randomSerialHex, readExtension, type CertificateRequest } from '../crypto/x509.js';
import { DecodeError, RefusedError } from '../errors.js';
import { decodePolicy, encodePolicy, type CustomerRef, type WarrantPolicy } from './policy.js';

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
  const value = proxyCertInfoAsn1({ pathLength: 0, policyLanguage: oidDerContent(OID.warrantPolicy), policy });
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

/** The critical extensions a warrant may carry: what parseWarrant and the chain check process. */
const WARRANT_CRITICAL_EXTENSIONS = new Set([OID.proxyCertInfo, '2.5.29.15' /* keyUsage */, '2.5.29.19' /* basicConstraints */, '2.5.29.37' /* extKeyUsage */]);

/** Reads a warrant's policy; anything that is not a qtm warrant is a DecodeError. */
export function parseWarrant(certificate: X509Certificate): Warrant {
  const ext = readExtension(certificate, OID.proxyCertInfo);
  if (!ext) throw new DecodeError('warrant', 'the certificate has no RFC 3820 proxyCertInfo extension: it is not a warrant');
  if (!ext.critical) throw new DecodeError('warrant', 'proxyCertInfo must be critical (RFC 3820)');
  // RFC 5280 4.2: a critical extension the reader does not process makes the certificate unusable
  // (openssl verify refuses it too): a warrant cannot carry a restriction qtm would silently skip.
  const unknown = criticalExtensionOids(certificate).filter((oid) => !WARRANT_CRITICAL_EXTENSIONS.has(oid));
  if (unknown.length) throw new DecodeError('warrant', `the warrant has a critical extension qtm does not process (${unknown.join(', ')}): refused, as RFC 5280 asks`);
  let info: ProxyCertInfo;
  try {
    info = decodeProxyCertInfo(ext.value);
  } catch (err) {
    if (err instanceof DecodeError) throw new DecodeError('warrant', err.message);
    throw err;
  }
  const { pathLength } = info;
  if (!info.policyLanguage.equals(oidDerContent(OID.warrantPolicy))) throw new DecodeError('warrant', 'the proxy policy is not in the qtm warrant policy language');
  const policyBytes = info.policy;
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
  /** X's revocation list, verified as X's (./crl.ts). */
  readonly revocations?: { lookup(serial: string, issuerFingerprint: string): Date | undefined };
  /**
   * T, how far a record's time may be off the signer's clock (`qtm sign --clock-tolerance`). A
   * server may backdate a record by up to T, so a proxy signature dated later than the
   * revocation time minus T is refused. 0 on the server, which uses its own clock.
   */
  readonly clockToleranceMs?: number;
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
  const tolerance = c.clockToleranceMs ?? 0;
  if (revoked && revoked.getTime() - tolerance <= t) {
    problems.push(`warrant ${w.serial} was revoked at ${revoked.toISOString()}${tolerance ? ` (a proxy signature dated later than ${tolerance / 1000} s before that may have been backdated: refused)` : ''}`);
  }
  if (!coversCustomer(w.policy, c.customer, c.customerIssuer)) {
    problems.push(`warrant ${w.serial} does not cover "${c.customer.subject.replace(/\n/g, ', ')}" (it covers ${describeCustomers(w.policy)})`);
  }
  return problems;
}
