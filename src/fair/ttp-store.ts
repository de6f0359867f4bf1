/**
 * The TTP's records, one per exchange (keyed by its label L), behind an asynchronous interface so
 * that a PostgreSQL implementation can take its place (issue 10). The default, LogTtpStore, is an
 * append-only log: one JSON line per decision in `ttp.log`, fsync'd before the decision is
 * answered, so a decision costs one append and one fsync however many records there are (the
 * lowdb document it replaces was rewritten whole, and fsync'd, per decision).
 *
 * A decided record never changes, so each label has at most one line, and `put` is an insert
 * that keeps the first: a second decision for a label returns the one stored (or being stored).
 * That is the compare-and-set every store must give, in one process or across many.
 *
 * Memory and opening: only an index (label -> where its line lies) is kept; a record is read back
 * from the file when asked for. The index is saved as a snapshot (`ttp.index`: sorted fixed-size
 * entries, a SHA-256 over them, and the length and last line of the log it covers) every
 * `snapshotEvery` new records and on close. Opening reads the snapshot, checks it against the log
 * (the log is at least that long and its line there is the one the snapshot names), and scans only
 * the lines after it. So opening costs a read of ~42 bytes per record and a scan of at most a few
 * thousand lines, not a parse of the whole log; a snapshot that does not match is ignored (with a
 * warning) and the index is rebuilt from the log. The lines a snapshot covers are decoded and
 * checked when read (`get`), not at open.
 *
 * Crash safety: a line is complete only with its newline; a torn last line (a write cut by a
 * crash, never answered) is cut off at open. A bad complete line is damage: opening refuses.
 *
 * One writer: the TTP holds `LOCK` in the store's folder (src/util/lock-file.ts); a second TTP on
 * the same store is refused with the first one's PID. A lock left by a killed TTP is taken over.
 *
 * Migration: a store written by the lowdb version (`ttp.json`) is converted on first open: its
 * records are written to `ttp.log` (atomically), the document is kept as `ttp.json.migrated`, and
 * `ttp.json` is replaced by a note that is not JSON, so an older qtm refuses the store instead of
 * serving it without the new decisions. Records keyed by server and transaction ID (before
 * records were keyed by L) were never read since, and are not carried over.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, read, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fsyncDirectory, writeFileAtomic } from '../util/fs.js';
import { tryLock, unlock } from '../util/lock-file.js';
import { DecodeError, InputError } from '../errors.js';
import { checkFields, isJsonObject, parseStrictJson } from '../protocol/strict-json.js';
import { decodeCanonicalBase64 } from '../protocol/base64.js';
import { GroupCommit, scanLines, type Committed, type LineSpan } from '../store/append-log.js';

export type TtpState = 'none' | 'aborted' | 'resolved';

export interface TtpRecord {
  /** The exchange's label L, hex: a package the server never signed cannot take another's record. */
  readonly key: string;
  /** SHA-256 of the pre-QTM package the first request named: later requests must match it. */
  readonly headerHash: string;
  readonly label: string;
  readonly state: Exclude<TtpState, 'none'>;
  /** Deposited or decrypted signatures, base64. */
  readonly x?: string;
  readonly y?: string;
  /** The abort token, signed once (aborted records). */
  readonly token?: string;
  readonly at: string;
}

export interface TtpStore {
  /** The decision stored for this label, if any. */
  get(key: string): Promise<TtpRecord | undefined>;
  /**
   * Stores the first decision for `record.key`, durable when the promise resolves, and resolves
   * with it. If the label is already decided (or being decided), stores nothing and resolves with
   * that decision instead: records never change.
   */
  put(record: TtpRecord): Promise<TtpRecord>;
  count(): Promise<number>;
  /** Waits for pending writes and releases the store (its lock). */
  close(): Promise<void>;
}

export const TTP_LOG = 'ttp.log';
export const TTP_INDEX = 'ttp.index';
export const TTP_LOCK = 'LOCK';
/** The lowdb document of earlier versions, and where migration keeps it. */
export const TTP_LOWDB = 'ttp.json';
export const TTP_LOWDB_MIGRATED = 'ttp.json.migrated';
const MIGRATED_NOTE = 'qtm TTP store: moved to ttp.log';

// ---------------------------------------------------------------------------------------------
// One line of ttp.log: {"v":1,"key":L,"headerHash":...,"label":L,"state":...,("x","y"|"token"),"at":...}

const LINE_FORMAT = 'TTP store line';
const LINE_FIELDS = ['v', 'key', 'headerHash', 'label', 'state', 'x', 'y', 'token', 'at'] as const;
/** Base64 of the largest signature a line holds (RSA-16384: 2,048 bytes). */
const MAX_SIGNATURE_CHARS = 2732;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function isHex32(v: unknown): v is string {
  if (typeof v !== 'string' || v.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false; // 0-9 a-f
  }
  return true;
}

function signatureField(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_SIGNATURE_CHARS || !decodeCanonicalBase64(v)) {
    throw new DecodeError(LINE_FORMAT, `"${name}" must be a signature in canonical base64`);
  }
  return v;
}

/** The one check of a record's fields and invariants, for lines read, lines written and migrated records. */
function recordFrom(value: unknown): TtpRecord {
  const o = checkFields(LINE_FORMAT, value, LINE_FIELDS, '');
  if (o.v !== 1) throw new DecodeError(LINE_FORMAT, '"v" must be 1');
  if (!isHex32(o.key)) throw new DecodeError(LINE_FORMAT, '"key" must be a label: 64 lowercase hex digits');
  if (o.label !== o.key) throw new DecodeError(LINE_FORMAT, '"label" must equal "key"');
  if (!isHex32(o.headerHash)) throw new DecodeError(LINE_FORMAT, '"headerHash" must be a SHA-256 in 64 lowercase hex digits');
  if (typeof o.at !== 'string' || o.at.length !== 24 || Number.isNaN(Date.parse(o.at)) || new Date(o.at).toISOString() !== o.at) {
    throw new DecodeError(LINE_FORMAT, '"at" must be a UTC time as toISOString writes it');
  }
  const base = { key: o.key, headerHash: o.headerHash, label: o.key, at: o.at };
  if (o.state === 'aborted') {
    // Y is never released after an abort: an aborted record keeps no X or Y.
    if (o.x !== undefined || o.y !== undefined) throw new DecodeError(LINE_FORMAT, 'an aborted record holds no "x" or "y"');
    return { ...base, state: 'aborted', token: signatureField(o, 'token') };
  }
  if (o.state === 'resolved') {
    if (o.token !== undefined) throw new DecodeError(LINE_FORMAT, 'a resolved record holds no "token"');
    return { ...base, state: 'resolved', x: signatureField(o, 'x'), y: signatureField(o, 'y') };
  }
  throw new DecodeError(LINE_FORMAT, '"state" must be "aborted" or "resolved"');
}

/** A record's line, without its newline. Refuses a record no line could hold (a program error). */
export function encodeTtpLine(r: TtpRecord): string {
  const line = JSON.stringify({
    v: 1, key: r.key, headerHash: r.headerHash, label: r.label, state: r.state,
    ...(r.x !== undefined ? { x: r.x } : {}), ...(r.y !== undefined ? { y: r.y } : {}), ...(r.token !== undefined ? { token: r.token } : {}),
    at: r.at,
  });
  recordFrom(JSON.parse(line));
  return line;
}

/** One line of ttp.log (no newline), strictly: UTF-8, JSON without duplicate keys, known fields, the record's invariants. */
export function decodeTtpLine(line: Uint8Array | string): TtpRecord {
  let text: string;
  if (typeof line === 'string') text = line;
  else {
    try {
      text = utf8.decode(line);
    } catch {
      throw new DecodeError(LINE_FORMAT, 'not UTF-8');
    }
  }
  return recordFrom(parseStrictJson(text, LINE_FORMAT));
}

// ---------------------------------------------------------------------------------------------
// ttp.index: "QTMTTPX1" | count u32 | log bytes covered u64 | last line: offset u64, length u32,
// SHA-256 | count x (label 32 bytes | offset u48 | length u32), sorted by label | SHA-256 of all before.

const SNAP_MAGIC = Buffer.from('QTMTTPX1');
const SNAP_HEADER = 64;
const KEY_BYTES = 32;
const ENTRY = KEY_BYTES + 6 + 4;
const DIGEST = 32;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
const readAsync = promisify(read);

export interface OpenTtpStoreOptions {
  /** New records between index snapshots (default 4096): bounds the lines an open scans. */
  readonly snapshotEvery?: number;
  /** What opening did that an operator should know: a torn line cut, a migration, a snapshot ignored. */
  readonly onWarning?: (message: string) => void;
}

export class LogTtpStore implements TtpStore {
  /** Snapshot entries (sorted by label), and the records committed after it. */
  private snap: Buffer = Buffer.alloc(0);
  private snapCount = 0;
  private readonly recent = new Map<string, LineSpan>();
  /** Labels whose first decision is being written: a second put waits for it. */
  private readonly deciding = new Map<string, Promise<TtpRecord>>();
  private lastLine: LineSpan | undefined;
  private log!: GroupCommit<TtpRecord>;
  private closed = false;
  private readonly logPath: string;
  private readonly snapshotEvery: number;

  private constructor(
    /** The store's folder. */
    readonly directory: string,
    private readonly fd: number,
    private readonly lockPath: string,
    private readonly o: OpenTtpStoreOptions,
  ) {
    this.logPath = join(directory, TTP_LOG);
    this.snapshotEvery = Math.max(1, o.snapshotEvery ?? 4096);
  }

  /** Opens (or creates) the store in `dir` as its one writer, converting a lowdb `ttp.json` first. */
  static async open(dir: string, o: OpenTtpStoreOptions = {}): Promise<LogTtpStore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockPath = join(dir, TTP_LOCK);
    takeLock(lockPath, dir);
    let fd: number | undefined;
    try {
      migrateLowdb(dir, o.onWarning);
      const path = join(dir, TTP_LOG);
      const created = !existsSync(path);
      fd = openSync(path, 'a+', 0o600);
      if (created) fsyncDirectory(dir);
      const store = new LogTtpStore(dir, fd, lockPath, o);
      store.load();
      return store;
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      unlock(lockPath);
      throw err;
    }
  }

  async get(key: string): Promise<TtpRecord | undefined> {
    this.assertOpen();
    const span = this.lookup(key);
    return span ? this.readRecord(key, span) : undefined;
  }

  async put(record: TtpRecord): Promise<TtpRecord> {
    this.assertOpen();
    const line = Buffer.from(encodeTtpLine(record), 'utf8');
    // Look and claim with no await between them: one step for the event loop.
    const span = this.lookup(record.key);
    if (span) return this.readRecord(record.key, span);
    const inFlight = this.deciding.get(record.key);
    if (inFlight) return inFlight;
    const write = this.log.append(line, record).then(() => record);
    this.deciding.set(record.key, write);
    const done = () => this.deciding.delete(record.key);
    write.then(done, done);
    return write;
  }

  async count(): Promise<number> {
    return this.snapCount + this.recent.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.log.close();
    this.writeSnapshot();
    closeSync(this.fd);
    unlock(this.lockPath);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the TTP store is closed');
  }

  private damaged(where: string, why: string): InputError {
    return new InputError(`the TTP store ${this.logPath} is damaged: ${where}: ${why}`, 'restore it from backup', 'E_FILE_DAMAGED');
  }

  // -- the index -------------------------------------------------------------------------------

  private lookup(key: string): LineSpan | undefined {
    const recent = this.recent.get(key);
    if (recent || !isHex32(key) || this.snapCount === 0) return recent;
    const k = Buffer.from(key, 'hex');
    let lo = 0;
    let hi = this.snapCount - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = mid * ENTRY;
      const c = this.snap.compare(k, 0, KEY_BYTES, at, at + KEY_BYTES);
      if (c === 0) return { offset: this.snap.readUIntBE(at + KEY_BYTES, 6), length: this.snap.readUInt32BE(at + KEY_BYTES + 6) };
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** The first snapshot entry at or after `from` whose label is not below `key`. */
  private lowerBound(key: Buffer, from: number): number {
    let lo = from;
    let hi = this.snapCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.snap.compare(key, 0, KEY_BYTES, mid * ENTRY, mid * ENTRY + KEY_BYTES) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private async readRecord(key: string, span: LineSpan): Promise<TtpRecord> {
    const buf = Buffer.alloc(span.length);
    const { bytesRead: n } = await readAsync(this.fd, buf, 0, span.length, span.offset);
    let r: TtpRecord;
    try {
      if (n !== span.length) throw new Error('the line is cut short');
      r = decodeTtpLine(buf);
    } catch (err) {
      throw this.damaged(`the record at byte ${span.offset}`, (err as Error).message);
    }
    if (r.key !== key) throw this.damaged(`the record at byte ${span.offset}`, `it is for label ${r.key.slice(0, 16)}…, but the index has it for ${key.slice(0, 16)}…`);
    return r;
  }

  /** The snapshot, then the lines after it; a torn last line is cut. */
  private load(): void {
    const size = fstatSync(this.fd).size;
    let from = 0;
    const snap = this.readSnapshot(size);
    if (snap) {
      this.snap = snap.entries;
      this.snapCount = snap.count;
      this.lastLine = snap.lastLine;
      from = snap.lastLine.offset + snap.lastLine.length + 1;
    }
    const end = scanLines(this.fd, from, size, (line, span) => {
      let r: TtpRecord;
      try {
        r = decodeTtpLine(line);
      } catch (err) {
        throw this.damaged(`the line at byte ${span.offset}`, (err as Error).message);
      }
      if (this.lookup(r.key)) throw this.damaged(`the line at byte ${span.offset}`, `a second record for label ${r.key.slice(0, 16)}… (a decided record never changes)`);
      this.recent.set(r.key, span);
      this.lastLine = span;
    });
    if (end < size) {
      ftruncateSync(this.fd, end);
      fsyncSync(this.fd);
      this.o.onWarning?.(`TTP store: cut a torn last line (${size - end} bytes at byte ${end}) left by a crash; it was never answered`);
    }
    this.log = new GroupCommit<TtpRecord>(this.fd, end, (batch) => this.committed(batch));
    if (this.recent.size >= this.snapshotEvery) this.writeSnapshot();
  }

  /** A batch is durable: index all of it, then maybe save the index. */
  private committed(batch: readonly Committed<TtpRecord>[]): void {
    for (const c of batch) this.recent.set(c.item.key, c.span);
    this.lastLine = batch[batch.length - 1]!.span;
    if (this.recent.size >= this.snapshotEvery) this.writeSnapshot();
  }

  private readSnapshot(size: number): { entries: Buffer; count: number; lastLine: LineSpan } | undefined {
    const path = join(this.directory, TTP_INDEX);
    if (!existsSync(path)) return undefined;
    const ignore = (why: string) => {
      this.o.onWarning?.(`TTP store: the index snapshot ${path} ${why}; rebuilding the index from the log`);
      return undefined;
    };
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (err) {
      return ignore(`cannot be read (${(err as Error).message})`);
    }
    if (buf.length < SNAP_HEADER + DIGEST || !buf.subarray(0, SNAP_MAGIC.length).equals(SNAP_MAGIC)) return ignore('is not an index snapshot');
    const count = buf.readUInt32BE(8);
    if (count === 0 || buf.length !== SNAP_HEADER + count * ENTRY + DIGEST) return ignore('has the wrong length');
    if (!sha256(buf.subarray(0, buf.length - DIGEST)).equals(buf.subarray(buf.length - DIGEST))) return ignore('does not match its checksum');
    const covered = Number(buf.readBigUInt64BE(12));
    const lastLine = { offset: Number(buf.readBigUInt64BE(20)), length: buf.readUInt32BE(28) };
    if (covered > size) return ignore(`covers ${covered} bytes of a ${size}-byte log (the log was cut or replaced)`);
    if (lastLine.offset + lastLine.length + 1 !== covered || lastLine.length === 0) return ignore('is inconsistent');
    // The log's line there must be the one the snapshot names, at a line start, indexed where it lies.
    const line = Buffer.alloc(lastLine.length + 2);
    const before = lastLine.offset > 0 ? 1 : 0;
    readSync(this.fd, line, 0, lastLine.length + 1 + before, lastLine.offset - before);
    const text = line.subarray(before, before + lastLine.length);
    if ((before && line[0] !== 0x0a) || line[before + lastLine.length] !== 0x0a || !sha256(text).equals(buf.subarray(32, 64))) {
      return ignore('does not match the log where it ends (the log was replaced)');
    }
    this.snap = buf.subarray(SNAP_HEADER, SNAP_HEADER + count * ENTRY);
    this.snapCount = count;
    let key: string;
    try {
      key = decodeTtpLine(text).key;
    } catch {
      key = '';
    }
    const at = this.lookup(key);
    this.snap = Buffer.alloc(0);
    this.snapCount = 0;
    if (!at || at.offset !== lastLine.offset || at.length !== lastLine.length) return ignore('does not index the last line it covers');
    return { entries: buf.subarray(SNAP_HEADER, SNAP_HEADER + count * ENTRY), count, lastLine };
  }

  /**
   * Saves the index of every durable record (snapshot entries merged with the recent ones) with
   * the log length it covers. An optimisation only: a failure is reported, never fatal.
   */
  private writeSnapshot(): void {
    if (this.recent.size === 0 || !this.lastLine) return;
    try {
      const added = [...this.recent].map(([key, span]) => ({ key: Buffer.from(key, 'hex'), span })).sort((a, b) => a.key.compare(b.key));
      const count = this.snapCount + added.length;
      const out = Buffer.alloc(SNAP_HEADER + count * ENTRY + DIGEST);
      let i = 0;
      let w = SNAP_HEADER;
      for (const a of added) {
        // The snapshot entries before this one, copied as one run.
        const upTo = this.lowerBound(a.key, i);
        this.snap.copy(out, w, i * ENTRY, upTo * ENTRY);
        w += (upTo - i) * ENTRY;
        i = upTo;
        a.key.copy(out, w);
        out.writeUIntBE(a.span.offset, w + KEY_BYTES, 6);
        out.writeUInt32BE(a.span.length, w + KEY_BYTES + 6);
        w += ENTRY;
      }
      this.snap.copy(out, w, i * ENTRY, this.snapCount * ENTRY);
      const last = this.lastLine;
      const line = Buffer.alloc(last.length);
      readSync(this.fd, line, 0, last.length, last.offset);
      SNAP_MAGIC.copy(out, 0);
      out.writeUInt32BE(count, 8);
      out.writeBigUInt64BE(BigInt(last.offset + last.length + 1), 12);
      out.writeBigUInt64BE(BigInt(last.offset), 20);
      out.writeUInt32BE(last.length, 28);
      sha256(line).copy(out, 32);
      sha256(out.subarray(0, out.length - DIGEST)).copy(out, out.length - DIGEST);
      writeFileAtomic(join(this.directory, TTP_INDEX), out, 0o600);
      this.snap = out.subarray(SNAP_HEADER, SNAP_HEADER + count * ENTRY);
      this.snapCount = count;
      this.recent.clear();
    } catch (err) {
      this.o.onWarning?.(`TTP store: could not save the index snapshot (${(err as Error).message}); the next open scans more of the log`);
    }
  }
}

function takeLock(lockPath: string, dir: string): void {
  const r = tryLock(lockPath);
  if (r.taken) return;
  if (r.holder) throw new InputError(`the TTP store ${dir} is in use by process ${r.holder.pid}`, 'stop that TTP first, or give this one another --store');
  throw new InputError(`cannot take the lock on the TTP store ${dir}`, 'another process keeps creating it; check what else uses this store');
}

// ---------------------------------------------------------------------------------------------
// Migration from the lowdb document of earlier versions.

/**
 * Converts `ttp.json` (lowdb: {"version":1,"records":{L: record}}) to ttp.log, each step atomic:
 * the log, a copy of the document, then the note in its place. A crash between them leaves the
 * document beside a complete log: the next open checks that the log holds every record of it and
 * finishes.
 */
function migrateLowdb(dir: string, warn?: (message: string) => void): void {
  const jsonPath = join(dir, TTP_LOWDB);
  if (!existsSync(jsonPath)) return;
  const text = readFileSync(jsonPath, 'utf8');
  if (text.startsWith(MIGRATED_NOTE)) return;
  const refuse = (why: string) => new InputError(`the TTP store ${jsonPath} ${why}`, 'restore it from backup', 'E_FILE_DAMAGED');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw refuse('is neither a lowdb TTP document nor a migration note');
  }
  if (!isJsonObject(doc) || doc.version !== 1 || !isJsonObject(doc.records)) throw refuse('is not a lowdb TTP document ({"version":1,"records":{...}})');
  const lines: string[] = [];
  let skipped = 0;
  for (const [key, value] of Object.entries(doc.records)) {
    if (!isHex32(key)) {
      skipped++; // keyed by server and transaction ID: written before records were keyed by L, never read since
      continue;
    }
    let r: TtpRecord;
    try {
      r = recordFrom({ v: 1, ...(isJsonObject(value) ? value : { value }) });
      if (r.key !== key) throw new Error(`it names label ${r.key.slice(0, 16)}…`);
    } catch (err) {
      throw refuse(`cannot be converted: the record for label ${key.slice(0, 16)}…: ${(err as Error).message}`);
    }
    lines.push(encodeTtpLine(r));
  }
  const logPath = join(dir, TTP_LOG);
  if (existsSync(logPath)) {
    // A conversion cut by a crash: finish only if the log holds every record of the document.
    const inLog = new Set<string>();
    const fd = openSync(logPath, 'r');
    try {
      scanLines(fd, 0, fstatSync(fd).size, (line) => inLog.add(line.toString('utf8')));
    } finally {
      closeSync(fd);
    }
    if (lines.some((l) => !inLog.has(l))) {
      throw new InputError(`the TTP store ${dir} holds both ${TTP_LOWDB} and ${TTP_LOG}, with different records`, `keep the one the TTP wrote last and move the other out of ${dir}`, 'E_FILE_DAMAGED');
    }
  } else {
    writeFileAtomic(logPath, lines.map((l) => `${l}\n`).join(''), 0o600);
  }
  let keptAs = join(dir, TTP_LOWDB_MIGRATED);
  if (existsSync(keptAs) && readFileSync(keptAs, 'utf8') !== text) keptAs = `${keptAs}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  writeFileAtomic(keptAs, text, 0o600);
  writeFileAtomic(jsonPath, `${MIGRATED_NOTE} (one JSON line per decision) on ${new Date().toISOString()}.\n`
    + `${keptAs.slice(dir.length + 1)} is this document as it was. A qtm that reads ${TTP_LOWDB} must not serve this store: it would not see the decisions in ${TTP_LOG}.\n`, 0o600);
  warn?.(`TTP store: converted ${lines.length} records from ${TTP_LOWDB} (lowdb) to ${TTP_LOG}; the document is kept as ${keptAs}`
    + (skipped ? `; ${skipped} records keyed by server and transaction ID (written before records were keyed by L, never read since) were not carried over` : ''));
}
