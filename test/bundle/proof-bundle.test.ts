import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { DecodeError } from '../../src/errors.js';
import { fixtureText } from '../helpers.js';
import { signCheckpoint } from '../../src/tlog/checkpoint.js';
import { decodeSkey, ed25519NoteSigner, encodeSkey } from '../../src/tlog/note.js';

const sample = fixtureText('bundles', 'sample-v2.json');

test('the fixture bundle round-trips byte for byte', () => {
  assert.equal(encodeBundle(decodeBundle(sample)), sample);
});

test('a bundle without content (detached) round-trips', () => {
  const b = decodeBundle(sample);
  const { content: _c, ...detached } = b;
  const text = encodeBundle(detached);
  assert.equal(JSON.parse(text).content, undefined);
  assert.equal(decodeBundle(text).content, undefined);
});

/** A well-formed transparency object (a signed checkpoint of size 2, leaf 1). */
function tproof(): Record<string, unknown> {
  const signer = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 1) })));
  return { index: 1, proof: [Buffer.alloc(32, 9).toString('base64')], checkpoint: signCheckpoint({ origin: 'shop.example/log', size: 2, root: Buffer.alloc(32, 7), extensions: [] }, signer) };
}

test('a version 3 bundle (card-tagged leaf) round-trips byte for byte; the version follows the tag', () => {
  const b = decodeBundle(sample);
  const tagged = encodeBundle({ ...b, transparency: { index: 1, proof: [Buffer.alloc(32, 9)], checkpoint: tproof().checkpoint as string, tag: Buffer.alloc(32, 5) } });
  const j = JSON.parse(tagged);
  assert.equal(j.version, 3);
  assert.equal(j.transparency.tag, Buffer.alloc(32, 5).toString('base64'));
  assert.equal(encodeBundle(decodeBundle(tagged)), tagged);
  const { tag: _t, ...untagged } = decodeBundle(tagged).transparency!;
  assert.equal(JSON.parse(encodeBundle({ ...b, transparency: untagged })).version, 2);
});

const mutate = (f: (j: Record<string, any>) => void) => {
  const j = JSON.parse(sample);
  f(j);
  return JSON.stringify(j);
};

for (const [name, text, pattern] of [
  ['not JSON', '{', /not JSON/],
  ['an array', '[]', /JSON object/],
  ['a wrong media type', mutate((j) => { j.mediaType = 'application/json'; }), /mediaType/],
  ['an unknown version', mutate((j) => { j.version = 4; }), /unsupported version 4 \(this qtm reads 1 to 3\)/],
  ['version 3 without a transparency proof', mutate((j) => { j.version = 3; }), /version 3 requires the transparency field/],
  ['version 3 with an untagged proof', mutate((j) => { j.version = 3; j.transparency = tproof(); }), /version 3 requires transparency.tag/],
  ['a card tag in version 2', mutate((j) => { j.version = 2; j.transparency = { ...tproof(), tag: Buffer.alloc(32).toString('base64') }; }), /transparency.tag requires version 3/],
  ['a card tag of 31 bytes', mutate((j) => { j.version = 3; j.transparency = { ...tproof(), tag: Buffer.alloc(31).toString('base64') }; }), /transparency.tag is not a base64 32-byte card tag/],
  ['version 2 without a transparency proof', mutate((j) => { j.version = 2; }), /version 2 requires the transparency field/],
  ['a transparency proof in version 1', mutate((j) => { j.transparency = { index: 0, proof: [], checkpoint: '' }; }), /transparency field requires version 2/],
  ['a transparency proof with an unknown field', mutate((j) => { j.version = 2; j.transparency = { index: 0, proof: [], checkpoint: '', extra: 1 }; }), /transparency: unknown field "extra"/],
  ['a transparency proof with a short hash', mutate((j) => { j.version = 2; j.transparency = { index: 0, proof: ['AAAA'], checkpoint: '' }; }), /transparency.proof\[0\] is not a base64 32-byte hash/],
  ['a transparency checkpoint that is not a note', mutate((j) => { j.version = 2; j.transparency = { index: 0, proof: [], checkpoint: 'o\n1\n' }; }), /transparency.checkpoint: signed note: /],
  ['an unknown field', mutate((j) => { j.extra = 1; }), /unknown field "extra"/],
  ['a package that is not base64', mutate((j) => { j.package = 'not base64!'; }), /package must be a base64/],
  ['missing certificates', mutate((j) => { delete j.certificates; }), /certificates must be an object/],
  ['an empty party B list', mutate((j) => { j.certificates.partyB = []; }), /partyB must be a non-empty list/],
  ['a non-PEM certificate', mutate((j) => { j.certificates.server = ['hello']; }), /server\[0\] is not a PEM/],
  ['content with another media type', mutate((j) => { j.content.mediaType = 'text/html'; }), /content.mediaType/],
] as const) {
  test(`decoder refuses ${name}`, () => {
    assert.throws(() => decodeBundle(text), (e: unknown) => e instanceof DecodeError && pattern.test(e.message));
  });
}

test('property: arbitrary JSON and arbitrary strings never crash the decoder', () => {
  fc.assert(fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
    try {
      decodeBundle(text);
    } catch (e) {
      assert.ok(e instanceof DecodeError, String(e));
    }
  }), { numRuns: 2000 });
});

test('property: removing or retyping any field of a real bundle gives DecodeError, never a crash', () => {
  const keys = Object.keys(JSON.parse(sample));
  fc.assert(fc.property(fc.constantFrom(...keys), fc.oneof(fc.constant(undefined), fc.integer(), fc.string(), fc.constant(null)), (key, value) => {
    const text = mutate((j) => { j[key] = value; });
    try {
      decodeBundle(text);
    } catch (e) {
      assert.ok(e instanceof DecodeError, String(e));
    }
  }));
});
