import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { asSigner, ecdsaRawToDer, fileSigner, isSigner, publicKeyOf, sameKey } from '../../src/crypto/signer.js';
import { signBytes, verifyBytes } from '../../src/crypto/keys.js';
import { PROFILES } from '../../src/protocol/profile.js';

const h = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

test('ecdsaRawToDer: exact DER for the edge cases (high bit, leading zeros, zero)', () => {
  const r = h('80' + '00'.repeat(31));
  const s = h('00'.repeat(31) + '01');
  assert.deepEqual(ecdsaRawToDer(Buffer.concat([r, s])), h('3026 0221 00' + '80' + '00'.repeat(31) + '0201 01'));
  assert.deepEqual(ecdsaRawToDer(Buffer.alloc(64)), h('3006 020100 020100'));
  assert.deepEqual(ecdsaRawToDer(h('007f' + '00'.repeat(30) + '01'.repeat(32))), h('3043 021f 7f' + '00'.repeat(30) + '0220' + '01'.repeat(32)));
  assert.throws(() => ecdsaRawToDer(Buffer.alloc(63)), RangeError);
  assert.throws(() => ecdsaRawToDer(Buffer.alloc(0)), RangeError);
});

test('ecdsaRawToDer: raw P-256 signatures (what CKM_ECDSA returns) become DER node:crypto verifies, every time', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  for (let i = 0; i < 300; i++) {
    const data = randomBytes(40);
    const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    assert.equal(raw.length, 64);
    const der = ecdsaRawToDer(raw);
    assert.ok(verify('sha256', data, publicKey, der), raw.toString('hex'));
    assert.ok(!verify('sha256', Buffer.concat([data, Buffer.of(1)]), publicKey, der));
  }
});

test('a file key through the Signer interface signs exactly as signBytes on the KeyObject', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signer = fileSigner(privateKey);
  assert.ok(isSigner(signer) && !isSigner(privateKey));
  assert.equal(asSigner(privateKey).keyType, 'rsa');
  const data = randomBytes(100);
  // RSA PKCS#1 v1.5 is deterministic: both paths give the same bytes.
  assert.deepEqual(signer.sign('sha256', data), signBytes(PROFILES.v2, privateKey, data));
  assert.deepEqual(signBytes(PROFILES.v1, signer, data), sign('sha1', data, privateKey));
  assert.ok(verifyBytes(PROFILES.v2, signer.publicKey, data, signBytes(PROFILES.v2, signer, data)));
  assert.ok(sameKey(privateKey, signer));
  assert.ok(publicKeyOf(privateKey).equals(signer.publicKey));
  assert.ok(!sameKey(privateKey, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey));
  assert.throws(() => fileSigner(generateKeyPairSync('ed25519').privateKey), /cannot sign with ed25519 keys/);
});
