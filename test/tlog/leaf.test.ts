import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { commitment, decodeEntry, encodeEntry } from '../../src/tlog/leaf.js';

test('the entry is 0x01 || SHA-256("qtm/tlog-leaf/v1" 0x00 || u64 BE transaction ID || package)', () => {
  const pkg = Buffer.from('a QTM package');
  const expected = createHash('sha256').update(Buffer.concat([Buffer.from('qtm/tlog-leaf/v1\0'), Buffer.from('0000000000000102', 'hex'), pkg])).digest();
  assert.deepEqual(encodeEntry({ transactionId: 258, package: pkg }), Buffer.concat([Buffer.from([1]), expected]));
  assert.notDeepEqual(commitment({ transactionId: 259, package: pkg }), expected);
  assert.throws(() => commitment({ transactionId: -1, package: pkg }), RangeError);
});

test('property: entries decode only from 33 bytes of version 1', () => {
  fc.assert(fc.property(fc.nat(), fc.uint8Array({ maxLength: 64 }), (id, pkg) => {
    assert.deepEqual(decodeEntry(encodeEntry({ transactionId: id, package: pkg })), commitment({ transactionId: id, package: pkg }));
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
    try {
      decodeEntry(b);
      assert.ok(b.length === 33 && b[0] === 1);
    } catch (e) { assert.ok(e instanceof DecodeError && /^qtm log entry: /.test(e.message), String(e)); }
  }), { numRuns: 1000 });
});
