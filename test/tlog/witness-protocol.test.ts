import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { signCheckpoint } from '../../src/tlog/checkpoint.js';
import { cosignatureVerifier, cosigner } from '../../src/tlog/cosignature.js';
import { leafHash } from '../../src/tlog/hash.js';
import { MemoryTree, consistencyProof, treeRoot } from '../../src/tlog/merkle.js';
import { decodeNote, decodeSkey, decodeVkey, ed25519NoteSigner, encodeSkey, encodeVkey, verifyNote } from '../../src/tlog/note.js';
import { addCheckpoint, decodeAddCheckpoint, encodeAddCheckpoint } from '../../src/tlog/witness-protocol.js';

test('C2SP tlog-witness example request body decodes and re-encodes byte for byte', () => {
  const body = 'old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\n'
    + 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n'
    + '\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n'
    + '\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n';
  const r = decodeAddCheckpoint(body);
  assert.equal(r.oldSize, 20852014);
  assert.equal(r.proof.length, 4);
  assert.equal(r.parsed.checkpoint.size, 20852163);
  assert.equal(r.parsed.note.signatures.length, 2);
  assert.equal(encodeAddCheckpoint(r), body);
});

const logSkey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 1) }));
const logVkey = decodeVkey(encodeVkey(logSkey));
const wSkey = decodeSkey(encodeSkey({ name: 'witness.example/w1', type: 4, seed: Buffer.alloc(32, 2) }), [4]);
const w = cosigner(wSkey, () => 1_800_000_000);
const tree = new MemoryTree();
for (let i = 0; i < 9; i++) tree.append(leafHash(Buffer.from(`e${i}`)));
const cp = (size: number, t = tree, signer = ed25519NoteSigner(logSkey)) => signCheckpoint({ origin: 'shop.example/log', size, root: Buffer.from(treeRoot(t, size)), extensions: [] }, signer);
const head = (size: number) => ({ origin: 'shop.example/log', size, root: Buffer.from(treeRoot(tree, size)).toString('base64') });
const req = (oldSize: number, proof: Buffer[], checkpoint: string) => decodeAddCheckpoint(encodeAddCheckpoint({ oldSize, proof, checkpoint }));

test('add-checkpoint: cosigns a first checkpoint and a consistent extension; the answer is cosignature lines', () => {
  const first = addCheckpoint(req(0, [], cp(5)), [logVkey], undefined, w);
  assert.equal(first.status, 200);
  const proof = consistencyProof(tree, 5, 9).map((p) => Buffer.from(p));
  const next = addCheckpoint(req(5, proof, cp(9)), [logVkey], head(5), w);
  assert.equal(next.status, 200);
  if (next.status !== 200) return;
  assert.deepEqual(next.head, head(9));
  const note = decodeNote(cp(9) + next.body);
  const v = cosignatureVerifier(decodeVkey(encodeVkey(wSkey), [4]));
  assert.deepEqual(verifyNote(note, [v]), [v]);
  assert.equal(v.lastTimestamp, 1_800_000_000);
});

test('add-checkpoint: each refusal with the spec\'s status code', () => {
  const proof = consistencyProof(tree, 5, 9).map((p) => Buffer.from(p));
  const stale = addCheckpoint(req(3, consistencyProof(tree, 3, 9).map((p) => Buffer.from(p)), cp(9)), [logVkey], head(5), w);
  assert.deepEqual(stale, { status: 409, body: '5\n', contentType: 'text/x.tlog.size' });
  const bad = proof.map((p) => Buffer.from(p));
  bad[0]![0]! ^= 1;
  assert.equal(addCheckpoint(req(5, bad, cp(9)), [logVkey], head(5), w).status, 422);
  assert.equal(addCheckpoint(req(9, [], cp(5)), [logVkey], head(9), w).status, 400);
  const forked = new MemoryTree();
  for (let i = 0; i < 9; i++) forked.append(leafHash(Buffer.from(i === 2 ? 'rewritten' : `e${i}`)));
  const f = addCheckpoint(req(9, [], cp(9, forked)), [logVkey], head(9), w);
  assert.equal(f.status, 409);
  assert.match(f.body, /LOG FORKED/);
  const grownFork = addCheckpoint(req(5, consistencyProof(forked, 5, 9).map((p) => Buffer.from(p)), cp(9, forked)), [logVkey], head(5), w);
  assert.equal(grownFork.status, 422);
  const impostor = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 7) })));
  assert.equal(addCheckpoint(req(5, proof, cp(9, tree, impostor)), [logVkey], head(5), w).status, 403);
  const other = decodeVkey(encodeVkey({ name: 'other.example/log', type: 1, publicKey: logVkey.publicKey }));
  assert.equal(addCheckpoint(req(5, proof, cp(9)), [other], head(5), w).status, 404);
});

test('property: the add-checkpoint decoder only ever returns or throws DecodeError', () => {
  const good = encodeAddCheckpoint({ oldSize: 5, proof: consistencyProof(tree, 5, 9).map((p) => Buffer.from(p)), checkpoint: cp(9) });
  fc.assert(fc.property(fc.string(), fc.nat(good.length), fc.nat(good.length), (junk, a, b) => {
    for (const body of [junk, good.slice(0, a) + junk + good.slice(b)]) {
      try { decodeAddCheckpoint(body); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
    }
  }), { numRuns: 1000 });
  assert.throws(() => decodeAddCheckpoint(`old 1\n${'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n'.repeat(64)}\n${cp(9)}`), /more than 63/);
  assert.throws(() => decodeAddCheckpoint(`old 01\n\n${cp(9)}`), /old <size>/);
});
