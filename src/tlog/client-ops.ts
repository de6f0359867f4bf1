/**
 * What a log's clients do, over a TileSource (a directory or a URL): find a leaf and prove it,
 * witness (consistency with the last cosigned checkpoint, then cosign), monitor (consistency and
 * every new entry against its tile), and audit a store against the log. Failures are typed:
 * RefusedError (exit 1) for a log that misbehaves, InputError/DecodeError (exit 2) for input.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InputError, RefusedError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { decodeSignedCheckpoint, encodeCheckpointBody, openCheckpoint, type Checkpoint } from './checkpoint.js';
import type { Cosigner } from './cosignature.js';
import { leafHash } from './hash.js';
import { decodeEntry, encodeEntry, type LeafInput } from './leaf.js';
import { consistencyProof, inclusionProof, treeRoot, verifyConsistency, verifyInclusion } from './merkle.js';
import { encodeNote, hex8, ed25519NoteVerifier, type Vkey } from './note.js';
import { withTiles, type TileSource } from './tile-source.js';
import { TILE_WIDTH, decodeEntryBundle, decodeHashTile, tilePath, type TileRef } from './tiles.js';
import type { TransparencyProof } from './bundle-proof.js';

/** A log that forked, shrank or served something its checkpoint does not commit to: loud, exit 1. */
export class LogMisbehaviourError extends RefusedError {
  constructor(message: string) {
    super(message, undefined, 'E_TLOG_MISBEHAVIOUR');
  }
}

export async function fetchCheckpoint(src: TileSource, logKey: Vkey, given?: string): Promise<{ text: string; checkpoint: Checkpoint }> {
  const text = given ?? (await src.checkpoint()).toString('utf8');
  return { text, checkpoint: openCheckpoint(text, ed25519NoteVerifier(logKey)).checkpoint };
}

/** Entry bundle `index` of a tree of `size`, checked against its level-0 hash tile. */
export async function readEntries(src: TileSource, size: number, index: number): Promise<Buffer[]> {
  const full = Math.floor(size / TILE_WIDTH);
  const width = index < full ? TILE_WIDTH : size % TILE_WIDTH;
  const ref: TileRef = { level: 'entries', index, width };
  const bytes = await src.tile(ref);
  if (!bytes) throw new LogMisbehaviourError(`${src.label} does not serve ${tilePath(ref)}, which its checkpoint of size ${size} needs`);
  const entries = decodeEntryBundle(bytes, width);
  const tileBytes = await src.tile({ level: 0, index, width });
  if (!tileBytes) throw new LogMisbehaviourError(`${src.label} does not serve ${tilePath({ level: 0, index, width })}`);
  const hashes = decodeHashTile(tileBytes, width);
  entries.forEach((e, i) => {
    if (!leafHash(e).equals(hashes[i]!)) throw new LogMisbehaviourError(`${src.label}: entry ${index * TILE_WIDTH + i} does not hash to its tile`);
  });
  return entries;
}

/** Every entry of the tree of `size`, tile by tile. */
export async function* allEntries(src: TileSource, size: number, from = 0): AsyncGenerator<{ index: number; entry: Buffer }> {
  for (let t = Math.floor(from / TILE_WIDTH); t * TILE_WIDTH < size; t++) {
    const entries = await readEntries(src, size, t);
    for (let i = 0; i < entries.length; i++) {
      const index = t * TILE_WIDTH + i;
      if (index >= from) yield { index, entry: entries[i]! };
    }
  }
}

/** Finds the transaction's leaf and proves it against the checkpoint (the log's, or a cosigned one). */
export async function proveInclusion(src: TileSource, logKey: Vkey, leaf: LeafInput, opts: { checkpoint?: string; index?: number } = {}): Promise<TransparencyProof> {
  const { text, checkpoint } = await fetchCheckpoint(src, logKey, opts.checkpoint);
  const entry = encodeEntry(leaf);
  let index = opts.index;
  if (index === undefined) {
    for await (const e of allEntries(src, checkpoint.size)) if (e.entry.equals(entry)) { index = e.index; break; }
  }
  if (index === undefined || index >= checkpoint.size) {
    throw new LogMisbehaviourError(`transaction ${leaf.transactionId} is not in log ${checkpoint.origin} at size ${checkpoint.size}`);
  }
  const proof = await withTiles(src, checkpoint.size, (r) => inclusionProof(r, index!, checkpoint.size));
  try {
    verifyInclusion(index, checkpoint.size, leafHash(entry), proof, checkpoint.root);
  } catch (err) {
    throw new LogMisbehaviourError(`transaction ${leaf.transactionId} is not leaf ${index} of log ${checkpoint.origin} at size ${checkpoint.size}: ${(err as Error).message}`);
  }
  return { index, proof: proof.map((p) => Buffer.from(p)), checkpoint: text };
}

export interface TrustedHead {
  origin: string;
  size: number;
  root: string; // base64
}

export function readHead(path: string): TrustedHead | undefined {
  if (!existsSync(path)) return undefined;
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new InputError(`${path} is not a witness/monitor state file (JSON)`);
  }
  const h = j as TrustedHead;
  if (typeof h?.origin !== 'string' || !Number.isSafeInteger(h.size) || typeof h.root !== 'string') throw new InputError(`${path} is not a witness/monitor state file`);
  return h;
}

export function writeHead(path: string, c: Checkpoint): void {
  writeFileAtomic(path, JSON.stringify({ origin: c.origin, size: c.size, root: c.root.toString('base64') }, null, 2) + '\n');
}

/**
 * The new checkpoint extends the trusted head: same origin, not smaller, same root at equal size,
 * and an RFC 9162 consistency proof (built from the log's tiles) that verifies.
 */
export async function checkExtends(src: TileSource, last: TrustedHead | undefined, c: Checkpoint): Promise<string> {
  if (!last) return `first checkpoint seen (size ${c.size}): trusted on first use`;
  if (last.origin !== c.origin) throw new InputError(`the state is for log ${last.origin}, this checkpoint is ${c.origin}`);
  const lastRoot = Buffer.from(last.root, 'base64');
  if (c.size < last.size) throw new LogMisbehaviourError(`LOG SHRANK: ${c.origin} signed size ${c.size} after size ${last.size}`);
  if (c.size === last.size) {
    if (!c.root.equals(lastRoot)) throw new LogMisbehaviourError(`LOG FORKED: ${c.origin} signed two roots for size ${c.size} (${last.root} and ${c.root.toString('base64')})`);
    return `unchanged at size ${c.size}`;
  }
  if (last.size === 0) return `grew from the empty tree to size ${c.size}`;
  const proof = await withTiles(src, c.size, (r) => consistencyProof(r, last.size, c.size));
  try {
    verifyConsistency(last.size, c.size, proof, lastRoot, c.root);
  } catch (err) {
    throw new LogMisbehaviourError(`LOG FORKED: ${c.origin} at size ${c.size} is not an extension of size ${last.size}: ${(err as Error).message}`);
  }
  return `grew from ${last.size} to ${c.size}, consistent (${proof.length}-hash proof)`;
}

/** Witness: verify, check consistency with the last cosigned checkpoint, cosign, remember. */
export async function witness(src: TileSource, logKey: Vkey, w: Cosigner, statePath: string): Promise<{ checkpoint: Checkpoint; cosigned: string; status: string }> {
  const { text, checkpoint } = await fetchCheckpoint(src, logKey);
  const status = await checkExtends(src, readHead(statePath), checkpoint);
  const note = decodeSignedCheckpoint(text).note;
  const body = encodeCheckpointBody(checkpoint);
  const others = note.signatures.filter((s) => !(s.name === w.name && s.keyId === w.keyId));
  const cosigned = encodeNote({ text: body, signatures: [...others, { name: w.name, keyId: w.keyId, sig: Buffer.from(w.sign(body)) }] });
  writeHead(statePath, checkpoint);
  return { checkpoint, cosigned, status };
}

/** Monitor: consistency with the last head, every new entry against its tile, and the watched leaves found. */
export async function monitor(src: TileSource, logKey: Vkey, statePath: string, watch: readonly { label: string; leaf: LeafInput }[]) {
  const { checkpoint } = await fetchCheckpoint(src, logKey);
  const last = readHead(statePath);
  const status = await checkExtends(src, last, checkpoint);
  const from = last?.size ?? 0;
  const wanted = new Map(watch.map((x) => [encodeEntry(x.leaf).toString('hex'), x.label]));
  const found: { label: string; index: number }[] = [];
  let checked = 0;
  const root = await withTiles(src, checkpoint.size, (r) => Buffer.from(treeRoot(r)));
  if (!root.equals(checkpoint.root)) throw new LogMisbehaviourError(`${checkpoint.origin}: the tiles do not rebuild the signed root of size ${checkpoint.size}`);
  for await (const e of allEntries(src, checkpoint.size, 0)) {
    decodeEntry(e.entry);
    if (e.index >= from) checked++;
    const label = wanted.get(e.entry.toString('hex'));
    if (label) found.push({ label, index: e.index });
  }
  writeHead(statePath, checkpoint);
  const missing = watch.filter((x) => !found.some((f) => f.label === x.label)).map((x) => x.label);
  return { origin: checkpoint.origin, size: checkpoint.size, status, newEntries: checked, found, missing };
}

/** Audit: the store's signed transactions and the log's leaves are the same set, and the tiles rebuild the signed root. */
export async function auditStoreAgainstLog(src: TileSource, logKey: Vkey, signed: AsyncIterable<LeafInput> | Iterable<LeafInput>) {
  const { checkpoint } = await fetchCheckpoint(src, logKey);
  const root = await withTiles(src, checkpoint.size, (r) => Buffer.from(treeRoot(r)));
  if (!root.equals(checkpoint.root)) throw new LogMisbehaviourError(`${checkpoint.origin}: the tiles do not rebuild the signed root of size ${checkpoint.size}`);
  const inLog = new Map<string, number>();
  const duplicates: number[] = [];
  for await (const e of allEntries(src, checkpoint.size)) {
    const k = e.entry.toString('hex');
    if (inLog.has(k)) duplicates.push(e.index);
    inLog.set(k, e.index);
  }
  const missing: number[] = [];
  let storeCount = 0;
  for await (const leaf of signed) {
    storeCount++;
    const k = encodeEntry(leaf).toString('hex');
    if (!inLog.delete(k)) missing.push(leaf.transactionId);
  }
  const extra = [...inLog.values()].sort((a, b) => a - b);
  return {
    origin: checkpoint.origin, size: checkpoint.size, logKey: `${logKey.name}+${hex8(logKey.keyId)}`,
    storeSigned: storeCount, missingFromLog: missing, leavesNotInStore: extra, duplicateLeaves: duplicates,
    ok: missing.length === 0 && extra.length === 0 && duplicates.length === 0,
  };
}
