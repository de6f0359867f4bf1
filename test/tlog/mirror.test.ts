/**
 * qtm log mirror: a log (a LogDir's www/, or a real server's /log/) copied into a directory a
 * static web server can serve, checked tile by tile against the signed checkpoint, incremental,
 * and refused (exit 1, nothing written) when the source lies, forks, shrinks or is signed by
 * another key. Readers (monitor, prove) work against the mirror through the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { signCheckpoint, decodeSignedCheckpoint } from '../../src/tlog/checkpoint.js';
import { LogDir } from '../../src/tlog/log-dir.js';
import { mirror } from '../../src/tlog/mirror.js';
import { decodeSkey, decodeVkey, ed25519NoteSigner, encodeSkey, encodeVkey } from '../../src/tlog/note.js';
import { dirSource, type TileSource } from '../../src/tlog/tile-source.js';
import { tilePath, TILE_WIDTH, tilesForSize, type TileRef } from '../../src/tlog/tiles.js';
import { makeWorld, newCard, transact } from '../e2e/env.js';
import { qtm, qtmAsync, tempDir } from '../helpers.js';

const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 9) }));
const signer = ed25519NoteSigner(skey);
const vkey = decodeVkey(encodeVkey(skey));
const otherKey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 10) }));
const leaf = (i: number, salt = '') => ({ transactionId: i + 1, package: Buffer.from(`package ${salt}${i}`) });

async function grow(log: LogDir, to: number, salt = ''): Promise<void> {
  await Promise.all(Array.from({ length: to - log.size }, (_, k) => log.append(leaf(log.size + k, salt))));
}

/** Every file under `dir`, relative, lock and temp files aside. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((p) => statSync(join(dir, p)).isFile() && !p.endsWith('.tmp') && p !== '.mirror-lock')
    .map((p) => relative(dir, join(dir, p))).sort();
}

function snapshot(dir: string): Map<string, Buffer> {
  return new Map(files(dir).map((p) => [p, readFileSync(join(dir, p))]));
}

/** A TileSource that counts what it is asked for. */
function counting(src: TileSource): TileSource & { asked: string[] } {
  const asked: string[] = [];
  return { label: src.label, checkpoint: () => src.checkpoint(), tile: (t: TileRef) => { asked.push(tilePath(t)); return src.tile(t); }, cosigned: (w) => src.cosigned!(w), asked };
}

function vkeyFile(dir: string): string {
  const f = join(dir, 'log.vkey');
  writeFileSync(f, `${encodeVkey(skey)}\n`);
  return f;
}

function cliMirror(from: string, out: string, keyFile: string, env: Record<string, string> = {}) {
  const r = qtm(['log', 'mirror', '--log', from, '--log-key', keyFile, '--out', out, '--json'], { env });
  return { ...r, json: r.status === 0 ? JSON.parse(r.stdout) : undefined };
}

test('mirrors every tile, checked, byte for byte; a grown log is mirrored incrementally (full tiles never fetched again, old partial tiles kept)', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'mirror');
  const log = LogDir.open(join(dir, 'log'), signer);
  await grow(log, 600);
  log.addCosignatures(log.signedCheckpoint, `— witness.example/w1 ${Buffer.alloc(76, 1).toString('base64')}`);
  const src1 = counting(dirSource(log.www));
  const r1 = await mirror(src1, vkey, out);
  assert.equal(r1.size, 600);
  assert.equal(r1.previousSize, 0);
  // Size 600: level 0 has 2 full tiles and a partial one of 88, level 1 one of 2; entries alike.
  const need1 = tilesForSize(600).length + tilesForSize(600).filter((x) => x.level === 0).length;
  assert.equal(need1, 7);
  assert.equal(r1.fetched.tiles, need1);
  assert.equal(new Set(src1.asked).size, src1.asked.length, 'each tile fetched once');
  assert.deepEqual(r1.cosigned.written.sort(), ['cosigned/600', 'cosigned/latest']);
  for (const [p, b] of snapshot(out)) assert.deepEqual(b, readFileSync(join(log.www, p)), p);
  assert.deepEqual(files(out), files(log.www), 'the mirror holds every path the log serves');
  const served1 = snapshot(out);

  await grow(log, 1100);
  const src2 = counting(dirSource(log.www));
  const r2 = await mirror(src2, vkey, out);
  assert.equal(r2.size, 1100);
  assert.equal(r2.previousSize, 600);
  assert.match(r2.status, /grew from 600 to 1100, consistent/);
  const fullBefore = tilesForSize(600).filter((x) => x.width === TILE_WIDTH).flatMap((x) => [tilePath(x), tilePath({ ...x, level: 'entries' })]);
  for (const p of fullBefore) assert.ok(!src2.asked.includes(p), `${p} was fetched again`);
  // Kept: those, and the partial tiles of size 600, which cosigned/latest (still 600) needs.
  assert.equal(r2.kept, fullBefore.length + 3);
  assert.deepEqual(r2.cosigned.written, [], 'the witnessed checkpoint of 600 is already mirrored');
  // 1100: level 0 has tiles 2 and 3 full (new) and 4 partial (76); level 1 a partial of 4.
  assert.deepEqual(src2.asked.filter((p, i) => src2.asked.indexOf(p) === i).sort(),
    ['tile/0/002', 'tile/0/003', 'tile/0/004.p/76', 'tile/1/000.p/4', 'tile/entries/002', 'tile/entries/003', 'tile/entries/004.p/76'].sort());
  for (const p of r2.written.files) assert.deepEqual(readFileSync(join(out, p)), readFileSync(join(log.www, p)), p);
  // What the mirror served before is all still there, unchanged (the checkpoint aside).
  for (const [p, b] of served1) if (p !== 'checkpoint') assert.deepEqual(readFileSync(join(out, p)), b, p);
  assert.ok(existsSync(join(out, 'tile/0/002.p/88')) && existsSync(join(out, 'tile/entries/002.p/88')), 'older partial tiles are kept');
  assert.deepEqual(readFileSync(join(out, 'checkpoint')), readFileSync(join(log.www, 'checkpoint')));

  // Up to date: nothing fetched, nothing written.
  const src3 = counting(dirSource(log.www));
  const r3 = await mirror(src3, vkey, out);
  assert.equal(src3.asked.length, 0);
  assert.equal(r3.written.files.length, 0);
  assert.match(r3.status, /unchanged at size 1100/);
  await log.close();
});

test('a lagging witnessed checkpoint (cosigned/latest of a smaller size) is mirrored with the partial tiles of its size', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'mirror');
  const log = LogDir.open(join(dir, 'log'), signer);
  await grow(log, 300);
  const witnessed = log.signedCheckpoint;
  log.addCosignatures(witnessed, `— witness.example/w1 ${Buffer.alloc(76, 2).toString('base64')}`);
  await grow(log, 700);
  const r = await mirror(dirSource(log.www), vkey, out);
  assert.equal(r.size, 700);
  assert.deepEqual(r.cosigned.written.sort(), ['cosigned/300', 'cosigned/latest']);
  for (const p of ['tile/0/001.p/44', 'tile/entries/001.p/44', 'tile/1/000.p/1', 'cosigned/300', 'cosigned/latest']) {
    assert.deepEqual(readFileSync(join(out, p)), readFileSync(join(log.www, p)), p);
  }
  await log.close();
});

test('attack: a witnessed checkpoint (cosigned/latest) of a forked tree, signed by the log key, is refused (LOG FORKED), exit 1, nothing written', async (t) => {
  const dir = tempDir(t);
  const key = vkeyFile(dir);
  const honest = LogDir.open(join(dir, 'honest'), signer);
  await grow(honest, 700);
  const fork = LogDir.open(join(dir, 'fork'), signer);
  await Promise.all(Array.from({ length: 300 }, (_, i) => fork.append(i === 5 ? leaf(i, 'rewritten ') : leaf(i))));
  const f = forgedCopy(honest.www, dir);
  // The fork's tiles of size 300 and its checkpoint as the witnessed one: they rebuild its root.
  for (const p of ['tile/0/001.p/44', 'tile/entries/001.p/44', 'tile/1/000.p/1']) cpSync(join(fork.www, p), join(f, p), { recursive: true });
  mkdirSync(join(f, 'cosigned'), { recursive: true });
  writeFileSync(join(f, 'cosigned', 'latest'), fork.signedCheckpoint);
  const out = join(dir, 'mirror');
  const r = cliMirror(f, out, key);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /LOG FORKED: shop\.example\/log's witnessed checkpoint of size 300 is not on the tree of its checkpoint of size 700/);
  assert.deepEqual(files(out), []);
  await fork.close();
  await honest.close();
});

test('the CLI: mirror, grow, mirror again; qtm log monitor follows the mirror; --help names the exit codes', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'mirror');
  const key = vkeyFile(dir);
  const log = LogDir.open(join(dir, 'log'), signer);
  await grow(log, 300);
  let r = cliMirror(log.www, out, key);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.json.size, 300);
  assert.equal(r.json.fetched.tiles, 5);
  const mon = () => qtm(['log', 'monitor', '--log', out, '--log-key', key, '--state', join(dir, 'monitor.json'), '--json']);
  let m = mon();
  assert.equal(m.status, 0, m.stderr);
  assert.equal(JSON.parse(m.stdout).newEntries, 300);
  await grow(log, 520);
  r = cliMirror(log.www, out, key);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.json.previousSize, 300);
  assert.equal(r.json.kept, 2, 'tile/0/000 and tile/entries/000');
  m = mon();
  assert.equal(m.status, 0, m.stderr);
  assert.equal(JSON.parse(m.stdout).newEntries, 220);
  assert.match(JSON.parse(m.stdout).status, /grew from 300 to 520, consistent/);
  const text = qtm(['log', 'mirror', '--log', log.www, '--log-key', key, '--out', out]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /shop\.example\/log: mirrored size 520 \(was 520\); unchanged at size 520/);
  const help = qtm(['log', 'mirror', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Exit codes: 0 mirrored/);
  assert.match(help.stdout, /Examples:/i);
  await log.close();
});

/** A copy of the log's www/ to forge. */
function forgedCopy(www: string, dir: string): string {
  const f = join(dir, `forged-${Math.random().toString(36).slice(2)}`);
  cpSync(www, f, { recursive: true });
  return f;
}

test('attack: a source whose tile was altered (hash tile, entry bundle, a missing tile) is refused, exit 1, nothing written', async (t) => {
  const dir = tempDir(t);
  const key = vkeyFile(dir);
  const log = LogDir.open(join(dir, 'log'), signer);
  await grow(log, 600);
  const cases: [string, (f: string) => void, RegExp][] = [
    ['a hash tile with one bit flipped', (f) => { const p = join(f, 'tile/0/001'); const b = readFileSync(p); b[40]! ^= 1; writeFileSync(p, b); }, /tile\/0\/001 does not hash to its node in tile\/1\/000\.p\/2; nothing was written/],
    ['an entry bundle with another entry', (f) => { const p = join(f, 'tile/entries/002.p/88'); const b = readFileSync(p); b[b.length - 1]! ^= 1; writeFileSync(p, b); }, /entry 599 \(tile\/entries\/002\.p\/88\) does not hash to its tile/],
    ['a truncated partial tile', (f) => { const p = join(f, 'tile/0/002.p/88'); writeFileSync(p, readFileSync(p).subarray(0, 32 * 87)); }, /tile\/0\/002\.p\/88 is 2784 bytes, not 88 hashes/],
    ['an emptied entry bundle', (f) => { writeFileSync(join(f, 'tile/entries/000'), ''); }, /tile\/entries\/000: entry bundle: 0 entries, expected 256/],
    ['a missing hash tile', (f) => { rmSync(join(f, 'tile/0/000')); }, /does not serve tile\/0\/000, which its checkpoint of size 600 needs/],
  ];
  for (const [what, forge, reason] of cases) {
    const f = forgedCopy(log.www, dir);
    forge(f);
    const out = join(dir, `out-${what.replace(/\W+/g, '-')}`);
    const r = cliMirror(f, out, key);
    assert.equal(r.status, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, reason, what);
    assert.match(r.stderr, /E_TLOG_MISBEHAVIOUR|nothing was written/, what);
    assert.deepEqual(files(out), [], `${what}: nothing is written`);
  }
  // Incrementally too: the mirror at 600 keeps serving what it had when the grown log lies.
  const out = join(dir, 'out-incremental');
  assert.equal(cliMirror(log.www, out, key).status, 0);
  const before = snapshot(out);
  await grow(log, 900);
  const f = forgedCopy(log.www, dir);
  const p = join(f, 'tile/entries/003.p/132');
  const b = readFileSync(p); b[5]! ^= 1; writeFileSync(p, b);
  const r = cliMirror(f, out, key);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /does not hash to its tile/);
  assert.deepEqual(snapshot(out), before, 'nothing written');
  await log.close();
});

test('attack: a forked log (same key, other leaves) or a shrunk one mirrored into the same --out is refused (LOG FORKED / LOG SHRANK), exit 1, the mirror unchanged', async (t) => {
  const dir = tempDir(t);
  const key = vkeyFile(dir);
  const out = join(dir, 'mirror');
  const honest = LogDir.open(join(dir, 'honest'), signer);
  await grow(honest, 400);
  assert.equal(cliMirror(honest.www, out, key).status, 0);
  const before = snapshot(out);
  for (const [what, size, reason] of [['a fork at the same size', 400, /LOG FORKED: shop\.example\/log signed two roots for size 400/], ['a fork grown further', 700, /LOG FORKED: shop\.example\/log at size 700 is not an extension of size 400/], ['a shrink', 399, /LOG SHRANK: shop\.example\/log signed size 399 after size 400/]] as const) {
    const forked = LogDir.open(join(dir, `forked-${size}`), signer);
    // The shrink keeps the honest leaves (one fewer); the forks change leaf 123.
    await Promise.all(Array.from({ length: size }, (_, i) => forked.append(size === 399 || i !== 123 ? leaf(i) : leaf(i, 'rewritten '))));
    const r = cliMirror(forked.www, out, key);
    assert.equal(r.status, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, reason, what);
    assert.deepEqual(snapshot(out), before, `${what}: nothing written`);
    await forked.close();
  }
  await honest.close();
});

test('attack: a checkpoint signed by another key (same log name) is refused, exit 1; a --out mirroring another log is unusable input, exit 2', async (t) => {
  const dir = tempDir(t);
  const key = vkeyFile(dir);
  const log = LogDir.open(join(dir, 'log'), signer);
  await grow(log, 10);
  const f = forgedCopy(log.www, dir);
  const cp = decodeSignedCheckpoint(readFileSync(join(f, 'checkpoint'))).checkpoint;
  writeFileSync(join(f, 'checkpoint'), signCheckpoint(cp, ed25519NoteSigner(otherKey)));
  const out = join(dir, 'mirror');
  const r = cliMirror(f, out, key);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /no signature by a known key \(shop\.example\/log\+/);
  assert.ok(!existsSync(out), 'nothing written, not even the folder');
  // A mirror whose checkpoint another key signed: not this log's mirror.
  assert.equal(cliMirror(f, out, join(dir, 'other.vkey')).status, 2);
  writeFileSync(join(dir, 'other.vkey'), `${encodeVkey(otherKey)}\n`);
  assert.equal(cliMirror(f, out, join(dir, 'other.vkey')).status, 0);
  const r2 = cliMirror(log.www, out, key);
  assert.equal(r2.status, 2, r2.stderr);
  assert.match(r2.stderr, /is not a checkpoint of shop\.example\/log signed by this log key/);
  await log.close();
});

test('a real server\'s log over HTTPS (/log/) is mirrored, and qtm log prove works against the mirror', async (t) => {
  const dir = tempDir(t);
  const key = vkeyFile(dir);
  const world = await makeWorld(({ dir: d }) => ({ transparency: { dir: join(d, 'tlog'), signer } }));
  t.after(() => world.close());
  const card = await newCard(world, 4);
  const bundles: string[] = [];
  for (let i = 0; i < 2; i++) bundles.push((await transact(world, card)).bundleFile);
  const out = join(dir, 'mirror');
  const env = { NODE_EXTRA_CA_CERTS: join(world.dir, 'ca', 'ca.pem') };
  const r = await qtmAsync(['log', 'mirror', '--log', `${world.url}/log/`, '--log-key', key, '--out', out, '--json'], { env });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.size, 2);
  const www = join(world.dir, 'tlog', 'www');
  for (const p of j.written.files) assert.deepEqual(readFileSync(join(out, p)), readFileSync(join(www, p)), p);
  for (const b of bundles) {
    const p = qtm(['log', 'prove', b, '--log', out, '--log-key', key, '--out', join(dir, 'proved.json'), '--json']);
    assert.equal(p.status, 0, p.stderr);
    assert.equal(JSON.parse(p.stdout).size, 2);
  }
});
