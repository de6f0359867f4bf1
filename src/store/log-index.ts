/**
 * The log store's index (./log-store.ts): where each transaction's entries lie in the log, and
 * its state. Two kinds behind one interface:
 *
 * - MemoryIndex: built by reading the whole log, held in memory. Audits (read-only opens) use
 *   it: they check every line anyway.
 * - DiskIndex: two files beside the log, read a record at a time, so a writer opens in a time
 *   that does not depend on the log's length (docs/FORMATS.md, "The store's index"):
 *     `transactions.idx`: 32 bytes per entry line, in log order: offset u64, length u32,
 *       transaction ID u32, the previous entry of the same transaction (ordinal + 1, 0: none)
 *       u32, type u8, the first 8 bytes of the line's SHA-256, 3 zero bytes.
 *     `transactions.ids`: 16 bytes per transaction ID (at ID x 16, a sparse file): its first
 *       and last entry (ordinal + 1) u32 each, state u8 (1 prepared, 2 confirmed, 3 delivered).
 *   Both are derived data, never fsync'd per commit: a snapshot (`index.json`, written by the
 *   store after fsyncing the entry records) says how many entries they cover, and the store
 *   reads the rest of the log at open. Slots changed since the last snapshot stay in memory and
 *   go into the next snapshot, which is applied to `transactions.ids` after it is written (and
 *   again at open), so the slot file never points at an entry the snapshot does not cover.
 *   Every line read through the index is checked against its 8-byte hash.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { TransactionState } from './types.js';

export const IDX_FILE = 'transactions.idx';
export const IDS_FILE = 'transactions.ids';
const RECORD = 32;
/** No entry line is this long (the largest, a fair exchange's prepared entry, is ~1 MB). */
const MAX_LINE = 64 * 1024 * 1024;
const SLOT = 16;
const STATES: readonly (TransactionState | undefined)[] = [undefined, 'prepared', 'confirmed', 'delivered'];
const TYPES = ['prepared', 'confirmed', 'redelivery', 'delivered', 'escrowed', 'fair-abort-intent', 'fair-aborted', 'resolved', 'abandoned'] as const;

/** Where one entry's line lies in the log, and (disk index) the first 8 bytes of its SHA-256. */
export interface Span {
  readonly offset: number;
  readonly length: number;
  readonly hash8?: Buffer;
}

export interface TxIndex {
  /** Entries indexed so far. */
  readonly entries: number;
  state(id: number): TransactionState | undefined;
  setState(id: number, state: TransactionState): void;
  /** A new transaction, with its prepared entry. */
  addPrepared(id: number, span: Span, line: Buffer | undefined): void;
  /** Another entry of a known transaction. */
  addEntry(id: number, type: string, span: Span, line: Buffer | undefined): void;
  /** The transaction's entries, in log order. */
  spans(id: number): Span[];
  /** The prepared entry's span. */
  firstSpan(id: number): Span | undefined;
  /** IDs indexed, ascending. */
  ids(maxId: number): Iterable<number>;
  /** Newest first: spans of prepared entries (for the recent orders at open). */
  recentPrepared(): Iterable<Span>;
  /** Writes the buffered entry records. */
  commit(): void;
  /** Entry records durable (before a snapshot names this many entries); returns the slots changed since the last snapshot. */
  sync(): [number, number, number, number][];
  /** After the snapshot holding them is durable: the changed slots go to their file. */
  applySlots(): void;
  close(): void;
}

interface MemoryTx {
  state: TransactionState;
  spans: Span[];
}

export class MemoryIndex implements TxIndex {
  private readonly txs = new Map<number, MemoryTx>();
  private readonly prepared: Span[] = [];
  entries = 0;

  state(id: number) {
    return this.txs.get(id)?.state;
  }
  setState(id: number, state: TransactionState) {
    this.txs.get(id)!.state = state;
  }
  addPrepared(id: number, span: Span) {
    this.entries++;
    this.txs.set(id, { state: 'prepared', spans: [span] });
    this.prepared.push(span);
  }
  addEntry(id: number, _type: string, span: Span) {
    this.entries++;
    this.txs.get(id)!.spans.push(span);
  }
  spans(id: number) {
    return this.txs.get(id)?.spans ?? [];
  }
  firstSpan(id: number) {
    return this.txs.get(id)?.spans[0];
  }
  ids() {
    return [...this.txs.keys()].sort((a, b) => a - b);
  }
  *recentPrepared() {
    for (let i = this.prepared.length - 1; i >= 0; i--) yield this.prepared[i]!;
  }
  commit() {}
  sync(): [number, number, number, number][] {
    return [];
  }
  applySlots() {}
  close() {}
}

interface Slot {
  first: number;
  last: number;
  state: number;
}

/** Thrown when an index file disagrees with itself or the log: the store rebuilds it. */
export class IndexMismatch extends Error {}

export class DiskIndex implements TxIndex {
  /** Index records written, plus those buffered. */
  entries: number;
  private written: number;
  private pending: Buffer[] = [];
  private readonly dirty = new Map<number, Slot>();
  /** Recently used slots (bounded): the hot transactions stay out of the file. */
  private readonly cache = new Map<number, Slot>();

  private constructor(
    private readonly idx: number,
    private readonly idsFd: number,
    entries: number,
    /** A rebuild (no snapshot stands yet): slots may go to their file at once. */
    private rebuilding: boolean,
  ) {
    this.entries = entries;
    this.written = entries;
  }

  /**
   * Opens (creating) the two files; the index then covers `entries` entries (the rest is cut),
   * and the snapshot's changed slots are applied (again) to the slot file.
   */
  static open(idxPath: string, idsPath: string, entries: number, slots: readonly [number, number, number, number][]): DiskIndex {
    // Not 'a+': O_APPEND would make every positioned write an append.
    const idx = openSync(idxPath, constants.O_RDWR | constants.O_CREAT, 0o600);
    const ids = openSync(idsPath, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      if (fstatSync(idx).size < entries * RECORD) throw new IndexMismatch(`${idxPath} holds fewer than ${entries} entries`);
      ftruncateSync(idx, entries * RECORD);
      const index = new DiskIndex(idx, ids, entries, false);
      for (const [id, first, last, state] of slots) {
        if (first < 1 || first > entries || last < first || last > entries || state < 1 || state > 3) throw new IndexMismatch(`its slot for transaction ${id} does not add up`);
        index.dirty.set(id, { first, last, state });
      }
      index.writeSlots();
      return index;
    } catch (err) {
      closeSync(idx);
      closeSync(ids);
      throw err;
    }
  }

  /** Empties both files (a rebuild). */
  static create(idxPath: string, idsPath: string): DiskIndex {
    const idx = openSync(idxPath, 'w+', 0o600);
    const ids = openSync(idsPath, 'w+', 0o600);
    return new DiskIndex(idx, ids, 0, true);
  }

  private slot(id: number): Slot | undefined {
    const cached = this.dirty.get(id) ?? this.cache.get(id);
    if (cached) return cached;
    const buf = Buffer.alloc(SLOT);
    if (readSync(this.idsFd, buf, 0, SLOT, id * SLOT) < SLOT) return undefined;
    const s = { first: buf.readUInt32BE(0), last: buf.readUInt32BE(4), state: buf[8]! };
    if (s.first === 0) return undefined;
    if (s.first > this.entries || s.last > this.entries || s.state === 0 || s.state > 3) throw new IndexMismatch(`transaction ${id}'s index slot points past the index`);
    this.remember(id, s);
    return s;
  }

  private remember(id: number, s: Slot): void {
    this.cache.delete(id);
    this.cache.set(id, s);
    if (this.cache.size > 8192) this.cache.delete(this.cache.keys().next().value!);
  }

  private record(ordinal: number): { span: Span; id: number; prev: number; type: number } {
    let buf: Buffer;
    if (ordinal >= this.written) {
      buf = this.pending[ordinal - this.written]!;
    } else {
      buf = Buffer.alloc(RECORD);
      if (readSync(this.idx, buf, 0, RECORD, ordinal * RECORD) < RECORD) throw new IndexMismatch(`index record ${ordinal} is missing`);
    }
    const offset = buf.readUInt32BE(0) * 2 ** 32 + buf.readUInt32BE(4);
    // A damaged record must not make the store read far past the log or allocate gigabytes.
    if (!Number.isSafeInteger(offset) || buf.readUInt32BE(8) > MAX_LINE) throw new IndexMismatch(`index record ${ordinal} does not add up`);
    return { span: { offset, length: buf.readUInt32BE(8), hash8: buf.subarray(21, 29) }, id: buf.readUInt32BE(12), prev: buf.readUInt32BE(16), type: buf[20]! };
  }

  private push(id: number, type: string, span: Span, line: Buffer | undefined, prev: number): number {
    const buf = Buffer.alloc(RECORD);
    buf.writeUInt32BE(Math.floor(span.offset / 2 ** 32), 0);
    buf.writeUInt32BE(span.offset % 2 ** 32, 4);
    buf.writeUInt32BE(span.length, 8);
    buf.writeUInt32BE(id, 12);
    buf.writeUInt32BE(prev, 16);
    buf[20] = TYPES.indexOf(type as (typeof TYPES)[number]) + 1;
    (span.hash8 ?? hash8(line!)).copy(buf, 21);
    this.pending.push(buf);
    if (this.pending.length >= 4096) this.commit();
    return ++this.entries;
  }

  state(id: number) {
    const s = this.slot(id);
    return s ? STATES[s.state] : undefined;
  }

  setState(id: number, state: TransactionState) {
    const s = this.slot(id)!;
    s.state = STATES.indexOf(state);
    this.dirty.set(id, s);
  }

  addPrepared(id: number, span: Span, line: Buffer | undefined) {
    const n = this.push(id, 'prepared', span, line, 0);
    const s = { first: n, last: n, state: 1 };
    this.dirty.set(id, s);
    this.remember(id, s);
  }

  addEntry(id: number, type: string, span: Span, line: Buffer | undefined) {
    const s = this.slot(id)!;
    s.last = this.push(id, type, span, line, s.last);
    this.dirty.set(id, s);
  }

  spans(id: number): Span[] {
    const s = this.slot(id);
    if (!s) return [];
    const out: Span[] = [];
    for (let n = s.last; n !== 0;) {
      const r = this.record(n - 1);
      if (r.id !== id || r.prev >= n) throw new IndexMismatch(`index record ${n - 1} is not transaction ${id}'s`);
      out.push(r.span);
      n = r.prev;
    }
    return out.reverse();
  }

  firstSpan(id: number) {
    const s = this.slot(id);
    return s ? this.record(s.first - 1).span : undefined;
  }

  *ids(maxId: number) {
    for (let id = 0; id <= maxId; id++) if (this.slot(id)) yield id;
  }

  *recentPrepared() {
    for (let n = this.entries - 1; n >= 0; n--) {
      const r = this.record(n);
      if (r.type === 1) yield r.span;
    }
  }

  commit() {
    if (this.pending.length) {
      const data = Buffer.concat(this.pending);
      writeSync(this.idx, data, 0, data.length, this.written * RECORD);
      this.written += this.pending.length;
      this.pending = [];
    }
    if (this.rebuilding) this.writeSlots();
  }

  private writeSlots() {
    for (const [id, s] of this.dirty) {
      const buf = Buffer.alloc(SLOT);
      buf.writeUInt32BE(s.first, 0);
      buf.writeUInt32BE(s.last, 4);
      buf[8] = s.state;
      writeSync(this.idsFd, buf, 0, SLOT, id * SLOT);
    }
    this.dirty.clear();
  }

  sync(): [number, number, number, number][] {
    this.commit();
    fsyncSync(this.idx);
    if (this.rebuilding) fsyncSync(this.idsFd);
    return [...this.dirty].map(([id, s]) => [id, s.first, s.last, s.state]);
  }

  applySlots() {
    this.writeSlots();
    this.rebuilding = false;
  }

  /** Buffered entry records are written; slots changed since the last snapshot are not (see the file's comment). */
  close() {
    this.commit();
    closeSync(this.idx);
    closeSync(this.idsFd);
  }
}

/** The first 8 bytes of a line's SHA-256: what a read through the disk index checks. */
export function hash8(line: Uint8Array): Buffer {
  return createHash('sha256').update(line).digest().subarray(0, 8);
}
