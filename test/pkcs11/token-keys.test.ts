import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes, verify } from 'node:crypto';
import { generateTokenKeyPair, generateTokenMasterKey, importTokenMasterKeyForTest, storeTokenCertificate, tokenSam, tokenSigner } from '../../src/pkcs11/keys.js';
import { fixtureIdentity } from '../helpers.js';
import { attribute, ck, findObject, findObjects, openSession, tokenRef } from '../../src/pkcs11/token.js';
import { deriveCardKeys } from '../../src/crypto/diversify.js';
import { QTM_AID } from '../../src/card/app-spec.js';
import { signBytes, verifyBytes } from '../../src/crypto/keys.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { requireSoftHsm, softHsmToken } from './softhsm-helper.js';

const h = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

test('token RSA key: CKM_SHA256_RSA_PKCS signatures verify with node:crypto and openssl-compatible signBytes', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t);
  const signer = generateTokenKeyPair(tok.uri('receipts'), 'rsa2048', tok.module);
  const data = randomBytes(300);
  const sig = signer.sign('sha256', data);
  assert.equal(sig.length, 256);
  assert.ok(verify('sha256', data, signer.publicKey, sig));
  assert.ok(verifyBytes(PROFILES.v2, signer.publicKey, data, signBytes(PROFILES.v2, signer, data)));
  assert.ok(!verify('sha256', Buffer.concat([data, Buffer.of(0)]), signer.publicKey, sig));
  // Opened again by URI: the same key.
  const again = tokenSigner(tok.uri('receipts'), tok.module);
  assert.ok(again.publicKey.equals(signer.publicKey));
});

test('token P-256 key: CKM_ECDSA with host hashing gives DER signatures node:crypto verifies', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t);
  const signer = generateTokenKeyPair(tok.uri('ec'), 'p256', tok.module);
  assert.equal(signer.keyType, 'ec');
  for (let i = 0; i < 20; i++) {
    const data = randomBytes(100);
    const sig = signer.sign('sha256', data);
    assert.equal(sig[0], 0x30);
    assert.ok(verify('sha256', data, signer.publicKey, sig));
  }
});

test('token master key: sensitive, never extractable, CMAC only; reading its value fails', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t);
  generateTokenMasterKey(tok.uri('master'), tok.module);
  const s = openSession(tokenRef(tok.uri('master'), tok.module));
  const key = findObject(s, 'secret-key');
  const flag = (name: string) => attribute(s, key, name)[0];
  assert.equal(flag('CKA_SENSITIVE'), 1);
  assert.equal(flag('CKA_ALWAYS_SENSITIVE'), 1);
  assert.equal(flag('CKA_EXTRACTABLE'), 0);
  assert.equal(flag('CKA_NEVER_EXTRACTABLE'), 1);
  assert.equal(flag('CKA_ENCRYPT'), 0);
  assert.equal(flag('CKA_DECRYPT'), 0);
  assert.equal(flag('CKA_WRAP'), 0);
  const allowed = attribute(s, key, 'CKA_ALLOWED_MECHANISMS');
  assert.equal(allowed.length, 8, 'one mechanism allowed');
  assert.equal(allowed.readBigUInt64LE(0), BigInt(ck('CKM_AES_CMAC')));
  assert.throws(() => attribute(s, key, 'CKA_VALUE'), /CKR_ATTRIBUTE_SENSITIVE/);
  assert.throws(() => s.p11.C_EncryptInit(s.handle, { mechanism: ck('CKM_AES_ECB') }, key), /CKR_KEY_FUNCTION_NOT_PERMITTED|CKR_MECHANISM_INVALID/);
  assert.throws(() => s.p11.C_SetAttributeValue(s.handle, key, [{ type: ck('CKA_EXTRACTABLE'), value: true }]), /CKR_ATTRIBUTE_READ_ONLY/);
});

test('file SAM and token SAM with the same master key give the same card keys (AN10922 through CKM_AES_CMAC)', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t);
  const master = h('00112233445566778899AABBCCDDEEFF');
  const sam = importTokenMasterKeyForTest(tok.uri('master'), master, tok.module);
  // The token's CKA_CHECK_VALUE is the file SAM's key check value: AES(K, 0^16)[0..2].
  const ecb = createCipheriv('aes-128-ecb', master, null).setAutoPadding(false);
  assert.equal(sam.kcv, ecb.update(Buffer.alloc(16)).subarray(0, 3).toString('hex').toUpperCase());
  for (const serial of [h('0102030405060708'), randomBytes(8), randomBytes(8)]) {
    assert.deepEqual(sam.cardKeys(serial), deriveCardKeys(master, serial, QTM_AID));
  }
  assert.deepEqual(tokenSam(tok.uri('master'), tok.module).cardKeys(h('0102030405060708')), deriveCardKeys(master, h('0102030405060708'), QTM_AID));
});

test('a certificate stored beside its key carries its DER subject Name (CKA_SUBJECT), read with node-forge\'s ASN.1 reader', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t);
  generateTokenKeyPair(tok.uri('receipts'), 'rsa2048', tok.module);
  const cert = fixtureIdentity('server-v2').certificates[0]!;
  storeTokenCertificate(tok.uri('receipts'), cert, tok.module);
  const s = openSession(tokenRef(tok.uri('receipts'), tok.module));
  const [h] = findObjects(s, 'cert', { label: 'receipts' });
  const subject = attribute(s, h!, 'CKA_SUBJECT');
  // A Name SEQUENCE cut out of the certificate itself: the subject's, not the issuer's.
  assert.equal(subject[0], 0x30);
  assert.ok(cert.raw.includes(subject));
  const cn = (dn: string) => /CN=([^\n,]+)/.exec(dn)![1]!;
  assert.notEqual(cn(cert.subject), cn(cert.issuer));
  assert.ok(subject.includes(Buffer.from(cn(cert.subject))));
  assert.ok(!subject.includes(Buffer.from(cn(cert.issuer))));
});
