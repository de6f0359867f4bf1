/**
 * Mirrors a tiled log (a directory or a server's /log/) into a directory any static web server can
 * serve as the same C2SP tlog-tiles prefix: checkpoint, hash tiles, entry bundles, and the
 * witnessed checkpoints (cosigned/<size>, cosigned/latest). The mirror checks before it writes:
 *
 *   - the checkpoint is signed by the log's key, and extends the one the mirror already serves
 *     (same root at the same size, an RFC 9162 consistency proof from the mirror's size): a fork
 *     or a shrink is refused loudly (LogMisbehaviourError, exit 1) and nothing is written;
 *   - every tile it fetches is committed to by the signed root: the topmost (partial) tiles rebuild
 *     the root, each full hash tile hashes to its entry in the tile above, each entry bundle's
 *     entries hash to its level-0 tile;
 *   - a witnessed checkpoint of a smaller size than the log's (cosigned/latest lags) is mirrored
 *     with the partial tiles of its size, checked against its root, which must be consistent
 *     with the new one (a witnessed fork is refused too). Cosignatures are not checked here:
 *     verifiers check them (qtm verify --witness).
 *
 * Writes: each file by rename (a static server never serves a torn one), fsync'd, tiles before
 * the checkpoint that needs them, the checkpoint last. The tiles of the size the mirror already
 * serves are immutable and trusted (they were checked when written and the new root is proven to
 * extend them): they are neither fetched nor written again; previous partial tiles are kept
 * (readers holding an older checkpoint still ask for them). One mirror run at a time per
 * directory (DIR/.mirror-lock).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DecodeError, InputError } from '../errors.js';
import { removeStaleTemps, writeFileAtomic, fsyncDirectory } from '../util/fs.js';
import { tryLock, unlock } from '../util/lock-file.js';
import { decodeSignedCheckpoint, openCheckpoint, type Checkpoint } from './checkpoint.js';
import { checkExtends, fetchCheckpoint, LogMisbehaviourError } from './client-ops.js';
import { leafHash, HASH_SIZE } from './hash.js';
import { MemoryTree, treeRoot, consistencyProof, verifyConsistency } from './merkle.js';
import { ed25519NoteVerifier, type Vkey } from './note.js';
import type { TileSource } from './tile-source.js';
import { TILE_WIDTH, TileReader, decodeEntryBundle, decodeHashTile, tilePath, tilesForSize, type TileRef } from './tiles.js';

export const MIRROR_LOCK = '.mirror-lock';

export interface MirrorResult {
  origin: string;
  /** The size the mirror served before (0: it was empty). */
  previousSize: number;
  size: number;
  /** checkExtends' verdict: first use, unchanged, or grown and consistent. */
  status: string;
  /** Tiles (hash tiles and entry bundles) fetched from the source, and their bytes. */
  fetched: { tiles: number; bytes: number };
  /** Tiles the new size needs that the mirror already held (not fetched). */
  kept: number;
  /** Files written into the mirror (tiles, cosigned checkpoints, the checkpoint), and their bytes. */
  written: { tiles: number; bytes: number; files: string[] };
  /** The witnessed checkpoints mirrored (cosigned/<size>, cosigned/latest), and those left out with why. */
  cosigned: { written: string[]; skipped: { path: string; reason: string }[] };
}

export interface MirrorOptions {
  /** Called after each tile fetched: done so far of `total` to fetch. */
  onProgress?: (done: number, total: number) => void;
}

const key = (t: TileRef) => tilePath(t);

/** The hash tiles and entry bundles a tree of `size` is served as. */
function servedTiles(size: number): TileRef[] {
  const out: TileRef[] = [];
  for (const t of tilesForSize(size)) {
    out.push(t);
    if (t.level === 0) out.push({ level: 'entries', index: t.index, width: t.width });
  }
  return out;
}

/** The mirror's own checkpoint: the trusted head it extends from (signed by the same key). */
function readMirrorHead(out: string, logKey: Vkey): { checkpoint: Checkpoint; text: string } | undefined {
  const path = join(out, 'checkpoint');
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  try {
    return { checkpoint: openCheckpoint(text, ed25519NoteVerifier(logKey)).checkpoint, text };
  } catch (err) {
    throw new InputError(`${path} is not a checkpoint of ${logKey.name} signed by this log key: ${(err as Error).message}`, 'give --out a directory that mirrors this log, or an empty one');
  }
}

/** Writes `data` by rename after an fsync (the folder is fsync'd by the caller, once). */
function writeDurable(path: string, data: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileAtomic(path, data, 0o644, { syncDirectory: false });
}

/** The root of the 256 hashes of a full tile: the node it stands for in the tile above (RFC 6962 hashing of them as a tree's bottom row). */
function fullTileRoot(hashes: readonly Buffer[]): Buffer {
  const tree = new MemoryTree();
  for (const h of hashes) tree.append(h);
  return Buffer.from(treeRoot(tree));
}

export async function mirror(src: TileSource, logKey: Vkey, out: string, opts: MirrorOptions = {}): Promise<MirrorResult> {
  const { text, checkpoint } = await fetchCheckpoint(src, logKey);
  const created = !existsSync(out);
  mkdirSync(out, { recursive: true, mode: 0o755 });
  const lockPath = join(out, MIRROR_LOCK);
  const lock = tryLock(lockPath);
  if (!lock.taken) throw new InputError(`${out} is being mirrored${lock.holder ? ` by process ${lock.holder.pid}` : ''}`, 'one mirror run at a time per directory: wait for it');
  let refused = true;
  try {
    const r = await mirrorLocked(src, logKey, out, text, checkpoint, opts);
    refused = false;
    return r;
  } finally {
    unlock(lockPath);
    // Refused into a folder made for it: nothing is left behind.
    if (refused && created) try { rmdirSync(out); } catch { /* not empty: keep it */ }
  }
}

async function mirrorLocked(src: TileSource, logKey: Vkey, out: string, text: string, checkpoint: Checkpoint, opts: MirrorOptions): Promise<MirrorResult> {
  const head = readMirrorHead(out, logKey);
  const previousSize = head?.checkpoint.size ?? 0;
  // Tiles of the size the mirror serves: checked when written, immutable, read from disk.
  // So are those of the witnessed checkpoint it serves, written with one of its checkpoints.
  const trusted = new Set<string>();
  if (head) {
    const witnessedSize = readCosignedSize(out, logKey);
    for (const size of [previousSize, ...(witnessedSize !== undefined && witnessedSize <= previousSize ? [witnessedSize] : [])]) {
      for (const t of servedTiles(size)) trusted.add(key(t));
    }
  }
  const fetched = new Map<string, Buffer>();
  let fetchedBytes = 0;
  const local = (t: TileRef): Buffer | undefined => {
    if (!trusted.has(key(t))) return undefined;
    try {
      return readFileSync(join(out, key(t)));
    } catch {
      return undefined; // removed by hand: fetched again
    }
  };
  const have = (t: TileRef): Buffer | undefined => fetched.get(key(t)) ?? local(t);
  /** Fetches a tile once; a missing or misshapen one is the log's fault. */
  const get = async (t: TileRef): Promise<Buffer> => {
    const known = have(t);
    if (known) return known;
    const bytes = await src.tile(t);
    if (!bytes) throw new LogMisbehaviourError(`${src.label} does not serve ${key(t)}, which its checkpoint of size ${checkpoint.size} needs; nothing was written`);
    if (t.level !== 'entries' && bytes.length !== t.width * HASH_SIZE) {
      throw new LogMisbehaviourError(`${src.label}: ${key(t)} is ${bytes.length} bytes, not ${t.width} hashes; nothing was written`);
    }
    fetched.set(key(t), bytes);
    fetchedBytes += bytes.length;
    return bytes;
  };
  const caching: TileSource = { label: src.label, checkpoint: () => src.checkpoint(), tile: get };

  const status = await checkExtends(caching, head && { origin: head.checkpoint.origin, size: previousSize, root: head.checkpoint.root.toString('base64') }, checkpoint);

  // The witnessed checkpoints to mirror with it (C2SP: verifiers check their cosignatures).
  const cosignedFiles: { path: string; bytes: Buffer }[] = [];
  const skipped: { path: string; reason: string }[] = [];
  const extraSizes: { size: number; root: Buffer }[] = [];
  if (src.cosigned) {
    const exact = await src.cosigned(checkpoint.size);
    if (exact) cosignedFiles.push({ path: `cosigned/${checkpoint.size}`, bytes: exact });
    const latest = await src.cosigned('latest');
    if (latest) {
      let c: Checkpoint | undefined;
      try {
        c = openCheckpoint(latest, ed25519NoteVerifier(logKey)).checkpoint;
      } catch (err) {
        skipped.push({ path: 'cosigned/latest', reason: `not a checkpoint signed by the log key: ${(err as Error).message}` });
      }
      if (c && c.size > checkpoint.size) skipped.push({ path: 'cosigned/latest', reason: `size ${c.size} is beyond the checkpoint mirrored (${checkpoint.size}): the log grew meanwhile; the next run mirrors it` });
      else if (c) {
        const had = existsSync(join(out, 'cosigned', 'latest')) ? sizeOf(readFileSync(join(out, 'cosigned', 'latest'))) : undefined;
        if (had !== undefined && had > c.size) skipped.push({ path: 'cosigned/latest', reason: `the mirror's is of a larger size (${had})` });
        else {
          cosignedFiles.push({ path: 'cosigned/latest', bytes: latest });
          if (c.size !== checkpoint.size) {
            cosignedFiles.push({ path: `cosigned/${c.size}`, bytes: (await src.cosigned(c.size)) ?? latest });
            if (c.size > 0) extraSizes.push({ size: c.size, root: c.root });
          }
        }
      }
    }
  }

  // Everything the new size (and a lagging witnessed size) is served as, less what the mirror holds.
  const sizes = [{ size: checkpoint.size, root: checkpoint.root }, ...extraSizes];
  const needed = new Map<string, TileRef>();
  for (const s of sizes) for (const t of servedTiles(s.size)) needed.set(key(t), t);
  const toFetch = [...needed.values()].filter((t) => !have(t));
  let done = 0;
  for (const t of toFetch) {
    await get(t);
    opts.onProgress?.(++done, toFetch.length);
  }

  // Every fetched tile is committed to by its signed root.
  const misbehaved = (what: string) => new LogMisbehaviourError(`${src.label}: ${what}; nothing was written`);
  for (const s of sizes) {
    const reader = new TileReader(s.size, (t) => have(t));
    let root: Buffer;
    try {
      root = Buffer.from(treeRoot(reader));
    } catch (err) {
      if (err instanceof DecodeError) throw misbehaved(err.message);
      throw err;
    }
    if (!root.equals(s.root)) throw misbehaved(`the tiles do not rebuild the signed root of size ${s.size}`);
    if (s.size !== checkpoint.size) {
      // A witnessed checkpoint the log serves must be on the same tree as its latest.
      const proof = new TileReader(checkpoint.size, (t) => have(t));
      try {
        verifyConsistency(s.size, checkpoint.size, consistencyProof(proof, s.size, checkpoint.size), s.root, checkpoint.root);
      } catch (err) {
        throw new LogMisbehaviourError(`LOG FORKED: ${checkpoint.origin}'s witnessed checkpoint of size ${s.size} is not on the tree of its checkpoint of size ${checkpoint.size}: ${(err as Error).message}; nothing was written`);
      }
    }
  }
  for (const t of needed.values()) {
    const bytes = fetched.get(key(t));
    if (!bytes) continue;
    if (t.level === 'entries') {
      let entries: Buffer[];
      try {
        entries = decodeEntryBundle(bytes, t.width);
      } catch (err) {
        throw misbehaved(`${key(t)}: ${(err as Error).message}`);
      }
      const hashes = decodeHashTile(have({ level: 0, index: t.index, width: t.width })!, t.width);
      entries.forEach((e, i) => {
        if (!leafHash(e).equals(hashes[i]!)) throw misbehaved(`entry ${t.index * TILE_WIDTH + i} (${key(t)}) does not hash to its tile`);
      });
    } else if (t.width === TILE_WIDTH) {
      // Its node in the tile above (full or partial; present: the tile above is served too).
      const above = t.level + 1;
      const hashesAbove = Math.floor(checkpoint.size / TILE_WIDTH ** above);
      const aboveRef: TileRef = { level: above, index: Math.floor(t.index / TILE_WIDTH), width: Math.min(TILE_WIDTH, hashesAbove - Math.floor(t.index / TILE_WIDTH) * TILE_WIDTH) };
      const parent = decodeHashTile(have(aboveRef)!, aboveRef.width)[t.index % TILE_WIDTH]!;
      if (!fullTileRoot(decodeHashTile(bytes, TILE_WIDTH)).equals(parent)) throw misbehaved(`${key(t)} does not hash to its node in ${key(aboveRef)}`);
    }
  }
  const kept = [...needed.keys()].filter((k) => !fetched.has(k)).length;

  // Tiles first (each fsync'd, by rename), then their folders, the witnessed checkpoints, the checkpoint.
  const files: string[] = [];
  let bytes = 0;
  const dirs = new Set<string>();
  for (const t of needed.values()) {
    const data = fetched.get(key(t));
    if (!data) continue;
    const path = join(out, key(t));
    if (!dirs.has(dirname(path))) removeStaleTemps(dirname(path));
    writeDurable(path, data);
    dirs.add(dirname(path));
    files.push(key(t));
    bytes += data.length;
  }
  const tiles = files.length;
  for (const d of dirs) fsyncDirectory(d);
  // Unchanged witnessed checkpoints are not written again.
  const cosignedNew = cosignedFiles.filter((c) => { try { return !readFileSync(join(out, c.path)).equals(c.bytes); } catch { return true; } });
  if (cosignedNew.length) {
    mkdirSync(join(out, 'cosigned'), { recursive: true, mode: 0o755 });
    // The archived size first, latest after it (a reader of latest may follow it to its size).
    for (const c of [...cosignedNew].sort((a, b) => Number(a.path === 'cosigned/latest') - Number(b.path === 'cosigned/latest'))) {
      writeFileAtomic(join(out, c.path), c.bytes);
      files.push(c.path);
      bytes += c.bytes.length;
    }
  }
  if (head?.text !== text) {
    writeFileAtomic(join(out, 'checkpoint'), text);
    files.push('checkpoint');
    bytes += Buffer.byteLength(text);
  }
  return {
    origin: checkpoint.origin, previousSize, size: checkpoint.size, status,
    fetched: { tiles: fetched.size, bytes: fetchedBytes }, kept,
    written: { tiles, bytes, files },
    cosigned: { written: cosignedNew.map((c) => c.path), skipped },
  };
}

/** The size of the mirror's cosigned/latest, if the log key signed it. */
function readCosignedSize(out: string, logKey: Vkey): number | undefined {
  try {
    return openCheckpoint(readFileSync(join(out, 'cosigned', 'latest')), ed25519NoteVerifier(logKey)).checkpoint.size;
  } catch {
    return undefined;
  }
}

function sizeOf(b: Buffer): number | undefined {
  try {
    return decodeSignedCheckpoint(b).checkpoint.size;
  } catch {
    return undefined;
  }
}
