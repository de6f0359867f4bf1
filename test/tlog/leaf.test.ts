import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { commitment, decodeEntry, encodeEntry } from '../../src/tlog/leaf.js';

test('version 1: the entry is 0x01 || SHA-256("qtm/tlog-leaf/v1" 0x00 || u64 BE transaction ID || package)', () => {
  const pkg = Buffer.from('a QTM package');
  const expected = createHash('sha256').update(Buffer.concat([Buffer.from('qtm/tlog-leaf/v1\0'), Buffer.from('0000000000000102', 'hex'), pkg])).digest();
  assert.deepEqual(encodeEntry({ transactionId: 258, package: pkg }), Buffer.concat([Buffer.from([1]), expected]));
  assert.notDeepEqual(commitment({ transactionId: 259, package: pkg }), expected);
  assert.throws(() => commitment({ transactionId: -1, package: pkg }), RangeError);
});

test('version 2: the entry is 0x02 || the same commitment || the 32-byte card tag, byte for byte', () => {
  const pkg = Buffer.from('a QTM package');
  const tag = Buffer.alloc(32, 0xab);
  const entry = encodeEntry({ transactionId: 258, package: pkg, tag });
  assert.equal(entry.toString('hex'), `02${commitment({ transactionId: 258, package: pkg }).toString('hex')}${'ab'.repeat(32)}`);
  assert.deepEqual(decodeEntry(entry), { version: 2, commitment: commitment({ transactionId: 258, package: pkg }), tag });
  assert.throws(() => encodeEntry({ transactionId: 1, package: pkg, tag: Buffer.alloc(31) }), RangeError);
});

test('property: entries round-trip, and decode only from 33 bytes of version 1 or 65 of version 2', () => {
  fc.assert(fc.property(fc.nat(), fc.uint8Array({ maxLength: 64 }), fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }), (id, pkg, tag) => {
    const d = decodeEntry(encodeEntry({ transactionId: id, package: pkg, ...(tag ? { tag } : {}) }));
    assert.deepEqual(d.commitment, commitment({ transactionId: id, package: pkg }));
    assert.equal(d.version, tag ? 2 : 1);
    if (tag) assert.deepEqual(d.tag, Buffer.from(tag));
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 70 }), (b) => {
    try {
      const d = decodeEntry(b);
      assert.ok((b.length === 33 && b[0] === 1) || (b.length === 65 && b[0] === 2));
      assert.deepEqual(encodeEntry({ transactionId: 0, package: Buffer.alloc(0), ...(d.tag ? { tag: d.tag } : {}) }).length, b.length);
    } catch (e) { assert.ok(e instanceof DecodeError && /^qtm log entry: /.test(e.message), String(e)); }
  }), { numRuns: 2000 });
});
