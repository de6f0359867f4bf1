/** The strict JSON reader and the linear base64/PEM checks: properties against JSON.parse and the old regexes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkFields, findJsonProblem, MAX_JSON_DEPTH, parseStrictJson } from '../../src/protocol/strict-json.js';
import { decodeCanonicalBase64, isPemCertificate } from '../../src/protocol/base64.js';
import { DecodeError } from '../../src/errors.js';

/**
 * A JSON document as a tree whose objects are lists of entries (so they can hold a key twice),
 * written with random white space and random \u escapes in keys: the texts JSON.parse accepts.
 */
type Node = { t: 'leaf'; v: unknown } | { t: 'arr'; items: Node[] } | { t: 'obj'; entries: [string, Node][] };

const keyArb = fc.constantFrom('a', 'b', 'c', 'é', '__proto__', 'constructor', '', 'a"b', 'k\\', '\u2028', '😀');
const { node } = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ t: fc.constant('leaf' as const), v: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string(), fc.boolean(), fc.constant(null)) }),
    fc.record({ t: fc.constant('arr' as const), items: fc.array(tie('node'), { maxLength: 4 }) }),
    fc.record({ t: fc.constant('obj' as const), entries: fc.array(fc.tuple(keyArb, tie('node')), { maxLength: 4 }) }),
  ),
}));

const ws = fc.constantFrom('', ' ', '\n', '\t ', '\r\n  ');

/** Writes the tree; `esc` decides per key whether to spell every character as \uXXXX. */
function write(n: Node, space: string, esc: boolean): string {
  if (n.t === 'leaf') return JSON.stringify(n.v);
  if (n.t === 'arr') return `[${space}${n.items.map((x) => write(x, space, esc)).join(`${space},${space}`)}${space}]`;
  const key = (k: string) => (esc ? `"${Array.from({ length: k.length }, (_, i) => `\\u${k.charCodeAt(i).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(k));
  return `{${space}${n.entries.map(([k, v]) => `${key(k)}${space}:${space}${write(v, space, esc)}`).join(`${space},`)}${space}}`;
}

/** The model: the first object (in document order of its closing key) that repeats a key. */
function firstDuplicate(n: Node, path = ''): { key: string; path: string } | undefined {
  // Document order: scan entries left to right, descending into each value before the next key.
  if (n.t === 'leaf') return undefined;
  if (n.t === 'arr') {
    for (let i = 0; i < n.items.length; i++) {
      const d = firstDuplicate(n.items[i]!, `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  const seen = new Set<string>();
  for (const [k, v] of n.entries) {
    if (seen.has(k)) return { key: k, path };
    seen.add(k);
    const d = firstDuplicate(v, path ? `${path}.${k}` : k);
    if (d) return d;
  }
  return undefined;
}

test('property: on every valid duplicate-free document the strict reader agrees with JSON.parse', () => {
  fc.assert(fc.property(fc.jsonValue(), ws, (value, space) => {
    const text = JSON.stringify(value, null, space.length);
    assert.deepEqual(parseStrictJson(text, 'test'), JSON.parse(text));
  }), { numRuns: 2000 });
  fc.assert(fc.property(node, ws, fc.boolean(), (n, space, esc) => {
    fc.pre(firstDuplicate(n) === undefined);
    const text = write(n, space, esc);
    assert.deepEqual(parseStrictJson(text, 'test'), JSON.parse(text));
  }), { numRuns: 2000 });
});

test('property: a document with a repeated key is refused, naming the first repeated key and its object', () => {
  fc.assert(fc.property(node, ws, fc.boolean(), (n, space, esc) => {
    const dup = firstDuplicate(n);
    fc.pre(dup !== undefined);
    const text = write(n, space, esc);
    JSON.parse(text); // valid JSON all the same: only the duplicate is wrong
    assert.deepEqual(findJsonProblem(text), { kind: 'duplicate', ...dup });
    assert.throws(() => parseStrictJson(text, 'test'), (e: unknown) => e instanceof DecodeError && e.message.includes(`duplicate key ${JSON.stringify(dup!.key)}`));
  }), { numRuns: 3000 });
});

test('property: any string is a value or a DecodeError, never a crash', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
    try {
      parseStrictJson(text, 'test');
    } catch (e) {
      assert.ok(e instanceof DecodeError, String(e));
    }
  }), { numRuns: 3000 });
});

test('duplicates spelled differently are the same key; nesting past the cap is refused; deep is linear', () => {
  assert.throws(() => parseStrictJson('{"a":1,"\\u0061":2}', 'bundle'), /bundle: duplicate key "a" in the top-level object/);
  assert.throws(() => parseStrictJson('{"c":{"x":[{"k":1,"k":1}]}}', 'bundle'), /duplicate key "k" in "c.x\[0\]"/);
  assert.doesNotThrow(() => parseStrictJson('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH), 't'));
  assert.throws(() => parseStrictJson('['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1), 't'), /nested deeper than 32 levels/);
  const deep = '['.repeat(500_000) + ']'.repeat(500_000); // would overflow any parser recursing per level
  assert.throws(() => parseStrictJson(deep, 't'), /nested deeper/);
});

test('names from the input are quoted on one line and cut after 80 characters', () => {
  const long = 'k'.repeat(100_000);
  assert.throws(() => parseStrictJson(`{"${long}":1,"${long}":2}`, 't'), (e: unknown) => e instanceof DecodeError && e.message.length < 200 && e.message.includes(`"${'k'.repeat(80)}…"`));
  assert.throws(() => checkFields('t', { 'a\nb': 1 }, [], ''), (e: unknown) => e instanceof DecodeError && e.message === 't: unknown field "a\\nb"');
});

test('checkFields counts own keys only: prototype names are unknown fields, named with their path', () => {
  for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const v = parseStrictJson(`{"a":1,${JSON.stringify(key)}:{}}`, 't');
    assert.throws(() => checkFields('t', v, ['a'], 'certificates'), new RegExp(`unknown field "certificates\\.${key}"`));
  }
  assert.throws(() => checkFields('t', [], ['a'], 'content'), /"content" must be a JSON object/);
});

const OLD_PEM = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;
const OLD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const pemPiece = fc.constantFrom('-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----', '\r', '\n', 'MIIB', 'a+/=', '-', ' ', 'é', '');

test('property: the linear PEM check accepts exactly what the old regular expression did', () => {
  fc.assert(fc.property(fc.array(pemPiece, { maxLength: 8 }), (parts) => {
    const s = parts.join('');
    assert.equal(isPemCertificate(s), OLD_PEM.test(s), JSON.stringify(s));
  }), { numRuns: 20000 });
  fc.assert(fc.property(fc.string(), fc.constantFrom('\n', '\r\n', '\r\n\r\n'), (body, eol) => {
    const s = `-----BEGIN CERTIFICATE-----${eol}${body}-----END CERTIFICATE-----${eol}`;
    assert.equal(isPemCertificate(s), OLD_PEM.test(s), JSON.stringify(s));
  }), { numRuns: 5000 });
});

test('property: base64 is accepted exactly in its canonical spelling, a subset of the old regular expression', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    assert.deepEqual(decodeCanonicalBase64(Buffer.from(bytes).toString('base64')), Buffer.from(bytes));
  }));
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom('A', 'Q', 'z', '+', '/', '=', '\n', ' ', '-', '_', 'é') }), (s) => {
    const b = decodeCanonicalBase64(s);
    if (b) {
      assert.ok(OLD_BASE64.test(s));
      assert.equal(b.toString('base64'), s);
    } else {
      assert.ok(!OLD_BASE64.test(s) || Buffer.from(s, 'base64').toString('base64') !== s);
    }
  }), { numRuns: 20000 });
  assert.equal(decodeCanonicalBase64('QR=='), undefined, 'non-zero unused bits are a second spelling of "A"');
});

test('a 6 MiB field is checked in linear time, without recursion', () => {
  const big = 'A'.repeat(6 * 1024 * 1024);
  const t0 = performance.now();
  assert.equal(decodeCanonicalBase64(big)?.length, 4.5 * 1024 * 1024);
  assert.equal(isPemCertificate(`-----BEGIN CERTIFICATE-----\n${big}-----END CERTIFICATE-----\n`), true);
  assert.equal(findJsonProblem(JSON.stringify({ a: big, b: [big] })), undefined);
  assert.ok(performance.now() - t0 < 5000);
});
