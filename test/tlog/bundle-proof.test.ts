import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { decodeTransparency, encodeTransparency, transparencyChecks, witnessCheck } from '../../src/tlog/bundle-proof.js';
import { signCheckpoint } from '../../src/tlog/checkpoint.js';
import { leafHash } from '../../src/tlog/hash.js';
import { encodeEntry } from '../../src/tlog/leaf.js';
import { MemoryTree, inclusionProof, treeRoot } from '../../src/tlog/merkle.js';
import { decodeSkey, decodeVkey, ed25519NoteSigner, encodeSkey, encodeVkey } from '../../src/tlog/note.js';

const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 3) }));
const logKey = decodeVkey(encodeVkey(skey));
const leaves = Array.from({ length: 9 }, (_, i) => ({ transactionId: i + 1, package: Buffer.from(`p${i}`) }));
const tree = new MemoryTree();
for (const l of leaves) tree.append(leafHash(encodeEntry(l)));
const checkpoint = signCheckpoint({ origin: 'shop.example/log', size: 9, root: Buffer.from(treeRoot(tree)), extensions: [] }, ed25519NoteSigner(skey));
const proofOf = (i: number) => ({ index: i, proof: inclusionProof(tree, i).map((p) => Buffer.from(p)), checkpoint });

test('the transparency field round-trips and its checks pass for every leaf', () => {
  for (let i = 0; i < 9; i++) {
    const t = decodeTransparency('proof bundle', JSON.parse(JSON.stringify(encodeTransparency(proofOf(i)))));
    assert.deepEqual(t, proofOf(i));
    assert.deepEqual(transparencyChecks(leaves[i]!, t, { logKey }).map((c) => [c.name, c.ok]), [['log-checkpoint', true], ['log-inclusion', true]]);
  }
});

test('the inclusion proof of one transaction does not prove another (the leaf is recomputed from the bundle)', () => {
  const checks = transparencyChecks(leaves[4]!, proofOf(3), { logKey });
  assert.deepEqual(checks.map((c) => [c.name, c.ok]), [['log-checkpoint', true], ['log-inclusion', false]]);
  assert.match(checks[1]!.detail, /^transaction 5 is not proven in the log/);
});

test('no witness cosignature: log-witnesses fails with the count', () => {
  const w = decodeVkey(encodeVkey({ name: 'witness.example/w1', type: 4, publicKey: Buffer.alloc(32, 9) }), [4]);
  const c = witnessCheck(checkpoint, [w], 1);
  assert.equal(c.ok, false);
  assert.equal(c.detail, '0 of 1 witnesses cosigned the checkpoint (1 required); `qtm log prove --witness` moves the proof to a checkpoint they cosigned');
});

test('property: the transparency decoder only ever returns or throws DecodeError naming the bundle field', () => {
  const good = encodeTransparency(proofOf(2));
  const mutated = fc.oneof(
    fc.anything(),
    fc.record({ index: fc.anything(), proof: fc.constant(good.proof), checkpoint: fc.constant(good.checkpoint) }),
    fc.record({ index: fc.constant(2), proof: fc.array(fc.oneof(fc.string(), fc.constant((good.proof as string[])[0]))), checkpoint: fc.constant(good.checkpoint) }),
    fc.record({ index: fc.constant(2), proof: fc.constant(good.proof), checkpoint: fc.string() }),
  );
  fc.assert(fc.property(mutated, (v) => {
    try {
      decodeTransparency('proof bundle', v);
    } catch (e) {
      assert.ok(e instanceof DecodeError && /^proof bundle: transparency/.test(e.message), String(e));
    }
  }), { numRuns: 1000 });
});

test('a card-tagged leaf\'s proof: the tag field byte for byte, and checked as part of the leaf', () => {
  const t = { ...proofOf(2), tag: Buffer.alloc(32, 0x5a) };
  const enc = encodeTransparency(t);
  assert.deepEqual(Object.keys(enc), ['index', 'proof', 'checkpoint', 'tag']);
  assert.equal(enc.tag, Buffer.alloc(32, 0x5a).toString('base64'));
  assert.deepEqual(decodeTransparency('proof bundle', JSON.parse(JSON.stringify(enc))), t);
  assert.throws(() => decodeTransparency('proof bundle', { ...enc, tag: Buffer.alloc(31).toString('base64') }), /transparency.tag is not a base64 32-byte card tag/);
  // The tree holds untagged leaves: a tag makes it another leaf, which is not proven.
  const checks = transparencyChecks(leaves[2]!, t, { logKey });
  assert.deepEqual(checks.map((c) => [c.name, c.ok]), [['log-checkpoint', true], ['log-inclusion', false]]);
});
