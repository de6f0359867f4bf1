/**
 * The embedded default store: an append-only log of JSON lines, fsync'd before any reply.
 * Each transaction costs a few appends whatever the log's size (lowdb's model, a whole-file
 * rewrite per write, grows with the data and never fsyncs). Appends that arrive while an fsync
 * is running are written and fsync'd together (group commit), so concurrent clients share the
 * cost of durability.
 *
 * Opening takes a time that does not depend on the log's length: a writer keeps an index on disk
 * (./log-index.ts: where each entry lies, each transaction's state) and a snapshot of the small
 * state (`index.json`: pending receipts by card, open fair exchanges, the chain's end), and reads
 * only the log written after that snapshot; see openIndex() for how a stale, damaged or foreign
 * index is caught. Audits (read-only opens) read and check the whole log.
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
 * warns, and signs a head over them (docs/THREATS.md, "The unsigned window").
 */
import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fsyncDirectory, writeFileAtomic } from '../util/fs.js';
import { decodeSignedHead, encodeSignedHead, GENESIS_HASH, headStatement, lineHash, type HeadSigner, type SignedHead } from './head.js';
import { liveHolder, tryLock, type LockHolder } from '../util/lock-file.js';
import { DiskIndex, hash8, IDS_FILE, IDX_FILE, IndexMismatch, MemoryIndex, type Span, type TxIndex } from './log-index.js';
import { DecodeError, InputError } from '../errors.js';
import { cardKeyOfEntry, fold, ORDER_MEMORY_SECONDS, type AlreadySigned, type ConfirmedEntry, type PrepareOptions, type PreparedEntry, type ResolvedEntry, type StoreEntry, type TransactionRecord, type TransactionState, type TransactionStore } from './types.js';

export const LOG_FILE = 'transactions.log';
export const LOCK_FILE = 'LOCK';

const fsyncAsync = promisify(fsync);
const CHUNK = 1 << 20;
/** A commit with no signing entry is covered by a signed head within this time (or at close). */
export const HEAD_INTERVAL_MS = 1000;
const NEWLINE = 0x0a;
const NEWLINE_BYTE = Buffer.from('\n');

/** The snapshot of what the disk index does not hold (./log-index.ts), and how much log it covers. */
export const INDEX_SNAPSHOT = 'index.json';
const SNAPSHOT_FORMAT = 'qtm-store-index';
/** A writer writes a new snapshot after this many entries (at a head): what an open reads at most after a crash. */
export const SNAPSHOT_EVERY = 10_000;

interface Snapshot {
  format: typeof SNAPSHOT_FORMAT;
  version: 1;
  entries: number;
  size: number;
  lineNo: number;
  seq: number;
  lastHash: string;
  legacyEntries: number;
  /** The first entry line's hash: which log this index belongs to. */
  firstHash: string | null;
  lastSpan: { offset: number; length: number } | null;
  lastHead: { seq: number; hash: string; sig: string } | null;
  afterHead: { offset: number; entries: number; firstLine: number };
  maxId: number;
  counts: Record<TransactionState, number>;
  pending: [string, number[]][];
  openFair: [number, number][];
  /** Index slots changed since the snapshot before: [ID, first, last, state] (./log-index.ts). */
  slots: [number, number, number, number][];
  digest?: string;
}

function snapshotDigest(s: Snapshot): string {
  const { digest: _d, ...rest } = s;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
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
  /** What is as it should be but worth saying: entries the running server has yet to sign. */
  readonly notes: string[];
  /** Entry lines that carry no chain fields (written before the chain existed). */
  legacyEntries: number;
  /** Signed heads seen, and the last one. */
  heads: number;
  lastHead?: SignedHead;
  /** Sequence number -> entry hash, for checking a customer's saved head. */
  readonly hashes: Map<number, string>;
}

export class LogStore implements TransactionStore {
  /** Where each transaction's entries lie, and its state: on disk for writers, in memory for audits. */
  private tx: TxIndex = new MemoryIndex();
  private readonly counts: Record<TransactionState, number> = { prepared: 0, confirmed: 0, delivered: 0 };
  /** Card keys of recently prepared transactions, so state changes need not read their entry. */
  private readonly cardKeys = new Map<number, string>();
  /** The first entry line's hash and the last entry's span: what a snapshot is checked with. */
  private firstHash: string | null = null;
  private lastSpan: { offset: number; length: number } | null = null;
  private snapshotEntries = 0;
  private dir = '';
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
  readonly findings: LogFindings = { problems: [], notes: [], legacyEntries: 0, heads: 0, hashes: new Map() };
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
      store.noteUnsignedTail(liveHolder(join(dir, LOCK_FILE)));
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
      /** Reads the log into a fresh store's index: from the snapshot, or (its index disagreeing with it) rebuilt. */
      const loaded = (): LogStore => {
        store = new LogStore(fd, path, lockPath, options);
        try {
          store.load(true, store.openIndex(dir));
          store.tx.commit();
          store.recallRecentOrders();
        } catch (err) {
          // An index file that disagrees with its snapshot (restored apart from it, damaged).
          // At open a line that is not the one indexed rebuilds the index, whose full read then
          // checks the chain: a damaged index is repaired, an edited log refused.
          if (!(err instanceof IndexMismatch || err instanceof EntryMismatch)) throw err;
          store.tx.close();
          store = new LogStore(fd, path, lockPath, options);
          options.onWarning?.(`store: the index in ${dir} does not match its snapshot (${err.message}); rebuilding it from the whole log`);
          store.load(true, store.openIndex(dir, true));
          store.tx.commit();
          store.recallRecentOrders();
        }
        return store;
      };
      try {
        store = loaded();
        if (store.cutUnsignedTail()) {
          store.tx.close();
          store = loaded();
        }
        // A snapshot now spares the next open what this one read (nothing, when it was current).
        if (store.snapshotAllowed() && store.tx.entries !== store.snapshotEntries) store.writeSnapshot();
        if (store.lastHead && !options.heads) {
          throw new InputError(`store ${dir} is signed by its server's receipt key: open it with that key`, 'start the server with the --signer that signed it');
        }
        store.keepUnsignedTail();
      } catch (err) {
        store.tx.close();
        closeSync(fd);
        throw err;
      }
      return store;
    } catch (err) {
      unlinkSync(lockPath);
      throw err;
    }
  }

  /**
   * The writer's index: the snapshot's, if it matches this log, or a new one. Returns the log
   * offset from which the log must be read (the snapshot's end, or 0 for a rebuild).
   *
   * The snapshot names the log it indexes by its first line's hash, and its end by the offset,
   * length and hash of the last entry it covers: a log that grew since (a crash after the last
   * snapshot) is read from there; a log that is shorter, another log, or a snapshot or index
   * file that does not parse or add up is rebuilt from the whole log, with a warning. A line
   * edited below the snapshot is not read at open: every read through the index checks the
   * line's hash (readEntry), and `qtm server audit` checks the whole chain and every head.
   */
  private openIndex(dir: string, rebuild = false): number {
    this.dir = dir;
    const idxPath = join(dir, IDX_FILE), idsPath = join(dir, IDS_FILE), snapPath = join(dir, INDEX_SNAPSHOT);
    if (existsSync(snapPath) && !rebuild) {
      try {
        const snap = JSON.parse(readFileSync(snapPath, 'utf8')) as Snapshot;
        if (snap.format !== SNAPSHOT_FORMAT || snap.version !== 1 || snap.digest !== snapshotDigest(snap)) throw new IndexMismatch('it does not parse or its digest does not match');
        const size = fstatSync(this.fd).size;
        if (size < snap.size) throw new IndexMismatch(`it covers ${snap.size} bytes, the log has ${size}`);
        if (snap.firstHash !== null && this.lineHashAt(this.firstEntrySpan()) !== snap.firstHash) throw new IndexMismatch('it indexes another log (first entries differ)');
        if (snap.lastSpan && this.lineHashAt(snap.lastSpan) !== snap.lastHash) throw new IndexMismatch(`the log's entry ${snap.seq} is not the one it indexed`);
        const tx = DiskIndex.open(idxPath, idsPath, snap.entries, snap.slots);
        this.tx = tx;
        Object.assign(this.counts, snap.counts);
        for (const [card, ids] of snap.pending) this.pendingByCard.set(card, new Set(ids));
        for (const [id, deadline] of snap.openFair) this.openFair.set(id, deadline);
        this.maxId = snap.maxId;
        this.seq = snap.seq;
        this.lastHash = snap.lastHash;
        this.lineNo = snap.lineNo;
        this.findings.legacyEntries = snap.legacyEntries;
        this.firstHash = snap.firstHash;
        this.lastSpan = snap.lastSpan;
        this.lastHead = snap.lastHead ? decodeSignedHead(snap.lastHead) : undefined;
        if (this.lastHead && this.options.heads && !this.options.heads.verify(headStatement(this.lastHead), this.lastHead.sig)) throw new IndexMismatch('its last head does not verify with the receipt key');
        this.afterHead = { ...snap.afterHead };
        this.snapshotEntries = snap.entries;
        return snap.size;
      } catch (err) {
        if (!(err instanceof IndexMismatch || err instanceof SyntaxError || err instanceof DecodeError)) throw err;
        this.tx.close();
        this.resetIndexState();
        this.options.onWarning?.(`store: the index snapshot ${snapPath} was not used (${(err as Error).message}); rebuilding the index from the whole log`);
      }
    }
    // No snapshot stands while the index is rebuilt: a crash meanwhile rebuilds again.
    if (existsSync(snapPath)) unlinkSync(snapPath);
    this.tx = DiskIndex.create(idxPath, idsPath);
    return 0;
  }

  private resetIndexState(): void {
    this.tx = new MemoryIndex();
    Object.assign(this.counts, { prepared: 0, confirmed: 0, delivered: 0 });
    this.pendingByCard.clear();
    this.openFair.clear();
    this.maxId = 0;
    this.seq = 0;
    this.lastHash = GENESIS_HASH;
    this.lineNo = 0;
    this.findings.legacyEntries = 0;
    this.firstHash = null;
    this.lastSpan = null;
    this.lastHead = undefined;
    this.afterHead = { offset: 0, entries: 0, firstLine: 0 };
  }

  /** The first entry line of the log (skipping heads), for the snapshot's identity check. */
  private firstEntrySpan(): { offset: number; length: number } {
    const buf = Buffer.alloc(64 * 1024);
    let offset = 0;
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, offset);
      const nl = buf.subarray(0, n).indexOf(NEWLINE);
      if (nl < 0) throw new IndexMismatch('the log\'s first line is not where it indexed it');
      if (!buf.subarray(0, nl).toString('latin1').startsWith('{"head"')) return { offset, length: nl };
      offset += nl + 1;
    }
  }

  private lineHashAt(span: { offset: number; length: number }): string {
    const buf = Buffer.alloc(span.length);
    if (readSync(this.fd, buf, 0, span.length, span.offset) < span.length) return '';
    return lineHash(buf);
  }

  /** A snapshot may be written when no entry waits for a head (a receipt after it would be cut below it). */
  private snapshotAllowed(): boolean {
    return this.tx instanceof DiskIndex && (!this.options.heads || this.afterHead.entries === 0);
  }

  /** Makes the index files durable, then records how much of the log they cover. */
  private writeSnapshot(): void {
    const slots = this.tx.sync();
    const snap: Snapshot = {
      format: SNAPSHOT_FORMAT, version: 1, entries: this.tx.entries, size: this.size, lineNo: this.lineNo, seq: this.seq, lastHash: this.lastHash,
      legacyEntries: this.findings.legacyEntries, firstHash: this.firstHash, lastSpan: this.lastSpan,
      lastHead: this.lastHead ? encodeSignedHead(this.lastHead) : null, afterHead: { offset: this.afterHead.offset, entries: this.afterHead.entries, firstLine: this.afterHead.firstLine },
      maxId: this.maxId, counts: { ...this.counts }, pending: [...this.pendingByCard].map(([k, v]) => [k, [...v]]), openFair: [...this.openFair], slots,
    };
    snap.digest = snapshotDigest(snap);
    writeFileAtomic(join(this.dir, INDEX_SNAPSHOT), JSON.stringify(snap), 0o600);
    this.tx.applySlots();
    this.snapshotEntries = this.tx.entries;
  }

  /** Orders prepared in the last ORDER_MEMORY_SECONDS, read newest first from the index (a time, not a length). */
  private recallRecentOrders(): void {
    if (!(this.tx instanceof DiskIndex)) return;
    const horizon = Math.floor(Date.now() / 1000) - ORDER_MEMORY_SECONDS;
    for (const span of this.tx.recentPrepared()) {
      const e = this.readEntry(span) as PreparedEntry;
      if (e.time <= horizon) break;
      if (!this.recentOrders.has(e.orderId)) this.rememberOrder(e);
    }
  }

  /** Streams the log from `from` (0, or a snapshot's end), building the index. */
  private load(writer: boolean, from = 0): void {
    const fileSize = fstatSync(this.fd).size;
    const buf = Buffer.alloc(CHUNK);
    let carry = Buffer.alloc(0);
    let carryOffset = from; // file offset of carry[0]
    let position = from;
    let lineNo = this.lineNo;
    while (position < fileSize) {
      const n = readSync(this.fd, buf, 0, Math.min(CHUNK, fileSize - position), position);
      if (n === 0) break;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      position += n;
      let start = 0;
      for (let nl = data.indexOf(NEWLINE, start); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
        lineNo++;
        if (nl > start) this.indexLine(data.subarray(start, nl), { offset: carryOffset + start, length: nl - start }, lineNo, writer);
        else this.lineNo = lineNo;
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
    this.firstHash ??= this.lastHash;
    this.lastSpan = { offset: span.offset, length: span.length };
    if (!writer) this.findings.hashes.set(this.seq, this.lastHash);
    if (this.afterHead.entries++ === 0) this.afterHead.firstLine = lineNo;
    if (!this.afterHead.signing && isSigningEntry(entry)) this.afterHead.signing = { offset: span.offset, line: lineNo };
    // The index keeps the first 8 bytes of the line's hash: the one just computed.
    this.indexEntry(entry as unknown as StoreEntry, { ...span, hash8: Buffer.from(this.lastHash.slice(0, 16), 'hex') }, writer, line);
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
  private noteUnsignedTail(server: LockHolder | undefined): void {
    if (this.lastHead && this.afterHead.entries > 0) {
      const signing = this.afterHead.signing;
      // Entries that sign nothing wait up to HEAD_INTERVAL_MS for their head while the server
      // runs: beside it (it holds the store's lock), that is the normal state, not a finding.
      if (!signing && server) {
        this.findings.notes.push(`${this.afterHead.entries} entries after the last signed head (from line ${this.afterHead.firstLine}), none a receipt: the running server (process ${server.pid}) signs them within ${HEAD_INTERVAL_MS / 1000} s; audit again after it to have them checked against a head`);
        return;
      }
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
  private indexEntry(entry: StoreEntry, span: Span, writer: boolean | undefined, line: Buffer): void {
    const id = entry.transactionId;
    this.maxId = Math.max(this.maxId, id);
    const state = this.tx.state(id);
    if (entry.type === 'prepared') {
      // One prepared entry per ID: a second one would replace a proof the customer holds.
      if (state) {
        if (writer !== undefined) this.problem(writer, `transaction ${id} is prepared a second time at line ${this.lineNo}`);
        return;
      }
      this.tx.addPrepared(id, span, line);
      this.counts.prepared++;
      this.cardKeys.set(id, cardKeyOfEntry(entry));
      if (this.cardKeys.size > 65_536) this.cardKeys.delete(this.cardKeys.keys().next().value!);
      if (writer !== undefined) this.rememberOrder(entry);
      if (entry.fair) this.openFair.set(id, entry.fair.deadline);
      else this.openFair.delete(id);
      return;
    }
    if (!state) {
      if (writer !== undefined) this.problem(writer, `line ${this.lineNo}: a ${entry.type} entry for transaction ${id}, which was never prepared`);
      return;
    }
    // Reported by audits; not a reason to stop serving the others.
    if (entry.type === 'delivered' && state === 'prepared' && writer === false) {
      this.problem(false, `line ${this.lineNo}: transaction ${id} is marked delivered but was never signed`);
    }
    this.tx.addEntry(id, entry.type, span, line);
    if (entry.type === 'confirmed' || entry.type === 'resolved' || entry.type === 'fair-aborted') this.openFair.delete(id);
    if ((entry.type === 'confirmed' || entry.type === 'resolved') && state === 'prepared') this.setState(id, state, 'confirmed');
    if (entry.type === 'delivered' && state !== 'delivered') this.setState(id, state, 'delivered');
  }

  /** The card key a transaction is bound to (see cardKeyOfEntry). */
  private cardKeyOf(id: number): string {
    const known = this.cardKeys.get(id);
    if (known) return known;
    return cardKeyOfEntry(this.readEntry(this.tx.firstSpan(id)!) as PreparedEntry);
  }

  private setState(id: number, from: TransactionState, state: TransactionState): void {
    if (from === 'confirmed' || state === 'confirmed') {
      const cardKey = this.cardKeyOf(id);
      const set = this.pendingByCard.get(cardKey);
      if (from === 'confirmed') {
        set?.delete(id);
        if (set?.size === 0) this.pendingByCard.delete(cardKey);
      }
      if (state === 'confirmed') {
        if (set) set.add(id);
        else this.pendingByCard.set(cardKey, new Set([id]));
      }
    }
    this.counts[from]--;
    this.counts[state]++;
    this.tx.setState(id, state);
  }

  /** Transactions whose signing entry is being written now (claimed, not yet fsync'd). */
  private readonly signing = new Map<number, Promise<void>>();

  async appendSigned(entry: ConfirmedEntry | ResolvedEntry): Promise<{ readonly stored: true } | AlreadySigned> {
    const id = entry.transactionId;
    for (;;) {
      // Check and claim with no await between them: the event loop makes this one atomic step.
      // Still 'prepared' in the index: no confirmed or resolved entry was written (either moves
      // the state on), so there is nothing to read back (a read and parse of the prepared entry).
      const existing = this.tx.state(id) === 'prepared' ? undefined : this.record(id)?.confirmed;
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
      if (this.tx.state(entry.transactionId) || this.preparing.has(entry.transactionId)) {
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
      const hashes: string[] = [];
      const lines = batch.map((b) => {
        const line = Buffer.from(JSON.stringify({ seq: ++seq, prev: hash, ...b.entry }), 'utf8');
        hash = lineHash(line);
        hashes.push(hash);
        return line;
      });
      let head: SignedHead | undefined;
      let headLine: Buffer | undefined;
      try {
        if (signHead) {
          head = { seq, hash, sig: this.options.heads!.sign(headStatement({ seq, hash })) };
          headLine = Buffer.from(JSON.stringify({ head: encodeSignedHead(head) }), 'utf8');
        }
        // The write only reaches the page cache (microseconds), so it is made here; only the
        // fsync waits in the thread pool: one hand-over per commit instead of two.
        const data = Buffer.concat([...lines, ...(headLine ? [headLine] : [])].flatMap((l) => [l, NEWLINE_BYTE]));
        if (writeSync(this.fd, data) !== data.length) throw new Error(`short write to ${this.path}`);
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
        this.indexEntry(b.entry, { offset: this.size, length: line.length, hash8: Buffer.from(hashes[i]!.slice(0, 16), 'hex') }, undefined, line);
        this.lastSpan = { offset: this.size, length: line.length };
        this.firstHash ??= lineHash(line);
        this.size += line.length + 1;
        if (b.entry.type === 'prepared') this.preparing.delete(b.entry.transactionId);
      });
      this.seq = seq;
      this.lastHash = hash;
      this.lineNo += lines.length + (headLine ? 1 : 0);
      this.tx.commit();
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
      // Bounds what the next open reads after a crash (a few ms of fsyncs every SNAPSHOT_EVERY entries).
      if (this.snapshotAllowed() && this.tx.entries - this.snapshotEntries >= SNAPSHOT_EVERY) this.writeSnapshot();
      for (const b of batch) b.resolve();
    }
    this.flushing = undefined;
  }

  private readEntry(span: Span): StoreEntry {
    const buf = Buffer.alloc(span.length);
    readSync(this.fd, buf, 0, span.length, span.offset);
    if (span.hash8 && !hash8(buf).equals(span.hash8)) {
      throw new EntryMismatch(`store ${this.path} is damaged: the entry at byte ${span.offset} is not the one indexed there (the line or its index record changed after it was written)`, `run \`qtm server audit\` on it; to rebuild the index, stop the server and remove ${INDEX_SNAPSHOT}`);
    }
    const { seq: _seq, prev: _prev, ...entry } = JSON.parse(buf.toString('utf8')) as StoreEntry & { seq?: number; prev?: string };
    return entry as StoreEntry;
  }

  async get(transactionId: number): Promise<TransactionRecord | undefined> {
    return this.record(transactionId);
  }

  /** Read now, with no await: the log store's atomic check-and-claim steps rely on it. */
  private record(transactionId: number): TransactionRecord | undefined {
    let record: TransactionRecord | undefined;
    for (const span of this.tx.spans(transactionId)) record = fold(record, this.readEntry(span));
    return record;
  }

  async lastTransactionId(): Promise<number> {
    return this.maxId;
  }

  /** In transaction order, read one at a time, so an audit of a large store stays small. */
  async *all(): AsyncIterable<TransactionRecord> {
    for (const id of this.tx.ids(this.maxId)) {
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
    return { ...this.counts };
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
    // After a failed write the tail is suspect: the next open reads it from the last snapshot.
    if (!this.closed && this.lockPath && this.snapshotAllowed()) this.writeSnapshot();
    this.closed = true;
    this.fdOpen = false;
    this.tx.close();
    closeSync(this.fd);
    if (this.lockPath) unlinkSync(this.lockPath);
  }
}

/** A line read through the index is not the one indexed there: the log or the index changed. */
class EntryMismatch extends InputError {}

/** LOCK by exclusive create; a lock left by a process that no longer runs (kill -9) is taken over (src/util/lock-file.ts). */
function takeLock(lockPath: string, dir: string): void {
  const r = tryLock(lockPath, { startTime: false });
  if (r.taken) return;
  if (r.holder) {
    throw new InputError(`store ${dir} is in use by process ${r.holder.pid}`, 'stop that server first, or use another --store; `qtm server audit` can read it while it runs');
  }
  throw new InputError(`cannot take the lock on store ${dir}`, 'another process keeps creating it; check what else uses this store');
}
