import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { leafHash } from '../../src/tlog/hash.js';
import { MemoryTree, consistencyProof, inclusionProof, treeRoot } from '../../src/tlog/merkle.js';
import {
  MissingTileError, TileReader, decodeEntryBundle, decodeHashTile, decodeTilePath, encodeEntryBundle, encodeHashTile,
  encodeTileIndex, readHashTile, tilePath, tilesForSize, type TileRef,
} from '../../src/tlog/tiles.js';

test('C2SP tlog-tiles examples: index 1234067 is x001/x234/067; paths for full and partial tiles', () => {
  assert.equal(encodeTileIndex(1234067), 'x001/x234/067');
  assert.equal(encodeTileIndex(0), '000');
  assert.equal(encodeTileIndex(1000), 'x001/000');
  assert.equal(tilePath({ level: 0, index: 1234067, width: 256 }), 'tile/0/x001/x234/067');
  assert.equal(tilePath({ level: 2, index: 5, width: 17 }), 'tile/2/005.p/17');
  assert.equal(tilePath({ level: 'entries', index: 5, width: 1 }), 'tile/entries/005.p/1');
  for (const p of ['tile/0/x001/x234/067', 'tile/2/005.p/17', 'tile/entries/005.p/1', 'tile/63/000']) assert.equal(tilePath(decodeTilePath(p)), p);
});

test('C2SP tlog-tiles examples: a tree of 70,000 and one of 256 are served as the spec counts', () => {
  const t70k = tilesForSize(70000);
  const count = (f: (t: TileRef) => boolean) => t70k.filter(f).length;
  assert.equal(count((t) => t.level === 0 && t.width === 256), 273);
  assert.deepEqual(t70k.filter((t) => t.width < 256).map((t) => [t.level, t.width]), [[0, 112], [1, 17], [2, 1]]);
  assert.equal(count((t) => t.level === 1 && t.width === 256), 1);
  assert.deepEqual(tilesForSize(256), [{ level: 0, index: 0, width: 256 }, { level: 1, index: 0, width: 1 }]);
  assert.deepEqual(tilesForSize(0), []);
});

for (const p of ['tile/0/67', 'tile/0/0067', 'tile/00/067', 'tile/64/000', 'tile/0/001/067', 'tile/0/x000/067.p/0', 'tile/0/067.p/256', 'tile/0/067.p/07', 'tile/-1/000', 'tile/0/067/', '/tile/0/067', 'tile/0/x1/067', 'tile/0/../067']) {
  test(`tile path decoder refuses ${p}`, () => {
    assert.throws(() => decodeTilePath(p), (e) => e instanceof DecodeError && /^tile path: /.test(e.message));
  });
}

test('a tile reader over the served tiles gives the same roots and proofs as the tree itself', () => {
  const tree = new MemoryTree();
  for (let i = 0; i < 70000; i++) tree.append(leafHash(Buffer.from(`e${i}`)));
  for (const size of [1, 255, 256, 257, 65535, 65536, 65537, 70000]) {
    const served = new Map(tilesForSize(size).map((t) => [tilePath(t), encodeHashTile(readHashTile(tree, t))]));
    const reader = new TileReader(size, (t) => served.get(tilePath(t)));
    assert.deepEqual(Buffer.from(treeRoot(reader)), Buffer.from(treeRoot(tree, size)), `root of ${size}`);
    for (const i of [0, size - 1, Math.floor(size / 3)]) {
      assert.deepEqual(inclusionProof(reader, i, size).map((b) => Buffer.from(b)), inclusionProof(tree, i, size).map((b) => Buffer.from(b)));
    }
    if (size > 1) assert.deepEqual(consistencyProof(reader, size - 1, size).map((b) => Buffer.from(b)), consistencyProof(tree, size - 1, size).map((b) => Buffer.from(b)));
  }
  const reader = new TileReader(300, () => undefined);
  assert.throws(() => treeRoot(reader), (e) => e instanceof MissingTileError && tilePath(e.tile) === 'tile/1/000.p/1');
  assert.throws(() => inclusionProof(reader, 0), (e) => e instanceof MissingTileError && e.tile.level === 0 && e.tile.index === 0 && e.tile.width === 256);
});

test('hash tiles and entry bundles: strict decoding', () => {
  assert.throws(() => decodeHashTile(Buffer.alloc(33), 1), /^DecodeError: hash tile: 33 bytes, expected 1 hashes/);
  const bundle = encodeEntryBundle([Buffer.from('a'), Buffer.alloc(0), Buffer.from('ccc')]);
  assert.equal(bundle.toString('hex'), '0001610000' + '0003636363');
  assert.deepEqual(decodeEntryBundle(bundle, 3).map((b) => b.toString()), ['a', '', 'ccc']);
  assert.throws(() => decodeEntryBundle(bundle, 2), /trailing bytes after 2 entries/);
  assert.throws(() => decodeEntryBundle(bundle, 4), /3 entries, expected 4/);
  assert.throws(() => decodeEntryBundle(bundle.subarray(0, -1), 3), /entry 2 is truncated/);
  assert.throws(() => decodeEntryBundle(Buffer.from([0]), 1), /length is truncated/);
});

test('property: entry bundles round-trip and arbitrary bytes only ever give DecodeError', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 256 }), (es) => {
    const enc = encodeEntryBundle(es);
    assert.deepEqual(decodeEntryBundle(enc, es.length).map((b) => Buffer.from(b)), es.map((b) => Buffer.from(b)));
  }), { numRuns: 200 });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 256 }), (b, w) => {
    try { decodeEntryBundle(b, w); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
    try { decodeHashTile(b, w); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
  }), { numRuns: 1000 });
  fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => {
    try { decodeTilePath(s); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
  }), { numRuns: 1000 });
  fc.assert(fc.property(fc.oneof(fc.constant<'entries'>('entries'), fc.integer({ min: 0, max: 63 })), fc.nat(), fc.integer({ min: 1, max: 256 }), (level, index, width) => {
    const t = { level, index, width };
    assert.deepEqual(decodeTilePath(tilePath(t)), t);
  }));
});
