/**
 * Properties of the one strict decoding rule, for every decoder changed for issue 17: bundle,
 * server messages, TTP requests and answers. Unknown keys (prototype names included) are
 * refused with their path; duplicate keys are refused; nothing crashes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as M from '../../src/protocol/messages.js';
import { decodeBundle, MAX_BUNDLE_BYTES } from '../../src/bundle/proof-bundle.js';
import { decodeTtpAnswer, decodeTtpRequest } from '../../src/fair/ttp-messages.js';
import { parseStrictJson } from '../../src/protocol/strict-json.js';
import { connectionCap } from '../../src/http/server.js';
import { DecodeError } from '../../src/errors.js';
import { fixtureText } from '../helpers.js';

const sample = fixtureText('bundles', 'sample-v2.json');
const PROTO = ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__'];
const unknownKey = fc.oneof(fc.constantFrom(...PROTO), fc.string({ minLength: 1, maxLength: 8 }));
const anyValue = fc.oneof(fc.jsonValue(), fc.constant({}));

/** Valid messages of each decoder, as JSON text the way the wire carries them. */
const pem = JSON.parse(sample).certificates.server[0] as string;
const MESSAGES: [string, (j: unknown) => unknown, Record<string, unknown>][] = [
  ['order request', M.decodeOrderRequest, { items: [{ sku: 'PAPER-A4', quantity: 1 }] }],
  ['concept order', M.decodeConceptOrder, M.encodeConceptOrder({ orderId: 'o-1', content: Buffer.from('order\n') })],
  ['auth response', M.decodeAuthResponse, M.encodeAuthResponse({ certificates: [pem], nonce: Buffer.alloc(16), signature: Buffer.alloc(256) })],
  ['first message', M.decodeFirstMessage, M.encodeFirstMessage({ signature: Buffer.alloc(256), challenge: Buffer.alloc(16), slot: 1, priority: 0 })],
  ['third message', M.decodeThirdMessage, M.encodeThirdMessage({ transactionId: 1, proof: Buffer.alloc(8) })],
  ['TTP abort request', (j) => decodeTtpRequest('abort', j), { header: 'AAAA', deadline: 1, serverCertificates: [pem], cardCertificates: [pem], proof: 'AAAA' }],
  ['TTP answer', decodeTtpAnswer, { outcome: 'x', x: 'AAAA' }],
];

/** Paths of every object inside a value, "" for the top. */
function objectPaths(v: unknown, path = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => objectPaths(x, `${path}[${i}]`));
  if (typeof v !== 'object' || v === null) return [];
  return [path, ...Object.entries(v).flatMap(([k, x]) => objectPaths(x, path ? `${path}.${k}` : k))];
}

function at(v: any, path: string): any {
  return path === '' ? v : path.split(/\.|(?=\[)/).reduce((o, p) => (p.startsWith('[') ? o[Number(p.slice(1, -1))] : o[p]), v);
}

test('property: an extra key in any object of any message, prototype names included, is refused naming its path', () => {
  for (const [format, decoder, valid] of MESSAGES) {
    assert.doesNotThrow(() => decoder(parseStrictJson(JSON.stringify(valid), format)), format);
    fc.assert(fc.property(fc.constantFrom(...objectPaths(valid)), unknownKey, anyValue, (path, key, value) => {
      const copy = JSON.parse(JSON.stringify(valid));
      const target = at(copy, path);
      fc.pre(!Object.hasOwn(target, key));
      // Written as text, so "__proto__" is an own key as it is when a body arrives.
      Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
      const json = parseStrictJson(JSON.stringify(copy), format);
      assert.throws(() => decoder(json), (e: unknown) => e instanceof DecodeError && e.message.endsWith(`unknown field ${JSON.stringify(path ? `${path}.${key}` : key)}`), `${format} ${path}.${key}`);
    }), { numRuns: 300 });
  }
});

test('property: a TTP answer whose outcome is a prototype name is refused, never decoded as an abort', () => {
  fc.assert(fc.property(fc.constantFrom(...PROTO), anyValue, (outcome, value) => {
    assert.throws(() => decodeTtpAnswer({ outcome, token: 'AAAA', x: value }), /TTP answer: outcome must be "x", "y" or "aborted"/);
  }));
});

test('property: any key added to content or certificates of a genuine bundle is refused naming its path', () => {
  fc.assert(fc.property(fc.constantFrom('content', 'certificates', ''), unknownKey, anyValue, (path, key, value) => {
    const j = JSON.parse(sample);
    const target = path ? j[path] : j;
    fc.pre(!Object.hasOwn(target, key));
    Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
    assert.throws(() => decodeBundle(JSON.stringify(j)), (e: unknown) => e instanceof DecodeError && e.message === `proof bundle: unknown field ${JSON.stringify(path ? `${path}.${key}` : key)}`);
  }), { numRuns: 500 });
});

test('property: repeating any key of a genuine bundle, at any level, is refused naming the key', () => {
  const j = JSON.parse(sample);
  const places = objectPaths(j).flatMap((p) => Object.keys(at(j, p)).map((k) => [p, k] as const));
  fc.assert(fc.property(fc.constantFrom(...places), anyValue, fc.boolean(), ([path, key], value, before) => {
    // Insert `"key": value` textually into the object at `path`, first or last.
    const marker = '"__qtm_marker__"';
    const copy = JSON.parse(sample);
    const target = at(copy, path);
    const entries = Object.entries(target);
    for (const k of Object.keys(target)) delete target[k];
    if (before) target.__qtm_marker__ = 0;
    for (const [k, v] of entries) target[k] = v;
    if (!before) target.__qtm_marker__ = 0;
    const text = JSON.stringify(copy).replace(`${marker}:0`, () => `${JSON.stringify(key)}:${JSON.stringify(value)}`);
    assert.throws(() => decodeBundle(text), (e: unknown) => e instanceof DecodeError && e.message.includes(`duplicate key "${key}" in ${path ? `"${path}"` : 'the top-level object'}`));
  }), { numRuns: 500 });
});

test('property: arbitrary bytes up to and past the cap never crash the bundle decoder', () => {
  fc.assert(fc.property(fc.string({ maxLength: 64 }), fc.nat({ max: 3 }), (s, k) => {
    const text = k === 3 ? s + ' '.repeat(MAX_BUNDLE_BYTES) : s;
    try {
      decodeBundle(text);
    } catch (e) {
      assert.ok(e instanceof DecodeError, String(e));
      if (text.length > MAX_BUNDLE_BYTES) assert.match(e.message, /over 524288 characters/);
    }
  }), { numRuns: 300 });
});

test('the connection cap leaves 64 descriptors to the server and stays within 16..4096', () => {
  assert.equal(connectionCap(256), 192);
  assert.equal(connectionCap(1024), 960);
  assert.equal(connectionCap(20000), 4096);
  assert.equal(connectionCap(50), 16);
  fc.assert(fc.property(fc.integer({ min: 80, max: 4160 }), (n) => connectionCap(n) === n - 64));
});
