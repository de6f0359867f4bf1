/**
 * The revocation list codec (src/warrant/crl.ts): byte-exact TBSCertList against a layout written
 * out by hand, and the strict decoder's refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import forge from 'node-forge';
import { issueCertificate, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { OID } from '../../src/crypto/oids.js';
import { memoryCa } from '../../src/proof/sample.js';
import { buildCertificate, keyIdentifier } from '../../src/crypto/x509.js';
import { buildTbsCertList, decodeCrl, hasCrlSign, issueCrl } from '../../src/warrant/crl.js';
import { DecodeError } from '../../src/errors.js';

const ca = memoryCa();
const x = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier,O=Shop' });
const tlv = (tag: string, body: Buffer) => Buffer.concat([Buffer.from(tag, 'hex'), body.length < 128 ? Buffer.of(body.length) : body.length < 256 ? Buffer.of(0x81, body.length) : Buffer.of(0x82, body.length >> 8, body.length & 0xff), body]);
const issuerName = () => {
  const tbs = (forge.asn1.fromDer(Buffer.from(x.certificate.raw).toString('binary')).value as forge.asn1.Asn1[])[0]!;
  return Buffer.from(forge.asn1.toDer((tbs.value as forge.asn1.Asn1[])[5]!).getBytes(), 'binary');
};

test('the TBSCertList is laid out byte for byte as RFC 5280 5.1 says', () => {
  const content = { crlNumber: 0x80n, thisUpdate: new Date('2026-12-02T06:00:00.700Z'), nextUpdate: new Date('2051-01-01T00:00:00Z'), entries: [{ serial: '0A1B', revocationDate: new Date('2026-12-01T10:00:00Z') }] };
  const expected = tlv('30', Buffer.concat([
    Buffer.from('020101', 'hex'),                                        // version v2
    Buffer.from('300d06092a864886f70d01010b0500', 'hex'),                // sha256WithRSAEncryption, NULL
    issuerName(),                                                        // X's subject, byte for byte
    tlv('17', Buffer.from('261202060000Z')),                             // thisUpdate: UTCTime, whole seconds
    tlv('18', Buffer.from('20510101000000Z')),                           // nextUpdate: GeneralizedTime from 2050
    tlv('30', tlv('30', Buffer.concat([Buffer.from('02020a1b', 'hex'), tlv('17', Buffer.from('261201100000Z'))]))),
    tlv('a0', tlv('30', Buffer.concat([
      tlv('30', Buffer.concat([Buffer.from('0603551d23', 'hex'), tlv('04', tlv('30', tlv('80', Buffer.from(keyIdentifier(x.certificate.publicKey), 'binary'))))])),
      tlv('30', Buffer.concat([Buffer.from('0603551d14', 'hex'), tlv('04', Buffer.from('02020080', 'hex'))])), // cRLNumber 128: a leading 00
    ]))),
  ]));
  assert.equal(buildTbsCertList(content, x.certificate).tbs.toString('hex'), expected.toString('hex'));
  const list = issueCrl(content, x);
  assert.equal(list.crlNumber, 0x80n);
  assert.deepEqual(list.entries, [{ serial: '0A1B', revocationDate: new Date('2026-12-01T10:00:00Z') }]);
  assert.equal(list.thisUpdate.toISOString(), '2026-12-02T06:00:00.000Z');
});

test('the decoder refuses what is not a qtm v2 CRL, naming what is wrong', () => {
  const good = issueCrl({ crlNumber: 1n, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 60_000), entries: [] }, x);
  const resign = (tbs: Buffer) => tlv('30', Buffer.concat([tbs, Buffer.from('300d06092a864886f70d01010b0500', 'hex'), tlv('03', Buffer.concat([Buffer.of(0), sign('sha256', tbs, x.privateKey)]))]));
  const tbsWith = (f: (parts: Buffer[]) => Buffer[]) => {
    const nodes = (forge.asn1.fromDer(good.tbs.toString('binary')).value as forge.asn1.Asn1[]).map((n) => Buffer.from(forge.asn1.toDer(n).getBytes(), 'binary'));
    return resign(tlv('30', Buffer.concat(f(nodes))));
  };
  const cases: [string, Buffer, RegExp][] = [
    ['empty', Buffer.alloc(0), /empty/],
    ['cut', good.der.subarray(0, good.der.length - 1), /not valid DER/],
    ['trailing', Buffer.concat([good.der, Buffer.of(0)]), /not valid DER/],
    ['v1', tbsWith((p) => p.slice(1)), /not a version 2 CRL/],
    ['no nextUpdate', tbsWith((p) => [...p.slice(0, 4), ...p.slice(5)]), /nextUpdate is missing/],
    ['no extensions', tbsWith((p) => p.slice(0, 5)), /crlExtensions \[0\] must end the list/],
    ['no cRLNumber', tbsWith((p) => [...p.slice(0, 5), tlv('a0', tlv('30', Buffer.alloc(0)))]), /no cRLNumber/],
    ['unknown critical', tbsWith((p) => [...p.slice(0, 5), tlv('a0', tlv('30', Buffer.concat([tlv('30', Buffer.from('0603551d1c0101ff04023000', 'hex')), tlv('30', Buffer.from('0603551d140403020101', 'hex'))])))]), /unknown critical extension/],
  ];
  for (const [what, der, message] of cases) {
    assert.throws(() => decodeCrl(der), (e) => e instanceof DecodeError && message.test(e.message), what);
  }
});

test('only a certificate with the cRLSign key usage signs lists: managers and --may-delegate cards have it, older managers do not', () => {
  assert.ok(hasCrlSign(x.certificate), 'role manager');
  const delegating = issueCertificate(ca, { role: 'card', subject: 'CN=Yara', publicKey: generateKeyPair('rsa2048').publicKey, extraExtKeyUsage: [OID.ekuWarrantIssuing], extraKeyUsage: { cRLSign: true } });
  assert.ok(hasCrlSign(delegating), '--may-delegate card');
  assert.ok(!hasCrlSign(issueKeyAndCertificate(ca, { role: 'card', subject: 'CN=Plain' }).certificate), 'a plain customer card');
  // A manager certificate from before CRLs: same key usage as then, no cRLSign.
  const keys = generateKeyPair('rsa2048');
  const old = buildCertificate({ subject: 'CN=Old Manager', publicKey: keys.publicKey, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000), isCa: false, keyUsage: { digitalSignature: true, nonRepudiation: true }, extKeyUsage: [OID.ekuWarrantIssuing] }, { certificate: ca.certificate, privateKey: ca.privateKey });
  assert.throws(() => issueCrl({ crlNumber: 1n, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 60_000), entries: [] }, { certificate: old, privateKey: keys.privateKey }),
    (e) => e instanceof DecodeError && /"CN=Old Manager" may not sign revocation lists \(no cRLSign key usage: reissue its certificate\)/.test(e.message));
});
