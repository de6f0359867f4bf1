/**
 * Re-verifying everything a server stored (the patent: "each modification of information in
 * this database ... will be noticed when the digital signatures are checked"). Every confirmed
 * transaction is rebuilt into a proof bundle and verified like any auditor would; prepared ones
 * are checked for a consistent header.
 */
import type { X509Certificate } from 'node:crypto';
import { decodeHeader, encodeHeader, decodePackage } from '../protocol/qtm-package.js';
import { contentId, fingerprint } from '../crypto/keys.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { verifyBundle } from '../verify/verify-bundle.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { cardKeyOfEntry, type TransactionRecord, type TransactionState, type TransactionStore } from '../store/types.js';

export interface AuditFinding {
  readonly transactionId: number;
  readonly state: TransactionState;
  readonly problems: string[];
}

export interface AuditReport {
  readonly total: number;
  readonly byState: Record<TransactionState, number>;
  readonly tampered: AuditFinding[];
  /** Log lines that are not entries at all (edited or damaged), by line number. */
  readonly damagedLines: number[];
  /**
   * Card serials stored with more than one card key (issue 18): a second card made with a known
   * serial. Each key with the transactions stored for it, first seen first.
   */
  readonly sharedSerials: { serial: string; keys: { cardKey: string; transactions: number[] }[] }[];
}

function auditOne(r: TransactionRecord, signerCertificates: string[], trustAnchors: readonly X509Certificate[]): string[] {
  const problems: string[] = [];
  let header;
  try {
    header = decodeHeader(Buffer.from(r.prepared.header, 'base64'));
  } catch (err) {
    return [`stored header does not decode: ${(err as Error).message}`];
  }
  const profile = profileByPackageVersion(header.version)!;
  const content = Buffer.from(r.prepared.content, 'base64');
  if (header.transactionId !== r.transactionId) problems.push(`header names transaction ${header.transactionId}`);
  if (!contentId(content, profile).equals(header.contentId)) problems.push('content does not match its content ID');
  const client = certificatesFromPemBundle(r.prepared.clientCertificate, 'stored client certificate');
  if (!fingerprint(client[0]!.publicKey, profile).equals(header.fingerprintB)) problems.push('client certificate is not party B of the header');
  if (!r.confirmed) return problems;
  try {
    const pkg = decodePackage(Buffer.from(r.confirmed.package, 'base64'));
    if (!encodeHeader(pkg).equals(encodeHeader(header))) problems.push('package header differs from the prepared record');
    if (Buffer.from(pkg.signatureB).toString('base64') !== r.confirmed.firstMessage.signatureB) problems.push('package signature B differs from the first message');
  } catch (err) {
    return [...problems, `stored package does not decode: ${(err as Error).message}`];
  }
  const report = verifyBundle({
    package: Buffer.from(r.confirmed.package, 'base64'),
    content,
    certificates: { server: signerCertificates, partyA: r.prepared.warrant ? [...r.prepared.warrant.certificates.slice(1)] : signerCertificates, partyB: client.map((c) => c.toString()) },
    ...(r.prepared.warrant ? { warrants: r.prepared.warrant.certificates.slice(0, 1) } : {}),
    cardRecord: Buffer.from(r.confirmed.cardRecord, 'base64'),
  }, { trustAnchors, fromServerStore: true });
  for (const f of report.failures) problems.push(`${f.name}: ${f.detail}`);
  return problems;
}

export function auditStore(
  store: TransactionStore,
  signerCertificates: string[],
  trustAnchors: readonly X509Certificate[],
  onProgress?: (done: number, total: number) => void,
): AuditReport {
  const tampered: AuditFinding[] = [];
  const byState = store.countByState();
  const expected = byState.prepared + byState.confirmed + byState.delivered;
  let total = 0;
  const keysBySerial = new Map<string, Map<string, number[]>>();
  for (const r of store.all()) {
    total++;
    const keys = keysBySerial.get(r.prepared.cardSerial) ?? new Map<string, number[]>();
    keysBySerial.set(r.prepared.cardSerial, keys);
    const key = cardKeyOfEntry(r.prepared);
    keys.set(key, [...(keys.get(key) ?? []), r.transactionId]);
    let problems: string[];
    try {
      problems = auditOne(r, signerCertificates, trustAnchors);
    } catch (err) {
      // An edit can make a stored value unparseable (a PEM, a JSON field of the wrong type).
      problems = [`stored record is unreadable: ${(err as Error).message}`];
    }
    if (problems.length) tampered.push({ transactionId: r.transactionId, state: r.state, problems });
    onProgress?.(total, expected);
  }
  const sharedSerials = [...keysBySerial].filter(([, keys]) => keys.size > 1)
    .map(([serial, keys]) => ({ serial, keys: [...keys].map(([cardKey, transactions]) => ({ cardKey, transactions })) }));
  return { total, byState, tampered, damagedLines: [...(store.damagedLines ?? [])], sharedSerials };
}
