import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/tlog/checkpoint.js';
import { leafHash } from '../../src/tlog/hash.js';
import { encodeEntry } from '../../src/tlog/leaf.js';
import { LogDir, changedTiles } from '../../src/tlog/log-dir.js';
import { consistencyProof, inclusionProof, treeRoot, verifyConsistency, verifyInclusion } from '../../src/tlog/merkle.js';
import { decodeSkey, decodeVkey, ed25519NoteSigner, ed25519NoteVerifier, encodeSkey, encodeVkey } from '../../src/tlog/note.js';
import { dirSource, withTiles } from '../../src/tlog/tile-source.js';
import { decodeEntryBundle, decodeHashTile, tilePath, tilesForSize } from '../../src/tlog/tiles.js';
import { tempDir } from '../helpers.js';

const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 9) }));
const signer = ed25519NoteSigner(skey);
const verifier = ed25519NoteVerifier(decodeVkey(encodeVkey(skey)));
const leaf = (i: number) => ({ transactionId: i + 1, package: Buffer.from(`package ${i}`) });

test('appends get dense indices, are durable and idempotent, and the served tiles rebuild the signed root', async (t) => {
  const dir = tempDir(t);
  const log = LogDir.open(dir, signer);
  const positions = await Promise.all(Array.from({ length: 600 }, (_, i) => log.append(leaf(i))));
  assert.deepEqual(positions.map((p) => p.index), Array.from({ length: 600 }, (_, i) => i));
  assert.equal((await log.append(leaf(17))).index, 17);
  assert.equal(statSync(join(dir, 'entries.bin')).size, 600 * 33);
  const cp = openCheckpoint(readFileSync(join(dir, 'www', 'checkpoint')), verifier).checkpoint;
  assert.equal(cp.size, 600);
  const src = dirSource(join(dir, 'www'));
  const root = await withTiles(src, 600, (r) => Buffer.from(treeRoot(r)));
  assert.deepEqual(root, cp.root);
  // Entry bundles hash to the level-0 tiles.
  for (const tile of tilesForSize(600).filter((x) => x.level === 0)) {
    const hashes = decodeHashTile(readFileSync(join(dir, 'www', tilePath(tile))), tile.width);
    const entries = decodeEntryBundle(readFileSync(join(dir, 'www', tilePath({ ...tile, level: 'entries' }))), tile.width);
    assert.deepEqual(entries.map((e) => leafHash(e)), hashes);
  }
  const proof = await withTiles(src, 600, (r) => inclusionProof(r, 321));
  verifyInclusion(321, 600, leafHash(encodeEntry(leaf(321))), proof, cp.root);
  await log.close();
});

test('one sequencer: a second open of a log in use is refused', async (t) => {
  const dir = tempDir(t);
  const log = LogDir.open(dir, signer);
  assert.throws(() => LogDir.open(dir, signer), new RegExp(`log ${dir} is in use by process ${process.pid}`));
  await log.close();
  await LogDir.open(dir, signer).close();
});

test('reopening: continues, cuts a torn record, refuses a lost entry', async (t) => {
  const dir = tempDir(t);
  let log = LogDir.open(dir, signer);
  await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(leaf(i))));
  const old = openCheckpoint(readFileSync(join(dir, 'www', 'checkpoint')), verifier).checkpoint;
  await log.close();
  appendFileSync(join(dir, 'entries.bin'), Buffer.alloc(20, 1)); // a record torn by a crash
  log = LogDir.open(dir, signer);
  assert.equal(log.size, 300);
  assert.equal((await log.append(leaf(300))).index, 300);
  const cp = openCheckpoint(readFileSync(join(dir, 'www', 'checkpoint')), verifier).checkpoint;
  verifyConsistency(old.size, cp.size, await withTiles(dirSource(join(dir, 'www')), cp.size, (r) => consistencyProof(r, old.size)), old.root, cp.root);
  assert.equal(await log.catchUp([leaf(5), leaf(301), leaf(302)]), 2);
  assert.equal(log.size, 303);
  await log.close();
  const whole = readFileSync(join(dir, 'entries.bin'));
  truncateSync(join(dir, 'entries.bin'), 302 * 33);
  assert.throws(() => LogDir.open(dir, signer), /holds 302 entries but published a checkpoint of size 303/);
  // A record of zeros (a file extended but never written) is no entry of this log.
  truncateSync(join(dir, 'entries.bin'), 303 * 33);
  assert.throws(() => LogDir.open(dir, signer), /entry 302 of entries.bin is version 0 in a log of version 1 entries/);
  // Another key for the same directory is another log.
  const other = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'other.example/log', type: 1, seed: Buffer.alloc(32, 8) })));
  writeFileSync(join(dir, 'entries.bin'), whole);
  assert.throws(() => LogDir.open(dir, other), /is the log of shop.example\/log/);
});

test('a checkpoint torn by a power loss (written without fsync) is signed again from entries.bin on open', async (t) => {
  const dir = tempDir(t);
  let log = LogDir.open(dir, signer);
  await Promise.all(Array.from({ length: 300 }, (_, i) => log.append(leaf(i))));
  const before = readFileSync(join(dir, 'www', 'checkpoint'), 'utf8');
  await log.close();
  writeFileSync(join(dir, 'www', 'checkpoint'), '');
  rmSync(join(dir, 'www', 'tile', '0', '001.p', '44'));
  log = LogDir.open(dir, signer);
  assert.equal(readFileSync(join(dir, 'www', 'checkpoint'), 'utf8'), before); // Ed25519 is deterministic
  assert.ok(existsSync(join(dir, 'www', 'tile', '0', '001.p', '44')));
  await log.close();
});

test('a publish that fails rejects the append; the retry publishes the tiles it left out', async (t) => {
  const dir = tempDir(t);
  const log = LogDir.open(dir, signer);
  writeFileSync(join(dir, 'www', 'tile'), 'in the way'); // mkdir www/tile fails
  await assert.rejects(log.append(leaf(0)), /ENOTDIR|EEXIST/);
  assert.equal(log.size, 1); // durable in entries.bin: the store signed it, so it stays
  rmSync(join(dir, 'www', 'tile'));
  assert.equal((await log.append(leaf(0))).index, 0);
  assert.equal(openCheckpoint(readFileSync(join(dir, 'www', 'checkpoint')), verifier).checkpoint.size, 1, 'the retry published');
  assert.equal((await log.append(leaf(1))).index, 1);
  const cp = openCheckpoint(readFileSync(join(dir, 'www', 'checkpoint')), verifier).checkpoint;
  assert.equal(cp.size, 2);
  assert.deepEqual(await withTiles(dirSource(join(dir, 'www')), 2, (r) => Buffer.from(treeRoot(r))), cp.root);
  await log.close();
});

test('changedTiles names exactly the tiles whose bytes change', () => {
  assert.deepEqual(changedTiles(0, 1).map(tilePath), ['tile/0/000.p/1', 'tile/entries/000.p/1']);
  assert.deepEqual(changedTiles(255, 256).map(tilePath), ['tile/0/000', 'tile/entries/000', 'tile/1/000.p/1']);
  assert.deepEqual(changedTiles(256, 257).map(tilePath), ['tile/0/001.p/1', 'tile/entries/001.p/1']);
  assert.deepEqual(changedTiles(5, 5), []);
  const all = new Set(tilesForSize(70000).map(tilePath));
  let size = 0;
  const seen = new Set<string>();
  for (const next of [1, 100, 256, 1000, 65536, 65537, 70000]) {
    for (const x of changedTiles(size, next)) if (x.level !== 'entries') seen.add(tilePath(x));
    size = next;
  }
  for (const p of all) assert.ok(seen.has(p), p);
});

test('a torn cosigned/latest (written without fsync) does not keep the log from opening, and is written again', async (t) => {
  const dir = tempDir(t);
  let log = LogDir.open(dir, signer);
  await log.append(leaf(0));
  const cp = log.signedCheckpoint;
  log.addCosignatures(cp, '— witness.example/w1 AAAA');
  await log.close();
  writeFileSync(join(dir, 'www', 'cosigned', 'latest'), 'torn');
  log = LogDir.open(dir, signer);
  log.addCosignatures(cp, '— witness.example/w2 BBBB');
  assert.match(readFileSync(join(dir, 'www', 'cosigned', 'latest'), 'utf8'), /w1 AAAA\n— witness.example\/w2 BBBB\n$/);
  await log.close();
});
