/**
 * The server's side of the fair exchange (claims 12-14, patent figure 3 blocks 303-317): the
 * escrow of X, the check of the client's verifiable escrow of Y, abort and resolve at the TTP,
 * and the choice of the exchanges the deadline sweeper settles. The transaction core
 * (`qtm-service.ts`) calls it; it never calls back into the core.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { keyFingerprint, signBytes } from '../crypto/keys.js';
import { cardRecordFor } from '../proof/make-proof.js';
import { decodeHeader, encodePackage, encodeServerSigned } from '../protocol/qtm-package.js';
import type { Profile } from '../protocol/profile.js';
import type { TransactionRecord, TransactionStore } from '../store/types.js';
import type { ClientIdentity } from './client-auth.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { transactionLabel } from '../fair/label.js';
import { oaepEncrypt } from '../fair/oaep.js';
import { escrowProblems } from '../fair/verifiable-escrow.js';
import { abortRequestStatement, type Exchange, type TtpAnswer, type TtpRequest } from '../fair/ttp.js';
import { ServiceError } from './service-error.js';

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
  readonly profile: Profile;
  readonly signer: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly fair: FairOptions;
}

/** What the prepare reply carries for a fair exchange (block 303). */
export interface FairOffer {
  readonly ttpUrl: string;
  readonly ttpCertificates: string[];
  readonly deadline: number;
  readonly escrowX: Buffer;
}

export class FairService {
  private readonly settling = new Set<number>();
  /** The TTP key's fingerprint, part of every fair exchange's label. */
  private readonly ttpFingerprint: Buffer;

  constructor(private readonly o: FairServiceOptions) {
    this.ttpFingerprint = Buffer.from(keyFingerprint(o.fair.ttp.certificates[0]!.publicKey), 'hex');
  }

  get deadlineSeconds(): number {
    return this.o.fair.deadlineSeconds;
  }

  offer(rec: TransactionRecord): FairOffer | undefined {
    if (!rec.prepared.fair) return undefined;
    return {
      ttpUrl: this.o.fair.ttp.url, ttpCertificates: this.o.fair.ttp.certificates.map((c) => c.toString()),
      deadline: rec.prepared.fair.deadline, escrowX: Buffer.from(rec.prepared.fair.escrowX, 'base64'),
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

  /** Block 303: X, and an ordinary escrow of it for the TTP. */
  makeEscrowOfX(header: Buffer, deadline: number): { deadline: number; x: string; escrowX: string } {
    const x = signBytes(this.o.profile, this.o.signer.privateKey, header);
    let escrowX = oaepEncrypt(this.o.fair.ttp.certificates[0]!.publicKey, x, this.fairLabel(header, deadline));
    const cheat = this.o.fair.cheat?.();
    if (cheat?.escrowOfX) escrowX = cheat.escrowOfX(escrowX);
    return { deadline, x: x.toString('base64'), escrowX: escrowX.toString('base64') };
  }

  /** Block 308: what the server releases once the escrow of Y checks. */
  private releaseX(rec: TransactionRecord): Buffer {
    const x = Buffer.from(rec.prepared.fair!.x, 'base64');
    const cheat = this.o.fair.cheat?.();
    return cheat?.releaseX ? cheat.releaseX(x) : x;
  }

  private fairRecord(rec: TransactionRecord): TransactionRecord {
    if (!rec.prepared.fair) throw new ServiceError(409, 'E_NOT_FAIR', `transaction ${rec.transactionId} is not a fair exchange`);
    if (rec.fairAborted) throw new ServiceError(409, 'E_ABORTED', `transaction ${rec.transactionId} was aborted at the TTP: ${rec.fairAborted.reason}`);
    return rec;
  }

  /** Blocks 306-308: check the client's verifiable escrow of Y; release X, or abort at the TTP. */
  async escrow(client: ClientIdentity, found: TransactionRecord, escrowY: Buffer): Promise<Buffer> {
    const rec = this.fairRecord(found);
    const transactionId = rec.transactionId;
    if (rec.escrowY !== undefined) {
      if (rec.escrowY !== escrowY.toString('base64')) throw new ServiceError(409, 'E_ALREADY_ESCROWED', `transaction ${transactionId} already has another escrow`);
      return this.releaseX(rec);
    }
    const exchange = this.exchangeOf(rec);
    const label = this.fairLabel(exchange.header, exchange.deadline);
    const problems = escrowProblems(escrowY, { cardKey: client.certificates[0]!.publicKey, ttpKey: this.o.fair.ttp.certificates[0]!.publicKey, label, message: exchange.header });
    if (problems.length) {
      await this.abortAtTtp(rec, `the client's escrow of Y does not verify (${problems[0]})`);
      throw new ServiceError(403, 'E_BAD_ESCROW', `the escrow of Y does not verify (${problems[0]}${problems.length > 1 ? ` and ${problems.length - 1} more` : ''}); the exchange is aborted at the TTP`);
    }
    await this.o.store.append({ type: 'escrowed', transactionId, escrowY: escrowY.toString('base64') });
    return this.releaseX(this.o.store.get(transactionId)!);
  }

  private async abortAtTtp(rec: TransactionRecord, reason: string): Promise<void> {
    const exchange = this.exchangeOf(rec);
    const proof = signBytes(this.o.profile, this.o.signer.privateKey, abortRequestStatement(this.fairLabel(exchange.header, exchange.deadline)));
    const answer = await this.o.fair.ttp.request(exchange, { kind: 'abort', proof });
    if (answer.outcome === 'aborted') {
      await this.o.store.append({ type: 'fair-aborted', transactionId: rec.transactionId, reason, token: answer.token.toString('base64') });
    }
  }

  /**
   * The server's side when Y does not come (lost, withheld or bogus): resolve at the TTP with X
   * and the client's escrow. The package is then signed with the TTP's Y, and the receipt goes to
   * the card when the client returns (qtm receipts fetch). Without an escrow, abort instead.
   */
  async resolveAtTtp(transactionId: number): Promise<'resolved' | 'aborted' | 'refused' | 'busy'> {
    if (this.settling.has(transactionId)) return 'busy';
    this.settling.add(transactionId);
    try {
      return await this.settle(transactionId);
    } finally {
      this.settling.delete(transactionId);
    }
  }

  private async settle(transactionId: number): Promise<'resolved' | 'aborted' | 'refused'> {
    const rec = this.o.store.get(transactionId);
    if (!rec?.prepared.fair || rec.confirmed || rec.fairAborted) return 'refused';
    if (rec.escrowY === undefined) {
      await this.abortAtTtp(rec, 'no escrow of Y by the deadline');
      return 'aborted';
    }
    const y = await this.yFromTtp(rec);
    if (!y) return this.o.store.get(transactionId)!.fairAborted ? 'aborted' : 'refused';
    const header = decodeHeader(Buffer.from(rec.prepared.header, 'base64'));
    const pkg = encodePackage({ ...header, signatureA: Buffer.from(rec.prepared.fair.x, 'base64'), signatureB: y, signatureServer: signBytes(this.o.profile, this.o.signer.privateKey, encodeServerSigned(header)) });
    await this.o.store.append({ type: 'resolved', transactionId, signatureB: y.toString('base64'), package: pkg.toString('base64'), cardRecord: cardRecordFor(header).toString('base64') });
    return 'resolved';
  }

  /** Block 317: Y from the TTP, extracted from the client's verifiable escrow. */
  async yFromTtp(rec: TransactionRecord): Promise<Buffer | undefined> {
    const answer = await this.o.fair.ttp.request(this.exchangeOf(rec), { kind: 'resolve-server', x: Buffer.from(rec.prepared.fair!.x, 'base64'), escrowY: Buffer.from(rec.escrowY!, 'base64') });
    if (answer.outcome === 'y') return answer.y;
    if (answer.outcome === 'aborted') {
      await this.o.store.append({ type: 'fair-aborted', transactionId: rec.transactionId, reason: 'the TTP had aborted the exchange', token: answer.token.toString('base64') });
    }
    return undefined;
  }

  /** The first message of a fair exchange is taken only after a checked escrow of Y, and never after an abort. */
  checkConfirmable(rec: TransactionRecord): void {
    if (rec.fairAborted) throw new ServiceError(409, 'E_ABORTED', `transaction ${rec.transactionId} was aborted at the TTP: ${rec.fairAborted.reason}`);
    if (rec.escrowY === undefined) throw new ServiceError(409, 'E_NO_ESCROW', `transaction ${rec.transactionId} is a fair exchange: send the escrow of Y first`);
  }

  /** Fair transactions past their deadline and not settled, for the server's sweeper. */
  overdue(now: Date): number[] {
    return [...this.o.store.openFairExchanges()].filter(([, deadline]) => deadline * 1000 <= now.getTime()).map(([id]) => id);
  }
}
