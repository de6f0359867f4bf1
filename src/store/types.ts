/**
 * What the QTM service stores (claim 1: the record, the first message and the client
 * authentication), behind an interface small enough for a PostgreSQL implementation.
 * Binary values are base64 so entries stay plain JSON in any backend.
 */
import type { SignedHead } from './head.js';
import { keyFingerprint } from '../crypto/keys.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';

export interface PreparedEntry {
  readonly type: 'prepared';
  readonly transactionId: number;
  readonly orderId: string;
  readonly time: number;
  readonly content: string; // base64 of the exact content bytes
  readonly header: string; // base64 pre-QTM package
  readonly clientCertificate: string; // PEM
  readonly cardSerial: string; // hex
  /**
   * SHA-256 (hex) of the card key's DER SubjectPublicKeyInfo: party B's key, to which the
   * transaction is bound (issue 18). Entries stored before it existed lack it: the key is then
   * derived from `clientCertificate`.
   */
  readonly cardKey?: string;
  /** When A signs by proxy: the warrant's serial and PEMs (warrant, then X's chain). */
  readonly warrant?: { readonly serial: string; readonly certificates: readonly string[] };
  /** Fair exchange: the deadline, X (signature A, released at block 308), its escrow and the receipt key's signature on the escrow. */
  readonly fair?: { readonly deadline: number; readonly x: string; readonly escrowX: string; readonly escrowXSignature?: string };
}

/** Fair exchange, block 306: the client's verifiable escrow of Y, checked. */
export interface EscrowedEntry {
  readonly type: 'escrowed';
  readonly transactionId: number;
  readonly escrowY: string; // base64
}

/** Fair exchange aborted at the TTP (a bad escrow of Y, or the deadline): never signed. */
export interface FairAbortedEntry {
  readonly type: 'fair-aborted';
  readonly transactionId: number;
  readonly reason: string;
  readonly token?: string; // base64 TTP abort token
}

/**
 * Fair exchange: the server is about to ask the TTP to abort. Written (fsync'd) before the request
 * leaves, so after a crash or a lost answer the server knows an abort may have been decided and
 * releases no X until a TTP answer settles the exchange.
 */
export interface FairAbortIntentEntry {
  readonly type: 'fair-abort-intent';
  readonly transactionId: number;
  readonly reason: string;
  readonly at: string;
}

/** Fair exchange resolved at the TTP: Y came from the TTP, not from a first message. */
export interface ResolvedEntry {
  readonly type: 'resolved';
  readonly transactionId: number;
  readonly signatureB: string;
  readonly package: string;
  readonly cardRecord: string;
}

export interface ConfirmedEntry {
  readonly type: 'confirmed';
  readonly transactionId: number;
  /** The first message as received: the client's signature, challenge R and slot. */
  readonly firstMessage: { readonly signatureB: string; readonly challenge: string; readonly slot: number; readonly priority: number };
  readonly package: string; // base64 full QTM package
  readonly cardRecord: string; // base64
  readonly envelope: string; // base64 secure-write envelope
}

export interface RedeliveryEntry {
  readonly type: 'redelivery';
  readonly transactionId: number;
  readonly challenge: string;
  readonly slot: number;
  readonly envelope: string;
}

export interface DeliveredEntry {
  readonly type: 'delivered';
  readonly transactionId: number;
  readonly proof: string; // W, base64
  readonly at: string;
}

/**
 * A prepared record the server will never sign: its first message came more than T after the
 * record's time (issue 18 section 4). Preparing the order again gives a new ID and time.
 */
export interface AbandonedEntry {
  readonly type: 'abandoned';
  readonly transactionId: number;
  readonly reason: string;
  readonly at: string;
}

export type StoreEntry = PreparedEntry | ConfirmedEntry | RedeliveryEntry | DeliveredEntry | EscrowedEntry | FairAbortIntentEntry | FairAbortedEntry | ResolvedEntry | AbandonedEntry;

export type TransactionState = 'prepared' | 'confirmed' | 'delivered';

/** Everything known about one transaction, folded from its entries. */
export interface TransactionRecord {
  readonly transactionId: number;
  readonly state: TransactionState;
  readonly prepared: PreparedEntry;
  readonly confirmed?: ConfirmedEntry;
  /** The latest secure-write offer (the confirm's, or a later redelivery's). */
  readonly offer?: { challenge: string; slot: number; envelope: string };
  readonly delivered?: DeliveredEntry;
  readonly escrowY?: string;
  readonly fairAborted?: FairAbortedEntry;
  /** The server sent (or was about to send) an abort to the TTP. */
  readonly fairAbortIntent?: FairAbortIntentEntry;
  /** Settled at the TTP with its Y: the package was signed without a first message. */
  readonly resolved?: ResolvedEntry;
  /** Never to be signed: its first message came too late. */
  readonly abandoned?: AbandonedEntry;
}

/** What appendSigned answers when the transaction was signed already: the entry that stands. */
export interface AlreadySigned {
  readonly stored: false;
  readonly existing: ConfirmedEntry;
}

/**
 * The store behind the QTM service. Every read is asynchronous, so a database (PostgreSQL) can
 * implement it as well as the embedded log store: any server instance then reads what another
 * one wrote. Writes resolve only once durable; a reply goes out only after that.
 */
export interface TransactionStore {
  /** Durable when the promise resolves (fsync'd, or committed): only then may a reply go out. */
  append(entry: StoreEntry): Promise<void>;
  /**
   * The one signing of a transaction (a confirm, or a TTP resolve): appended only if the
   * transaction has no such entry yet, stored or being stored, as one atomic step per
   * transaction, whatever the backend (one writer with an in-memory claim in the log store; a
   * unique key on the transaction ID in a database). Of two concurrent callers exactly one gets
   * `{ stored: true }`; the other gets the entry that stands, so its answer can never be a
   * receipt the store does not keep. Durable when it resolves, as append.
   */
  appendSigned(entry: ConfirmedEntry | ResolvedEntry): Promise<{ readonly stored: true } | AlreadySigned>;
  /**
   * A new transaction whose ID the store chooses (the next one, at least `firstId`) in the same
   * durable write as its prepared entry: no ID is handed out without its entry, none twice.
   * With `orderId`, one concept order gives one transaction: when a transaction was prepared
   * for that order already (by any instance), its ID comes back with `created: false` and
   * `build` is not called. Order IDs expire (server/concept-orders.ts), so a store need only
   * remember those of the last ORDER_MEMORY_SECONDS.
   */
  appendPrepared(build: (transactionId: number) => PreparedEntry, options?: PrepareOptions): Promise<{ readonly transactionId: number; readonly created: boolean }>;
  /**
   * Runs `task` while no other caller, in this process or in another instance on the same
   * store, runs a task for the same transaction: the fair exchange's read-decide-append steps
   * (applying a TTP answer, the deadline sweeper, an escrow) each happen once.
   */
  exclusive<T>(transactionId: number, task: () => Promise<T>): Promise<T>;
  /** The head the store's server signed at its last commit, if it signs heads. */
  head(): Promise<SignedHead | undefined>;
  get(transactionId: number): Promise<TransactionRecord | undefined>;
  /** The highest transaction ID ever stored, 0 when empty. */
  lastTransactionId(): Promise<number>;
  /** Every transaction in ID order, read a few at a time, so an audit of a large store stays small. */
  all(): AsyncIterable<TransactionRecord>;
  /**
   * Confirmed and not yet delivered for this card key (`cardKey`, or derived from the stored
   * certificate for older entries), in transaction order: a second card with the same serial
   * and another key sees none of them.
   */
  pendingFor(cardKey: string): Promise<number[]>;
  /** Fair exchanges neither signed, resolved nor aborted, with their deadlines (Unix seconds). */
  openFairExchanges(): Promise<ReadonlyMap<number, number>>;
  /** Stored entries that could not be read at all, by position (read-only opens, for audits). */
  readonly damagedLines?: readonly number[];
  countByState(): Promise<Record<TransactionState, number>>;
  close(): Promise<void>;
}

export interface PrepareOptions {
  /** The first transaction ID of an empty store (`--first-id`). */
  readonly firstId?: number;
  /** The concept order being prepared: one transaction per order. */
  readonly orderId?: string;
}

/**
 * How long a store remembers which transaction an order ID was prepared as: longer than any
 * concept order lives (ORDER_LIFETIME_SECONDS, one hour, in server/concept-orders.ts), after
 * which the server refuses the order ID before it reaches the store.
 */
export const ORDER_MEMORY_SECONDS = 2 * 3600;

export function fold(record: TransactionRecord | undefined, e: StoreEntry): TransactionRecord | undefined {
  switch (e.type) {
    case 'prepared':
      return { transactionId: e.transactionId, state: 'prepared', prepared: e };
    case 'confirmed':
      if (!record) return undefined;
      return { ...record, state: record.state === 'delivered' ? 'delivered' : 'confirmed', confirmed: e, offer: { challenge: e.firstMessage.challenge, slot: e.firstMessage.slot, envelope: e.envelope } };
    case 'redelivery':
      if (!record) return undefined;
      return { ...record, offer: { challenge: e.challenge, slot: e.slot, envelope: e.envelope } };
    case 'delivered':
      if (!record) return undefined;
      return { ...record, state: 'delivered', delivered: e };
    case 'escrowed':
      return record && { ...record, escrowY: e.escrowY };
    case 'fair-abort-intent':
      return record && { ...record, fairAbortIntent: e };
    case 'fair-aborted':
      return record && { ...record, fairAborted: e };
    case 'abandoned':
      return record && { ...record, abandoned: e };
    case 'resolved':
      // Signed with the Y the TTP gave; the receipt reaches the card later (qtm receipts fetch).
      return record && {
        ...record,
        resolved: e,
        state: record.state === 'delivered' ? 'delivered' : 'confirmed',
        confirmed: { type: 'confirmed', transactionId: e.transactionId, firstMessage: { signatureB: e.signatureB, challenge: '', slot: 0, priority: 0 }, package: e.package, cardRecord: e.cardRecord, envelope: '' },
      };
  }
}

/**
 * The card key a prepared entry is bound to: its `cardKey`, or for an entry stored before that
 * field existed, the SHA-256 of the stored client certificate's key. An entry whose certificate
 * cannot be read (damage; the audit reports it) is indexed under its card serial (16 hex
 * digits), which no key fingerprint (64 hex digits) can equal.
 */
export function cardKeyOfEntry(entry: PreparedEntry): string {
  if (entry.cardKey) return entry.cardKey;
  try {
    return keyFingerprint(certificatesFromPemBundle(entry.clientCertificate, 'stored client certificate')[0]!.publicKey);
  } catch {
    return entry.cardSerial;
  }
}
