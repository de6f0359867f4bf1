/**
 * The transparency log through the real CLI, against a real server that logs its transactions:
 * each attack builds its forged input by hand and asserts the named refusal and the exit code
 * (0 valid, 1 invalid or refused, 2 unusable input).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogStore } from '../../src/store/log-store.js';
import { signedLeaves } from '../../src/server/run-server.js';
import { LogDir } from '../../src/tlog/log-dir.js';
import { readNoteKey, writeNewNoteKey } from '../../src/tlog/log-key.js';
import { decodeNote, ed25519NoteSigner, encodeNote, encodeSkey, decodeSkey, SIG_TYPE_ED25519 } from '../../src/tlog/note.js';
import { signCheckpoint, decodeSignedCheckpoint } from '../../src/tlog/checkpoint.js';
import { makeWorld, newCard, transact, type World } from '../e2e/env.js';
import { collect, qtm, QTM_BIN } from '../helpers.js';

const PASS = 'tlog test passphrase';
const env = { QTM_KEY_PASSPHRASE: PASS };
let keys: string;
let world: World;
let www: string;
let vkey: string;
const bundles: string[] = [];
const txids: number[] = [];

before(async () => {
  keys = mkdtempSync(join(tmpdir(), 'qtm-tlog-keys-'));
  const init = qtm(['log', 'init', '--out', join(keys, 'log'), '--origin', 'shop.example/log', '--json'], { env });
  assert.equal(init.status, 0, init.stderr);
  assert.ok(!init.stdout.includes('PRIVATE'), 'the private key is never printed');
  vkey = join(keys, 'log.vkey');
  const signer = ed25519NoteSigner(readNoteKey(join(keys, 'log'), PASS, SIG_TYPE_ED25519));
  world = await makeWorld(({ dir }) => ({ transparency: { dir: join(dir, 'tlog'), signer } }));
  www = join(world.dir, 'tlog', 'www');
  const card = await newCard(world, 4);
  for (let i = 0; i < 3; i++) {
    const r = await transact(world, card);
    bundles.push(r.bundleFile);
    txids.push(r.transactionId);
  }
  for (const [name, wname] of [['w1', 'witness.example/w1'], ['w2', 'witness.example/w2']]) {
    const w = qtm(['log', 'witness-key', '--out', join(keys, name!), '--name', wname!], { env });
    assert.equal(w.status, 0, w.stderr);
  }
});

after(async () => {
  await world?.close();
  rmSync(keys, { recursive: true, force: true });
});

const tmp = (name: string) => join(keys, name);
const caPem = () => join(world.dir, 'ca', 'ca.pem');

function prove(bundle: string, out: string, extra: string[] = []) {
  const r = qtm(['log', 'prove', bundle, '--log', www, '--log-key', vkey, '--out', out, ...extra], { env });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(readFileSync(out, 'utf8'));
}

function verify(bundle: string, extra: string[] = []) {
  const r = qtm(['verify', bundle, '--trust', caPem(), '--log-key', vkey, '--json', ...extra], { env });
  const j = r.stdout ? JSON.parse(r.stdout) : undefined;
  return { status: r.status, stderr: r.stderr, failures: (j?.results?.[0]?.failures ?? []) as { name: string; detail: string }[], checks: (j?.results?.[0]?.checks ?? []) as { name: string; ok: boolean; detail: string }[] };
}

/** A bundle as an older server gave it: version 1, no inclusion proof. */
function withoutProof(bundle: string, name: string): string {
  const j = JSON.parse(readFileSync(bundle, 'utf8'));
  delete j.transparency;
  j.version = 1;
  writeFileSync(tmp(name), JSON.stringify(j, null, 2));
  return tmp(name);
}

test('every receipt carries its leaf\'s inclusion proof from the transaction (bundle version 3, card-tagged leaf), log-signed only', () => {
  for (const [i, b] of bundles.entries()) {
    const j = JSON.parse(readFileSync(b, 'utf8'));
    assert.equal(j.version, 3);
    assert.equal(j.transparency.index, i);
    assert.equal(Buffer.from(j.transparency.tag, 'base64').length, 32);
    assert.equal(decodeNote(j.transparency.checkpoint).signatures.length, 1);
    const v = verify(b);
    assert.equal(v.status, 0, JSON.stringify(v));
    assert.match(v.checks.find((c) => c.name === 'log-checkpoint')!.detail, /log-signed only, no witness cosignature/);
    assert.match(v.checks.find((c) => c.name === 'log-inclusion')!.detail, new RegExp(`transaction ${txids[i]} is leaf ${i} of the log's tree of size \\d+ \\(a card-tagged entry\\)`));
  }
  // The same proof with the leaf index from the checkpoint made at that commit: the tree then held it last.
  const first = JSON.parse(readFileSync(bundles[0]!, 'utf8'));
  assert.equal(decodeSignedCheckpoint(first.transparency.checkpoint).checkpoint.size, 1);
});

test('attack: a receipt whose card tag was changed is not the leaf in the log (log-inclusion, exit 1)', () => {
  const j = JSON.parse(readFileSync(bundles[0]!, 'utf8'));
  const tag = Buffer.from(j.transparency.tag, 'base64');
  tag[5]! ^= 1;
  j.transparency.tag = tag.toString('base64');
  writeFileSync(tmp('tag.json'), JSON.stringify(j, null, 2));
  const v = verify(tmp('tag.json'));
  assert.equal(v.status, 1);
  assert.deepEqual(v.failures.map((f) => f.name), ['log-inclusion']);
  assert.match(v.failures[0]!.detail, /is not proven in the log: inclusion proof for leaf 0 does not lead to the root/);
  // Dropping the tag (claiming a version 1 leaf) is refused the same way; the version must follow the field.
  delete j.transparency.tag;
  writeFileSync(tmp('untagged.json'), JSON.stringify(j, null, 2));
  const r = qtm(['verify', tmp('untagged.json'), '--trust', caPem(), '--log-key', vkey]);
  assert.equal(r.status, 2);
  assert.match(r.stdout + r.stderr, /version 3 requires transparency.tag/);
  j.version = 2;
  writeFileSync(tmp('untagged.json'), JSON.stringify(j, null, 2));
  assert.deepEqual(verify(tmp('untagged.json')).failures.map((f) => f.name), ['log-inclusion']);
});

test('every signed transaction is a leaf; qtm log prove adds the proof to an older bundle and qtm verify --log-key accepts it', () => {
  const j = prove(withoutProof(bundles[1]!, 'legacy1.json'), tmp('logged.json'));
  assert.equal(j.version, 3);
  assert.equal(j.transparency.index, 1);
  assert.equal(j.transparency.tag, JSON.parse(readFileSync(bundles[1]!, 'utf8')).transparency.tag, 'the tag comes from the log');
  const v = verify(tmp('logged.json'));
  assert.equal(v.status, 0, JSON.stringify(v));
  assert.deepEqual(v.checks.filter((c) => c.name.startsWith('log-')).map((c) => [c.name, c.ok]), [['log-checkpoint', true], ['log-inclusion', true]]);
  // A known index skips the scan; a wrong one is refused.
  assert.equal(prove(bundles[1]!, tmp('indexed.json'), ['--index', '1']).transparency.index, 1);
  const wrong = qtm(['log', 'prove', bundles[1]!, '--log', www, '--log-key', vkey, '--index', '0']);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /is not leaf 0 of log shop.example\/log/);
  assert.equal(qtm(['log', 'prove', bundles[1]!, '--log', www, '--log-key', vkey, '--index', '-1']).status, 2);
  // Without --log-key the proof is reported as unchecked, and the bundle still verifies.
  const plain = qtm(['verify', tmp('logged.json'), '--trust', caPem()]);
  assert.equal(plain.status, 0, plain.stderr);
});

test('attack: a tampered inclusion proof is refused (log-inclusion, exit 1)', () => {
  const j = prove(bundles[0]!, tmp('t.json'));
  const h = Buffer.from(j.transparency.proof[0], 'base64');
  h[0]! ^= 0x80;
  j.transparency.proof[0] = h.toString('base64');
  writeFileSync(tmp('tampered.json'), JSON.stringify(j, null, 2));
  const v = verify(tmp('tampered.json'));
  assert.equal(v.status, 1);
  assert.deepEqual(v.failures.map((f) => f.name), ['log-inclusion']);
  assert.match(v.failures[0]!.detail, /does not lead to the root/);
  // Another leaf's index with the right proof is refused too.
  const k = prove(bundles[0]!, tmp('t2.json'));
  k.transparency.index = 2;
  writeFileSync(tmp('moved.json'), JSON.stringify(k, null, 2));
  assert.deepEqual(verify(tmp('moved.json')).failures.map((f) => f.name), ['log-inclusion']);
});

test('attack: a checkpoint signed by another key under the log\'s name is refused (log-checkpoint, exit 1)', () => {
  const j = prove(bundles[2]!, tmp('c.json'));
  const cp = decodeSignedCheckpoint(j.transparency.checkpoint).checkpoint;
  const impostor = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 0x42) })));
  j.transparency.checkpoint = signCheckpoint(cp, impostor);
  writeFileSync(tmp('impostor.json'), JSON.stringify(j, null, 2));
  const v = verify(tmp('impostor.json'));
  assert.equal(v.status, 1);
  assert.deepEqual(v.failures.map((f) => f.name), ['log-checkpoint']);
  assert.match(v.failures[0]!.detail, /no signature by a known key \(shop.example\/log\+[0-9a-f]{8}\)/);
});

test('attack: a receipt without an inclusion proof fails when the log key is required (exit 1); a bad key file is unusable (exit 2)', () => {
  const legacy = withoutProof(bundles[0]!, 'legacy0.json');
  assert.equal(qtm(['verify', legacy, '--trust', caPem()]).status, 0, 'a version 1 bundle still verifies');
  const v = verify(legacy);
  assert.equal(v.status, 1);
  assert.deepEqual(v.failures.map((f) => f.name), ['log-inclusion']);
  assert.match(v.failures[0]!.detail, /carries no inclusion proof/);
  const bad = qtm(['verify', bundles[0]!, '--trust', caPem(), '--log-key', 'shop.example/log+00000000+AAAA']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /vkey: /);
});

/** A copy of the log rewritten by its operator (same key): entries rebuilt from the store without one transaction, or with one replaced. */
async function forgedLog(name: string, leaves: { transactionId: number; package: Buffer }[]): Promise<string> {
  const dir = tmp(name);
  const signer = ed25519NoteSigner(readNoteKey(join(keys, 'log'), PASS, SIG_TYPE_ED25519));
  // The operator has the log's tag secret too: its forged log tags each leaf as the real one does.
  mkdirSync(dir, { recursive: true });
  cpSync(join(world.dir, 'tlog', 'tag-secret'), join(dir, 'tag-secret'));
  const log = LogDir.open(dir, signer, undefined, { tagCards: true });
  for (const l of leaves) await log.append(l);
  await log.close();
  return join(dir, 'www');
}

async function storeLeaves() {
  const store = LogStore.open(join(world.dir, 'store'), { readOnly: true });
  const leaves = await collect(signedLeaves(store));
  await store.close();
  return leaves;
}

test('witness: cosigns a log that grows consistently; verify --witness counts k of n', () => {
  const state = tmp('w1-state.json');
  const first = qtm(['log', 'witness', '--log', www, '--log-key', vkey, '--key', join(keys, 'w1'), '--state', state, '--out', tmp('cosigned.txt'), '--json'], { env });
  assert.equal(first.status, 0, first.stderr);
  assert.match(JSON.parse(first.stdout).status, /trusted on first use/);
  const again = qtm(['log', 'witness', '--log', www, '--log-key', vkey, '--key', join(keys, 'w1'), '--state', state, '--out', tmp('cosigned.txt')], { env });
  assert.equal(again.status, 0, again.stderr);
  prove(bundles[0]!, tmp('witnessed.json'), ['--checkpoint', tmp('cosigned.txt')]);
  assert.equal(verify(tmp('witnessed.json'), ['--witness', join(keys, 'w1.vkey')]).status, 0);
  const two = verify(tmp('witnessed.json'), ['--witness', join(keys, 'w1.vkey'), '--witness', join(keys, 'w2.vkey')]);
  assert.equal(two.status, 1);
  assert.deepEqual(two.failures.map((f) => f.name), ['log-witnesses']);
  assert.match(two.failures[0]!.detail, /1 of 2 witnesses cosigned the checkpoint \(2 required\)/);
  assert.equal(verify(tmp('witnessed.json'), ['--witness', join(keys, 'w1.vkey'), '--witness', join(keys, 'w2.vkey'), '--witness-quorum', '1']).status, 0);
});

test('attack: a cosignature by another key under the witness\'s name, or a tampered one, is refused (log-witnesses, exit 1)', () => {
  const j = prove(bundles[0]!, tmp('cw.json'), ['--checkpoint', tmp('cosigned.txt')]);
  const note = decodeNote(j.transparency.checkpoint);
  // The impostor witness: same name, its own key (so another key ID).
  const imp = qtm(['log', 'witness-key', '--out', tmp('imp'), '--name', 'witness.example/w1'], { env });
  assert.equal(imp.status, 0, imp.stderr);
  const own = qtm(['log', 'witness', '--log', www, '--log-key', vkey, '--key', tmp('imp'), '--state', tmp('imp-state.json')], { env });
  const impLine = decodeNote(own.stdout).signatures.find((s) => s.name === 'witness.example/w1')!;
  j.transparency.checkpoint = encodeNote({ text: note.text, signatures: [note.signatures[0]!, impLine] });
  writeFileSync(tmp('imp.json'), JSON.stringify(j, null, 2));
  const v = verify(tmp('imp.json'), ['--witness', join(keys, 'w1.vkey')]);
  assert.equal(v.status, 1);
  assert.match(v.failures.find((f) => f.name === 'log-witnesses')!.detail, /0 of 1 witnesses cosigned/);
  // A real cosignature with one byte changed.
  const w1 = note.signatures.find((s) => s.name === 'witness.example/w1')!;
  const sig = Buffer.from(w1.sig);
  sig[20]! ^= 1;
  j.transparency.checkpoint = encodeNote({ text: note.text, signatures: [note.signatures[0]!, { ...w1, sig }] });
  writeFileSync(tmp('badcosig.json'), JSON.stringify(j, null, 2));
  const b = verify(tmp('badcosig.json'), ['--witness', join(keys, 'w1.vkey')]);
  assert.equal(b.status, 1);
  assert.match(b.failures.find((f) => f.name === 'log-witnesses')!.detail, /cosignature by witness.example\/w1 does not verify/);
});

test('attack: a forked log (history rewritten, same size or grown) and a shrunk log are refused loudly by the witness (exit 1)', async () => {
  const leaves = await storeLeaves();
  const state = tmp('fork-state.json');
  assert.equal(qtm(['log', 'witness', '--log', www, '--log-key', vkey, '--key', join(keys, 'w2'), '--state', state], { env }).status, 0);
  const before = readFileSync(state, 'utf8');
  const rewritten = leaves.map((l, i) => (i === 1 ? { ...l, package: Buffer.concat([l.package, Buffer.from([0])]) } : l));
  const forkSame = await forgedLog('fork-same', rewritten);
  let r = qtm(['log', 'witness', '--log', forkSame, '--log-key', vkey, '--key', join(keys, 'w2'), '--state', state], { env });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /LOG FORKED: shop.example\/log signed two roots for size 3/);
  assert.equal(r.stdout, '', 'nothing is cosigned');
  const forkGrown = await forgedLog('fork-grown', [...rewritten, { transactionId: 999, package: Buffer.from('later'), cardKey: 'c'.repeat(64) }]);
  r = qtm(['log', 'witness', '--log', forkGrown, '--log-key', vkey, '--key', join(keys, 'w2'), '--state', state], { env });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /LOG FORKED: shop.example\/log at size 4 is not an extension of size 3/);
  // A receipt's proof is not moved to the forked log's checkpoint: it does not extend the receipt's.
  r = qtm(['log', 'prove', bundles[2]!, '--log', forkGrown, '--log-key', vkey, '--out', tmp('moved-to-fork.json')]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /LOG FORKED: shop.example\/log at size 4 is not an extension of size 3/);
  const shrunk = await forgedLog('shrunk', leaves.slice(0, 2));
  r = qtm(['log', 'witness', '--log', shrunk, '--log-key', vkey, '--key', join(keys, 'w2'), '--state', state], { env });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /LOG SHRANK: shop.example\/log signed size 2 after size 3/);
  assert.equal(readFileSync(state, 'utf8'), before, 'the witness state is unchanged by a refusal');
  // The monitor catches the same fork.
  const mstate = tmp('mon-state.json');
  assert.equal(qtm(['log', 'monitor', '--log', www, '--log-key', vkey, '--state', mstate], { env }).status, 0);
  r = qtm(['log', 'monitor', '--log', forkGrown, '--log-key', vkey, '--state', mstate], { env });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /LOG FORKED/);
});

test('attack: a dropped transaction is caught by qtm log audit and by the monitor watching the receipt (exit 1)', async () => {
  const leaves = await storeLeaves();
  const dropped = await forgedLog('dropped', leaves.filter((l) => l.transactionId !== txids[1]));
  let r = qtm(['log', 'audit', '--store', join(world.dir, 'store'), '--log', dropped, '--log-key', vkey, '--json']);
  assert.equal(r.status, 1, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.missingFromLog, [txids[1]]);
  assert.equal(j.ok, false);
  r = qtm(['log', 'audit', '--store', join(world.dir, 'store'), '--log', www, '--log-key', vkey]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /the log and the store hold the same transactions/);
  r = qtm(['log', 'monitor', '--log', dropped, '--log-key', vkey, '--state', tmp('mon2.json'), '--watch', bundles[1]!, '--watch', bundles[0]!, '--json']);
  assert.equal(r.status, 1, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.deepEqual(m.missing, [bundles[1]]);
  assert.deepEqual(m.found.map((f: { label: string }) => f.label), [bundles[0]]);
  // And the customer cannot get a proof for it.
  r = qtm(['log', 'prove', bundles[1]!, '--log', dropped, '--log-key', vkey]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`transaction ${txids[1]} is not leaf 1 of log shop.example/log at size 2`));
  r = qtm(['log', 'prove', withoutProof(bundles[1]!, 'legacy-dropped.json'), '--log', dropped, '--log-key', vkey]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`transaction ${txids[1]} is not in log shop.example/log at size 2`));
  // And the receipt's own proof (from the transaction) does not verify against the rewritten log's checkpoint.
  const j2 = JSON.parse(readFileSync(bundles[1]!, 'utf8'));
  j2.transparency.checkpoint = readFileSync(join(dropped, 'checkpoint'), 'utf8');
  writeFileSync(tmp('against-dropped.json'), JSON.stringify(j2, null, 2));
  const v = verify(tmp('against-dropped.json'));
  assert.equal(v.status, 1);
  assert.deepEqual(v.failures.map((f) => f.name), ['log-inclusion']);
  assert.match(v.failures[0]!.detail, new RegExp(`transaction ${txids[1]} is not proven in the log`));
});

test('a restarted server continues the same tree, and a served tile that lies is caught', async () => {
  await world.restart();
  const card = await newCard(world, 2);
  const r = await transact(world, card);
  const j = prove(r.bundleFile, tmp('after-restart.json'));
  assert.equal(j.transparency.index, 3);
  assert.equal(verify(tmp('after-restart.json')).status, 0);
  const mirror = tmp('mirror');
  cpSync(www, mirror, { recursive: true });
  const tile = join(mirror, 'tile', 'entries', '000.p', '4');
  const b = readFileSync(tile);
  b[b.length - 1]! ^= 1;
  writeFileSync(tile, b);
  const m = qtm(['log', 'monitor', '--log', mirror, '--log-key', vkey, '--state', tmp('mon3.json')]);
  assert.equal(m.status, 1);
  assert.match(m.stderr, /entry 3 does not hash to its tile/);
});

async function get(path: string): Promise<{ status: number; type: string | undefined; body: Buffer }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, world.url), { ca: world.ca.certificate.toString() }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the server serves the log under /log/ (checkpoint and canonical tile paths only), and a witness can work over HTTPS', async () => {
  const cp = await get('/log/checkpoint');
  assert.equal(cp.status, 200);
  assert.equal(cp.type, 'text/plain; charset=utf-8');
  assert.equal(cp.body.toString(), readFileSync(join(www, 'checkpoint'), 'utf8'));
  const size = decodeSignedCheckpoint(cp.body.toString()).checkpoint.size;
  const tile = await get(`/log/tile/0/000.p/${size}`);
  assert.equal(tile.status, 200);
  assert.equal(tile.type, 'application/octet-stream');
  assert.equal(tile.body.length, 32 * size);
  for (const bad of ['/log/../store/transactions.log', '/log/entries.bin', '/log/tile/0/0.p/1', '/log/%2e%2e/LOCK']) assert.equal((await get(bad)).status, 404, bad);
  // Asynchronously: the server runs in this process and must answer while the CLI waits.
  const { execFile } = await import('node:child_process');
  const r = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [QTM_BIN, 'log', 'witness', '--log', `${world.url}/log/`, '--log-key', vkey, '--key', join(keys, 'w2'), '--state', tmp('https-state.json'), '--json'],
      { env: { PATH: process.env.PATH ?? '', ...env, NODE_EXTRA_CA_CERTS: caPem() } },
      (err, stdout, stderr) => resolve({ status: err ? Number(err.code) : 0, stdout, stderr }));
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).size, size);
});

test('a crash between the store\'s signing and the log append: the restarted server appends the missing leaf', async () => {
  const signedBefore = (await storeLeaves()).length;
  await world.server.close();
  world.server = { ...world.server, close: async () => {} }; // closed already: restart() only starts
  // The crash: the last signing is in the store, its leaf neither in entries.bin nor in any checkpoint.
  const entries = join(world.dir, 'tlog', 'entries.bin');
  truncateSync(entries, (signedBefore - 1) * 65);
  rmSync(join(www, 'checkpoint'));
  await world.restart();
  const a = qtm(['log', 'audit', '--store', join(world.dir, 'store'), '--log', www, '--log-key', vkey, '--json']);
  assert.equal(a.status, 0, a.stdout + a.stderr);
  assert.equal(JSON.parse(a.stdout).size, signedBefore);
});

test('concurrent confirms from several cards: one sequencer, dense leaves, the store and the log equal', async () => {
  const cards = await Promise.all([1, 2, 3, 4].map(() => newCard(world, 2)));
  const before = (await storeLeaves()).length;
  const results = await Promise.all(cards.map((c) => transact(world, c)));
  assert.equal(results.length, 4);
  const a = qtm(['log', 'audit', '--store', join(world.dir, 'store'), '--log', www, '--log-key', vkey, '--json']);
  assert.equal(a.status, 0, a.stdout + a.stderr);
  const j = JSON.parse(a.stdout);
  assert.equal(j.size, before + 4);
  assert.deepEqual(j.duplicateLeaves, []);
});
