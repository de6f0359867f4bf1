import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeCommand, decodeResponse, encodeCommand, encodeResponse } from '../../src/card/apdu.js';
import { DecodeError } from '../../src/errors.js';
import { ATR, decodePinBlock, encodePinBlock, decodeStatus, encodeStatus } from '../../src/card/app-spec.js';

const h = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

test('command APDU cases 1-4 encode byte for byte (ISO 7816-4)', () => {
  assert.deepEqual(encodeCommand({ cla: 0, ins: 0x44, p1: 0, p2: 0, data: new Uint8Array(0) }), h('00440000'));
  assert.deepEqual(encodeCommand({ cla: 0, ins: 0x84, p1: 0, p2: 0, data: new Uint8Array(0), le: 16 }), h('0084000010'));
  assert.deepEqual(encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: h('F051544D010001') }), h('00A4040007F051544D010001'));
  assert.deepEqual(encodeCommand({ cla: 0, ins: 0x88, p1: 0, p2: 0, data: h('0102'), le: 256 }), h('0088000002010200'));
});

test('decoder refuses malformed commands; encoder refuses out-of-range fields', () => {
  assert.throws(() => decodeCommand(h('0084')), DecodeError);
  assert.throws(() => decodeCommand(h('00A4040007F051')), /Lc 7 does not match/);
  assert.throws(() => decodeCommand(h('00A40400000001')), /extended-length/);
  assert.throws(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: new Uint8Array(256) }), /at most 255/);
  assert.throws(() => encodeCommand({ cla: 256, ins: 0, p1: 0, p2: 0, data: new Uint8Array(0) }), /CLA/);
  assert.throws(() => decodeResponse(h('90')), DecodeError);
});

test('property: decode(encode(c)) == c for any short command; random bytes only raise DecodeError', () => {
  const cmd = fc.record({
    cla: fc.nat({ max: 255 }), ins: fc.nat({ max: 255 }), p1: fc.nat({ max: 255 }), p2: fc.nat({ max: 255 }),
    data: fc.uint8Array({ maxLength: 255 }), le: fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined }),
  });
  fc.assert(fc.property(cmd, (c) => {
    const d = decodeCommand(encodeCommand(c));
    const norm = (x: import("../../src/card/apdu.js").CommandApdu) => [x.cla, x.ins, x.p1, x.p2, Buffer.from(x.data).toString('hex'), x.le];
    assert.deepEqual(norm(d), norm(c));
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
    try {
      decodeCommand(b);
    } catch (e) {
      assert.ok(e instanceof DecodeError);
    }
  }));
  fc.assert(fc.property(fc.uint8Array({ minLength: 2, maxLength: 300 }), (b) => {
    assert.deepEqual(encodeResponse(decodeResponse(b)), Buffer.from(b));
  }));
});

test('PIN blocks: ASCII digits padded with FF; anything else is refused', () => {
  assert.deepEqual(encodePinBlock('1234'), h('31323334FFFFFFFF'));
  assert.equal(decodePinBlock(h('31323334FFFFFFFF')), '1234');
  assert.equal(decodePinBlock(h('3132333435363738')), '12345678');
  assert.equal(decodePinBlock(h('313233FFFFFFFFFF')), undefined); // 3 digits
  assert.equal(decodePinBlock(h('31323334FF35FFFF')), undefined); // digit after padding
  assert.equal(decodePinBlock(h('3132333441FFFFFF')), undefined); // not a digit
});

test('card status round-trips; the ATR is well formed (TCK makes the XOR of T0..TCK zero)', () => {
  const s = {
    appVersion: 1, serial: h('0102030405060708'), profileVersion: 2, lifecycle: 'operational' as const, slotCount: 16, recordLength: 50,
    pinTriesLeft: 2, pukTriesLeft: 5, firstFreeSlot: 3, keyGenerated: true, certificatePresent: true, cardKeysPresent: true, pinVerified: false,
  };
  assert.deepEqual(decodeStatus(encodeStatus(s)), s);
  assert.equal(ATR[0], 0x3b);
  assert.equal(ATR.subarray(1).reduce((a, b) => a ^ b, 0), 0);
  assert.equal(ATR.subarray(4, 14).toString('ascii'), 'QTM-CARD01');
});
