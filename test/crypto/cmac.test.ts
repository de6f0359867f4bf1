import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aesCmac } from '../../src/crypto/cmac.js';
import { an10922DiversifyAes128, deriveCardKeys, diversificationInput } from '../../src/crypto/diversify.js';
import { QTM_AID } from '../../src/card/app-spec.js';

const h = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

// RFC 4493 section 4, AES-128 key 2b7e1516 28aed2a6 abf71588 09cf4f3c.
const RFC4493_KEY = h('2b7e1516 28aed2a6 abf71588 09cf4f3c');
const RFC4493_MESSAGE = h(`6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51
  30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710`);
const RFC4493: [number, string][] = [
  [0, 'bb1d6929 e9593728 7fa37d12 9b756746'],
  [16, '070a16b4 6b4d4144 f79bdd9d d04a287c'],
  [40, 'dfa66747 de9ae630 30ca3261 1497c827'],
  [64, '51f0bebf 7e3b9d92 fc497417 79363cfe'],
];

for (const [len, mac] of RFC4493) {
  test(`AES-CMAC matches RFC 4493 example with a ${len}-byte message`, () => {
    assert.deepEqual(aesCmac(RFC4493_KEY, RFC4493_MESSAGE.subarray(0, len)), h(mac));
  });
}

test('AN10922 AES-128 diversification matches the application note\'s published example', () => {
  // Master key, UID 04782E21801D80, AID 3042F5, system identifier "NXP Abu" (4E585020416275).
  const master = h('00112233445566778899AABBCCDDEEFF');
  const input = Buffer.concat([h('04782E21801D80'), h('3042F5'), Buffer.from('NXP Abu', 'ascii')]);
  assert.deepEqual(an10922DiversifyAes128(master, input), h('A8DD63A3B89D54B37CA802473FDA9175'));
});

test('diversification refuses input lengths where CMAC padding would differ from AN10922', () => {
  const master = Buffer.alloc(16, 1);
  assert.throws(() => an10922DiversifyAes128(master, Buffer.alloc(15)), /16 to 31 bytes/);
  assert.throws(() => an10922DiversifyAes128(master, Buffer.alloc(32)), /16 to 31 bytes/);
  assert.equal(an10922DiversifyAes128(master, Buffer.alloc(16)).length, 16);
  assert.equal(an10922DiversifyAes128(master, Buffer.alloc(31)).length, 16);
});

test('card keys: distinct per label and per card, never the master key, 19-byte M', () => {
  const master = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
  const serialA = h('0102030405060708');
  const serialB = h('0102030405060709');
  assert.equal(diversificationInput(serialA, QTM_AID, 'ENC').length + 1, 19);
  const a = deriveCardKeys(master, serialA, QTM_AID);
  const b = deriveCardKeys(master, serialB, QTM_AID);
  for (const k of [a.kEnc, a.kMac, b.kEnc, b.kMac]) assert.notDeepEqual(k, master);
  assert.notDeepEqual(a.kEnc, a.kMac);
  assert.notDeepEqual(a.kEnc, b.kEnc);
  assert.deepEqual(a.kEnc, an10922DiversifyAes128(master, Buffer.concat([serialA, QTM_AID, Buffer.from('ENC')])));
});
