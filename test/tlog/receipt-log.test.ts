/**
 * Issue 12, the proof in every receipt and monitoring by card, through the real CLI against a
 * real server that logs its transactions and pushes each checkpoint to a witness:
 * - the receipt carries its leaf's proof against the log's checkpoint of that commit, and the
 *   client keeps the card's monitoring key; `qtm log prove --witness` later moves the proof to a
 *   checkpoint the witness cosigned (kept per size by the log), and `qtm verify` says which it has;
 * - `qtm log monitor --card-key` lists exactly the card's leaves: not another card's, and not those
 *   of a clone (Alice's serial, another key) the server was tricked into admitting; each run reads
 *   only the entries added since the last.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { Archive } from '../../src/client/archive.js';
import { cosigner } from '../../src/tlog/cosignature.js';
import { decodeSignedCheckpoint } from '../../src/tlog/checkpoint.js';
import { decodeEntry } from '../../src/tlog/leaf.js';
import { readNoteKey, writeNewNoteKey } from '../../src/tlog/log-key.js';
import { decodeNote, ed25519NoteSigner, encodeNote, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519 } from '../../src/tlog/note.js';
import { decodeEntryBundle, tilePath } from '../../src/tlog/tiles.js';
import { createWitnessServer } from '../../src/tlog/witness-server.js';
import { makeWorld, newCard, PIN, PUK, transact, type World } from '../e2e/env.js';
import { qtm } from '../helpers.js';

const PASS = 'receipt log test passphrase';
const env = { QTM_KEY_PASSPHRASE: PASS };
let keys: string;
let world: World;
let witness: Server;
let www: string;
let vkey: string;
const alice: { bundle: string; tx: number }[] = [];
const bob: { bundle: string; tx: number }[] = [];
const clone: { bundle: string; tx: number }[] = [];
let aliceArchive: string;
let cloneArchive: string;
let bobArchive: string;

const tmp = (name: string) => join(keys, name);
const caPem = () => join(world.dir, 'ca', 'ca.pem');
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));
const keyFile = (archive: string) => {
  const files = readdirSync(join(archive, 'monitor-keys'));
  assert.equal(files.length, 1, `one monitoring key in ${archive}: ${files.join(', ')}`);
  return join(archive, 'monitor-keys', files[0]!);
};

before(async () => {
  keys = mkdtempSync(join(tmpdir(), 'qtm-receipt-log-'));
  assert.equal(qtm(['log', 'init', '--out', tmp('log'), '--origin', 'shop.example/log'], { env }).status, 0);
  assert.equal(qtm(['log', 'witness-key', '--out', tmp('w1'), '--name', 'witness.example/w1'], { env }).status, 0);
  assert.equal(qtm(['log', 'witness-key', '--out', tmp('w2'), '--name', 'witness.example/w2'], { env }).status, 0);
  vkey = tmp('log.vkey');
  mkdirSync(tmp('w1-state'));
  witness = createWitnessServer({ logs: [(await import('../../src/tlog/log-key.js')).readVkeyFile(vkey)], cosigner: cosigner(readNoteKey(tmp('w1'), PASS, SIG_TYPE_COSIGNATURE_V1)), stateDir: tmp('w1-state') });
  await new Promise<void>((r) => witness.listen(0, '127.0.0.1', () => r()));
  const witnessUrl = `http://127.0.0.1:${(witness.address() as AddressInfo).port}/`;
  const signer = ed25519NoteSigner(readNoteKey(tmp('log'), PASS, SIG_TYPE_ED25519));
  world = await makeWorld(({ dir }) => ({ transparency: { dir: join(dir, 'tlog'), signer, witnesses: [witnessUrl] } }));
  www = join(world.dir, 'tlog', 'www');
  const a = await newCard(world, 4);
  const b = await newCard(world, 4);
  aliceArchive = join(world.dir, `archive-${a.issued.serial}`);
  bobArchive = join(world.dir, `archive-${b.issued.serial}`);
  for (const [card, list] of [[a, alice], [b, bob], [a, alice]] as const) {
    const r = await transact(world, card);
    list.push({ bundle: r.bundleFile, tx: r.transactionId });
  }
  // The clone: Alice's serial, personalised with another key by an insider; the server's login
  // register lost Alice's row, so it is admitted (test/attack/card-clone.test.ts).
  const cloneFile = join(world.dir, 'clone.card.json');
  FileStorage.create(cloneFile, 4);
  const image = json(cloneFile);
  image.serial = a.issued.serial;
  writeFileSync(cloneFile, JSON.stringify(image));
  await issueCard(new CardClient(InProcessTransport.forFile(cloneFile)), { ca: world.ca, sam: world.sam, register: IssuanceRegister.open(tmp('insider-register'), world.sam.kcv), holder: 'CN=Customer 1', pin: PIN, puk: PUK, slots: 4, profile: 'v2' });
  unlinkSync(join(world.dir, 'store', 'card-keys', a.issued.serial));
  await world.restart();
  cloneArchive = join(world.dir, 'archive-clone');
  const c = { client: new CardClient(InProcessTransport.forFile(cloneFile)), issued: { serial: a.issued.serial } } as unknown as Awaited<ReturnType<typeof newCard>>;
  const r = await transact(world, c, { archive: await Archive.open(cloneArchive) });
  clone.push({ bundle: r.bundleFile, tx: r.transactionId });
  // Wait (not a timed assertion) until the witness cosigned the checkpoint of the last commit.
  for (let i = 0; i < 500; i++) {
    const latest = (() => { try { return readFileSync(join(www, 'cosigned', 'latest'), 'utf8'); } catch { return ''; } })();
    if (latest && decodeSignedCheckpoint(latest).checkpoint.size === 4) break;
    await new Promise((res) => setTimeout(res, 20));
  }
});

after(async () => {
  await world?.close();
  await new Promise((r) => witness?.close(r));
  rmSync(keys, { recursive: true, force: true });
});

function monitor(state: string, cardKeys: string[], extra: string[] = []) {
  const r = qtm(['log', 'monitor', '--log', www, '--log-key', vkey, '--state', tmp(state), ...cardKeys.flatMap((k) => ['--card-key', k]), '--json', ...extra]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { size: number; newEntries: number; cards: { cardKey: string; leaves: number[]; new: number[] }[]; found: { label: string; index: number }[] };
}

const indexOf = (b: { bundle: string }) => json(b.bundle).transparency.index as number;

test('the monitor lists exactly each card\'s leaves: Alice\'s, not Bob\'s, not the clone\'s made with her serial', () => {
  const m = monitor('mon.json', [keyFile(aliceArchive), keyFile(bobArchive), keyFile(cloneArchive)]);
  assert.equal(m.size, 4);
  assert.deepEqual(m.cards.map((c) => c.leaves), [alice.map(indexOf), bob.map(indexOf), clone.map(indexOf)]);
  assert.deepEqual(alice.map(indexOf), [0, 2]);
  // The clone has Alice's serial but its own key, so its own monitoring key.
  assert.notEqual(readFileSync(keyFile(aliceArchive), 'utf8'), readFileSync(keyFile(cloneArchive), 'utf8'));
  const text = qtm(['log', 'monitor', '--log', www, '--log-key', vkey, '--state', tmp('mon-text.json'), '--card-key', keyFile(aliceArchive)]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /card [0-9a-f]{16}… \(.*\): 2 leaves \[0, 2\]/);
});

test('anyone without the key learns nothing: the public entries show no fingerprint and no repeated tag', () => {
  const entries = decodeEntryBundle(readFileSync(join(www, tilePath({ level: 'entries', index: 0, width: 4 }))), 4).map(decodeEntry);
  assert.ok(entries.every((e) => e.version === 2));
  const tags = entries.map((e) => e.tag!.toString('hex'));
  assert.equal(new Set(tags).size, 4, 'Alice\'s two leaves have unrelated tags');
  const fp = readFileSync(keyFile(aliceArchive), 'utf8').split(' ')[2]!;
  const all = readFileSync(join(www, tilePath({ level: 'entries', index: 0, width: 4 }))).toString('hex');
  assert.ok(!all.includes(fp) && !tags.includes(fp));
  // Another log's key for the same card finds nothing, and a key file for another log is refused.
  const forged = readFileSync(keyFile(aliceArchive), 'utf8').replace(/\S+\n$/, `${Buffer.alloc(32, 1).toString('base64')}\n`);
  writeFileSync(tmp('guess.key'), forged);
  assert.deepEqual(monitor('mon-guess.json', [tmp('guess.key')]).cards[0]!.leaves, []);
  writeFileSync(tmp('other-log.key'), forged.replace('shop.example/log', 'other.example/log'));
  const r = qtm(['log', 'monitor', '--log', www, '--log-key', vkey, '--state', tmp('mon-other.json'), '--card-key', tmp('other-log.key')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /is a monitoring key for log other.example\/log, not shop.example\/log/);
  writeFileSync(tmp('bad.key'), 'not a key\n');
  assert.equal(qtm(['log', 'monitor', '--log', www, '--log-key', vkey, '--state', tmp('mon-bad.json'), '--card-key', tmp('bad.key')]).status, 2);
});

test('the monitor is incremental: a second run reads only the entries added since', async () => {
  const state = 'mon-inc.json';
  assert.equal(monitor(state, [keyFile(aliceArchive)]).newEntries, 4);
  const again = monitor(state, [keyFile(aliceArchive)]);
  assert.equal(again.newEntries, 0);
  assert.deepEqual(again.cards[0]!.new, []);
  assert.deepEqual(again.cards[0]!.leaves, [0, 2]);
  const b = await newCard(world, 2);
  const r = await transact(world, b);
  const third = monitor(state, [keyFile(aliceArchive), keyFile(join(world.dir, `archive-${b.issued.serial}`))]);
  assert.equal(third.newEntries, 1);
  assert.deepEqual(third.cards[0]!.leaves, [0, 2]);
  // A card key new to the state reads the log from the start once.
  assert.deepEqual(third.cards[1]!.leaves, [json(r.bundleFile).transparency.index]);
  assert.equal(third.size, 5);
  // A tampered right edge in the state is caught against the signed root.
  const s = json(tmp(state));
  s.frontier[0] = Buffer.alloc(32).toString('base64');
  writeFileSync(tmp(state), JSON.stringify(s));
  const bad = qtm(['log', 'monitor', '--log', www, '--log-key', vkey, '--state', tmp(state)]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /the tree's right edge kept there does not give its root: the state file is damaged/);
});

test('qtm log prove --witness moves the receipt\'s proof to the checkpoint the witness cosigned; qtm verify says which it has', () => {
  const w1 = tmp('w1.vkey');
  const receipt = alice[0]!.bundle;
  const before = qtm(['verify', receipt, '--trust', caPem(), '--log-key', vkey, '--witness', w1, '--json']);
  assert.equal(before.status, 1, 'the receipt\'s own checkpoint is log-signed only');
  assert.match(JSON.parse(before.stdout).results[0].failures[0].detail, /0 of 1 witnesses cosigned the checkpoint \(1 required\); `qtm log prove --witness`/);
  const r = qtm(['log', 'prove', receipt, '--log', www, '--log-key', vkey, '--witness', w1, '--out', tmp('witnessed.json'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.index, 0);
  assert.equal(j.cosignatures, 1);
  assert.match(j.status, /grew from 1 to \d+, consistent|unchanged/);
  const up = json(tmp('witnessed.json'));
  assert.equal(up.version, 3);
  assert.equal(up.transparency.tag, json(receipt).transparency.tag);
  const v = qtm(['verify', tmp('witnessed.json'), '--trust', caPem(), '--log-key', vkey, '--witness', w1, '--json']);
  assert.equal(v.status, 0, v.stdout);
  assert.match(JSON.parse(v.stdout).results[0].checks.find((c: { name: string }) => c.name === 'log-witnesses').detail, /1 of 1 witnesses cosigned the checkpoint \(1 required\): witness.example\/w1/);
  const plain = qtm(['verify', tmp('witnessed.json'), '--trust', caPem(), '--log-key', vkey, '--json']);
  assert.match(JSON.parse(plain.stdout).results[0].checks.find((c: { name: string }) => c.name === 'log-checkpoint').detail, /with 1 other signature, not checked/);
  // Each cosigned size is kept: the checkpoint of the first commit too.
  assert.equal(decodeNote(readFileSync(join(www, 'cosigned', '1'), 'utf8')).signatures.length, 2);
});

test('attack: a quorum the witnesses did not give is refused by prove (exit 1, nothing written); a tampered cosignature by verify (exit 1)', () => {
  const r = qtm(['log', 'prove', alice[0]!.bundle, '--log', www, '--log-key', vkey, '--witness', tmp('w1.vkey'), '--witness', tmp('w2.vkey'), '--out', tmp('quorum.json')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the log's latest witnessed checkpoint is not enough: 1 of 2 witnesses cosigned/);
  assert.throws(() => readFileSync(tmp('quorum.json')));
  const j = json(tmp('witnessed.json'));
  const note = decodeNote(j.transparency.checkpoint);
  const sig = Buffer.from(note.signatures[1]!.sig);
  sig[20]! ^= 1;
  j.transparency.checkpoint = encodeNote({ text: note.text, signatures: [note.signatures[0]!, { ...note.signatures[1]!, sig }] });
  writeFileSync(tmp('bad-cosig.json'), JSON.stringify(j, null, 2));
  const v = qtm(['verify', tmp('bad-cosig.json'), '--trust', caPem(), '--log-key', vkey, '--witness', tmp('w1.vkey'), '--json']);
  assert.equal(v.status, 1);
  assert.deepEqual(JSON.parse(v.stdout).results[0].failures.map((f: { name: string }) => f.name), ['log-witnesses']);
});
