/**
 * The QTM service (patent figure 1, item 18; claims 1-7): everything the server does in a
 * transaction, without HTTP. Every step is idempotent: repeating a request returns the stored
 * answer, and a reply is given only once its entry is durable in the store.
 */
import { randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { fingerprint, signBytes, verifyBytes } from '../crypto/keys.js';
import { sealRecord, checkStorageProof } from '../crypto/secure-write.js';
import { cardRecordFor, headerFor, warrantBindingFor } from '../proof/make-proof.js';
import { checkPlainText } from '../protocol/plain-text.js';
import { decodeHeader, encodeHeader, encodePackage, encodeServerSigned, type PackageHeader, type WarrantBinding } from '../protocol/qtm-package.js';
import type { Profile } from '../protocol/profile.js';
import type { FirstMessage, OrderItem, PreparedTransaction, SecondMessage, ThirdMessage } from '../protocol/messages.js';
import type { TransactionRecord, TransactionStore } from '../store/types.js';
import type { Sam } from '../sam/sam.js';
import { composeOrder, type Catalogue } from './catalogue.js';
import type { ClientIdentity } from './client-auth.js';
import type { WarrantRegistry } from '../warrant/registry.js';
import { warrantProblems } from '../warrant/warrant.js';
import { ServiceError } from './service-error.js';
import { FairService, type FairOptions, type SettleOutcome } from './fair-service.js';
import type { TransparencyLog } from '../tlog/log-dir.js';

export { ServiceError } from './service-error.js';
export type { FairOptions, ServerCheat } from './fair-service.js';

export interface ServiceOptions {
  readonly store: TransactionStore;
  readonly profile: Profile;
  /** The receipt-signing key and its certificate chain (claim 5: not the TLS key). */
  readonly signer: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly sam: Sam;
  readonly catalogue: Catalogue;
  readonly now?: () => Date;
  /** Sign as party A by proxy for manager X, under X's warrants (claims 10-11). */
  readonly proxy?: ProxyOptions;
  /** Offer the fair exchange of signatures through this TTP (claims 12-14). */
  readonly fair?: FairOptions;
  /** Every signed transaction gets a leaf here before its reply goes out (issue 12). */
  readonly transparency?: TransparencyLog;
}

export interface ProxyOptions {
  readonly registry: WarrantRegistry;
  /** X's certificate first, then intermediates. */
  readonly manager: readonly X509Certificate[];
  /** To find the CA that issued a customer's card (warrants may name customers by CA). */
  readonly trustAnchors: readonly X509Certificate[];
}

interface ConceptOrder {
  readonly content: Buffer;
  readonly createdAt: number;
  transactionId?: number;
}

const ORDER_LIFETIME_MS = 3_600_000;
const MAX_CONCEPTS = 10_000;

export class QtmService {
  private readonly orders = new Map<string, ConceptOrder>();
  private nextId: number;
  private readonly now: () => Date;
  /** SPEC 2: the server ID is the fingerprint of the receipt-signing key. */
  readonly serverId: Buffer;
  readonly signerCertificates: readonly string[];
  /** The fair exchange (claims 12-14), when the server offers it. */
  readonly fair: FairService | undefined;

  constructor(private readonly o: ServiceOptions) {
    this.nextId = o.store.lastTransactionId() + 1;
    this.now = o.now ?? (() => new Date());
    this.serverId = fingerprint(o.signer.certificates[0]!.publicKey, o.profile);
    this.signerCertificates = o.signer.certificates.map((c) => c.toString());
    this.fair = o.fair ? new FairService({ store: o.store, profile: o.profile, signer: o.signer, fair: o.fair, now: this.now, ...(o.transparency ? { transparency: o.transparency } : {}) }) : undefined;
  }

  /** The order application: compose a concept order from catalogue items. */
  composeOrder(items: readonly OrderItem[], buyer = '(authenticated at signing)'): { orderId: string; content: Buffer } {
    this.expireOrders();
    const order = composeOrder(this.o.catalogue, items, buyer, this.now());
    this.orders.set(order.orderId, { content: order.content, createdAt: Date.now() });
    return order;
  }

  getOrder(orderId: string): Buffer {
    const order = this.orders.get(orderId);
    if (!order) throw new ServiceError(404, 'E_NO_ORDER', `no concept order "${orderId}" (it may have expired: compose it again)`);
    return order.content;
  }

  private expireOrders(): void {
    const cutoff = Date.now() - ORDER_LIFETIME_MS;
    for (const [id, o] of this.orders) if (o.createdAt < cutoff || this.orders.size > MAX_CONCEPTS) this.orders.delete(id);
  }

  private record(client: ClientIdentity, transactionId: number): TransactionRecord {
    const rec = this.o.store.get(transactionId);
    // Another card's transaction is reported as absent: its existence is not the caller's business.
    if (!rec || rec.prepared.cardSerial !== client.cardSerial) throw new ServiceError(404, 'E_NO_TRANSACTION', `no transaction ${transactionId} for this card`);
    return rec;
  }

  /** Builds the record to sign: the pre-QTM package for this card and the content. */
  async prepare(client: ClientIdentity, orderId: string, fair = false): Promise<PreparedTransaction> {
    const order = this.orders.get(orderId);
    if (!order) throw new ServiceError(404, 'E_NO_ORDER', `no concept order "${orderId}" (it may have expired: compose it again)`);
    if (client.profile.name !== this.o.profile.name) {
      throw new ServiceError(400, 'E_PROFILE', `the card uses profile ${client.profile.name}, this server ${this.o.profile.name}`);
    }
    if (order.transactionId !== undefined) {
      const existing = this.o.store.get(order.transactionId);
      if (existing && existing.prepared.cardSerial === client.cardSerial) return this.preparedMessage(existing);
      throw new ServiceError(409, 'E_ORDER_TAKEN', `order "${orderId}" is already being signed by another card`);
    }
    checkPlainText(order.content);
    if (fair && !this.o.fair) throw new ServiceError(400, 'E_NO_TTP', 'this server offers no fair exchange (it was started without --ttp)');
    if (fair && this.o.proxy) throw new ServiceError(400, 'E_NO_TTP', 'the fair exchange is not offered together with proxy signing (docs/FAIR-EXCHANGE.md, "Fair exchange and proxy signing", says why)');
    const warrant = this.o.proxy ? this.findWarrant(client) : undefined;
    const transactionId = this.nextId++;
    order.transactionId = transactionId;
    const time = Math.floor(this.now().getTime() / 1000);
    const signer = { certificates: this.o.signer.certificates };
    const partyA = warrant ? { certificates: [warrant.warrant.certificate] } : signer;
    const header = headerFor({ profile: this.o.profile, transactionId, time, content: order.content, server: signer, partyA, partyB: { certificates: client.certificates } });
    await this.o.store.append({
      type: 'prepared',
      transactionId,
      orderId,
      time,
      content: order.content.toString('base64'),
      header: encodeHeader(header).toString('base64'),
      clientCertificate: client.certificates.map((c) => c.toString()).join(''),
      cardSerial: client.cardSerial,
      ...(warrant ? { warrant: { serial: warrant.warrant.serial, certificates: [warrant.warrant.certificate, ...warrant.issuerChain].map((c) => c.toString()) } } : {}),
      ...(fair ? { fair: this.fair!.makeEscrowOfX(encodeHeader(header), time + this.fair!.deadlineSeconds) } : {}),
    });
    return this.preparedMessage(this.o.store.get(transactionId)!);
  }

  private customerIssuer(client: ClientIdentity): X509Certificate | undefined {
    const customer = client.certificates[0]!;
    return [...client.certificates.slice(1), ...(this.o.proxy?.trustAnchors ?? [])].find((c) => customer.checkIssued(c) && customer.verify(c.publicKey));
  }

  /** Patent block 303: the key S that X authorised for signing with this customer, or a refusal naming X and Y. */
  private findWarrant(client: ClientIdentity) {
    const proxy = this.o.proxy!;
    const manager = proxy.manager[0]!;
    const customer = client.certificates[0]!;
    const found = proxy.registry.find(manager, customer, this.customerIssuer(client), this.now());
    if ('found' in found) return found.found;
    const x = manager.subject.replace(/\n/g, ', ');
    const y = customer.subject.replace(/\n/g, ', ');
    throw new ServiceError(403, 'E_NO_WARRANT', `no warrant from "${x}" lets this server sign with "${y}"${found.problems.length ? `: ${found.problems.join('; ')}` : ' (none names this customer)'}`);
  }

  /** S for a prepared proxy transaction, checked again now: a revoked warrant is never used. */
  private proxyKey(client: ClientIdentity, serial: string): KeyObject {
    const proxy = this.o.proxy;
    proxy?.registry.reloadIfChanged();
    const stored = proxy?.registry.get(serial);
    if (!proxy || !stored?.key) throw new ServiceError(409, 'E_NO_WARRANT', `warrant ${serial} of this transaction is no longer on this server`);
    const problems = warrantProblems(stored.warrant, {
      manager: stored.issuerChain[0]!, customer: client.certificates[0]!, customerIssuer: this.customerIssuer(client), at: this.now(), revocations: proxy.registry.revocations(),
    });
    if (problems.length) throw new ServiceError(403, 'E_NO_WARRANT', `cannot sign by proxy: ${problems.join('; ')}`);
    return stored.key;
  }

  /** The record of one of this card's transactions, for a client that lost it. */
  prepared(client: ClientIdentity, transactionId: number): PreparedTransaction {
    return this.preparedMessage(this.record(client, transactionId));
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
    if (!rec.prepared.fair || !this.fair) throw new ServiceError(409, 'E_NOT_FAIR', `transaction ${rec.transactionId} is not a fair exchange`);
    return this.fair;
  }

  /** Blocks 306-308: check the client's verifiable escrow of Y; release X, or abort at the TTP. */
  async escrow(client: ClientIdentity, transactionId: number, escrowY: Buffer): Promise<Buffer> {
    const rec = this.record(client, transactionId);
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
  overdueFair(now = this.now()): number[] {
    return this.fair?.overdue(now) ?? [];
  }

  /**
   * The first message: verify the card's signature against the client certificate, store
   * record + first message + certificate, sign, and answer with the package and the
   * secure-write envelope for the card's diversified keys.
   */
  async confirm(client: ClientIdentity, transactionId: number, firstMessage: FirstMessage): Promise<SecondMessage> {
    let first = firstMessage;
    const rec = this.record(client, transactionId);
    // A fair exchange the TTP settled with Y is answered from that state (fair-service.ts).
    if (rec.prepared.fair && (await this.fairService(rec).beforeConfirm(rec)) === 'resolved') return this.redeliver(client, transactionId, first.challenge, first.slot);
    const firstStored = { signatureB: first.signature.toString('base64'), challenge: first.challenge.toString('base64'), slot: first.slot, priority: first.priority };
    if (rec.confirmed) {
      const same = JSON.stringify(rec.confirmed.firstMessage) === JSON.stringify(firstStored);
      if (!same) throw new ServiceError(409, 'E_ALREADY_CONFIRMED', `transaction ${transactionId} was already confirmed with another first message`);
      await this.o.transparency?.append({ transactionId, package: Buffer.from(rec.confirmed.package, 'base64') }); // a no-op unless an earlier append failed
      return { transactionId, package: Buffer.from(rec.confirmed.package, 'base64'), envelope: Buffer.from(rec.confirmed.envelope, 'base64'), slot: first.slot };
    }
    const headerBytes = Buffer.from(rec.prepared.header, 'base64');
    const header = this.boundHeader(rec);
    if (!verifyBytes(this.o.profile, client.certificates[0]!.publicKey, headerBytes, first.signature)) {
      // Block 317: in a fair exchange a bogus Y is no loss: the TTP extracts the real one.
      const fromTtp = rec.prepared.fair ? await this.fairService(rec).yFromTtp(rec) : undefined;
      if (!fromTtp) throw new ServiceError(403, 'E_BAD_SIGNATURE', `the card signature on transaction ${transactionId} does not verify with the client certificate`);
      first = { ...first, signature: fromTtp };
    }
    // No await between the warrant check and the signature: a revocation that has returned is seen.
    const keyA = rec.prepared.warrant ? this.proxyKey(client, rec.prepared.warrant.serial) : this.o.signer.privateKey;
    const signatureA = signBytes(this.o.profile, keyA, headerBytes);
    const signatureServer = signBytes(this.o.profile, this.o.signer.privateKey, encodeServerSigned(header));
    const pkg = encodePackage({ ...header, signatureA, signatureB: first.signature, signatureServer });
    const record = cardRecordFor(header, first.priority);
    const envelope = sealRecord(this.o.sam.cardKeys(Buffer.from(client.cardSerial, 'hex')), first.challenge, first.slot, record);
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
    // The signed transaction's leaf, durable before the reply (idempotent for the one that stands).
    await this.o.transparency?.append({ transactionId, package: appended.stored ? pkg : Buffer.from(appended.existing.package, 'base64') });
    if (!appended.stored) {
      if (JSON.stringify(appended.existing.firstMessage) !== JSON.stringify(firstStored)) {
        throw new ServiceError(409, 'E_ALREADY_CONFIRMED', `transaction ${transactionId} was already confirmed with another first message`);
      }
      return { transactionId, package: Buffer.from(appended.existing.package, 'base64'), envelope: Buffer.from(appended.existing.envelope, 'base64'), slot: first.slot };
    }
    return { transactionId, package: pkg, envelope, slot: first.slot };
  }

  /** A fresh envelope for a receipt that was never acknowledged (the card's R is new). */
  async redeliver(client: ClientIdentity, transactionId: number, challenge: Buffer, slot: number): Promise<SecondMessage> {
    const rec = this.record(client, transactionId);
    if (!rec.confirmed) throw new ServiceError(409, 'E_NOT_CONFIRMED', `transaction ${transactionId} has no signed receipt yet`);
    if (rec.offer && rec.offer.challenge === challenge.toString('base64') && rec.offer.slot === slot) {
      return { transactionId, package: Buffer.from(rec.confirmed.package, 'base64'), envelope: Buffer.from(rec.offer.envelope, 'base64'), slot };
    }
    const envelope = sealRecord(this.o.sam.cardKeys(Buffer.from(client.cardSerial, 'hex')), challenge, slot, Buffer.from(rec.confirmed.cardRecord, 'base64'));
    await this.o.store.append({ type: 'redelivery', transactionId, challenge: challenge.toString('base64'), slot, envelope: envelope.toString('base64') });
    return { transactionId, package: Buffer.from(rec.confirmed.package, 'base64'), envelope, slot };
  }

  /** The third message: W proves that this card stored this record under the offered R. */
  async acknowledge(client: ClientIdentity, third: ThirdMessage): Promise<{ transactionId: number; state: 'delivered' }> {
    const rec = this.record(client, third.transactionId);
    if (!rec.confirmed || !rec.offer) throw new ServiceError(409, 'E_NOT_CONFIRMED', `transaction ${third.transactionId} has no receipt to acknowledge`);
    if (rec.delivered) {
      if (rec.delivered.proof === third.proof.toString('base64')) return { transactionId: third.transactionId, state: 'delivered' };
    }
    const keys = this.o.sam.cardKeys(Buffer.from(client.cardSerial, 'hex'));
    const ok = checkStorageProof(keys, Buffer.from(rec.offer.challenge, 'base64'), Buffer.from(rec.confirmed.cardRecord, 'base64'), third.proof);
    if (!ok) throw new ServiceError(403, 'E_BAD_PROOF', `the storage proof for transaction ${third.transactionId} is wrong: the card did not store this receipt`);
    if (!rec.delivered) await this.o.store.append({ type: 'delivered', transactionId: third.transactionId, proof: third.proof.toString('base64'), at: this.now().toISOString() });
    return { transactionId: third.transactionId, state: 'delivered' };
  }

  /** Receipts signed for this card but not yet acknowledged (offered again on return). */
  pending(client: ClientIdentity): number[] {
    return this.o.store.pendingFor(client.cardSerial);
  }

  static newNonce(): Buffer {
    return randomBytes(16);
  }
}
