import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { leafHash, nodeHash, emptyRoot } from '../../src/tlog/hash.js';
import {
  MemoryTree, MerkleProofError, consistencyProof, inclusionProof, treeRoot, verifyConsistency, verifyInclusion,
} from '../../src/tlog/merkle.js';
import { fixture } from '../helpers.js';

const VECTORS = fixture('tlog', 'rfc6962-merkle', 'testdata');
const b64 = (s: string) => Buffer.from(s, 'base64');

function vectorFiles(kind: string): string[] {
  return (readdirSync(join(VECTORS, kind), { recursive: true }) as string[])
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(VECTORS, kind, f))
    .sort();
}

test('RFC 6962 inclusion vectors (transparency-dev/merkle): every case as expected', () => {
  const files = vectorFiles('inclusion');
  assert.equal(files.length, 98);
  for (const f of files) {
    const v = JSON.parse(readFileSync(f, 'utf8'));
    const proof = (v.proof ?? []).map(b64);
    let err: unknown;
    try { verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), proof, b64(v.root)); } catch (e) { err = e; }
    if (err !== undefined) assert.ok(err instanceof MerkleProofError, `${f}: ${String(err)}`);
    assert.equal(err !== undefined, v.wantErr, `${f} (${v.desc}): ${String(err)}`);
  }
});

test('RFC 6962 consistency vectors (transparency-dev/merkle): every case as expected', () => {
  const files = vectorFiles('consistency');
  assert.equal(files.length, 98);
  for (const f of files) {
    const v = JSON.parse(readFileSync(f, 'utf8'));
    const proof = (v.proof ?? []).map(b64);
    let err: unknown;
    try { verifyConsistency(v.size1, v.size2, proof, b64(v.root1), b64(v.root2)); } catch (e) { err = e; }
    if (err !== undefined) assert.ok(err instanceof MerkleProofError, `${f}: ${String(err)}`);
    assert.equal(err !== undefined, v.wantErr, `${f} (${v.desc}): ${String(err)}`);
  }
});

/** RFC 9162 MTH written straight from the definition, as an oracle. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return emptyRoot();
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

const entry = (i: number) => Buffer.from(`entry ${i}`);

function build(n: number): { tree: MemoryTree; leaves: Buffer[] } {
  const tree = new MemoryTree();
  const leaves: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const h = leafHash(entry(i));
    leaves.push(h);
    assert.equal(tree.append(h), i);
  }
  return { tree, leaves };
}

test('the RFC 6962 reference tree of 8 leaves has the vectors\' root', () => {
  // The happy-path inclusion vector for leaf 0 of size 8 comes from the RFC 6962 test data.
  const v = JSON.parse(readFileSync(join(VECTORS, 'inclusion', '1', 'happy-path.json'), 'utf8'));
  const data = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
  const { tree } = { tree: new MemoryTree() };
  for (const d of data) tree.append(leafHash(Buffer.from(d, 'hex')));
  assert.equal(Buffer.from(treeRoot(tree)).toString('base64'), v.root);
  assert.deepEqual(inclusionProof(tree, 0, 8).map((p) => Buffer.from(p).toString('base64')), v.proof);
});

test('the empty tree root is SHA-256 of nothing', () => {
  assert.equal(treeRoot(new MemoryTree()).toString(), emptyRoot().toString());
  assert.equal(emptyRoot().toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('roots, inclusion and consistency proofs made from the tree verify at every size up to 70', () => {
  const { tree, leaves } = build(70);
  for (let n = 1; n <= 70; n++) {
    const root = treeRoot(tree, n);
    assert.deepEqual(Buffer.from(root), mth(leaves.slice(0, n)), `root of ${n}`);
    for (let i = 0; i < n; i++) verifyInclusion(i, n, leaves[i]!, inclusionProof(tree, i, n), root);
    for (let m = 1; m <= n; m++) verifyConsistency(m, n, consistencyProof(tree, m, n), treeRoot(tree, m), root);
  }
});

test('property: a one-bit change anywhere in an inclusion proof is refused', () => {
  const { tree, leaves } = build(300);
  fc.assert(fc.property(fc.integer({ min: 2, max: 300 }), fc.nat(), fc.nat(), fc.nat(255), (n, i0, which, bit) => {
    const i = i0 % n;
    const proof = inclusionProof(tree, i, n).map((p) => Buffer.from(p));
    const root = treeRoot(tree, n);
    const k = which % (proof.length + 2);
    if (k < proof.length) proof[k]![bit % 32]! ^= 1 << (bit % 8);
    else if (k === proof.length) proof.push(Buffer.alloc(32));
    else proof.pop();
    assert.throws(() => verifyInclusion(i, n, leaves[i]!, proof, root), MerkleProofError);
  }), { numRuns: 300 });
});

test('property: a consistency proof to a forked tree (one leaf changed) is refused', () => {
  const { tree } = build(200);
  fc.assert(fc.property(fc.integer({ min: 1, max: 199 }), fc.integer({ min: 2, max: 200 }), fc.nat(), (m0, n, j0) => {
    const m = Math.min(m0, n - 1);
    const j = j0 % m; // a leaf the old tree already had
    const forked = new MemoryTree();
    for (let i = 0; i < n; i++) forked.append(leafHash(i === j ? Buffer.from('rewritten') : entry(i)));
    assert.throws(
      () => verifyConsistency(m, n, consistencyProof(forked, m, n), treeRoot(tree, m), treeRoot(forked, n)),
      /forked/,
    );
  }), { numRuns: 200 });
});

test('shrinks, size 0 and proofs past the tree are refused', () => {
  const { tree } = build(10);
  assert.throws(() => verifyConsistency(5, 4, [], treeRoot(tree, 5), treeRoot(tree, 4)), /shrank/);
  assert.throws(() => verifyConsistency(0, 4, [], emptyRoot(), treeRoot(tree, 4)), /size 0/);
  assert.throws(() => inclusionProof(tree, 10, 10), RangeError);
  assert.throws(() => treeRoot(tree, 11), RangeError);
  assert.throws(() => verifyInclusion(3, 3, leafHash(entry(3)), [], treeRoot(tree, 3)), /not in a tree of size 3/);
});

test('MemoryTree.truncate: a tree cut to k leaves and grown again is the tree of those leaves (property)', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 40 }), (n, cutAt, more) => {
    const k = Math.min(cutAt, n);
    const { tree, leaves } = build(n);
    tree.truncate(k);
    assert.equal(tree.size, k);
    const extra = Array.from({ length: more }, (_, i) => leafHash(Buffer.from(`other ${i}`)));
    for (const h of extra) tree.append(h);
    const fresh = new MemoryTree();
    for (const h of [...leaves.slice(0, k), ...extra]) fresh.append(h);
    assert.deepEqual(Buffer.from(treeRoot(tree)), Buffer.from(treeRoot(fresh)));
    for (let i = 0; i < tree.size; i += 7) assert.deepEqual(inclusionProof(tree, i).map((p) => Buffer.from(p)), inclusionProof(fresh, i).map((p) => Buffer.from(p)));
  }), { numRuns: 200 });
  assert.throws(() => new MemoryTree().truncate(1), RangeError);
});
