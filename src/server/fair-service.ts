/**
 * The server's side of the fair exchange (claims 12-14, patent figure 3 blocks 303-317): the
 * escrow of X, the check of the client's verifiable escrow of Y, abort and resolve at the TTP,
 * and the choice of the exchanges the deadline sweeper settles. The transaction core
 * (`qtm-service.ts`) calls it; it never calls back into the core.
 */
import type { X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import { keyFingerprint, signBytes, verifyBytes } from '../crypto/keys.js';
import { cardRecordFor, warrantBindingFor } from '../proof/make-proof.js';
import { decodeHeader, encodePackage, encodeServerSigned } from '../protocol/qtm-package.js';
import type { Profile } from '../protocol/profile.js';
import type { TransactionRecord, TransactionStore } from '../store/types.js';
import type { ClientIdentity } from './client-auth.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { transactionLabel } from '../fair/label.js';
import { oaepEncrypt } from '../fair/oaep.js';
import { escrowProblems } from '../fair/verifiable-escrow.js';
import { abortRequestStatement, escrowOfXStatement, resolveRequestStatement, verifyAbortToken, type Exchange, type TtpAnswer, type TtpRequest } from '../fair/ttp.js';
import { ServiceError } from './service-error.js';
import { ownRecord, storedCardKey } from './card-binding.js';
import type { TransparencyLog } from '../tlog/log-dir.js';
import { cardKeyOfEntry } from '../store/types.js';

/**
 * A cheating server, for the demo and the tests only (`qtm demo --fair --cheat server`): each
 * hook receives what the honest server would send and returns what the cheater sends instead.
 * Production code never passes one.
 */
export interface ServerCheat {
  /** Block 303: the escrow of X handed to the client. */
  escrowOfX?(honest: Buffer): Buffer;
  /** Block 308: what is released where X should be. */
  releaseX?(honest: Buffer): Buffer;
}

export interface FairOptions {
  readonly ttp: {
    readonly url: string;
    /** The TTP's escrow certificate first (role ttp), then intermediates. */
    readonly certificates: readonly X509Certificate[];
    request(exchange: Exchange, request: TtpRequest): Promise<TtpAnswer>;
  };
  /** Seconds from the record to the exchange's deadline. */
  readonly deadlineSeconds: number;
  /** Demo and tests only: consulted at each step, so one server can cheat for one exchange. */
  readonly cheat?: () => ServerCheat | undefined;
}

export interface FairServiceOptions {
  readonly store: TransactionStore;
  /** The transparency log: a TTP-settled exchange is a signed transaction too (issue 12). */
  readonly transparency?: TransparencyLog;
  readonly profile: Profile;
  readonly signer: { readonly privateKey: SigningKey; readonly certificates: readonly X509Certificate[] };
  readonly fair: FairOptions;
  readonly now?: () => Date;
}

/** What the prepare reply carries for a fair exchange (block 303). */
export interface FairOffer {
  readonly ttpUrl: string;
  readonly ttpCertificates: string[];
  readonly deadline: number;
  readonly escrowX: Buffer;
  readonly escrowXSignature?: Buffer;
}

/** What one settlement attempt ended with ('unreachable': no answer came; tried again later). */
export type SettleOutcome = 'resolved' | 'aborted' | 'refused' | 'unreachable' | 'busy';

/** The sweeper retries an exchange it cannot settle after 2, 4, 8 ... seconds, at most this. */
const MAX_BACKOFF_SECONDS = 600;

export class FairService {
  private readonly settling = new Set<number>();
  private readonly backoff = new Map<number, { attempts: number; next: number }>();
  /** The last unsettling answer per exchange ('refused: ...' or 'unreachable: ...'), for the report. */
  private readonly lastProblem = new Map<number, { outcome: 'refused' | 'unreachable'; reason: string }>();
  private readonly now: () => Date;
  /** The TTP key's fingerprint, part of every fair exchange's label. */
  private readonly ttpFingerprint: Buffer;

  constructor(private readonly o: FairServiceOptions) {
    this.ttpFingerprint = Buffer.from(keyFingerprint(o.fair.ttp.certificates[0]!.publicKey), 'hex');
    this.now = o.now ?? (() => new Date());
  }

  get deadlineSeconds(): number {
    return this.o.fair.deadlineSeconds;
  }

  offer(rec: TransactionRecord): FairOffer | undefined {
    if (!rec.prepared.fair) return undefined;
    return {
      ttpUrl: this.o.fair.ttp.url, ttpCertificates: this.o.fair.ttp.certificates.map((c) => c.toString()),
      deadline: rec.prepared.fair.deadline, escrowX: Buffer.from(rec.prepared.fair.escrowX, 'base64'),
      ...(rec.prepared.fair.escrowXSignature ? { escrowXSignature: Buffer.from(rec.prepared.fair.escrowXSignature, 'base64') } : {}),
    };
  }

  private exchangeOf(rec: TransactionRecord): Exchange {
    return {
      header: Buffer.from(rec.prepared.header, 'base64'),
      deadline: rec.prepared.fair!.deadline,
      serverCertificates: this.o.signer.certificates,
      cardCertificates: certificatesFromPemBundle(rec.prepared.clientCertificate, 'stored client certificate'),
    };
  }

  private fairLabel(header: Buffer, deadline: number): Buffer {
    return transactionLabel({ header, ttpFingerprint: this.ttpFingerprint, deadline });
  }

  /**
   * Block 303: X, an ordinary escrow of it for the TTP, and the server's promise: its receipt
   * key's signature over the label and SHA-256 of that escrow (issue 17), which the client checks
   * before the card signs and deposits with the TTP. It proves the server made this escrow for
   * this exchange: a card holder cannot deposit one of her own, and a bogus one is the server's.
   */
  makeEscrowOfX(header: Buffer, deadline: number): { deadline: number; x: string; escrowX: string; escrowXSignature: string } {
    const x = signBytes(this.o.profile, this.o.signer.privateKey, header);
    const label = this.fairLabel(header, deadline);
    let escrowX = oaepEncrypt(this.o.fair.ttp.certificates[0]!.publicKey, x, label);
    const cheat = this.o.fair.cheat?.();
    if (cheat?.escrowOfX) escrowX = cheat.escrowOfX(escrowX);
    const escrowXSignature = signBytes(this.o.profile, this.o.signer.privateKey, escrowOfXStatement(label, escrowX));
    return { deadline, x: x.toString('base64'), escrowX: escrowX.toString('base64'), escrowXSignature: escrowXSignature.toString('base64') };
  }

  /** The server's resolve request: its receipt key over the label and SHA-256 of the escrow of Y (X alone is no authentication: the client holds it). */
  private resolveRequest(rec: TransactionRecord): TtpRequest {
    const escrowY = Buffer.from(rec.escrowY!, 'base64');
    const label = this.fairLabel(Buffer.from(rec.prepared.header, 'base64'), rec.prepared.fair!.deadline);
    return { kind: 'resolve-server', x: Buffer.from(rec.prepared.fair!.x, 'base64'), escrowY, proof: signBytes(this.o.profile, this.o.signer.privateKey, resolveRequestStatement(label, escrowY)) };
  }

  /** Block 308: what the server releases once the escrow of Y checks. */
  private releaseX(rec: TransactionRecord): Buffer {
    const x = Buffer.from(rec.prepared.fair!.x, 'base64');
    const cheat = this.o.fair.cheat?.();
    return cheat?.releaseX ? cheat.releaseX(x) : x;
  }

  /** The TTP's answer, or why none came (a network failure is an answer to retry, never a decision). */
  private async ask(rec: TransactionRecord, request: TtpRequest): Promise<TtpAnswer | { outcome: 'unreachable'; reason: string }> {
    let answer: TtpAnswer | { outcome: 'unreachable'; reason: string };
    try {
      answer = await this.o.fair.ttp.request(this.exchangeOf(rec), request);
    } catch (err) {
      answer = { outcome: 'unreachable', reason: (err as Error).message };
    }
    if (answer.outcome === 'refused' || answer.outcome === 'unreachable') this.lastProblem.set(rec.transactionId, answer);
    else this.lastProblem.delete(rec.transactionId);
    return answer;
  }

  /**
   * Every TTP answer the server receives is applied, durably, before anything else happens:
   * Y (from an abort or a resolve) settles the exchange as resolved: the package is signed with
   * it and the receipt waits for the card (qtm receipts fetch); an abort token settles it as
   * aborted. Both are checked first (Y with the card's key, the token with the TTP's), so a
   * forged answer changes nothing. Returns the record as stored afterwards.
   */
  private apply(id: number, answer: TtpAnswer | { outcome: 'unreachable'; reason: string }, reason: string): Promise<TransactionRecord> {
    // One at a time per exchange, across instances: the sweeper and a request may apply the same answer at once.
    return this.o.store.exclusive(id, () => this.applyNow(id, answer, reason));
  }

  private async stored(id: number): Promise<TransactionRecord> {
    const rec = await this.o.store.get(id);
    if (!rec) throw new Error(`transaction ${id} is not in the store`);
    return rec;
  }

  private async applyNow(id: number, answer: TtpAnswer | { outcome: 'unreachable'; reason: string }, reason: string): Promise<TransactionRecord> {
    const rec = await this.stored(id);
    const header = Buffer.from(rec.prepared.header, 'base64');
    if (rec.confirmed || rec.fairAborted) return rec; // settled already: the first settlement stands
    if (answer.outcome === 'y') {
      const card = certificatesFromPemBundle(rec.prepared.clientCertificate, 'stored client certificate')[0]!;
      if (!verifyBytes(this.o.profile, card.publicKey, header, answer.y)) throw new ServiceError('E_TTP_ANSWER', `the TTP's Y for transaction ${id} is not the card's signature`);
      // Never under a warrant (fair exchange with proxy signing is refused): the digest is zero in version 3.
      const h = { ...decodeHeader(header), ...warrantBindingFor(decodeHeader(header), undefined) };
      const pkg = encodePackage({ ...h, signatureA: Buffer.from(rec.prepared.fair!.x, 'base64'), signatureB: answer.y, signatureServer: signBytes(this.o.profile, this.o.signer.privateKey, encodeServerSigned(h)) });
      // The one signing of the transaction: a confirm that raced it in stands, and this answer is then moot.
      const signed = await this.o.store.appendSigned({ type: 'resolved', transactionId: id, signatureB: answer.y.toString('base64'), package: pkg.toString('base64'), cardRecord: cardRecordFor(h).toString('base64') });
      await this.o.transparency?.append({ transactionId: id, package: signed.stored ? pkg : Buffer.from(signed.existing.package, 'base64'), cardKey: cardKeyOfEntry(rec.prepared) });
    } else if (answer.outcome === 'aborted') {
      if (!verifyAbortToken(this.o.fair.ttp.certificates[0]!.publicKey, this.fairLabel(header, rec.prepared.fair!.deadline), answer.token)) {
        throw new ServiceError('E_TTP_ANSWER', `the TTP's abort token for transaction ${id} does not verify`);
      }
      await this.o.store.append({ type: 'fair-aborted', transactionId: id, reason, token: answer.token.toString('base64') });
    }
    return this.stored(id);
  }

  /** Blocks 306-308: check the client's verifiable escrow of Y; release X, or abort at the TTP. */
  async escrow(client: ClientIdentity, stored: TransactionRecord, escrowY: Buffer): Promise<Buffer> {
    const transactionId = stored.transactionId;
    // The caller's card must be the card the transaction is bound to (serial and key).
    const rec = ownRecord(stored, client, transactionId);
    // The server already holds Y (a first message or the TTP): X costs it nothing.
    if (rec.confirmed) return this.releaseX(rec);
    if (rec.fairAborted) throw new ServiceError('E_ABORTED', `transaction ${transactionId} was aborted at the TTP: ${rec.fairAborted.reason}`);
    // Only before an abort and before the deadline (the sweeper aborts after it) may X leave.
    if (rec.fairAbortIntent) throw new ServiceError('E_ABORTING', `transaction ${transactionId}: the server asked the TTP to abort (${rec.fairAbortIntent.reason}); the TTP's answer decides, no X is released until it comes`);
    if (rec.escrowY !== undefined) {
      if (rec.escrowY !== escrowY.toString('base64')) throw new ServiceError('E_ALREADY_ESCROWED', `transaction ${transactionId} already has another escrow`);
      return this.releaseX(rec);
    }
    if (this.pastDeadline(rec)) throw new ServiceError('E_DEADLINE', `transaction ${transactionId}: the fair exchange's deadline has passed; it is settled at the TTP (resolve there)`);
    const exchange = this.exchangeOf(rec);
    const label = this.fairLabel(exchange.header, exchange.deadline);
    const problems = escrowProblems(escrowY, { cardKey: storedCardKey(rec), ttpKey: this.o.fair.ttp.certificates[0]!.publicKey, label, message: exchange.header });
    if (problems.length) {
      const why = `the escrow of Y does not verify (${problems[0]}${problems.length > 1 ? ` and ${problems.length - 1} more` : ''})`;
      const after = await this.abortAtTtp(rec, `the client's escrow of Y does not verify (${problems[0]})`);
      throw new ServiceError('E_BAD_ESCROW', `${why}; ${after.fairAborted
        ? 'the exchange is aborted at the TTP'
        : after.confirmed ? 'the TTP had already resolved the exchange: the server holds Y, the receipt waits for qtm receipts fetch'
          : 'the server asked the TTP to abort and waits for its answer'}`);
    }
    await this.o.store.append({ type: 'escrowed', transactionId, escrowY: escrowY.toString('base64') });
    return this.releaseX(await this.stored(transactionId));
  }

  private pastDeadline(rec: TransactionRecord): boolean {
    return rec.prepared.fair!.deadline * 1000 <= this.now().getTime();
  }

  /** Abort at the TTP: the intent is durable before the request leaves, and the answer is applied. */
  private async abortAtTtp(rec: TransactionRecord, reason: string): Promise<TransactionRecord> {
    if (!rec.fairAbortIntent) await this.o.store.append({ type: 'fair-abort-intent', transactionId: rec.transactionId, reason, at: this.now().toISOString() });
    const exchange = this.exchangeOf(rec);
    const proof = signBytes(this.o.profile, this.o.signer.privateKey, abortRequestStatement(this.fairLabel(exchange.header, exchange.deadline)));
    return this.apply(rec.transactionId, await this.ask(rec, { kind: 'abort', proof }), reason);
  }

  /**
   * The server's side when Y does not come (lost, withheld or bogus): resolve at the TTP with X
   * and the client's escrow. The package is then signed with the TTP's Y, and the receipt goes to
   * the card when the client returns (qtm receipts fetch). Without an escrow, abort instead (the
   * TTP answers Y if the client resolved first). Every definite answer ends the exchange; one
   * that cannot be settled is retried with a growing delay (see overdue) and reported.
   */
  async resolveAtTtp(transactionId: number): Promise<SettleOutcome> {
    if (this.settling.has(transactionId)) return 'busy';
    this.settling.add(transactionId);
    const later = () => {
      const n = (this.backoff.get(transactionId)?.attempts ?? 0) + 1;
      this.backoff.set(transactionId, { attempts: n, next: Date.now() + Math.min(2 ** n, MAX_BACKOFF_SECONDS) * 1000 });
    };
    try {
      const outcome = await this.settle(transactionId);
      if (outcome === 'refused' || outcome === 'unreachable') later();
      else this.backoff.delete(transactionId);
      return outcome;
    } catch (err) {
      later();
      throw err;
    } finally {
      this.settling.delete(transactionId);
    }
  }

  /** How often the sweeper failed to settle this exchange, and when it will try again. */
  retries(transactionId: number): { attempts: number; next: Date; problem: string } | undefined {
    const b = this.backoff.get(transactionId);
    const p = this.lastProblem.get(transactionId);
    return b && { attempts: b.attempts, next: new Date(b.next), problem: p ? `${p.outcome}: ${p.reason}` : 'unknown' };
  }

  private async settle(transactionId: number): Promise<SettleOutcome> {
    const rec = await this.o.store.get(transactionId);
    if (!rec?.prepared.fair) return 'refused';
    if (rec.confirmed) return 'resolved';
    if (rec.fairAborted) return 'aborted';
    const after = rec.escrowY === undefined
      ? await this.abortAtTtp(rec, 'no escrow of Y by the deadline')
      : await this.apply(transactionId, await this.ask(rec, this.resolveRequest(rec)), 'the TTP had aborted the exchange');
    if (after.confirmed) return 'resolved';
    if (after.fairAborted) return 'aborted';
    return this.lastProblem.get(transactionId)?.outcome ?? 'refused';
  }

  /**
   * Block 317: the first message's Y is bogus, so Y comes from the TTP, extracted from the
   * client's verifiable escrow (for the core to sign with). An abort answer is applied.
   */
  async yFromTtp(rec: TransactionRecord): Promise<Buffer | undefined> {
    if (rec.escrowY === undefined) return undefined;
    const answer = await this.ask(rec, this.resolveRequest(rec));
    const card = certificatesFromPemBundle(rec.prepared.clientCertificate, 'stored client certificate')[0]!;
    if (answer.outcome === 'y' && verifyBytes(this.o.profile, card.publicKey, Buffer.from(rec.prepared.header, 'base64'), answer.y)) return answer.y;
    if (answer.outcome === 'aborted') await this.apply(rec.transactionId, answer, 'the TTP had aborted the exchange');
    return undefined;
  }

  /**
   * Before the core takes a first message of a fair exchange: 'resolved' when the TTP settled
   * it with Y (the core answers from that state, with a fresh envelope); 'open' when the first
   * message may be taken (its valid Y is the server's, whether or not an escrow came); otherwise a
   * refusal that says the truth: aborted, or an abort whose answer is not in yet.
   */
  async beforeConfirm(rec: TransactionRecord): Promise<'resolved' | 'open'> {
    let r = rec;
    if (r.resolved) return 'resolved';
    if (r.confirmed) return 'open'; // a repeated first message: the core answers it
    if (!r.fairAborted && r.fairAbortIntent) r = await this.abortAtTtp(r, r.fairAbortIntent.reason);
    if (r.resolved) return 'resolved';
    if (r.fairAborted) throw new ServiceError('E_ABORTED', `transaction ${r.transactionId} was aborted at the TTP: ${r.fairAborted.reason}`);
    if (r.fairAbortIntent) throw new ServiceError('E_ABORTING', `transaction ${r.transactionId}: the server asked the TTP to abort and has no answer yet; try again later`);
    if (r.escrowY === undefined && this.pastDeadline(r)) throw new ServiceError('E_DEADLINE', `transaction ${r.transactionId}: no escrow of Y came by the deadline; the exchange is settled at the TTP (qtm receipts fetch gets the receipt if it resolves)`);
    return 'open';
  }

  /** Fair transactions past their deadline and not settled, for the server's sweeper (skipping those backing off). */
  async overdue(now: Date): Promise<number[]> {
    return [...await this.o.store.openFairExchanges()]
      .filter(([id, deadline]) => deadline * 1000 <= now.getTime() && (this.backoff.get(id)?.next ?? 0) <= Date.now())
      .map(([id]) => id);
  }
}
