/**
 * The QTM service (patent figure 1, item 18; claims 1-7): everything the server does in a
 * transaction, without HTTP. Every step is idempotent: repeating a request returns the stored
 * answer, and a reply is given only once its entry is durable in the store.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import { fingerprint, signBytes, verifyBytes } from '../crypto/keys.js';
import { sealRecord, checkStorageProof } from '../crypto/secure-write.js';
import { cardRecordFor, headerFor, warrantBindingFor } from '../proof/make-proof.js';
import { checkPlainText } from '../protocol/plain-text.js';
import { decodeHeader, encodeHeader, encodePackage, encodeServerSigned, type PackageHeader, type WarrantBinding } from '../protocol/qtm-package.js';
import type { Profile } from '../protocol/profile.js';
import type { FirstMessage, OrderItem, PreparedTransaction, SecondMessage, ThirdMessage } from '../protocol/messages.js';
import { fold, type PreparedEntry, type TransactionRecord, type TransactionStore } from '../store/types.js';
import { withCardKeys, type Sam } from '../sam/sam.js';
import { composeOrder, type Catalogue } from './catalogue.js';
import { checkOrder, newOrderNonce, orderIdFor, ORDER_LIFETIME_SECONDS } from './concept-orders.js';
import type { ClientIdentity } from './client-auth.js';
import { ProxySigning, type ProxyOptions } from './proxy-signing.js';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS } from '../protocol/clock.js';
import { ServiceError } from './service-error.js';
import type { CardKeyBinding } from './card-keys.js';
import { belongsTo, ownRecord, storedCardKey, storedSerial } from './card-binding.js';
import { FairService, type FairOptions, type SettleOutcome } from './fair-service.js';
import type { TransparencyLog } from '../tlog/log-dir.js';
import { encodeTransparency } from '../tlog/bundle-proof.js';
import { cardKeyOfEntry } from '../store/types.js';

export { ServiceError } from './service-error.js';
export type { FairOptions, ServerCheat } from './fair-service.js';
export type { ProxyOptions } from './proxy-signing.js';

export interface ServiceOptions {
  readonly store: TransactionStore;
  readonly profile: Profile;
  /** The receipt-signing key and its certificate chain (claim 5: not the TLS key). */
  readonly signer: { readonly privateKey: SigningKey; readonly certificates: readonly X509Certificate[] };
  readonly sam: Sam;
  /** Card keys by serial: a login whose serial is registered with another key is refused. */
  readonly cardKeys: CardKeyBinding;
  readonly catalogue: Catalogue;
  /** The key concept order IDs are MACs under (concept-orders.ts; `<store>/order-key`, or the settings table of a PostgreSQL store). */
  readonly orderKey: Buffer;
  readonly now?: () => Date;
  /** Sign as party A by proxy for manager X, under X's warrants (claims 10-11). */
  readonly proxy?: ProxyOptions;
  /** Offer the fair exchange of signatures through this TTP (claims 12-14). */
  readonly fair?: FairOptions;
  /** The first transaction ID of an empty store (`--first-id`), when its receipt key signed elsewhere before. */
  readonly firstTransactionId?: number;
  /** Every signed transaction gets a leaf here before its reply goes out (issue 12). */
  readonly transparency?: TransparencyLog;
}

export class QtmService {
  private readonly now: () => Date;
  /** SPEC 2: the server ID is the fingerprint of the receipt-signing key. */
  readonly serverId: Buffer;
  readonly signerCertificates: readonly string[];
  /** The fair exchange (claims 12-14), when the server offers it. */
  readonly fair: FairService | undefined;
  /** Proxy signing (claims 10-11), when the server signs for a manager. */
  readonly proxy: ProxySigning | undefined;

  constructor(private readonly o: ServiceOptions) {
    this.now = o.now ?? (() => new Date());
    this.serverId = fingerprint(o.signer.certificates[0]!.publicKey, o.profile);
    this.signerCertificates = o.signer.certificates.map((c) => c.toString());
    this.proxy = o.proxy ? new ProxySigning(o.proxy, this.now) : undefined;
    this.fair = o.fair ? new FairService({ store: o.store, profile: o.profile, signer: o.signer, fair: o.fair, now: this.now, ...(o.transparency ? { transparency: o.transparency } : {}) }) : undefined;
  }

  /**
   * After the card authenticated: a serial already registered with another card key (a second
   * card made with a known serial) is refused; a serial seen for the first time is registered.
   */
  async login(client: ClientIdentity): Promise<void> {
    await this.o.cardKeys.bind(client.cardSerial, client.cardKey, this.now());
  }

  /** The order application: compose a concept order from catalogue items. */
  composeOrder(items: readonly OrderItem[], buyer = '(authenticated at signing)'): { orderId: string; content: Buffer } {
    const now = this.now();
    const nonce = newOrderNonce();
    const reference = `${now.toISOString().slice(0, 10).replace(/-/g, '')}-${nonce.toString('hex')}`;
    const { content } = composeOrder(this.o.catalogue, items, buyer, now, reference);
    const expiry = Math.floor(now.getTime() / 1000) + ORDER_LIFETIME_SECONDS;
    return { orderId: orderIdFor(this.o.orderKey, nonce, expiry, content), content };
  }

  /** Concept orders are not kept: the content travels with the ID (POST /orders, then prepare). */
  getOrder(orderId: string): Buffer {
    throw new ServiceError('E_NO_ORDER', `no concept order "${orderId}" on this server: orders are not kept, their content comes with the ID from POST /orders (qtm sign --items)`);
  }

  private async record(client: ClientIdentity, transactionId: number): Promise<TransactionRecord> {
    // Another card's transaction (another serial, or the same serial with another key) is
    // reported as absent: its existence is not the caller's business (card-binding.ts).
    return ownRecord(await this.o.store.get(transactionId), client, transactionId);
  }

  /** Builds the record to sign: the pre-QTM package for this card and the content. */
  async prepare(client: ClientIdentity, orderId: string, content: Buffer, fair = false): Promise<PreparedTransaction> {
    // The ID must be this server's MAC over this content, unexpired: nothing else is checked first.
    const nowSeconds = Math.floor(this.now().getTime() / 1000);
    checkOrder(this.o.orderKey, orderId, content, nowSeconds);
    const order = { content };
    if (client.profile.name !== this.o.profile.name) {
      throw new ServiceError('E_PROFILE', `the card uses profile ${client.profile.name}, this server ${this.o.profile.name}`);
    }
    checkPlainText(order.content);
    if (fair && !this.o.fair) throw new ServiceError('E_NO_TTP', 'this server offers no fair exchange (it was started without --ttp)');
    if (fair && this.o.proxy) throw new ServiceError('E_NO_TTP', 'the fair exchange is not offered together with proxy signing (docs/FAIR-EXCHANGE.md, "Fair exchange and proxy signing", says why)');
    const warrant = this.proxy?.warrantFor(client);
    const time = Math.floor(this.now().getTime() / 1000);
    const signer = { certificates: this.o.signer.certificates };
    const partyA = warrant ? { certificates: [warrant.warrant.certificate] } : signer;
    // The store picks the ID in the same durable write as the entry (no ID twice, none lost),
    // and one transaction per order: a retried prepare, through this instance or another, gets
    // the same transaction; another card gets E_ORDER_TAKEN.
    let built: PreparedEntry | undefined;
    const { transactionId, created } = await this.o.store.appendPrepared((id) => {
      const header = encodeHeader(headerFor({ profile: this.o.profile, transactionId: id, time, content: order.content, server: signer, partyA, partyB: { certificates: client.certificates } }));
      return built = {
        type: 'prepared',
        transactionId: id,
        orderId,
        time,
        content: order.content.toString('base64'),
        header: header.toString('base64'),
        clientCertificate: client.certificates.map((c) => c.toString()).join(''),
        cardSerial: client.cardSerial,
        cardKey: client.cardKey,
        ...(warrant ? { warrant: { serial: warrant.warrant.serial, certificates: [warrant.warrant.certificate, ...warrant.issuerChain].map((c) => c.toString()) } } : {}),
        ...(fair ? { fair: this.fair!.makeEscrowOfX(header, time + this.fair!.deadlineSeconds) } : {}),
      };
    }, { orderId, ...(this.o.firstTransactionId !== undefined ? { firstId: this.o.firstTransactionId } : {}) });
    // The record this call created is the entry it just committed; one that existed is read back
    // (a retried prepare, through this instance or another), to be answered or refused.
    const stored = created && built?.transactionId === transactionId ? fold(undefined, built) : await this.o.store.get(transactionId);
    if (!stored) throw new Error(`transaction ${transactionId} was prepared but cannot be read back`);
    if (!created && !belongsTo(stored, client)) throw new ServiceError('E_ORDER_TAKEN', `order "${orderId}" is already being signed by another card`);
    return this.preparedMessage(stored);
  }

  /** S for a transaction prepared under a warrant; a server restarted without its warrants has none. */
  private proxyKey(client: ClientIdentity, serial: string): SigningKey {
    if (!this.proxy) throw new ServiceError('E_WARRANT_GONE', `warrant ${serial} of this transaction is no longer on this server`);
    return this.proxy.keyFor(client, serial);
  }

  /** The record of one of this card's transactions, for a client that lost it. */
  async prepared(client: ClientIdentity, transactionId: number): Promise<PreparedTransaction> {
    return this.preparedMessage(await this.record(client, transactionId));
  }

  private preparedMessage(rec: TransactionRecord): PreparedTransaction {
    return {
      transactionId: rec.transactionId,
      header: Buffer.from(rec.prepared.header, 'base64'),
      content: Buffer.from(rec.prepared.content, 'base64'),
      serverCertificates: [...this.signerCertificates],
      ...(rec.prepared.warrant
        ? { partyACertificates: rec.prepared.warrant.certificates.slice(1), warrants: rec.prepared.warrant.certificates.slice(0, 1) }
        : { partyACertificates: [...this.signerCertificates] }),
      ...(this.fair?.offer(rec) ?? {}),
    };
  }

  // ---- Fair exchange (claims 12-14, patent figure 3): fair-service.ts ----

  private fairService(rec: TransactionRecord): FairService {
    if (!rec.prepared.fair || !this.fair) throw new ServiceError('E_NOT_FAIR', `transaction ${rec.transactionId} is not a fair exchange`);
    return this.fair;
  }

  /** Blocks 306-308: check the client's verifiable escrow of Y; release X, or abort at the TTP. */
  async escrow(client: ClientIdentity, transactionId: number, escrowY: Buffer): Promise<Buffer> {
    const rec = await this.record(client, transactionId);
    return this.fairService(rec).escrow(client, rec, escrowY);
  }

  /** The deadline's settlement at the TTP (blocks 307, 316-317). */
  async resolveAtTtp(transactionId: number): Promise<SettleOutcome> {
    return this.fair ? this.fair.resolveAtTtp(transactionId) : 'refused';
  }

  /** The stored record's fields 1-7 with the digest of the warrant it was prepared under (version 3). */
  private boundHeader(rec: TransactionRecord): PackageHeader & WarrantBinding {
    const header = decodeHeader(Buffer.from(rec.prepared.header, 'base64'));
    const warrant = rec.prepared.warrant ? new X509Certificate(rec.prepared.warrant.certificates[0]!) : undefined;
    return { ...header, ...warrantBindingFor(header, warrant) };
  }

  /** Fair transactions past their deadline and not settled, for the server's sweeper. */
  async overdueFair(now = this.now()): Promise<number[]> {
    return this.fair ? this.fair.overdue(now) : [];
  }

  /**
   * The first message: verify the card's signature against the client certificate, store
   * record + first message + certificate, sign, and answer with the package and the
   * secure-write envelope for the card's diversified keys.
   */
  async confirm(client: ClientIdentity, transactionId: number, firstMessage: FirstMessage): Promise<SecondMessage> {
    let first = firstMessage;
    const rec = await this.record(client, transactionId);
    // A fair exchange the TTP settled with Y is answered from that state (fair-service.ts).
    if (rec.prepared.fair && (await this.fairService(rec).beforeConfirm(rec)) === 'resolved') return this.redeliver(client, transactionId, first.challenge, first.slot);
    const firstStored = { signatureB: first.signature.toString('base64'), challenge: first.challenge.toString('base64'), slot: first.slot, priority: first.priority };
    if (rec.confirmed) {
      const same = JSON.stringify(rec.confirmed.firstMessage) === JSON.stringify(firstStored);
      if (!same) throw new ServiceError('E_ALREADY_CONFIRMED', `transaction ${transactionId} was already confirmed with another first message`);
      return await this.second(rec, Buffer.from(rec.confirmed.package, 'base64'), Buffer.from(rec.confirmed.envelope, 'base64'), first.slot);
    }
    // Issue 18 section 4: the record's time is what the card signs; a first message more than T
    // after it is refused for good, so no record is signed long after its date (a warrant revoked
    // meanwhile, a card held back). Fair exchanges are bounded by their deadline instead.
    const age = Math.floor(this.now().getTime() / 1000) - rec.prepared.time;
    if (!rec.prepared.fair && (rec.abandoned || age > DEFAULT_CLOCK_TOLERANCE_SECONDS)) {
      const reason = `the record is dated ${new Date(rec.prepared.time * 1000).toISOString()}, ${age} s ago, more than the clock tolerance of ${DEFAULT_CLOCK_TOLERANCE_SECONDS} s`;
      if (!rec.abandoned) await this.o.store.append({ type: 'abandoned', transactionId, reason, at: this.now().toISOString() });
      throw new ServiceError('E_RECORD_EXPIRED', `transaction ${transactionId} is abandoned: ${rec.abandoned?.reason ?? reason}; prepare the order again (a new ID and time)`);
    }
    const headerBytes = Buffer.from(rec.prepared.header, 'base64');
    const header = this.boundHeader(rec);
    if (!verifyBytes(this.o.profile, storedCardKey(rec), headerBytes, first.signature)) {
      // Block 317: in a fair exchange a bogus Y is no loss: the TTP extracts the real one.
      const fromTtp = rec.prepared.fair ? await this.fairService(rec).yFromTtp(rec) : undefined;
      if (!fromTtp) throw new ServiceError('E_BAD_SIGNATURE', `the card signature on transaction ${transactionId} does not verify with the client certificate`);
      first = { ...first, signature: fromTtp };
    }
    // No await between the warrant check and the signature: a revocation that has returned is seen.
    const keyA = rec.prepared.warrant ? this.proxyKey(client, rec.prepared.warrant.serial) : this.o.signer.privateKey;
    const signatureA = signBytes(this.o.profile, keyA, headerBytes);
    const signatureServer = signBytes(this.o.profile, this.o.signer.privateKey, encodeServerSigned(header));
    const pkg = encodePackage({ ...header, signatureA, signatureB: first.signature, signatureServer });
    const record = cardRecordFor(header, first.priority);
    const envelope = withCardKeys(this.o.sam, storedSerial(rec), (keys) => sealRecord(keys, first.challenge, first.slot, record));
    // Check-and-append in one step in the store: of two concurrent confirms only one is kept.
    const appended = await this.o.store.appendSigned({
      type: 'confirmed',
      transactionId,
      // What the package carries: the TTP's Y if the client's was bogus.
      firstMessage: { ...firstStored, signatureB: first.signature.toString('base64') },
      package: pkg.toString('base64'),
      cardRecord: record.toString('base64'),
      envelope: envelope.toString('base64'),
    });
    if (!appended.stored) {
      // The leaf of the one that stands, durable before any reply (second() appends it).
      if (JSON.stringify(appended.existing.firstMessage) !== JSON.stringify(firstStored)) {
        await this.o.transparency?.append({ transactionId, package: Buffer.from(appended.existing.package, 'base64'), cardKey: cardKeyOfEntry(rec.prepared) });
        throw new ServiceError('E_ALREADY_CONFIRMED', `transaction ${transactionId} was already confirmed with another first message`);
      }
      return this.second(rec, Buffer.from(appended.existing.package, 'base64'), Buffer.from(appended.existing.envelope, 'base64'), first.slot);
    }
    return this.second(rec, pkg, envelope, first.slot);
  }

  /**
   * The second message, with the store's signed head after the commit that holds this receipt and
   * (issue 12) the transaction's leaf: appended (idempotent; durable before this reply) and its
   * inclusion proof against the log checkpoint of that commit, with the card's monitoring key.
   */
  private async second(rec: TransactionRecord, pkg: Buffer, envelope: Buffer, slot: number): Promise<SecondMessage> {
    const { transactionId } = rec;
    const cardKey = cardKeyOfEntry(rec.prepared);
    const logged = await this.o.transparency?.append({ transactionId, package: pkg, cardKey });
    const monitorKey = this.o.transparency?.monitorKeyFor(cardKey);
    const head = await this.o.store.head();
    return {
      transactionId, package: pkg, envelope, slot, ...(head ? { headSeq: head.seq, headHash: Buffer.from(head.hash, 'hex'), headSignature: head.sig } : {}),
      ...(logged ? { transparency: encodeTransparency(logged) } : {}), ...(monitorKey ? { monitorKey } : {}),
    };
  }

  /** A fresh envelope for a receipt that was never acknowledged (the card's R is new). */
  async redeliver(client: ClientIdentity, transactionId: number, challenge: Buffer, slot: number): Promise<SecondMessage> {
    const rec = await this.record(client, transactionId);
    if (!rec.confirmed) throw new ServiceError('E_NOT_CONFIRMED', `transaction ${transactionId} has no signed receipt yet`);
    if (rec.offer && rec.offer.challenge === challenge.toString('base64') && rec.offer.slot === slot) {
      return this.second(rec, Buffer.from(rec.confirmed.package, 'base64'), Buffer.from(rec.offer.envelope, 'base64'), slot);
    }
    const envelope = withCardKeys(this.o.sam, storedSerial(rec), (keys) => sealRecord(keys, challenge, slot, Buffer.from(rec.confirmed!.cardRecord, 'base64')));
    await this.o.store.append({ type: 'redelivery', transactionId, challenge: challenge.toString('base64'), slot, envelope: envelope.toString('base64') });
    return this.second(rec, Buffer.from(rec.confirmed.package, 'base64'), envelope, slot);
  }

  /** The third message: W proves that this card stored this record under the offered R. */
  async acknowledge(client: ClientIdentity, third: ThirdMessage): Promise<{ transactionId: number; state: 'delivered' }> {
    const rec = await this.record(client, third.transactionId);
    if (!rec.confirmed || !rec.offer) throw new ServiceError('E_NOT_CONFIRMED', `transaction ${third.transactionId} has no receipt to acknowledge`);
    if (rec.delivered) {
      if (rec.delivered.proof === third.proof.toString('base64')) return { transactionId: third.transactionId, state: 'delivered' };
    }
    const offer = rec.offer, confirmed = rec.confirmed;
    const ok = withCardKeys(this.o.sam, storedSerial(rec), (keys) => checkStorageProof(keys, Buffer.from(offer.challenge, 'base64'), Buffer.from(confirmed.cardRecord, 'base64'), third.proof));
    if (!ok) throw new ServiceError('E_BAD_PROOF', `the storage proof for transaction ${third.transactionId} is wrong: the card did not store this receipt`);
    if (!rec.delivered) await this.o.store.append({ type: 'delivered', transactionId: third.transactionId, proof: third.proof.toString('base64'), at: this.now().toISOString() });
    return { transactionId: third.transactionId, state: 'delivered' };
  }

  /** Receipts signed for this card but not yet acknowledged (offered again on return). */
  async pending(client: ClientIdentity): Promise<number[]> {
    // Indexed by card key; each checked again by the one helper (serial and key).
    const ids = await this.o.store.pendingFor(client.cardKey);
    const mine: number[] = [];
    for (const id of ids) {
      const rec = await this.o.store.get(id);
      if (rec !== undefined && belongsTo(rec, client)) mine.push(id);
    }
    return mine;
  }

  static newNonce(): Buffer {
    return randomBytes(16);
  }
}
