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
import { commitment, decodeEntry, encodeEntry, type LeafInput } from './leaf.js';
import { isCardTag, type MonitorKeyFile } from './card-tag.js';
import { witnessCheck } from './bundle-proof.js';
import { consistencyProof, inclusionProof, treeRoot, verifyConsistency, verifyInclusion } from './merkle.js';
import { encodeNote, hex8, ed25519NoteVerifier, type Vkey } from './note.js';
import { emptyRoot, nodeHash } from './hash.js';
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

/**
 * Finds the transaction's leaf (by its commitment, so a card-tagged entry is found without its
 * tag) and proves it against the checkpoint (the log's, or a cosigned one).
 */
export async function proveInclusion(src: TileSource, logKey: Vkey, leaf: LeafInput, opts: { checkpoint?: string; index?: number } = {}): Promise<TransparencyProof> {
  const { text, checkpoint } = await fetchCheckpoint(src, logKey, opts.checkpoint);
  const c = commitment(leaf);
  let index = opts.index;
  let tag: Buffer | undefined = leaf.tag ? Buffer.from(leaf.tag) : undefined;
  if (index === undefined) {
    for await (const e of allEntries(src, checkpoint.size)) {
      const d = decodeEntry(e.entry);
      if (d.commitment.equals(c)) { index = e.index; tag = d.tag; break; }
    }
  } else if (!tag && index < checkpoint.size) {
    // A card-tagged entry: its tag comes from the log (the proof below checks the whole entry).
    const d = decodeEntry((await readEntries(src, checkpoint.size, Math.floor(index / TILE_WIDTH)))[index % TILE_WIDTH]!);
    if (d.commitment.equals(c)) tag = d.tag;
  }
  if (index === undefined || index >= checkpoint.size) {
    throw new LogMisbehaviourError(`transaction ${leaf.transactionId} is not in log ${checkpoint.origin} at size ${checkpoint.size}`);
  }
  const proof = await withTiles(src, checkpoint.size, (r) => inclusionProof(r, index!, checkpoint.size));
  try {
    verifyInclusion(index, checkpoint.size, leafHash(encodeEntry({ ...leaf, ...(tag ? { tag } : {}) })), proof, checkpoint.root);
  } catch (err) {
    throw new LogMisbehaviourError(`transaction ${leaf.transactionId} is not leaf ${index} of log ${checkpoint.origin} at size ${checkpoint.size}: ${(err as Error).message}`);
  }
  return { index, proof: proof.map((p) => Buffer.from(p)), checkpoint: text, ...(tag ? { tag } : {}) };
}

/**
 * Moves a bundle's proof to a newer checkpoint: the largest one witnesses cosigned (the log's
 * cosigned/latest) when `witnesses` are given, else the log's latest. The new checkpoint must
 * extend the one the bundle had (RFC 9162 consistency), and carry k of n witness cosignatures.
 */
export async function upgradeProof(src: TileSource, logKey: Vkey, leaf: LeafInput, had: TransparencyProof | undefined, witnesses?: { keys: readonly Vkey[]; quorum: number }): Promise<{ proof: TransparencyProof; status: string }> {
  let given: string | undefined;
  if (witnesses) {
    const b = await src.cosigned?.('latest');
    if (!b) throw new RefusedError(`${src.label} serves no witnessed checkpoint (cosigned/latest): its witnesses have cosigned nothing yet`, 'run qtm log push, or start the server with --log-witness');
    given = b.toString('utf8');
    const w = witnessCheck(given, witnesses.keys, witnesses.quorum);
    if (!w.ok) throw new RefusedError(`the log's latest witnessed checkpoint is not enough: ${w.detail}`);
  }
  const proof = await proveInclusion(src, logKey, { ...leaf, ...(had?.tag ? { tag: had.tag } : {}) }, { ...(given ? { checkpoint: given } : {}), ...(had ? { index: had.index } : {}) });
  let status = 'proven';
  if (had) {
    const old = decodeSignedCheckpoint(had.checkpoint).checkpoint;
    const now = decodeSignedCheckpoint(proof.checkpoint).checkpoint;
    if (now.size < old.size) throw new RefusedError(`the ${witnesses ? 'witnessed' : 'latest'} checkpoint (size ${now.size}) is older than the bundle's (size ${old.size}): nothing to upgrade`, witnesses ? 'wait for the witnesses to cosign a later checkpoint' : undefined);
    status = await checkExtends(src, { origin: old.origin, size: old.size, root: old.root.toString('base64') }, now);
  }
  return { proof, status };
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

/** The monitor's state: the last head, the tree's right edge there, and the leaves found per card. */
export interface MonitorState extends TrustedHead {
  /** The perfect subtree roots of the tree at `size`, left to right (base64): O(log n). */
  frontier?: string[];
  /** Leaf indices tagged for each card, by card key fingerprint. */
  cards?: Record<string, number[]>;
}

function readMonitorState(path: string): MonitorState | undefined {
  const h = readHead(path) as MonitorState | undefined;
  if (!h) return undefined;
  if (h.frontier !== undefined && (!Array.isArray(h.frontier) || h.frontier.some((f) => typeof f !== 'string'))) throw new InputError(`${path}: frontier is not a list of base64 hashes`);
  if (h.cards !== undefined && (typeof h.cards !== 'object' || h.cards === null || Object.values(h.cards).some((l) => !Array.isArray(l) || l.some((i) => !Number.isSafeInteger(i))))) throw new InputError(`${path}: cards is not a map of leaf lists`);
  return h;
}

/** Appends a leaf hash to a frontier (perfect subtree roots, with their sizes). */
function pushFrontier(f: { hash: Buffer; size: number }[], leaf: Buffer): void {
  f.push({ hash: leaf, size: 1 });
  while (f.length >= 2 && f[f.length - 1]!.size === f[f.length - 2]!.size) {
    const r = f.pop()!, l = f.pop()!;
    f.push({ hash: nodeHash(l.hash, r.hash), size: l.size * 2 });
  }
}

function frontierRoot(f: readonly { hash: Buffer }[]): Buffer | undefined {
  if (f.length === 0) return undefined;
  let h = f[f.length - 1]!.hash;
  for (let i = f.length - 2; i >= 0; i--) h = nodeHash(f[i]!.hash, h);
  return h;
}

function frontierSizes(size: number): number[] {
  const out: number[] = [];
  for (let bit = 2 ** 52; bit >= 1; bit /= 2) if (Math.floor(size / bit) % 2 === 1) out.push(bit);
  return out;
}

/**
 * Monitor: consistency with the last head, then only the entries added since (O(new entries)):
 * each checked against its tile and folded into the tree's right edge kept in the state, whose
 * root must be the checkpoint's (so every entry read is in the signed tree). Watched receipts
 * with a leaf index are proven against the new checkpoint (O(log n)); those without are looked
 * for among the entries read. Each card key lists its card's tagged leaves; a key seen for the
 * first time reads the log from the start once.
 */
export async function monitor(src: TileSource, logKey: Vkey, statePath: string, watch: readonly { label: string; leaf: LeafInput; index?: number }[], cards: readonly (MonitorKeyFile & { label: string })[] = []) {
  const { checkpoint } = await fetchCheckpoint(src, logKey);
  const last = readMonitorState(statePath);
  const status = await checkExtends(src, last, checkpoint);
  for (const k of cards) if (k.origin !== checkpoint.origin) throw new InputError(`${k.label} is a monitoring key for log ${k.origin}, not ${checkpoint.origin}`);
  // The right edge at the last size, if the state has it; else the log is read from the start.
  const known = last?.frontier && last.frontier.length === frontierSizes(last.size).length ? last : undefined;
  const frontier = known ? frontierSizes(known.size).map((size, i) => ({ size, hash: Buffer.from(known.frontier![i]!, 'base64') })) : [];
  if (known && !(frontierRoot(frontier) ?? emptyRoot()).equals(Buffer.from(known.root, 'base64'))) {
    throw new InputError(`${statePath}: the tree's right edge kept there does not give its root: the state file is damaged`, 'restore it, or delete it to read the log from the start (its checkpoint is then trusted on first use)');
  }
  const from = known?.size ?? 0;
  const found: { label: string; index: number }[] = [];
  const missing: string[] = [];
  const byCommitment = new Map<string, string>();
  for (const w of watch) {
    if (w.index === undefined) { byCommitment.set(commitment(w.leaf).toString('hex'), w.label); continue; }
    try {
      if (w.index >= checkpoint.size) throw new Error('beyond the tree');
      const proof = await withTiles(src, checkpoint.size, (r) => inclusionProof(r, w.index!, checkpoint.size));
      verifyInclusion(w.index, checkpoint.size, leafHash(encodeEntry(w.leaf)), proof, checkpoint.root);
      found.push({ label: w.label, index: w.index });
    } catch (err) {
      if (!(err instanceof Error) || err instanceof InputError) throw err;
      missing.push(w.label);
    }
  }
  const cardState: Record<string, number[]> = { ...(last?.cards ?? {}) };
  const fresh = cards.filter((k) => !(k.cardKey in cardState) || !known);
  for (const k of fresh) cardState[k.cardKey] = [];
  const newLeaves = new Map<string, number[]>(cards.map((k) => [k.cardKey, []]));
  const start = fresh.length ? 0 : from;
  let checked = 0;
  for await (const e of allEntries(src, checkpoint.size, start)) {
    const d = decodeEntry(e.entry);
    if (e.index >= from) {
      pushFrontier(frontier, leafHash(e.entry));
      checked++;
      const label = byCommitment.get(d.commitment.toString('hex'));
      if (label) { found.push({ label, index: e.index }); byCommitment.delete(d.commitment.toString('hex')); }
    }
    if (!d.tag) continue;
    for (const k of e.index >= from ? cards : fresh) {
      if (isCardTag(k.key, d.commitment, d.tag)) {
        cardState[k.cardKey]!.push(e.index);
        newLeaves.get(k.cardKey)!.push(e.index);
      }
    }
  }
  const root = frontierRoot(frontier) ?? emptyRoot();
  if (!root.equals(checkpoint.root)) throw new LogMisbehaviourError(`${checkpoint.origin}: the entries served do not rebuild the signed root of size ${checkpoint.size}`);
  writeFileAtomic(statePath, JSON.stringify({
    origin: checkpoint.origin, size: checkpoint.size, root: checkpoint.root.toString('base64'),
    frontier: frontier.map((f) => f.hash.toString('base64')), cards: cardState,
  } satisfies MonitorState, null, 2) + '\n');
  missing.push(...byCommitment.values());
  return {
    origin: checkpoint.origin, size: checkpoint.size, status, newEntries: checked, found, missing,
    cards: cards.map((k) => ({ label: k.label, cardKey: k.cardKey, leaves: [...new Set(cardState[k.cardKey]!)].sort((a, b) => a - b), new: newLeaves.get(k.cardKey)! })),
  };
}

/** Audit: the store's signed transactions and the log's leaves are the same set, and the tiles rebuild the signed root. */
export async function auditStoreAgainstLog(src: TileSource, logKey: Vkey, signed: AsyncIterable<LeafInput> | Iterable<LeafInput>) {
  const { checkpoint } = await fetchCheckpoint(src, logKey);
  const root = await withTiles(src, checkpoint.size, (r) => Buffer.from(treeRoot(r)));
  if (!root.equals(checkpoint.root)) throw new LogMisbehaviourError(`${checkpoint.origin}: the tiles do not rebuild the signed root of size ${checkpoint.size}`);
  const inLog = new Map<string, number>();
  const duplicates: number[] = [];
  // By commitment: the same in version 1 and 2 entries (a card's tag needs the log's secret).
  for await (const e of allEntries(src, checkpoint.size)) {
    const k = decodeEntry(e.entry).commitment.toString('hex');
    if (inLog.has(k)) duplicates.push(e.index);
    inLog.set(k, e.index);
  }
  const missing: number[] = [];
  let storeCount = 0;
  for await (const leaf of signed) {
    storeCount++;
    const k = commitment(leaf).toString('hex');
    if (!inLog.delete(k)) missing.push(leaf.transactionId);
  }
  const extra = [...inLog.values()].sort((a, b) => a - b);
  return {
    origin: checkpoint.origin, size: checkpoint.size, logKey: `${logKey.name}+${hex8(logKey.keyId)}`,
    storeSigned: storeCount, missingFromLog: missing, leavesNotInStore: extra, duplicateLeaves: duplicates,
    ok: missing.length === 0 && extra.length === 0 && duplicates.length === 0,
  };
}
