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
import type { LogFindings } from '../store/log-store.js';
import { headStatement, type SignedHead } from '../store/head.js';
import type { Sam } from '../sam/sam.js';
import { checkStorageProof } from '../crypto/secure-write.js';

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
  /** What the log's chain, heads and ID sequence show: edits, removals, insertions, gaps. */
  readonly logProblems: string[];
  /** Not problems: what the audit could not check yet, and why (entries a running server has yet to sign). */
  readonly notes: string[];
  /** The last signed head, when the store has them. */
  readonly head?: { readonly seq: number; readonly hash: string };
}

export interface AuditOptions {
  /** The log's own findings (LogStore opened read-only with the receipt certificate). */
  readonly findings?: LogFindings;
  /** With the SAM, each storage proof W is checked against the card's keys. */
  readonly sam?: Sam;
  /** A head a customer kept: the store must still hold the history it signed. */
  readonly minHead?: SignedHead;
  /** Checks a head's signature (the receipt certificate's key). */
  readonly verifyHead?: (statement: Buffer, signature: Buffer) => boolean;
}

/** W: the card proved it stored this record under the offered challenge (claim 7). */
function storageProofProblem(r: TransactionRecord, sam: Sam): string | undefined {
  if (!r.delivered || !r.offer || !r.confirmed) return undefined;
  const keys = sam.cardKeys(Buffer.from(r.prepared.cardSerial, 'hex'));
  const ok = checkStorageProof(keys, Buffer.from(r.offer.challenge, 'base64'), Buffer.from(r.confirmed.cardRecord, 'base64'), Buffer.from(r.delivered.proof, 'base64'));
  return ok ? undefined : 'delivered: the storage proof W does not verify with the card\'s keys (the card never stored this receipt)';
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

export async function auditStore(
  store: TransactionStore,
  signerCertificates: string[],
  trustAnchors: readonly X509Certificate[],
  onProgress?: (done: number, total: number) => void,
  options: AuditOptions = {},
): Promise<AuditReport> {
  const tampered: AuditFinding[] = [];
  const byState = await store.countByState();
  const expected = byState.prepared + byState.confirmed + byState.delivered;
  let total = 0;
  const ids: number[] = [];
  const keysBySerial = new Map<string, Map<string, number[]>>();
  for await (const r of store.all()) {
    total++;
    ids.push(r.transactionId);
    const keys = keysBySerial.get(r.prepared.cardSerial) ?? new Map<string, number[]>();
    keysBySerial.set(r.prepared.cardSerial, keys);
    const key = cardKeyOfEntry(r.prepared);
    keys.set(key, [...(keys.get(key) ?? []), r.transactionId]);
    let problems: string[];
    try {
      problems = auditOne(r, signerCertificates, trustAnchors);
      const w = options.sam ? storageProofProblem(r, options.sam) : undefined;
      if (w) problems.push(w);
    } catch (err) {
      // An edit can make a stored value unparseable (a PEM, a JSON field of the wrong type).
      problems = [`stored record is unreadable: ${(err as Error).message}`];
    }
    if (problems.length) tampered.push({ transactionId: r.transactionId, state: r.state, problems });
    onProgress?.(total, expected);
  }
  const logProblems = [...(options.findings?.problems ?? [])];
  // IDs come from the store, each in the same write as its entry: from the first, none is missing.
  for (let i = 1; i < ids.length; i++) {
    if (ids[i]! !== ids[i - 1]! + 1) logProblems.push(`transactions ${ids[i - 1]! + 1}..${ids[i]! - 1} are missing: IDs are handed out with their entry, so these were removed`);
  }
  const last = options.findings?.lastHead;
  if (options.minHead) {
    const h = options.minHead;
    if (options.verifyHead && !options.verifyHead(headStatement(h), h.sig)) logProblems.push(`the head given (entry ${h.seq}) is not signed by this server's receipt key`);
    else {
      const held = options.findings?.hashes.get(h.seq);
      if (held === undefined) logProblems.push(`the store ends before entry ${h.seq}, which the head given proves it once held: it was cut back (rolled back)`);
      else if (held !== h.hash) logProblems.push(`entry ${h.seq} is not the one the head given signed: the store's history was rewritten`);
    }
  }
  const sharedSerials = [...keysBySerial].filter(([, keys]) => keys.size > 1)
    .map(([serial, keys]) => ({ serial, keys: [...keys].map(([cardKey, transactions]) => ({ cardKey, transactions })) }));
  return {
    total, byState, tampered, damagedLines: [...(store.damagedLines ?? [])], logProblems, notes: [...(options.findings?.notes ?? [])], sharedSerials,
    ...(last ? { head: { seq: last.seq, hash: last.hash } } : {}),
  };
}
