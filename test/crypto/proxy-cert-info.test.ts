/** The RFC 3820 proxyCertInfo codec: byte-exact against a hand-laid DER value, strict on input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProxyCertInfo, encodeProxyCertInfo } from '../../src/crypto/proxy-cert-info.js';
import { OID, oidDerContent } from '../../src/crypto/oids.js';
import { DecodeError } from '../../src/errors.js';

const language = oidDerContent(OID.warrantPolicy); // 22 bytes
const policy = Buffer.from('{}');
// SEQUENCE { INTEGER 0, SEQUENCE { OID <qtm>.2.1, OCTET STRING "{}" } }, written out by hand.
const expected = Buffer.concat([
  Buffer.from('3021' + '020100' + '301c' + '0616', 'hex'), language, Buffer.from('0402', 'hex'), policy,
]);

test('encodes byte for byte as RFC 3820 lays it out, and decodes back', () => {
  const der = encodeProxyCertInfo({ pathLength: 0, policyLanguage: language, policy });
  assert.equal(der.toString('hex'), expected.toString('hex'));
  const back = decodeProxyCertInfo(der);
  assert.equal(back.pathLength, 0);
  assert.ok(back.policyLanguage.equals(language));
  assert.ok(back.policy?.equals(policy));
});

test('the optional fields may be absent', () => {
  const back = decodeProxyCertInfo(encodeProxyCertInfo({ policyLanguage: language }));
  assert.equal(back.pathLength, undefined);
  assert.equal(back.policy, undefined);
});

test('anything but one well-formed ProxyCertInfo is a DecodeError naming what is wrong', () => {
  const cases: [string, Buffer, RegExp][] = [
    ['empty', Buffer.alloc(0), /not valid DER/],
    ['truncated', expected.subarray(0, expected.length - 1), /not valid DER/],
    ['trailing byte', Buffer.concat([expected, Buffer.of(0)]), /not valid DER/],
    ['not a sequence', Buffer.from('020100', 'hex'), /not a SEQUENCE/],
    ['negative path length', Buffer.from('30050201ff3000', 'hex'), /pCPathLenConstraint/],
    ['no policy', Buffer.from('3003020100', 'hex'), /one ProxyPolicy/],
    ['no language', Buffer.from('30053003020100', 'hex'), /no policyLanguage/],
    ['policy not octets', Buffer.concat([Buffer.from('301c301a' + '0616', 'hex'), language, Buffer.from('0100', 'hex')]), /not an OCTET STRING/],
  ];
  for (const [what, der, message] of cases) {
    assert.throws(() => decodeProxyCertInfo(der), (e) => e instanceof DecodeError && message.test(e.message), what);
  }
});
