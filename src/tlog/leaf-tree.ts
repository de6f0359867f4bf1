/**
 * A log's leaves in memory: the entries in leaf order (one growing buffer, entryBytes each), the
 * Merkle tree of their leaf hashes, and each leaf's index by its commitment (so an append is
 * idempotent: a transaction keeps its index). Shared by the log in a directory (log-dir.ts) and
 * the log in a PostgreSQL store (store/pg-tlog.ts), which differ only in where entries are durable.
 */
import { leafHash } from './hash.js';
import { MemoryTree, consistencyProof, inclusionProof, treeRoot } from './merkle.js';
import { TILE_WIDTH, encodeEntryBundle, encodeHashTile, readHashTile, type TileRef } from './tiles.js';

export class LeafTree {
  readonly tree = new MemoryTree();
  private entries: Buffer = Buffer.alloc(0); // capacity; the first size * entryBytes bytes are the entries
  /** Leaf index by commitment (latin1 of its 32 bytes). */
  private readonly index = new Map<string, number>();

  constructor(readonly entryBytes: number) {}

  get size(): number {
    return this.tree.size;
  }

  /** Appends an entry (copied); returns its index. */
  add(entry: Uint8Array): number {
    if (entry.length !== this.entryBytes) throw new RangeError(`a log entry of this log is ${this.entryBytes} bytes, not ${entry.length}`);
    const at = this.size * this.entryBytes;
    if (at + entry.length > this.entries.length) {
      const grown = Buffer.alloc(Math.max(at + entry.length, this.entries.length * 2, 4096 * this.entryBytes));
      this.entries.copy(grown, 0, 0, at);
      this.entries = grown;
    }
    this.entries.set(entry, at);
    const i = this.tree.append(leafHash(entry));
    this.index.set(entryKey(entry), i);
    return i;
  }

  /** Forgets the leaves from `size` on (their write was not made durable). */
  truncate(size: number): void {
    for (let i = size; i < this.size; i++) this.index.delete(entryKey(this.entryAt(i)));
    this.tree.truncate(size);
  }

  /** The index of the leaf with this entry's commitment, if the log has it. */
  indexOf(entry: Uint8Array): number | undefined {
    return this.index.get(entryKey(entry));
  }

  /** The index of the leaf with this commitment (32 bytes), if the log has it. */
  indexOfCommitment(commitment: Uint8Array): number | undefined {
    return this.index.get(Buffer.from(commitment).toString('latin1'));
  }

  entryAt(i: number): Buffer {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.size) throw new RangeError(`no leaf ${i} in a log of ${this.size}`);
    return this.entries.subarray(i * this.entryBytes, (i + 1) * this.entryBytes);
  }

  root(size = this.size): Buffer {
    return Buffer.from(treeRoot(this.tree, size));
  }

  inclusionProof(index: number, size = this.size): Buffer[] {
    return inclusionProof(this.tree, index, size).map((p) => Buffer.from(p));
  }

  consistencyProof(size1: number, size2 = this.size): Uint8Array[] {
    return consistencyProof(this.tree, size1, size2);
  }

  /** The C2SP tile's bytes: a hash tile, or an entry bundle (entries are served as they are stored). */
  tile(t: TileRef): Buffer {
    if (t.level !== 'entries') return encodeHashTile(readHashTile(this.tree, t));
    const out: Buffer[] = [];
    for (let i = 0; i < t.width; i++) out.push(this.entryAt(t.index * TILE_WIDTH + i));
    return encodeEntryBundle(out);
  }
}

/** The log's index key of an entry: its commitment (bytes 1..32, the same in both versions). */
export function entryKey(entry: Uint8Array): string {
  return Buffer.from(entry.buffer, entry.byteOffset + 1, 32).toString('latin1');
}
