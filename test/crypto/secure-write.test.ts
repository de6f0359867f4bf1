import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { checkStorageProof, openRecord, padIso9797M2, sealRecord, storageProof, unpadIso9797M2 } from '../../src/crypto/secure-write.js';
import { aesCmac } from '../../src/crypto/cmac.js';

const keys = { kEnc: Buffer.alloc(16, 0x11), kMac: Buffer.alloc(16, 0x22) };
const record = Buffer.from('02000000070000000900' + '01'.repeat(31) + '0202020202020202' + '03', 'hex');

test('ISO 9797-1 method 2 padding: always adds 80, to a multiple of 16, and removes exactly', () => {
  assert.deepEqual(padIso9797M2(Buffer.alloc(0)), Buffer.from('80' + '00'.repeat(15), 'hex'));
  assert.equal(padIso9797M2(Buffer.alloc(15)).length, 16);
  assert.equal(padIso9797M2(Buffer.alloc(16)).length, 32);
  assert.equal(padIso9797M2(Buffer.alloc(29)).length, 32);
  assert.equal(padIso9797M2(Buffer.alloc(50)).length, 64);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (d) => {
    assert.deepEqual(unpadIso9797M2(padIso9797M2(d)), Buffer.from(d));
  }));
  assert.equal(unpadIso9797M2(Buffer.alloc(16)), undefined);
  assert.equal(unpadIso9797M2(Buffer.from('01'.repeat(16), 'hex')), undefined);
});

test('the envelope follows SPEC 4: X = CBC(K_enc, pad(record)) XOR R, T = CMAC(K_mac, R||slot||X)[0:8]', async () => {
  const r = Buffer.alloc(16, 0xa5);
  const env = sealRecord(keys, r, 3, record);
  assert.equal(env.length, 64 + 8);
  const x = env.subarray(0, 64);
  assert.deepEqual(env.subarray(64), aesCmac(keys.kMac, Buffer.concat([r, Buffer.of(3), x])).subarray(0, 8));
  const { createCipheriv } = await import('node:crypto');
  const c = createCipheriv('aes-128-cbc', keys.kEnc, Buffer.alloc(16)).setAutoPadding(false);
  const cbc = Buffer.concat([c.update(padIso9797M2(record)), c.final()]);
  assert.deepEqual(Buffer.from(x.map((b, i) => b ^ r[i % 16]!)), cbc);
  assert.deepEqual(storageProof(keys, r, record), aesCmac(keys.kMac, Buffer.concat([Buffer.from('ACK'), r, record])).subarray(0, 8));
});

test('open(seal(record)) returns the record and W checks', () => {
  const r = randomBytes(16);
  const opened = openRecord(keys, r, 1, sealRecord(keys, r, 1, record));
  assert.ok(opened.ok);
  assert.deepEqual(opened.ok && opened.record, record);
  assert.ok(checkStorageProof(keys, r, record, storageProof(keys, r, record)));
  assert.ok(!checkStorageProof(keys, randomBytes(16), record, storageProof(keys, r, record)));
});

test('every single-bit change of the envelope is refused by the MAC', () => {
  const r = randomBytes(16);
  const env = sealRecord(keys, r, 1, record);
  for (let i = 0; i < env.length * 8; i++) {
    const t = Buffer.from(env);
    t[i >> 3]! ^= 1 << (i & 7);
    const res = openRecord(keys, r, 1, t);
    assert.deepEqual(res, { ok: false, reason: 'mac' }, `bit ${i}`);
  }
});

test('another slot, another challenge or another card\'s keys are refused', () => {
  const r = randomBytes(16);
  const env = sealRecord(keys, r, 1, record);
  assert.deepEqual(openRecord(keys, r, 2, env), { ok: false, reason: 'mac' });
  assert.deepEqual(openRecord(keys, randomBytes(16), 1, env), { ok: false, reason: 'mac' });
  assert.deepEqual(openRecord({ ...keys, kMac: Buffer.alloc(16, 0x23) }, r, 1, env), { ok: false, reason: 'mac' });
  assert.deepEqual(openRecord(keys, r, 1, env.subarray(0, 20)), { ok: false, reason: 'length' });
});

test('the same record under two challenges gives unrelated envelopes (write once per R)', () => {
  const a = sealRecord(keys, randomBytes(16), 1, record);
  const b = sealRecord(keys, randomBytes(16), 1, record);
  assert.notDeepEqual(a, b);
});
