/**
 * Where a client reads a tiled log from: a directory (the log's www/ folder, or a mirror) or an
 * HTTP(S) prefix. Computations run on a synchronous TileReader; a tile it lacks raises
 * MissingTileError, is fetched, and the computation runs again (each run needs O(log n) tiles).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { MissingTileError, TileReader, tilePath, type TileRef } from './tiles.js';

export interface TileSource {
  readonly label: string;
  checkpoint(): Promise<Buffer>;
  tile(t: TileRef): Promise<Buffer | undefined>;
  /** The checkpoint of a size with the witness cosignatures the log received for it (cosigned/<size>, cosigned/latest). */
  cosigned?(which: number | 'latest'): Promise<Buffer | undefined>;
}

const MAX_CHECKPOINT = 64 * 1024;
const MAX_TILE = 256 * (2 + 0xffff);

export function dirSource(dir: string): TileSource {
  const read = (p: string) => {
    try {
      return readFileSync(join(dir, p));
    } catch {
      return undefined;
    }
  };
  return {
    label: dir,
    async checkpoint() {
      const b = read('checkpoint');
      if (!b) throw new InputError(`no checkpoint in ${dir}`, 'give the log\'s www/ directory or its URL');
      if (b.length > MAX_CHECKPOINT) throw new InputError(`the checkpoint in ${dir} is larger than ${MAX_CHECKPOINT} bytes`);
      return b;
    },
    async tile(t) {
      return read(tilePath(t));
    },
    async cosigned(which) {
      return read(`cosigned/${which}`);
    },
  };
}

export function httpSource(prefix: string): TileSource {
  const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const get = async (p: string, max: number): Promise<Buffer | undefined> => {
    let r: Response;
    try {
      r = await fetch(new URL(p, base), { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new InputError(`cannot fetch ${base}${p}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, 'check the URL; for a private CA set NODE_EXTRA_CA_CERTS');
    }
    if (r.status === 404) return undefined;
    if (!r.ok) throw new InputError(`GET ${base}${p}: HTTP ${r.status}`);
    const b = Buffer.from(await r.arrayBuffer());
    if (b.length > max) throw new InputError(`GET ${base}${p}: larger than ${max} bytes`);
    return b;
  };
  return {
    label: base,
    async checkpoint() {
      const b = await get('checkpoint', MAX_CHECKPOINT);
      if (!b) throw new InputError(`no checkpoint at ${base}checkpoint`);
      return b;
    },
    tile: (t) => get(tilePath(t), MAX_TILE),
    cosigned: (which) => get(`cosigned/${which}`, MAX_CHECKPOINT),
  };
}

export function sourceFor(where: string): TileSource {
  return /^https?:\/\//.test(where) ? httpSource(where) : dirSource(where);
}

/** Runs `fn` over the tiles of a tree of `size`, fetching missing tiles from `src` as needed. */
export async function withTiles<T>(src: TileSource, size: number, fn: (r: TileReader) => T): Promise<T> {
  const have = new Map<string, Buffer>();
  for (let round = 0; round < 10_000; round++) {
    const reader = new TileReader(size, (t) => have.get(tilePath(t)));
    try {
      return fn(reader);
    } catch (err) {
      if (!(err instanceof MissingTileError)) throw err;
      const bytes = await src.tile(err.tile);
      if (!bytes) throw new InputError(`${src.label}: tile ${tilePath(err.tile)} is missing`, 'the log does not serve a tile its checkpoint needs');
      have.set(tilePath(err.tile), bytes);
    }
  }
  throw new Error('too many tile fetches');
}
