/**
 * The embedded default store: an append-only log of JSON lines, fsync'd before any reply.
 * Each transaction costs a few appends whatever the log's size (lowdb's model, a whole-file
 * rewrite per write, grows with the data and never fsyncs). Appends that arrive while an fsync
 * is running are written and fsync'd together (group commit), so concurrent clients share the
 * cost of durability.
 *
 * Memory stays small as the log grows: only an index (state, card, and the byte offset of each
 * entry) lives in memory; a record is read back from the file when asked for. Opening streams
 * the file in chunks, so a log larger than a JavaScript string still opens.
 *
 * Crash safety: a line is complete only with its newline. On open, a torn last line (a write
 * cut by kill -9) is cut off: it was never acknowledged, because acknowledgement waits for the
 * fsync. A bad line anywhere else is damage, and opening refuses with its line number.
 *
 * One writer at a time: a writer holds LOCK (its PID); a second server on the same store is
 * refused. Readers (`qtm server audit`) open read-only beside a running server: they never
 * truncate and ignore a last line still being written.
 *
 * Integrity (./head.ts): every entry line carries its sequence number and the hash of the line
 * before it, and a writer given the receipt key ends with a signed head line every group commit
 * that holds a signing entry (confirmed or resolved: a receipt), and any other commit within
 * HEAD_INTERVAL_MS (a timer) and at close. A head is an RSA signature: signing only those spares
 * two of the three a transaction's commits used to cost.
 *
 * Opening checks the chain and the last head. A signing entry after the last signed head was
 * never acknowledged (its head is written in the same write as its batch, and the reply waits
 * for both: a crash cut that batch, or someone without the key appended it): a writer moves it
 * and everything after it to `transactions.log.unsigned-<time>` for the record and goes on
 * without them, an audit reports them. Other entries after the last head (at most
 * HEAD_INTERVAL_MS of them before a crash) may have been acknowledged: a writer keeps them,
 * warns, and signs a head over them (docs/THREATS.md, "The log store's unsigned window").
 */
import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, unlinkSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fsyncDirectory, writeFileAtomic } from '../util/fs.js';
import { decodeSignedHead, encodeSignedHead, GENESIS_HASH, headStatement, lineHash, type HeadSigner, type SignedHead } from './head.js';
import { tryLock } from '../util/lock-file.js';
import { InputError } from '../errors.js';
import { cardKeyOfEntry, fold, ORDER_MEMORY_SECONDS, type AlreadySigned, type ConfirmedEntry, type PrepareOptions, type PreparedEntry, type ResolvedEntry, type StoreEntry, type TransactionRecord, type TransactionState, type TransactionStore } from './types.js';

export const LOG_FILE = 'transactions.log';
export const LOCK_FILE = 'LOCK';

const writeAsync = promisify(write) as (fd: number, data: Buffer) => Promise<unknown>;
const fsyncAsync = promisify(fsync);
const CHUNK = 1 << 20;
/** A commit with no signing entry is covered by a signed head within this time (or at close). */
export const HEAD_INTERVAL_MS = 1000;
const NEWLINE = 0x0a;
const NEWLINE_BYTE = Buffer.from('\n');

/** Where one entry's line lies in the log. */
interface Span {
  readonly offset: number;
  readonly length: number;
}

interface IndexEntry {
  state: TransactionState;
  /** The card key the transaction is bound to (see cardKeyOfEntry). */
  cardKey: string;
  /** Entries in log order; folding them gives the record. */
  spans: Span[];
}

export interface OpenOptions {
  /** For audits beside a running server: no lock, no truncation, no appends. */
  readonly readOnly?: boolean;
  /**
   * The receipt key (a writer signs a head per group commit) or its certificate (a reader checks
   * them). A writer of a store that has signed heads must have it.
   */
  readonly heads?: HeadSigner;
  /** Where a writer says what it did on open (unsigned entries moved aside). */
  readonly onWarning?: (message: string) => void;
  /** Called after the first signed commit of this open, with the highest transaction ID then. */
  readonly onFirstSignedCommit?: (lastTransactionId: number) => void;
  /** How soon a commit without a signing entry gets a signed head (default HEAD_INTERVAL_MS). */
  readonly headIntervalMs?: number;
}

/** Entries that sign a transaction: their commit is acknowledged only with a signed head. */
function isSigningEntry(e: { type?: unknown }): boolean {
  return e.type === 'confirmed' || e.type === 'resolved';
}

/** What an audit learns from the log itself, beyond the records (read-only opens). */
export interface LogFindings {
  /** Chain breaks, heads that do not match or verify, prepared twice, orphans, unsigned tails. */
  readonly problems: string[];
  /** Entry lines that carry no chain fields (written before the chain existed). */
  legacyEntries: number;
  /** Signed heads seen, and the last one. */
  heads: number;
  lastHead?: SignedHead;
  /** Sequence number -> entry hash, for checking a customer's saved head. */
  readonly hashes: Map<number, string>;
}

export class LogStore implements TransactionStore {
  private readonly index = new Map<number, IndexEntry>();
  /** Confirmed but not delivered, by card key: what a returning client is offered again. */
  private readonly pendingByCard = new Map<string, Set<number>>();
  /** Fair exchanges not settled yet: transaction ID to deadline. Survives restarts with the log. */
  private readonly openFair = new Map<number, number>();
  /** Read-only opens report damaged lines here instead of refusing, so an audit can go on. */
  readonly damagedLines: number[] = [];
  private maxId = 0;
  private size = 0;
  /** The chain: the last entry's sequence number and line hash, and the last signed head. */
  private seq = 0;
  private lastHash = GENESIS_HASH;
  private lastHead: SignedHead | undefined;
  /** File offset just after the last head line, the entries written after it, and where the first signing one among them lies. */
  private afterHead: { offset: number; entries: number; firstLine: number; signing?: { offset: number; line: number } } = { offset: 0, entries: 0, firstLine: 0 };
  /** A head is due (timer, close, or an unsigned tail kept at open) though no signing entry waits. */
  private headWanted = false;
  private headTimer: NodeJS.Timeout | undefined;
  private lineNo = 0;
  /** Prepared entries queued or being written, and the highest ID handed out: appendPrepared. */
  private readonly preparing = new Set<number>();
  private allocated = 0;
  private signedThisOpen = false;
  /** Read-only opens collect these for the audit instead of refusing. */
  readonly findings: LogFindings = { problems: [], legacyEntries: 0, heads: 0, hashes: new Map() };
  private pending: { entry: StoreEntry; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  /** No more appends: closed, or a write failed and the tail is suspect. */
  private closed = false;
  private fdOpen = true;

  private constructor(
    private readonly fd: number,
    private readonly path: string,
    private readonly lockPath: string | undefined,
    private readonly options: OpenOptions = {},
  ) {}

  static open(dir: string, options: OpenOptions = {}): LogStore {
    const path = join(dir, LOG_FILE);
    if (options.readOnly) {
      if (!existsSync(path)) throw new InputError(`no transaction store at ${dir} (${LOG_FILE} is missing)`, 'give the --store directory the server was started with');
      const store = new LogStore(openSync(path, 'r'), path, undefined, options);
      store.load(false);
      store.noteUnsignedTail();
      return store;
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockPath = join(dir, LOCK_FILE);
    takeLock(lockPath, dir);
    try {
      const created = !existsSync(path);
      const fd = openSync(path, 'a+', 0o600);
      if (created) fsyncDirectory(dir);
      let store = new LogStore(fd, path, lockPath, options);
      try {
        store.load(true);
        if (store.cutUnsignedTail()) {
          store = new LogStore(fd, path, lockPath, options);
          store.load(true);
        }
        if (store.lastHead && !options.heads) {
          throw new InputError(`store ${dir} is signed by its server's receipt key: open it with that key`, 'start the server with the --signer that signed it');
        }
        store.keepUnsignedTail();
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      return store;
    } catch (err) {
      unlinkSync(lockPath);
      throw err;
    }
  }

  /** Streams the log once, building the index. */
  private load(writer: boolean): void {
    const fileSize = fstatSync(this.fd).size;
    const buf = Buffer.alloc(CHUNK);
    let carry = Buffer.alloc(0);
    let carryOffset = 0; // file offset of carry[0]
    let position = 0;
    let lineNo = 0;
    while (position < fileSize) {
      const n = readSync(this.fd, buf, 0, Math.min(CHUNK, fileSize - position), position);
      if (n === 0) break;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      position += n;
      let start = 0;
      for (let nl = data.indexOf(NEWLINE, start); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
        lineNo++;
        if (nl > start) this.indexLine(data.subarray(start, nl), { offset: carryOffset + start, length: nl - start }, lineNo, writer);
        start = nl + 1;
      }
      carryOffset += start;
      carry = Buffer.from(data.subarray(start));
    }
    this.size = carryOffset;
    if (carry.length && writer) {
      // Torn tail: cut it so the next append starts on a clean line.
      ftruncateSync(this.fd, carryOffset);
      fsyncSync(this.fd);
    }
  }

  private indexLine(line: Buffer, span: Span, lineNo: number, writer: boolean): void {
    this.lineNo = lineNo;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line.toString('utf8')) as Record<string, unknown>;
      if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
      if (!('head' in parsed) && (typeof parsed.transactionId !== 'number' || typeof parsed.type !== 'string')) throw new Error('not an entry');
    } catch {
      if (!writer) {
        this.damagedLines.push(lineNo);
        return;
      }
      throw new InputError(`store ${this.path} is damaged at line ${lineNo}`, 'restore it from backup; `qtm server audit` shows what is intact');
    }
    if ('head' in parsed) return this.indexHead(parsed.head, span, lineNo, writer);
    const { seq, prev, ...entry } = parsed;
    if (seq === undefined && prev === undefined) {
      // Written before the chain existed: only as a prefix of the log.
      if (this.seq !== this.findings.legacyEntries) this.problem(writer, `line ${lineNo} has no chain fields after chained entries (inserted?)`);
      this.findings.legacyEntries++;
    } else if (seq !== this.seq + 1 || prev !== this.lastHash) {
      this.problem(writer, `the chain is broken at line ${lineNo}: expected entry ${this.seq + 1} after hash ${this.lastHash.slice(0, 16)}…, found entry ${String(seq)} after ${String(prev).slice(0, 16)}… (an entry was edited, removed or inserted)`);
    }
    this.seq++;
    this.lastHash = lineHash(line);
    if (!writer) this.findings.hashes.set(this.seq, this.lastHash);
    if (this.afterHead.entries++ === 0) this.afterHead.firstLine = lineNo;
    if (!this.afterHead.signing && isSigningEntry(entry)) this.afterHead.signing = { offset: span.offset, line: lineNo };
    this.indexEntry(entry as unknown as StoreEntry, span, writer);
  }

  private indexHead(value: unknown, span: Span, lineNo: number, writer: boolean): void {
    let head: SignedHead;
    try {
      head = decodeSignedHead(value, `store head at line ${lineNo}`);
    } catch (err) {
      return this.problem(writer, (err as Error).message);
    }
    if (head.seq !== this.seq || head.hash !== this.lastHash) {
      this.problem(writer, `the signed head at line ${lineNo} names entry ${head.seq} ${head.hash.slice(0, 16)}…, but the chain there is entry ${this.seq} ${this.lastHash.slice(0, 16)}… (entries before it were changed or removed)`);
    } else if (this.options.heads && !this.options.heads.verify(headStatement(head), head.sig)) {
      this.problem(writer, `the signed head at line ${lineNo} does not verify with the receipt key`);
    }
    this.lastHead = head;
    this.findings.heads++;
    this.findings.lastHead = head;
    this.afterHead = { offset: span.offset + span.length + 1, entries: 0, firstLine: 0 };
  }

  /** A writer refuses a store that was tampered with; a reader notes it for the audit. */
  private problem(writer: boolean, message: string): void {
    if (writer) throw new InputError(`store ${this.path} is damaged at line ${this.lineNo}: ${message}`, 'run `qtm server audit` on it and restore it from backup');
    this.findings.problems.push(message);
  }

  /** For audits: what follows the last signed head was not acknowledged by the server. */
  private noteUnsignedTail(): void {
    if (this.lastHead && this.afterHead.entries > 0) {
      const signing = this.afterHead.signing;
      this.findings.problems.push(signing
        ? `${this.afterHead.entries} entries after the last signed head (from line ${this.afterHead.firstLine}), with a receipt at line ${signing.line}: the server never acknowledged that receipt nor what follows it (being written just now, or appended by someone without its key)`
        : `${this.afterHead.entries} entries after the last signed head (from line ${this.afterHead.firstLine}), none a receipt: a running server signs them within ${HEAD_INTERVAL_MS / 1000} s and at a clean stop (being written just now, left by a crash, or appended by someone without its key)`);
    }
  }

  /**
   * A signing entry after the last signed head was never acknowledged (its reply waits for its
   * batch and that batch's head, written together, to be fsync'd), nor was anything after it:
   * moved aside for the record, and cut. Other entries after the last head are kept (they may
   * have been acknowledged: their commit needed no head yet); keepUnsignedTail signs them.
   */
  private cutUnsignedTail(): boolean {
    const signing = this.afterHead.signing;
    if (!this.lastHead || !signing) return false;
    const length = this.size - signing.offset;
    const buf = Buffer.alloc(length);
    readSync(this.fd, buf, 0, length, signing.offset);
    const aside = `${this.path}.unsigned-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    writeFileAtomic(aside, buf, 0o600);
    ftruncateSync(this.fd, signing.offset);
    fsyncSync(this.fd);
    this.options.onWarning?.(`store: a receipt after the last signed head (from line ${signing.line}) was never acknowledged; it and the lines after it moved to ${aside}`);
    return true;
  }

  /** Entries after the last head that sign nothing (a crash within HEAD_INTERVAL_MS of them): kept, and a head signs them now. */
  private keepUnsignedTail(): void {
    if (!this.lastHead || this.afterHead.entries === 0 || !this.options.heads) return;
    this.options.onWarning?.(`store: ${this.afterHead.entries} entries after the last signed head (from line ${this.afterHead.firstLine}) sign no transaction and may have been acknowledged before the server stopped; kept, and signed now (\`qtm server audit\` on a copy taken before this start shows them)`);
    this.wantHead();
  }

  /** Asks for a head on the next commit, starting one if none is running. */
  private wantHead(): void {
    this.headWanted = true;
    this.flushing ??= this.flush();
  }

  /** `writer` false: an audit's read-only open, which notes problems; undefined: our own append, checked before it was written. */
  private indexEntry(entry: StoreEntry, span: Span, writer?: boolean): void {
    const id = entry.transactionId;
    this.maxId = Math.max(this.maxId, id);
    let at = this.index.get(id);
    if (entry.type === 'prepared') {
      // One prepared entry per ID: a second one would replace a proof the customer holds.
      if (at) {
        if (writer !== undefined) this.problem(writer, `transaction ${id} is prepared a second time at line ${this.lineNo}`);
        return;
      }
      at = { state: 'prepared', cardKey: cardKeyOfEntry(entry), spans: [span] };
      if (writer !== undefined) this.rememberOrder(entry);
      this.index.set(id, at);
      if (entry.fair) this.openFair.set(id, entry.fair.deadline);
      else this.openFair.delete(id);
      return;
    }
    if (!at) {
      if (writer !== undefined) this.problem(writer, `line ${this.lineNo}: a ${entry.type} entry for transaction ${id}, which was never prepared`);
      return;
    }
    // Reported by audits; not a reason to stop serving the others.
    if (entry.type === 'delivered' && at.state === 'prepared' && writer === false) {
      this.problem(false, `line ${this.lineNo}: transaction ${id} is marked delivered but was never signed`);
    }
    at.spans.push(span);
    if (entry.type === 'confirmed' || entry.type === 'resolved' || entry.type === 'fair-aborted') this.openFair.delete(id);
    if ((entry.type === 'confirmed' || entry.type === 'resolved') && at.state === 'prepared') this.setState(id, at, 'confirmed');
    if (entry.type === 'delivered') this.setState(id, at, 'delivered');
  }

  private setState(id: number, at: IndexEntry, state: TransactionState): void {
    const set = this.pendingByCard.get(at.cardKey);
    if (at.state === 'confirmed') {
      set?.delete(id);
      if (set?.size === 0) this.pendingByCard.delete(at.cardKey);
    }
    at.state = state;
    if (state === 'confirmed') {
      if (set) set.add(id);
      else this.pendingByCard.set(at.cardKey, new Set([id]));
    }
  }

  /** Transactions whose signing entry is being written now (claimed, not yet fsync'd). */
  private readonly signing = new Map<number, Promise<void>>();

  async appendSigned(entry: ConfirmedEntry | ResolvedEntry): Promise<{ readonly stored: true } | AlreadySigned> {
    const id = entry.transactionId;
    for (;;) {
      // Check and claim with no await between them: the event loop makes this one atomic step.
      const existing = this.record(id)?.confirmed;
      if (existing) return { stored: false, existing };
      const inFlight = this.signing.get(id);
      if (!inFlight) break;
      await inFlight.catch(() => {}); // then look again: stored, or its write failed
    }
    const write = this.append(entry);
    this.signing.set(id, write);
    try {
      await write;
    } finally {
      this.signing.delete(id);
    }
    return { stored: true };
  }

  append(entry: StoreEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    if (!this.lockPath) return Promise.reject(new Error('store is open read-only'));
    if (entry.type === 'prepared') {
      // One prepared entry per ID, counting those queued and those being written now.
      if (this.index.has(entry.transactionId) || this.preparing.has(entry.transactionId)) {
        return Promise.reject(new Error(`transaction ${entry.transactionId} is prepared already`));
      }
      this.preparing.add(entry.transactionId);
      this.allocated = Math.max(this.allocated, entry.transactionId);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /**
   * A new transaction: its ID is the next one, chosen here as its entry joins the write, so the
   * ID and its prepared entry are durable together (no ID handed out without its entry, none
   * twice). `firstId` starts the numbering of an empty store elsewhere than 1.
   */
  async appendPrepared(build: (transactionId: number) => PreparedEntry, options: PrepareOptions = {}): Promise<{ transactionId: number; created: boolean }> {
    // Synchronous up to append(): no other caller can take the same ID, or the same order, in between.
    const { orderId } = options;
    const known = orderId === undefined ? undefined : this.recentOrders.get(orderId);
    if (known) return { transactionId: known.transactionId, created: false };
    const id = Math.max(this.maxId, this.allocated, (options.firstId ?? 1) - 1) + 1;
    const entry = build(id);
    if (orderId !== undefined && entry.orderId !== orderId) throw new Error(`prepared entry for order ${orderId} names order ${entry.orderId}`);
    const written = this.append(entry);
    this.rememberOrder(entry);
    try {
      await written;
    } catch (err) {
      if (this.recentOrders.get(entry.orderId)?.transactionId === id) this.recentOrders.delete(entry.orderId);
      throw err;
    }
    return { transactionId: id, created: true };
  }

  /** Which transaction each recent order was prepared as (ORDER_MEMORY_SECONDS), pruned as it grows. */
  private readonly recentOrders = new Map<string, { transactionId: number; time: number }>();
  private ordersSincePrune = 0;

  private rememberOrder(entry: PreparedEntry): void {
    const horizon = Math.floor(Date.now() / 1000) - ORDER_MEMORY_SECONDS;
    if (entry.time <= horizon) return;
    this.recentOrders.set(entry.orderId, { transactionId: entry.transactionId, time: entry.time });
    if (++this.ordersSincePrune >= 1024) {
      this.ordersSincePrune = 0;
      for (const [order, o] of this.recentOrders) if (o.time <= horizon) this.recentOrders.delete(order);
    }
  }

  /** Tasks per transaction, one after the other (one writer process: an in-process queue is enough). */
  private readonly turns = new Map<number, Promise<unknown>>();

  exclusive<T>(transactionId: number, task: () => Promise<T>): Promise<T> {
    const turn = (this.turns.get(transactionId) ?? Promise.resolve()).then(task);
    const settled = turn.catch(() => undefined);
    this.turns.set(transactionId, settled);
    void settled.then(() => {
      if (this.turns.get(transactionId) === settled) this.turns.delete(transactionId);
    });
    return turn;
  }

  /** The last signed head: what the customer keeps to show later that this history existed. */
  async head(): Promise<SignedHead | undefined> {
    return this.lastHead;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0 || (this.headWanted && !this.closed)) {
      // Let appends made in the same tick join this batch.
      await new Promise((r) => setImmediate(r));
      const batch = this.pending;
      this.pending = [];
      const unsigned = this.afterHead.entries + batch.length;
      const signHead = this.options.heads !== undefined && unsigned > 0 && (this.headWanted || batch.some((b) => isSigningEntry(b.entry)));
      this.headWanted = false;
      if (batch.length === 0 && !signHead) continue;
      // Chain each line to the one before it, then sign the head of the batch (./head.ts).
      let seq = this.seq;
      let hash = this.lastHash;
      const lines = batch.map((b) => {
        const line = Buffer.from(JSON.stringify({ seq: ++seq, prev: hash, ...b.entry }), 'utf8');
        hash = lineHash(line);
        return line;
      });
      let head: SignedHead | undefined;
      let headLine: Buffer | undefined;
      try {
        if (signHead) {
          head = { seq, hash, sig: this.options.heads!.sign(headStatement({ seq, hash })) };
          headLine = Buffer.from(JSON.stringify({ head: encodeSignedHead(head) }), 'utf8');
        }
        await writeAsync(this.fd, Buffer.concat([...lines, ...(headLine ? [headLine] : [])].flatMap((l) => [l, NEWLINE_BYTE])));
        await fsyncAsync(this.fd);
      } catch (err) {
        // The file may now end in a partial batch; nothing in it was acknowledged, and the next
        // open cuts or refuses it. Stop writing: a later append must not land after garbage.
        this.closed = true;
        for (const b of [...batch, ...this.pending]) b.reject(err as Error);
        this.pending = [];
        break;
      }
      batch.forEach((b, i) => {
        const line = lines[i]!;
        this.indexEntry(b.entry, { offset: this.size, length: line.length });
        this.size += line.length + 1;
        if (b.entry.type === 'prepared') this.preparing.delete(b.entry.transactionId);
      });
      this.seq = seq;
      this.lastHash = hash;
      if (head && headLine) {
        this.lastHead = head;
        this.afterHead = { offset: this.size + headLine.length + 1, entries: 0, firstLine: 0 };
        this.size += headLine.length + 1;
        clearTimeout(this.headTimer);
        this.headTimer = undefined;
        if (!this.signedThisOpen) {
          this.signedThisOpen = true;
          this.options.onFirstSignedCommit?.(this.maxId);
        }
      } else {
        this.afterHead.entries += batch.length;
        // Within HEAD_INTERVAL_MS a head covers these too, if no receipt's commit did meanwhile.
        if (this.options.heads && !this.headTimer) {
          this.headTimer = setTimeout(() => {
            this.headTimer = undefined;
            if (!this.closed) this.wantHead();
          }, this.options.headIntervalMs ?? HEAD_INTERVAL_MS);
          this.headTimer.unref();
        }
      }
      for (const b of batch) b.resolve();
    }
    this.flushing = undefined;
  }

  private readEntry(span: Span): StoreEntry {
    const buf = Buffer.alloc(span.length);
    readSync(this.fd, buf, 0, span.length, span.offset);
    const { seq: _seq, prev: _prev, ...entry } = JSON.parse(buf.toString('utf8')) as StoreEntry & { seq?: number; prev?: string };
    return entry as StoreEntry;
  }

  async get(transactionId: number): Promise<TransactionRecord | undefined> {
    return this.record(transactionId);
  }

  /** Read now, with no await: the log store's atomic check-and-claim steps rely on it. */
  private record(transactionId: number): TransactionRecord | undefined {
    const at = this.index.get(transactionId);
    if (!at) return undefined;
    let record: TransactionRecord | undefined;
    for (const span of at.spans) record = fold(record, this.readEntry(span));
    return record;
  }

  async lastTransactionId(): Promise<number> {
    return this.maxId;
  }

  /** In transaction order, read one at a time, so an audit of a large store stays small. */
  async *all(): AsyncIterable<TransactionRecord> {
    const ids = [...this.index.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      const rec = this.record(id);
      if (rec) yield rec;
    }
  }

  async pendingFor(cardKey: string): Promise<number[]> {
    return [...(this.pendingByCard.get(cardKey) ?? [])].sort((a, b) => a - b);
  }

  async openFairExchanges(): Promise<ReadonlyMap<number, number>> {
    return new Map(this.openFair);
  }

  async countByState(): Promise<Record<TransactionState, number>> {
    const counts = { prepared: 0, confirmed: 0, delivered: 0 };
    for (const r of this.index.values()) counts[r.state]++;
    return counts;
  }

  async close(): Promise<void> {
    if (!this.fdOpen) return;
    await this.flushing;
    // Leave no unsigned entries behind a clean stop.
    if (!this.closed && this.options.heads && this.afterHead.entries > 0) {
      this.wantHead();
      await this.flushing;
    }
    clearTimeout(this.headTimer);
    this.closed = true;
    this.fdOpen = false;
    closeSync(this.fd);
    if (this.lockPath) unlinkSync(this.lockPath);
  }
}

/** LOCK by exclusive create; a lock left by a process that no longer runs (kill -9) is taken over (src/util/lock-file.ts). */
function takeLock(lockPath: string, dir: string): void {
  const r = tryLock(lockPath, { startTime: false });
  if (r.taken) return;
  if (r.holder) {
    throw new InputError(`store ${dir} is in use by process ${r.holder.pid}`, 'stop that server first, or use another --store; `qtm server audit` can read it while it runs');
  }
  throw new InputError(`cannot take the lock on store ${dir}`, 'another process keeps creating it; check what else uses this store');
}
