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
 */
import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, unlinkSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fsyncDirectory } from '../util/fs.js';
import { tryLock } from '../util/lock-file.js';
import { InputError } from '../errors.js';
import { cardKeyOfEntry, fold, type AlreadySigned, type ConfirmedEntry, type ResolvedEntry, type StoreEntry, type TransactionRecord, type TransactionState, type TransactionStore } from './types.js';

export const LOG_FILE = 'transactions.log';
export const LOCK_FILE = 'LOCK';

const writeAsync = promisify(write) as (fd: number, data: Buffer) => Promise<unknown>;
const fsyncAsync = promisify(fsync);
const CHUNK = 1 << 20;
const NEWLINE = 0x0a;

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
  private pending: { entry: StoreEntry; line: Buffer; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  /** No more appends: closed, or a write failed and the tail is suspect. */
  private closed = false;
  private fdOpen = true;

  private constructor(
    private readonly fd: number,
    private readonly path: string,
    private readonly lockPath: string | undefined,
  ) {}

  static open(dir: string, options: OpenOptions = {}): LogStore {
    const path = join(dir, LOG_FILE);
    if (options.readOnly) {
      if (!existsSync(path)) throw new InputError(`no transaction store at ${dir} (${LOG_FILE} is missing)`, 'give the --store directory the server was started with');
      const store = new LogStore(openSync(path, 'r'), path, undefined);
      store.load(false);
      return store;
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockPath = join(dir, LOCK_FILE);
    takeLock(lockPath, dir);
    try {
      const created = !existsSync(path);
      const fd = openSync(path, 'a+', 0o600);
      if (created) fsyncDirectory(dir);
      const store = new LogStore(fd, path, lockPath);
      try {
        store.load(true);
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
    let entry: StoreEntry;
    try {
      entry = JSON.parse(line.toString('utf8')) as StoreEntry;
      if (typeof entry.transactionId !== 'number' || typeof entry.type !== 'string') throw new Error('not an entry');
    } catch {
      if (!writer) {
        this.damagedLines.push(lineNo);
        return;
      }
      throw new InputError(`store ${this.path} is damaged at line ${lineNo}`, 'restore it from backup; `qtm server audit` shows what is intact');
    }
    this.indexEntry(entry, span);
  }

  private indexEntry(entry: StoreEntry, span: Span): void {
    const id = entry.transactionId;
    this.maxId = Math.max(this.maxId, id);
    let at = this.index.get(id);
    if (entry.type === 'prepared') {
      // A prepared entry starts the record afresh, as fold() does.
      if (at) this.setState(id, at, 'prepared');
      at = { state: 'prepared', cardKey: cardKeyOfEntry(entry), spans: [span] };
      this.index.set(id, at);
      if (entry.fair) this.openFair.set(id, entry.fair.deadline);
      else this.openFair.delete(id);
      return;
    }
    if (!at) return; // an entry for an unknown transaction folds to nothing
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
      const existing = this.get(id)?.confirmed;
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
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, line: Buffer.from(JSON.stringify(entry) + '\n', 'utf8'), resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      // Let appends made in the same tick join this batch.
      await new Promise((r) => setImmediate(r));
      const batch = this.pending;
      this.pending = [];
      try {
        await writeAsync(this.fd, Buffer.concat(batch.map((b) => b.line)));
        await fsyncAsync(this.fd);
      } catch (err) {
        // The file may now end in a partial batch; nothing in it was acknowledged, and the next
        // open cuts or refuses it. Stop writing: a later append must not land after garbage.
        this.closed = true;
        for (const b of [...batch, ...this.pending]) b.reject(err as Error);
        this.pending = [];
        break;
      }
      for (const b of batch) {
        this.indexEntry(b.entry, { offset: this.size, length: b.line.length - 1 });
        this.size += b.line.length;
        b.resolve();
      }
    }
    this.flushing = undefined;
  }

  private readEntry(span: Span): StoreEntry {
    const buf = Buffer.alloc(span.length);
    readSync(this.fd, buf, 0, span.length, span.offset);
    return JSON.parse(buf.toString('utf8')) as StoreEntry;
  }

  get(transactionId: number): TransactionRecord | undefined {
    const at = this.index.get(transactionId);
    if (!at) return undefined;
    let record: TransactionRecord | undefined;
    for (const span of at.spans) record = fold(record, this.readEntry(span));
    return record;
  }

  lastTransactionId(): number {
    return this.maxId;
  }

  /** In transaction order, read one at a time, so an audit of a large store stays small. */
  *all(): Iterable<TransactionRecord> {
    const ids = [...this.index.keys()].sort((a, b) => a - b);
    for (const id of ids) yield this.get(id)!;
  }

  pendingFor(cardKey: string): number[] {
    return [...(this.pendingByCard.get(cardKey) ?? [])].sort((a, b) => a - b);
  }

  openFairExchanges(): ReadonlyMap<number, number> {
    return this.openFair;
  }

  countByState(): Record<TransactionState, number> {
    const counts = { prepared: 0, confirmed: 0, delivered: 0 };
    for (const r of this.index.values()) counts[r.state]++;
    return counts;
  }

  async close(): Promise<void> {
    if (!this.fdOpen) return;
    await this.flushing;
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
