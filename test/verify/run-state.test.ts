/**
 * The state file of a resumable `qtm verify` archive run (src/verify/run-state.ts) is a decoder of
 * a file anyone with write access to it may have changed: it is decoded strictly, every wrong field
 * named, and it never throws anything but a DecodeError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { decodeState, encodeState, runKey, type RunState } from '../../src/verify/run-state.js';

const stateArb: fc.Arbitrary<RunState> = fc
  .record({
    run: fc.stringMatching(/^[0-9a-f]{64}$/),
    valid: fc.nat(1e6), invalid: fc.nat(1e6), unusable: fc.nat(1e6),
    legacyShare: fc.double({ min: 0, max: 1, noNaN: true }), internalShare: fc.double({ min: 0, max: 1, noNaN: true }),
    last: fc.string({ minLength: 1, maxLength: 200 }),
    seconds: fc.double({ min: 0, max: 1e7, noNaN: true }),
    runs: fc.integer({ min: 1, max: 1000 }),
    updated: fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
  })
  .map((r) => {
    const done = r.valid + r.invalid + r.unusable;
    return {
      run: r.run, done, last: done === 0 ? null : r.last,
      counts: { valid: r.valid, invalid: r.invalid, unusable: r.unusable, legacy: Math.floor((r.valid + r.invalid) * r.legacyShare), internal: Math.floor(r.unusable * r.internalShare) },
      seconds: r.seconds, runs: r.runs, updated: r.updated.toISOString(),
    };
  });

test('state file: every state decodes to itself after encoding', () => {
  fc.assert(fc.property(stateArb, (s) => {
    assert.deepEqual(decodeState(encodeState(s)), s);
  }), { numRuns: 300 });
});

test('state file: any change to a field is either still a consistent state or a DecodeError naming a field', () => {
  const json = fc.oneof(fc.integer(), fc.double(), fc.string(), fc.boolean(), fc.constant(null), fc.constant(-1), fc.constant(1.5), fc.array(fc.nat(), { maxLength: 2 }), fc.dictionary(fc.string(), fc.nat(), { maxKeys: 2 }));
  const field = fc.constantFrom('format', 'version', 'run', 'done', 'last', 'counts', 'seconds', 'runs', 'updated', 'counts.valid', 'counts.invalid', 'counts.unusable', 'counts.legacy', 'counts.internal', 'extra', 'counts.extra');
  fc.assert(fc.property(stateArb, field, json, fc.boolean(), (s, f, v, remove) => {
    const obj = JSON.parse(encodeState(s)) as Record<string, any>;
    const [outer, inner] = f.split('.') as [string, string | undefined];
    const target = inner ? obj[outer] : obj;
    const key = inner ?? outer;
    if (remove) delete target[key];
    else target[key] = v;
    try {
      const back = decodeState(JSON.stringify(obj));
      // Accepted: then it is a consistent state that encodes back to what was read.
      assert.equal(back.counts.valid + back.counts.invalid + back.counts.unusable, back.done);
      assert.deepEqual(decodeState(encodeState(back)), back);
    } catch (err) {
      assert.ok(err instanceof DecodeError, `not a DecodeError: ${String(err)}`);
      assert.match(err.message, /^verify state: /);
      assert.match(err.message, /"[a-z.]+"|unknown field|not JSON|the top level/, err.message);
    }
  }), { numRuns: 1000 });
});

test('state file: arbitrary text never throws anything but a DecodeError', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
    try {
      decodeState(text);
    } catch (err) {
      assert.ok(err instanceof DecodeError, `not a DecodeError: ${String(err)}`);
    }
  }), { numRuns: 1000 });
});

test('state file: named errors for the cases a person would meet', () => {
  const good = JSON.parse(encodeState({ run: 'a'.repeat(64), done: 2, last: '/a/b.json', counts: { valid: 1, invalid: 0, unusable: 1, legacy: 0, internal: 1 }, seconds: 1.5, runs: 1, updated: '2026-12-02T00:00:00.000Z' }));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...good, done: 3 }, /"counts" valid \+ invalid \+ unusable must equal "done"/],
    [{ ...good, last: null }, /"last" must name bundle "done" - 1/],
    [{ ...good, version: 2 }, /unsupported "version" 2/],
    [{ ...good, run: 'xyz' }, /"run" must be 64 lowercase hex digits/],
    [{ ...good, counts: { ...good.counts, internal: 2 } }, /"counts.internal" is part of "counts.unusable"/],
    [{ ...good, seconds: -1 }, /"seconds" must be a non-negative number/],
    [{ ...good, more: 1 }, /unknown field "more"/],
  ];
  for (const [obj, re] of cases) assert.throws(() => decodeState(JSON.stringify(obj)), (e: Error) => e instanceof DecodeError && re.test(e.message), JSON.stringify(obj));
  assert.throws(() => decodeState(JSON.stringify(good).slice(0, 40)), /verify state: not JSON/);
  assert.throws(() => decodeState(`{"done":1,"done":2}`), /duplicate key "done"/);
  assert.notEqual(runKey({ a: 1, b: 2 }), runKey({ a: 1, b: 3 }));
  assert.equal(runKey({ a: 1, b: 2 }), runKey({ b: 2, a: 1 }), 'the order of the parts does not matter');
});
