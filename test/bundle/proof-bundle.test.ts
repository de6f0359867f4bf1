import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { DecodeError } from '../../src/errors.js';
import { fixtureText } from '../helpers.js';

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

const mutate = (f: (j: Record<string, any>) => void) => {
  const j = JSON.parse(sample);
  f(j);
  return JSON.stringify(j);
};

for (const [name, text, pattern] of [
  ['not JSON', '{', /not JSON/],
  ['an array', '[]', /JSON object/],
  ['a wrong media type', mutate((j) => { j.mediaType = 'application/json'; }), /mediaType/],
  ['an unknown version', mutate((j) => { j.version = 3; }), /unsupported version 3/],
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
