import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { CARD_RECORD_LENGTH, decodeCardRecord, encodeCardRecord } from '../../src/protocol/card-record.js';
import { decodePackage } from '../../src/protocol/qtm-package.js';
import { fixture } from '../helpers.js';

test('v1 card record is exactly 29 bytes, as the patent computes: 1+4+4+20', () => {
  const bytes = readFileSync(fixture('vectors', 'card-record-v1.bin'));
  assert.equal(bytes.length, 29);
  assert.equal(CARD_RECORD_LENGTH[1], 29);
  const rec = decodeCardRecord(bytes);
  const pkg = decodePackage(readFileSync(fixture('vectors', 'package-v1.bin')));
  assert.equal(rec.transactionId, pkg.transactionId);
  assert.equal(rec.time, pkg.time);
  assert.deepEqual(Buffer.from(rec.contentId), Buffer.from(pkg.contentId));
  assert.deepEqual(encodeCardRecord(rec), bytes);
});

test('v2 card record vector: 50 bytes, server ID prefix and priority at their offsets', () => {
  const bytes = readFileSync(fixture('vectors', 'card-record-v2.bin'));
  assert.equal(bytes.length, 50);
  const rec = decodeCardRecord(bytes);
  const pkg = decodePackage(readFileSync(fixture('vectors', 'package-v2.bin')));
  assert.deepEqual(Buffer.from(rec.serverIdPrefix!), Buffer.from(pkg.serverId.subarray(0, 8)));
  assert.equal(rec.priority, 5);
  assert.equal(bytes[49], 5);
  assert.deepEqual(bytes.subarray(41, 49), Buffer.from(pkg.serverId.subarray(0, 8)));
  assert.deepEqual(encodeCardRecord(rec), bytes);
});

test('an empty slot, an unknown version, truncation and trailing bytes are typed errors', () => {
  assert.throws(() => decodeCardRecord(new Uint8Array(50)), /empty slot/);
  assert.throws(() => decodeCardRecord(Uint8Array.of(9, ...new Uint8Array(28))), /unknown version 9/);
  const v1 = readFileSync(fixture('vectors', 'card-record-v1.bin'));
  for (let n = 0; n < v1.length; n++) assert.throws(() => decodeCardRecord(v1.subarray(0, n)), DecodeError);
  assert.throws(() => decodeCardRecord(Buffer.concat([v1, Buffer.of(1)])), /trailing/);
});

test('property: decode(encode(r)) == r and random bytes only raise DecodeError', () => {
  const rec = fc.oneof(
    fc.record({ version: fc.constant(1 as const), transactionId: fc.nat({ max: 0xffffffff }), time: fc.nat({ max: 0xffffffff }), contentId: fc.uint8Array({ minLength: 20, maxLength: 20 }) }),
    fc.record({
      version: fc.constant(2 as const), transactionId: fc.nat({ max: 0xffffffff }), time: fc.nat({ max: 0xffffffff }),
      contentId: fc.uint8Array({ minLength: 32, maxLength: 32 }), serverIdPrefix: fc.uint8Array({ minLength: 8, maxLength: 8 }), priority: fc.nat({ max: 255 }),
    }),
  );
  fc.assert(fc.property(rec, (r) => {
    const bytes = encodeCardRecord(r);
    assert.equal(bytes.length, CARD_RECORD_LENGTH[r.version]);
    assert.deepEqual(encodeCardRecord(decodeCardRecord(bytes)), bytes);
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
    try {
      decodeCardRecord(bytes);
    } catch (e) {
      assert.ok(e instanceof DecodeError);
    }
  }), { numRuns: 3000 });
});
