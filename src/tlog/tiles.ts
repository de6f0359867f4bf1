/**
 * C2SP tlog-tiles v0.1.0 (pinned): tile paths (`tile/<L>/<N>[.p/<W>]`, N in x-prefixed
 * 3-digit groups), hash tiles (up to 256 concatenated 32-byte hashes) and entry bundles (up to
 * 256 big-endian uint16 length-prefixed entries). Not Go's sumdb layout.
 */
import { DecodeError } from '../errors.js';
import { HASH_SIZE, leafHash, nodeHash } from './hash.js';
import type { NodeReader } from './merkle.js';

export const TILE_WIDTH = 256;
export const TILE_HEIGHT = 8;
const FORMAT_PATH = 'tile path';
const FORMAT_TILE = 'hash tile';
const FORMAT_BUNDLE = 'entry bundle';

export interface TileRef {
  /** Tile level 0..63, or 'entries' for an entry bundle. */
  level: number | 'entries';
  index: number;
  /** 256 for a full tile, 1..255 for a partial one. */
  width: number;
}

export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('tile index must be a non-negative integer');
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

export function tilePath(t: TileRef): string {
  if (t.level !== 'entries' && (!Number.isInteger(t.level) || t.level < 0 || t.level > 63)) throw new RangeError('tile level is 0..63');
  if (!Number.isInteger(t.width) || t.width < 1 || t.width > TILE_WIDTH) throw new RangeError('tile width is 1..256');
  const suffix = t.width === TILE_WIDTH ? '' : `.p/${t.width}`;
  return `tile/${t.level}/${encodeTileIndex(t.index)}${suffix}`;
}

/** Strict parse of a tile path relative to the log prefix; the inverse of tilePath. */
export function decodeTilePath(path: string): TileRef {
  const m = /^tile\/(entries|0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path);
  if (!m) throw new DecodeError(FORMAT_PATH, `${JSON.stringify(path)} is not tile/<L>/<N>[.p/<W>]`);
  const level: TileRef['level'] = m[1] === 'entries' ? 'entries' : Number(m[1]);
  if (level !== 'entries' && level > 63) throw new DecodeError(FORMAT_PATH, 'level above 63');
  const digits = m[2]!.replace(/[x/]/g, '');
  if (digits.length > 15) throw new DecodeError(FORMAT_PATH, 'index too large');
  const index = Number(digits);
  const width = m[3] === undefined ? TILE_WIDTH : Number(m[3]);
  if (m[3] !== undefined && width >= TILE_WIDTH) throw new DecodeError(FORMAT_PATH, 'partial width must be 1..255');
  const ref = { level, index, width };
  if (tilePath(ref) !== path) throw new DecodeError(FORMAT_PATH, `${JSON.stringify(path)} is not in canonical form`);
  return ref;
}

export function encodeHashTile(hashes: readonly Uint8Array[]): Buffer {
  if (hashes.length < 1 || hashes.length > TILE_WIDTH) throw new RangeError('a tile holds 1..256 hashes');
  for (const h of hashes) if (h.length !== HASH_SIZE) throw new RangeError('tile hashes are 32 bytes');
  return Buffer.concat(hashes);
}

export function decodeHashTile(bytes: Uint8Array, width: number): Buffer[] {
  if (bytes.length !== width * HASH_SIZE) {
    throw new DecodeError(FORMAT_TILE, `${bytes.length} bytes, expected ${width} hashes (${width * HASH_SIZE} bytes)`);
  }
  const out: Buffer[] = [];
  for (let i = 0; i < width; i++) out.push(Buffer.from(bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)));
  return out;
}

export function encodeEntryBundle(entries: readonly Uint8Array[]): Buffer {
  if (entries.length < 1 || entries.length > TILE_WIDTH) throw new RangeError('an entry bundle holds 1..256 entries');
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.length > 0xffff) throw new RangeError('an entry is at most 65535 bytes');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(e.length);
    parts.push(len, Buffer.from(e));
  }
  return Buffer.concat(parts);
}

/** Strict: exactly `width` entries, no truncated entry, no trailing bytes. */
export function decodeEntryBundle(bytes: Uint8Array, width: number): Buffer[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    if (out.length === width) throw new DecodeError(FORMAT_BUNDLE, `trailing bytes after ${width} entries`);
    if (at + 2 > buf.length) throw new DecodeError(FORMAT_BUNDLE, `entry ${out.length} length is truncated`);
    const len = buf.readUInt16BE(at);
    if (at + 2 + len > buf.length) throw new DecodeError(FORMAT_BUNDLE, `entry ${out.length} is truncated`);
    out.push(Buffer.from(buf.subarray(at + 2, at + 2 + len)));
    at += 2 + len;
  }
  if (out.length !== width) throw new DecodeError(FORMAT_BUNDLE, `${out.length} entries, expected ${width}`);
  return out;
}

/** Every hash tile a tree of `size` leaves is served as (full and the rightmost partial ones). */
export function tilesForSize(size: number): TileRef[] {
  const out: TileRef[] = [];
  for (let level = 0; level <= 63; level++) {
    const n = Math.floor(size / TILE_WIDTH ** level); // hashes at this level
    if (n === 0) break;
    const full = Math.floor(n / TILE_WIDTH);
    for (let i = 0; i < full; i++) out.push({ level, index: i, width: TILE_WIDTH });
    if (n % TILE_WIDTH) out.push({ level, index: full, width: n % TILE_WIDTH });
  }
  return out;
}

/** The hashes of one tile, read from a tree that holds every complete subtree. */
export function readHashTile(r: NodeReader, t: TileRef): Buffer[] {
  if (t.level === 'entries') throw new RangeError('not a hash tile');
  const out: Buffer[] = [];
  for (let i = 0; i < t.width; i++) out.push(Buffer.from(r.node(TILE_HEIGHT * t.level, t.index * TILE_WIDTH + i)));
  return out;
}

/** A tile that a TileReader needs and does not have yet. */
export class MissingTileError extends Error {
  constructor(readonly tile: TileRef) {
    super(`tile ${tilePath(tile)} is needed`);
  }
}

/**
 * Reads complete subtree hashes from C2SP hash tiles of a tree of `size` leaves. `get` returns a
 * tile's bytes or undefined (then MissingTileError names it, so an async caller can fetch and
 * retry). Level 0 hashes may be checked against entry bundles by the caller.
 */
export class TileReader implements NodeReader {
  private cache = new Map<string, Buffer[]>();
  constructor(
    readonly size: number,
    private get: (t: TileRef) => Uint8Array | undefined,
  ) {}

  private tile(level: number, index: number): Buffer[] {
    const hashesAtLevel = Math.floor(this.size / TILE_WIDTH ** level);
    const full = Math.floor(hashesAtLevel / TILE_WIDTH);
    const width = index < full ? TILE_WIDTH : hashesAtLevel % TILE_WIDTH;
    if (index > full || width === 0) throw new RangeError(`no tile ${level}/${index} in a tree of size ${this.size}`);
    const ref: TileRef = { level, index, width };
    const key = tilePath(ref);
    let hashes = this.cache.get(key);
    if (!hashes) {
      const bytes = this.get(ref);
      if (!bytes) throw new MissingTileError(ref);
      hashes = decodeHashTile(bytes, width);
      this.cache.set(key, hashes);
    }
    return hashes;
  }

  node(level: number, index: number): Uint8Array {
    const tl = Math.floor(level / TILE_HEIGHT);
    const r = level % TILE_HEIGHT;
    const span = 2 ** r;
    const first = index * span; // index at height 8*tl
    if (!Number.isSafeInteger(index) || index < 0 || (index + 1) * 2 ** level > this.size) {
      throw new RangeError(`no complete subtree at level ${level} index ${index} in size ${this.size}`);
    }
    const tileIndex = Math.floor(first / TILE_WIDTH);
    const tile = this.tile(tl, tileIndex);
    const at = first % TILE_WIDTH;
    let hashes: Uint8Array[] = tile.slice(at, at + span);
    if (hashes.length !== span) throw new RangeError(`tile ${tl}/${tileIndex} is too short for level ${level} index ${index}`);
    while (hashes.length > 1) {
      const next: Uint8Array[] = [];
      for (let i = 0; i < hashes.length; i += 2) next.push(nodeHash(hashes[i]!, hashes[i + 1]!));
      hashes = next;
    }
    return hashes[0]!;
  }
}

/** Checks an entry bundle against its level-0 tile: each entry hashes to its tile hash. */
export function checkEntriesAgainstTile(entries: readonly Uint8Array[], tile: readonly Uint8Array[]): number {
  if (entries.length !== tile.length) return Math.min(entries.length, tile.length);
  for (let i = 0; i < entries.length; i++) if (Buffer.compare(leafHash(entries[i]!), tile[i]!) !== 0) return i;
  return -1;
}
