import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import forge from 'node-forge';
import { toBigInt, unsignedIntegerContent } from '../../src/crypto/integers.js';

const hex = (s: string) => Buffer.from(s, 'binary').toString('hex');

test('unsignedIntegerContent: X.690 8.3.2 minimal contents (zero, the top bit, leading zeros)', () => {
  assert.equal(hex(unsignedIntegerContent(0n)), '00');
  assert.equal(hex(unsignedIntegerContent(1n)), '01');
  assert.equal(hex(unsignedIntegerContent(0x7fn)), '7f');
  assert.equal(hex(unsignedIntegerContent(0x80n)), '0080');
  assert.equal(hex(unsignedIntegerContent(0xffn)), '00ff');
  assert.equal(hex(unsignedIntegerContent(0x100n)), '0100');
  assert.equal(hex(unsignedIntegerContent(toBigInt(Buffer.from('00007f01', 'hex')))), '7f01');
  assert.throws(() => unsignedIntegerContent(-1n), RangeError);
  assert.equal(toBigInt(Buffer.alloc(0)), 0n);
});

test('unsignedIntegerContent: any non-negative number round-trips through a DER INTEGER, in the fewest octets', () => {
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 600n) - 1n }), (n) => {
    const content = Buffer.from(unsignedIntegerContent(n), 'binary');
    // Positive in two's complement, and no octet to spare: a leading 00 only before a set top bit.
    assert.equal(content[0]! & 0x80, 0);
    if (content.length > 1) assert.ok(content[0] !== 0 || (content[1]! & 0x80) !== 0, content.toString('hex'));
    assert.equal(toBigInt(content), n);
    const { asn1 } = forge;
    const der = asn1.toDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, content.toString('binary'))).getBytes();
    assert.equal(toBigInt(Buffer.from(asn1.fromDer(der, true).value as string, 'binary')), n);
  }), { numRuns: 300 });
});
