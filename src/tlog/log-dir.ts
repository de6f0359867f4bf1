/**
 * The log's durable state in a directory next to the server's store:
 *
 *   DIR/entries.bin   every entry, 33 bytes each, in leaf order: appended and fsync'd before
 *                     append() resolves (the source of truth; everything else is derived)
 *   DIR/LOCK          one sequencer: one process appends at a time
 *   DIR/www/          what a static web server serves as the C2SP tlog-tiles prefix:
 *                     checkpoint, tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>]
 *
 * Appends are serialised (dense indices in the order they are committed) and grouped: appends
 * that arrive while one batch is written share the next fsync and the next checkpoint. Tiles are
 * written before the checkpoint that needs them, each by rename (never torn), without fsync: they
 * and the checkpoint are derived from entries.bin and written again on open. Opening rebuilds
 * the tree from entries.bin (a torn last record is cut off: its append never resolved), writes the
 * tiles and checkpoint again from the last published size, and refuses an entries file shorter
 * than the published checkpoint (a shrink).
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError, RefusedError } from '../errors.js';
import { tryLock, unlock } from '../util/lock-file.js';
import { decodeSignedCheckpoint, encodeCheckpointBody, signCheckpoint, type Checkpoint } from './checkpoint.js';
import { leafHash } from './hash.js';
import { ENTRY_BYTES, encodeEntry, type LeafInput } from './leaf.js';
import { MemoryTree, consistencyProof, inclusionProof, treeRoot } from './merkle.js';
import type { NoteSigner } from './note.js';
import { TILE_WIDTH, encodeEntryBundle, encodeHashTile, readHashTile, tilePath, type TileRef } from './tiles.js';

export interface LeafPosition {
  readonly index: number;
}

/** What the server calls when a transaction is signed (confirm, or a TTP resolve). */
export interface TransparencyLog {
  /** Durable when it resolves; idempotent: the same transaction and package keep their index. */
  append(leaf: LeafInput): Promise<LeafPosition>;
}

export const ENTRIES_FILE = 'entries.bin';
export const WWW_DIR = 'www';
const LOCK_FILE = 'LOCK';

export class LogDir implements TransparencyLog {
  readonly tree = new MemoryTree();
  private entries: Buffer = Buffer.alloc(0); // capacity; the first size * 33 bytes are the entries
  private readonly index = new Map<string, number>();
  private queue: { entry: Buffer; resolve: (p: LeafPosition) => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private published = 0;
  private closed = false;
  /** Called after each checkpoint is written (the witness pusher listens here). */
  onPublish?: (checkpoint: string, size: number) => void;

  private constructor(
    readonly dir: string,
    private readonly fd: number,
    private readonly signer: NoteSigner,
    readonly origin: string,
  ) {}

  get size(): number {
    return this.tree.size;
  }

  get www(): string {
    return join(this.dir, WWW_DIR);
  }

  static open(dir: string, signer: NoteSigner, origin = signer.name): LogDir {
    mkdirSync(join(dir, WWW_DIR), { recursive: true, mode: 0o755 });
    const lockPath = join(dir, LOCK_FILE);
    const lock = tryLock(lockPath, { startTime: false });
    if (!lock.taken) throw new InputError(`log ${dir} is in use${lock.holder ? ` by process ${lock.holder.pid}` : ''}`, 'one sequencer per log: stop the other server first');
    try {
      const path = join(dir, ENTRIES_FILE);
      const fd = openSync(path, 'a+', 0o644);
      const log = new LogDir(dir, fd, signer, origin);
      log.load();
      return log;
    } catch (err) {
      unlock(lockPath);
      throw err;
    }
  }

  private load(): void {
    const total = fstatSync(this.fd).size;
    const whole = total - (total % ENTRY_BYTES);
    if (whole !== total) {
      // A record torn by a crash: its append never resolved, so no receipt names it.
      ftruncateSync(this.fd, whole);
      fsyncSync(this.fd);
    }
    const buf = Buffer.alloc(whole);
    let at = 0;
    while (at < whole) at += readSync(this.fd, buf, at, whole - at, at);
    this.entries = buf;
    for (let i = 0; i < whole / ENTRY_BYTES; i++) this.addToTree(buf.subarray(i * ENTRY_BYTES, (i + 1) * ENTRY_BYTES));
    const cpPath = join(this.www, 'checkpoint');
    let from = 0;
    let cp: Checkpoint | undefined;
    try {
      cp = existsSync(cpPath) ? decodeSignedCheckpoint(readFileSync(cpPath)).checkpoint : undefined;
    } catch {
      cp = undefined; // torn by a power loss (it is written without fsync): published again from entries.bin
    }
    if (cp) {
      if (cp.origin !== this.origin) throw new InputError(`log ${this.dir} is the log of ${cp.origin}, not ${this.origin}`, 'give the log key this log was made with');
      if (cp.size > this.size) {
        throw new RefusedError(`log ${this.dir} holds ${this.size} entries but published a checkpoint of size ${cp.size}: ${ENTRIES_FILE} lost entries`, 'restore entries.bin from a backup; never sign a smaller tree');
      }
      if (!Buffer.from(treeRoot(this.tree, cp.size)).equals(cp.root)) {
        throw new RefusedError(`log ${this.dir}: ${ENTRIES_FILE} does not rebuild the published root of size ${cp.size}`, 'restore entries.bin from a backup');
      }
      from = cp.size;
      this.published = from;
    }
    this.publish(Math.max(0, from - 1), cp !== undefined && this.size === from);
  }

  private addToTree(entry: Buffer): number {
    const i = this.tree.append(leafHash(entry));
    this.index.set(entry.toString('latin1'), i);
    return i;
  }

  /** The index of an entry already in the log. */
  find(leaf: LeafInput): number | undefined {
    return this.index.get(encodeEntry(leaf).toString('latin1'));
  }

  entryAt(i: number): Buffer {
    return this.entries.subarray(i * ENTRY_BYTES, (i + 1) * ENTRY_BYTES);
  }

  append(leaf: LeafInput): Promise<LeafPosition> {
    if (this.closed) return Promise.reject(new Error('the transparency log is closed'));
    const entry = encodeEntry(leaf);
    const known = this.index.get(entry.toString('latin1'));
    if (known !== undefined && this.published > known) return Promise.resolve({ index: known });
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      await Promise.resolve(); // let the appends of this tick join the batch
      const batch = this.queue;
      this.queue = [];
      try {
        const fresh: typeof batch = [];
        const positions = new Map<string, number>();
        for (const b of batch) {
          const k = b.entry.toString('latin1');
          if (this.index.has(k) || positions.has(k)) continue;
          positions.set(k, -1);
          fresh.push(b);
        }
        const data = Buffer.concat(fresh.map((b) => b.entry));
        const before = this.size;
        if (data.length) {
          try {
            let at = 0;
            while (at < data.length) at += writeSync(this.fd, data, at, data.length - at);
            fsyncSync(this.fd);
          } catch (err) {
            // Not durable, so refused: cut what may have been written, or the file and tree would part.
            try { ftruncateSync(this.fd, before * ENTRY_BYTES); } catch { /* opening cuts or refuses it */ }
            throw err;
          }
          const need = (before * ENTRY_BYTES) + data.length;
          if (need > this.entries.length) {
            const grown = Buffer.alloc(Math.max(need, this.entries.length * 2, 4096 * ENTRY_BYTES));
            this.entries.copy(grown, 0, 0, before * ENTRY_BYTES);
            this.entries = grown;
          }
          data.copy(this.entries, before * ENTRY_BYTES);
          for (const b of fresh) this.addToTree(b.entry);
        }
        // From the last published size: tiles a failed publish left out are written now.
        if (this.published < this.size) this.publish(this.published, false);
        for (const b of batch) b.resolve({ index: this.index.get(b.entry.toString('latin1'))! });
      } catch (err) {
        for (const b of batch) b.reject(err as Error);
      }
    }
    this.flushing = undefined;
  }

  /** Leaves the store has signed and the log lacks (a crash between the two): appended now. */
  async catchUp(signed: AsyncIterable<LeafInput> | Iterable<LeafInput>): Promise<number> {
    const missing: Promise<LeafPosition>[] = [];
    for await (const leaf of signed) if (this.find(leaf) === undefined) missing.push(this.append(leaf));
    await Promise.all(missing);
    return missing.length;
  }

  /** Writes the tiles that changed since tree size `from`, then a checkpoint of the current size. */
  private publish(from: number, tilesOnly: boolean): void {
    const size = this.size;
    for (const t of changedTiles(from, size)) {
      writeTile(this.www, t, t.level === 'entries' ? this.entryBundle(t) : encodeHashTile(readHashTile(this.tree, t)));
    }
    if (tilesOnly) return;
    const cp: Checkpoint = { origin: this.origin, size, root: Buffer.from(treeRoot(this.tree)), extensions: [] };
    // No fsync: entries.bin (fsync'd first) is what makes the leaves durable, and opening signs the
    // checkpoint again from it; one fsync per batch is the whole durability cost.
    const text = signCheckpoint(cp, this.signer);
    writeByRename(join(this.www, 'checkpoint'), Buffer.from(text, 'utf8'));
    this.published = size;
    this.onPublish?.(text, size);
  }

  private entryBundle(t: TileRef): Buffer {
    const out: Buffer[] = [];
    for (let i = 0; i < t.width; i++) out.push(this.entryAt(t.index * TILE_WIDTH + i));
    return encodeEntryBundle(out);
  }

  /**
   * Serves witnesses' cosignature lines with the checkpoint they cosigned, if it is still the
   * latest (C2SP: a checkpoint may carry other signatures). Returns whether they were added.
   */
  addCosignatures(checkpoint: string, lines: string): boolean {
    const path = join(this.www, 'checkpoint');
    const current = readFileSync(path, 'utf8');
    if (!current.startsWith(checkpoint.slice(0, checkpoint.indexOf('\n\n') + 2))) return false;
    const have = new Set(current.split('\n'));
    const fresh = lines.split('\n').filter((l) => l.length && !have.has(l));
    if (fresh.length === 0) return true;
    writeByRename(path, Buffer.from(current + fresh.map((l) => `${l}\n`).join(''), 'utf8'));
    return true;
  }

  get publishedSize(): number {
    return this.published;
  }

  checkpointText(): string {
    return readFileSync(join(this.www, 'checkpoint'), 'utf8');
  }

  inclusionProof(index: number, size = this.size): Uint8Array[] {
    return inclusionProof(this.tree, index, size);
  }

  consistencyProof(size1: number, size2 = this.size): Uint8Array[] {
    return consistencyProof(this.tree, size1, size2);
  }

  checkpointBody(): string {
    return encodeCheckpointBody({ origin: this.origin, size: this.size, root: Buffer.from(treeRoot(this.tree)), extensions: [] });
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    closeSync(this.fd);
    unlock(join(this.dir, LOCK_FILE));
  }
}

/** The hash tiles and entry bundles whose content differs between tree sizes `from` and `to`. */
export function changedTiles(from: number, to: number): TileRef[] {
  const out: TileRef[] = [];
  if (to <= from) return out;
  for (let level = 0; level <= 63; level++) {
    const oldN = Math.floor(from / TILE_WIDTH ** level);
    const newN = Math.floor(to / TILE_WIDTH ** level);
    if (newN === 0) break;
    if (newN === oldN) continue;
    const first = Math.floor(oldN / TILE_WIDTH);
    const last = Math.floor((newN - 1) / TILE_WIDTH);
    for (let i = first; i <= last; i++) {
      const width = i < Math.floor(newN / TILE_WIDTH) ? TILE_WIDTH : newN % TILE_WIDTH;
      out.push({ level, index: i, width });
      if (level === 0) out.push({ level: 'entries', index: i, width });
    }
  }
  return out;
}

/** Tiles are immutable for their (index, width): written by rename, without fsync (rebuilt on open). */
function writeTile(www: string, t: TileRef, data: Buffer): void {
  const path = join(www, tilePath(t));
  mkdirSync(dirname(path), { recursive: true });
  writeByRename(path, data);
}

/** Never torn for a reader (a static web server sees the old file or the new one). */
function writeByRename(path: string, data: Buffer): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

