/**
 * The log's durable state in a directory next to the server's store:
 *
 *   DIR/entries.bin   every entry in leaf order, all of one version (33 bytes each for version
 *                     1, 65 for version 2, leaf.ts; the first byte says which): appended and
 *                     fsync'd before append() resolves (the source of truth; all else is derived)
 *   DIR/tag-secret    version 2 logs: the secret each card's monitoring key is derived from
 *                     (card-tag.ts), 32 random bytes in hex, mode 0600, made with the log
 *   DIR/LOCK          one sequencer: one process appends at a time
 *   DIR/www/          what a static web server serves as the C2SP tlog-tiles prefix:
 *                     checkpoint, tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>], and
 *                     cosigned/<size> (the checkpoint of that size with every witness
 *                     cosignature received for it, kept for good), cosigned/latest (the largest)
 *
 * Appends are serialised (dense indices in the order they are committed) and grouped: appends
 * that arrive while one batch is written share the next fsync and the next checkpoint. Tiles are
 * written before the checkpoint that needs them, each by rename (never torn), without fsync: they
 * and the checkpoint are derived from entries.bin and written again on open. Opening rebuilds
 * the tree from entries.bin (a torn last record is cut off: its append never resolved), writes the
 * tiles and checkpoint again from the last published size, and refuses an entries file shorter
 * than the published checkpoint (a shrink).
 *
 * append() resolves with the leaf's inclusion proof against the checkpoint signed with its batch,
 * which the server puts in its reply (the second message): the proof is made in the transaction.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError, RefusedError } from '../errors.js';
import { tryLock, unlock } from '../util/lock-file.js';
import { createSecretFile, readSecretFile } from '../util/secret-file.js';
import { decodeSignedCheckpoint, encodeCheckpointBody, signCheckpoint, type Checkpoint } from './checkpoint.js';
import { cardTag, monitorKey } from './card-tag.js';
import { commitment, encodeEntry, entryBytesFor, LEAF_VERSION, LEAF_VERSION_TAGGED, type LeafInput } from './leaf.js';
import type { TransparencyProof } from './bundle-proof.js';
import { LeafTree, entryKey } from './leaf-tree.js';
import { addSignatureLines, noteBody, withLogSignatureOnly } from './cosigned.js';
import type { NoteSigner } from './note.js';
import { dirSource, type TileSource } from './tile-source.js';
import { TILE_WIDTH, tilePath, type TileRef } from './tiles.js';

/** A signed transaction as the server hands it to the log: the card key selects the card's tag. */
export interface SignedLeaf {
  readonly transactionId: number;
  readonly package: Uint8Array;
  /** SHA-256 of party B's public key, hex: required by a version 2 (tagged) log. */
  readonly cardKey?: string;
}

/** What the server calls when a transaction is signed (confirm, or a TTP resolve). */
export interface TransparencyLog {
  /**
   * Durable when it resolves, with the leaf's inclusion proof against the checkpoint signed with
   * it (or the latest, for a leaf already published); idempotent: a transaction keeps its index.
   */
  append(leaf: SignedLeaf): Promise<TransparencyProof>;
  /** The card's monitoring key (card-tag.ts), or undefined for a log without tags (version 1). */
  monitorKeyFor(cardKey: string): Buffer | undefined;
  readonly origin: string;
}

export interface LogDirOptions {
  /** A new log writes version 2 entries with each card's tag (card-tag.ts); an existing log keeps its version. */
  readonly tagCards?: boolean;
}

export const ENTRIES_FILE = 'entries.bin';
export const WWW_DIR = 'www';
export const TAG_SECRET_FILE = 'tag-secret';
export const COSIGNED_DIR = 'cosigned';
const LOCK_FILE = 'LOCK';

export class LogDir implements TransparencyLog {
  /** The entries, their tree and index; made when the entries' version is known (load). */
  private leaves = new LeafTree(entryBytesFor(LEAF_VERSION));
  private queue: { entry: Buffer; resolve: (p: TransparencyProof) => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private published = 0;
  private closed = false;
  /** The entries' version and size, fixed for the log by its first entry. */
  private version: number = LEAF_VERSION;
  private tagSecret: Buffer | undefined;
  /** The latest checkpoint as the log signed it (what append() proves against). */
  private signed = '';
  private cosignedLatest = -1;
  /** Called after each checkpoint is written (the witness pusher listens here). */
  onPublish?: ((checkpoint: string, size: number) => void) | undefined;

  private constructor(
    readonly dir: string,
    private readonly fd: number,
    private readonly signer: NoteSigner,
    readonly origin: string,
  ) {}

  get size(): number {
    return this.leaves.size;
  }

  /** Where the log is, for a log line: its www/ directory. */
  get label(): string {
    return this.www;
  }

  /** What the server serves under /log/ (C2SP tlog-tiles): the www/ directory. */
  get source(): TileSource {
    return dirSource(this.www);
  }

  get www(): string {
    return join(this.dir, WWW_DIR);
  }

  /** The entries' version: 1 (commitment only) or 2 (with each card's tag). */
  get entryVersion(): number {
    return this.version;
  }

  static open(dir: string, signer: NoteSigner, origin = signer.name, opts: LogDirOptions = {}): LogDir {
    mkdirSync(join(dir, WWW_DIR), { recursive: true, mode: 0o755 });
    const lockPath = join(dir, LOCK_FILE);
    const lock = tryLock(lockPath, { startTime: false });
    if (!lock.taken) throw new InputError(`log ${dir} is in use${lock.holder ? ` by process ${lock.holder.pid}` : ''}`, 'one sequencer per log: stop the other server first');
    try {
      const path = join(dir, ENTRIES_FILE);
      const fd = openSync(path, 'a+', 0o644);
      const log = new LogDir(dir, fd, signer, origin);
      log.load(opts);
      return log;
    } catch (err) {
      unlock(lockPath);
      throw err;
    }
  }

  private load(opts: LogDirOptions): void {
    const total = fstatSync(this.fd).size;
    if (total > 0) {
      const first = Buffer.alloc(1);
      readSync(this.fd, first, 0, 1, 0);
      if (first[0] !== LEAF_VERSION && first[0] !== LEAF_VERSION_TAGGED) throw new RefusedError(`log ${this.dir}: ${ENTRIES_FILE} starts with an unknown entry version ${first[0]}`, 'restore entries.bin from a backup');
      this.version = first[0]!;
    } else {
      this.version = opts.tagCards ? LEAF_VERSION_TAGGED : LEAF_VERSION;
    }
    this.leaves = new LeafTree(entryBytesFor(this.version));
    if (this.version === LEAF_VERSION_TAGGED) this.tagSecret = tagSecretFor(this.dir, total === 0);
    const ENTRY_BYTES = this.leaves.entryBytes;
    const whole = total - (total % ENTRY_BYTES);
    if (whole !== total) {
      // A record torn by a crash: its append never resolved, so no receipt names it.
      ftruncateSync(this.fd, whole);
      fsyncSync(this.fd);
    }
    const buf = Buffer.alloc(whole);
    let at = 0;
    while (at < whole) at += readSync(this.fd, buf, at, whole - at, at);
    for (let i = 0; i < whole / ENTRY_BYTES; i++) {
      const e = buf.subarray(i * ENTRY_BYTES, (i + 1) * ENTRY_BYTES);
      if (e[0] !== this.version) throw new RefusedError(`log ${this.dir}: entry ${i} of ${ENTRIES_FILE} is version ${e[0]} in a log of version ${this.version} entries`, 'restore entries.bin from a backup');
      this.leaves.add(e);
    }
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
      if (!this.leaves.root(cp.size).equals(cp.root)) {
        throw new RefusedError(`log ${this.dir}: ${ENTRIES_FILE} does not rebuild the published root of size ${cp.size}`, 'restore entries.bin from a backup');
      }
      from = cp.size;
      this.published = from;
    }
    const tilesOnly = cp !== undefined && this.size === from;
    this.publish(Math.max(0, from - 1), tilesOnly);
    if (tilesOnly) this.signed = readFileSync(cpPath, 'utf8');
    try {
      const latest = readCosigned(this.www, 'latest');
      if (latest) this.cosignedLatest = decodeSignedCheckpoint(latest).checkpoint.size;
    } catch {
      // Torn by a power loss (written by rename, without fsync): the next cosignature writes it again.
    }
  }

  /** The index of a transaction already in the log (found by its commitment). */
  find(leaf: LeafInput): number | undefined {
    return this.leaves.indexOfCommitment(commitment(leaf));
  }

  entryAt(i: number): Buffer {
    return this.leaves.entryAt(i);
  }

  monitorKeyFor(cardKey: string): Buffer | undefined {
    return this.tagSecret ? monitorKey(this.tagSecret, cardKey) : undefined;
  }

  /** The entry this log writes for a signed transaction: version 1, or 2 with the card's tag. */
  entryFor(leaf: SignedLeaf): Buffer {
    if (this.version === LEAF_VERSION) return encodeEntry({ transactionId: leaf.transactionId, package: leaf.package });
    if (!leaf.cardKey) throw new Error(`transaction ${leaf.transactionId}: a log with card tags needs the card key of every leaf`);
    return encodeEntry({ transactionId: leaf.transactionId, package: leaf.package, tag: cardTag(this.monitorKeyFor(leaf.cardKey)!, commitment(leaf)) });
  }

  /** The leaf's proof against the latest checkpoint the log signed. */
  private proofOf(i: number): TransparencyProof {
    const e = this.entryAt(i);
    const size = this.published;
    return {
      index: i,
      proof: this.leaves.inclusionProof(i, size),
      checkpoint: this.signed,
      ...(this.version === LEAF_VERSION_TAGGED ? { tag: Buffer.from(e.subarray(33)) } : {}),
    };
  }

  append(leaf: SignedLeaf): Promise<TransparencyProof> {
    if (this.closed) return Promise.reject(new Error('the transparency log is closed'));
    let entry: Buffer;
    try {
      entry = this.entryFor(leaf);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const known = this.leaves.indexOf(entry);
    if (known !== undefined && this.published > known) return Promise.resolve(this.proofOf(known));
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
          const k = entryKey(b.entry);
          if (this.leaves.indexOf(b.entry) !== undefined || positions.has(k)) continue;
          positions.set(k, -1);
          fresh.push(b);
        }
        const data = Buffer.concat(fresh.map((b) => b.entry));
        const before = this.size;
        const entryBytes = this.leaves.entryBytes;
        if (data.length) {
          try {
            let at = 0;
            while (at < data.length) at += writeSync(this.fd, data, at, data.length - at);
            fsyncSync(this.fd);
          } catch (err) {
            // Not durable, so refused: cut what may have been written, or the file and tree would part.
            try { ftruncateSync(this.fd, before * entryBytes); } catch { /* opening cuts or refuses it */ }
            throw err;
          }
          for (const b of fresh) this.leaves.add(b.entry);
        }
        // From the last published size: tiles a failed publish left out are written now.
        if (this.published < this.size) this.publish(this.published, false);
        for (const b of batch) b.resolve(this.proofOf(this.leaves.indexOf(b.entry)!));
      } catch (err) {
        for (const b of batch) b.reject(err as Error);
      }
    }
    this.flushing = undefined;
  }

  /** Leaves the store has signed and the log lacks (a crash between the two): appended now. */
  async catchUp(signed: AsyncIterable<SignedLeaf> | Iterable<SignedLeaf>): Promise<number> {
    const missing: Promise<TransparencyProof>[] = [];
    for await (const leaf of signed) if (this.find(leaf) === undefined) missing.push(this.append(leaf));
    await Promise.all(missing);
    return missing.length;
  }

  /** Writes the tiles that changed since tree size `from`, then a checkpoint of the current size. */
  private publish(from: number, tilesOnly: boolean): void {
    const size = this.size;
    for (const t of changedTiles(from, size)) {
      writeTile(this.www, t, this.leaves.tile(t));
    }
    if (tilesOnly) return;
    const cp: Checkpoint = { origin: this.origin, size, root: this.leaves.root(), extensions: [] };
    // No fsync: entries.bin (fsync'd first) is what makes the leaves durable, and opening signs the
    // checkpoint again from it; one fsync per batch is the whole durability cost.
    const text = signCheckpoint(cp, this.signer);
    writeByRename(join(this.www, 'checkpoint'), Buffer.from(text, 'utf8'));
    this.signed = text;
    this.published = size;
    this.onPublish?.(text, size);
  }

  /**
   * Keeps witnesses' cosignature lines for the checkpoint they cosigned: in cosigned/<size> for
   * good (so a bundle's proof can be moved to a witnessed checkpoint later, qtm log prove
   * --witness), in cosigned/latest when it is the largest, and with the served checkpoint if it
   * is still the latest (C2SP: a checkpoint may carry other signatures). Returns whether the
   * served checkpoint now carries them.
   */
  addCosignatures(checkpoint: string, lines: string): boolean {
    const body = noteBody(checkpoint);
    const { checkpoint: cp } = decodeSignedCheckpoint(checkpoint);
    if (cp.origin !== this.origin || cp.size > this.published || !this.leaves.root(cp.size).equals(cp.root)) {
      throw new RefusedError(`cosignatures offered for a checkpoint this log did not sign (${cp.origin} at size ${cp.size})`);
    }
    // The archived copy starts from the log's own signature line, then every cosignature received.
    const archived = readCosigned(this.www, cp.size)?.toString('utf8') ?? withLogSignatureOnly(checkpoint, this.origin);
    const next = addSignatureLines(archived, lines) ?? archived;
    mkdirSync(join(this.www, COSIGNED_DIR), { recursive: true });
    writeByRename(join(this.www, COSIGNED_DIR, String(cp.size)), Buffer.from(next, 'utf8'));
    if (cp.size >= this.cosignedLatest) {
      writeByRename(join(this.www, COSIGNED_DIR, 'latest'), Buffer.from(next, 'utf8'));
      this.cosignedLatest = cp.size;
    }
    const path = join(this.www, 'checkpoint');
    const current = readFileSync(path, 'utf8');
    if (!current.startsWith(body)) return false;
    const served = addSignatureLines(current, lines);
    if (served) writeByRename(path, Buffer.from(served, 'utf8'));
    return true;
  }

  get publishedSize(): number {
    return this.published;
  }

  checkpointText(): string {
    return readFileSync(join(this.www, 'checkpoint'), 'utf8');
  }

  /** The latest checkpoint with the log's signature only, as signed. */
  get signedCheckpoint(): string {
    return this.signed;
  }

  inclusionProof(index: number, size = this.size): Uint8Array[] {
    return this.leaves.inclusionProof(index, size);
  }

  consistencyProof(size1: number, size2 = this.size): Uint8Array[] {
    return this.leaves.consistencyProof(size1, size2);
  }

  checkpointBody(): string {
    return encodeCheckpointBody({ origin: this.origin, size: this.size, root: this.leaves.root(), extensions: [] });
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


/** The archived cosigned checkpoint of a size (or the largest), if any. */
export function readCosigned(www: string, which: number | 'latest'): Buffer | undefined {
  try {
    return readFileSync(join(www, COSIGNED_DIR, String(which)));
  } catch {
    return undefined;
  }
}

/** A version 2 log's tag secret: made (exclusive create, fsync'd) with the log, read afterwards. */
function tagSecretFor(dir: string, create: boolean): Buffer {
  const path = join(dir, TAG_SECRET_FILE);
  if (create) createSecretFile(path);
  if (!existsSync(path)) throw new InputError(`log ${dir} has card tags but no ${TAG_SECRET_FILE}`, 'restore it from the backup of the log directory: without it no card can find its leaves');
  const key = readSecretFile(path);
  if (!key) throw new InputError(`${path} is not a qtm tag secret (64 hex digits)`, 'restore it from the backup of the log directory');
  return key;
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

