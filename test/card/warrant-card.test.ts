/**
 * A manager's card issues warrants (claims 10-11) with PSO COMPUTE DIGITAL SIGNATURE, P2 AC:
 * it signs the TBSCertificate of a warrant it issues, and nothing else, so its key can never be
 * talked into signing a transaction through this door.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { buildTbsCertificate } from '../../src/crypto/x509.js';
import { encodeCommand } from '../../src/card/apdu.js';
import { INS, PSO_CDS_WARRANT } from '../../src/card/app-spec.js';
import { CardStatusError, SW } from '../../src/card/status-words.js';
import { warrantTbsProblem } from '../../src/card/virtual/warrant-tbs.js';
import { crlTbsProblem } from '../../src/card/virtual/crl-tbs.js';
import { buildTbsCertList, crlPem, issueCrlWithSigner } from '../../src/warrant/crl.js';
import { issueWarrantWithCard, parseWarrant } from '../../src/warrant/warrant.js';
import { encodeHeader } from '../../src/protocol/qtm-package.js';
import { requireTool, tempDir } from '../helpers.js';
import { authority, issuedCard, PIN } from './card-helpers.js';

const HOUR = 3_600_000;
const s = generateKeyPair('rsa2048');

function warrantInput(certificate: import('node:crypto').X509Certificate, sign: (tbs: Buffer) => Promise<Buffer>) {
  return { issuer: { certificate, sign }, subjectKey: s.publicKey, customers: [{ fingerprint: 'ab'.repeat(32) }], notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + HOUR) };
}

const refusedWith = (sw: number) => (e: unknown) => e instanceof CardStatusError && e.sw === sw;

test('a manager\'s card signs a warrant it issues; openssl accepts the chain', async (t) => {
  const x = await issuedCard({ role: 'manager', holder: 'CN=Xavier Card,O=Shop' });
  await x.client.select();
  await x.client.verifyPin(PIN);
  const before = x.client.apduCount;
  const w = await issueWarrantWithCard(warrantInput(x.issued.certificate, (tbs) => x.client.signWarrant(tbs)));
  assert.ok(x.client.apduCount - before >= 4, 'the TBS travels in chained APDUs');
  const parsed = parseWarrant(w);
  assert.equal(parsed.pathLength, 0);
  assert.ok(w.verify(x.issued.certificate.publicKey));
  assert.equal(w.subject, `${x.issued.certificate.subject}\nCN=${parsed.serial}`);
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.pem'), authority().ca.certificate.toString());
  writeFileSync(join(dir, 'x.pem'), x.issued.certificate.toString());
  writeFileSync(join(dir, 'w.pem'), w.toString());
  const r = spawnSync('openssl', ['verify', '-allow_proxy_certs', '-CAfile', join(dir, 'ca.pem'), '-untrusted', join(dir, 'x.pem'), join(dir, 'w.pem')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the card refuses: no PIN, a customer card, and anything but a warrant it issues', async () => {
  const x = await issuedCard({ role: 'manager', holder: 'CN=Xavier Card,O=Shop' });
  await x.client.select();
  const grab: Buffer[] = [];
  // Capture a genuine warrant TBS to replay in the refusals below.
  await assert.rejects(issueWarrantWithCard(warrantInput(x.issued.certificate, async (tbs) => {
    grab.push(tbs);
    return x.client.signWarrant(tbs);
  })), refusedWith(SW.SECURITY_STATUS), 'without the PIN');
  const tbs = grab[0]!;
  await x.client.verifyPin(PIN);

  const customer = await issuedCard();
  await customer.client.select();
  await customer.client.verifyPin(PIN);
  await assert.rejects(customer.client.signWarrant(tbs), refusedWith(SW.CONDITIONS_NOT_SATISFIED), 'a customer card signs no warrant');

  const pkg = encodeHeader({ version: 2, serverId: Buffer.alloc(32), transactionId: 1, time: 1, contentId: Buffer.alloc(32), fingerprintA: Buffer.alloc(32), fingerprintB: Buffer.alloc(32) });
  const ordinary = buildTbsCertificate({ subject: 'CN=Anything', publicKey: s.publicKey, notBefore: new Date(), notAfter: new Date(Date.now() + HOUR), isCa: false, keyUsage: { digitalSignature: true } }, { certificate: x.issued.certificate, issuerKey: x.issued.certificate.publicKey }).tbs;
  const otherIssuer = tbs.toString('binary').replace('Xavier Card', 'Xavier Kard');
  const truncated = tbs.subarray(0, tbs.length - 1);
  for (const [what, data] of [['a pre-QTM package', pkg], ['an ordinary certificate', ordinary], ['another issuer', Buffer.from(otherIssuer, 'binary')], ['a cut TBS', truncated], ['trailing bytes', Buffer.concat([tbs, Buffer.of(0)])]] as const) {
    await assert.rejects(x.client.signWarrant(data), refusedWith(SW.WRONG_DATA), what);
  }
  // And the genuine one still signs.
  assert.equal((await x.client.signWarrant(tbs)).length, 256);
});

test('chaining is only for PUT DATA and warrants; other P2 values of PSO are refused', async () => {
  const x = await issuedCard({ role: 'manager' });
  const send = (cla: number, p2: number) => x.transport.transmit(encodeCommand({ cla, ins: INS.PSO, p1: PSO_CDS_WARRANT.p1, p2, data: Buffer.alloc(10) }));
  assert.equal((await send(0x10, 0x9a)).readUInt16BE(0), SW.FUNCTION_NOT_SUPPORTED);
  assert.equal((await send(0x00, 0xbc)).readUInt16BE(0), SW.WRONG_P1P2);
});

test('property: the warrant check never throws, whatever the bytes', () => {
  const cert = Buffer.from(authority().ca.certificate.raw);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
    assert.equal(typeof warrantTbsProblem(Buffer.from(bytes), cert), 'string');
  }));
});

test('the card signs its own revocation list (PSO CDS, P2 AD) and nothing else that way; openssl checks it', async (t) => {
  const x = await issuedCard({ role: 'manager', holder: 'CN=Xavier Card,O=Shop' });
  await x.client.select();
  await x.client.verifyPin(PIN);
  const content = { crlNumber: 4n, thisUpdate: new Date(), nextUpdate: new Date(Date.now() + HOUR), entries: [{ serial: '1A2B', revocationDate: new Date() }] };
  const list = await issueCrlWithSigner(content, { certificate: x.issued.certificate, sign: (tbs) => x.client.signCrl(tbs) });
  assert.equal(list.crlNumber, 4n);
  // Refused: a TBSCertList naming another issuer, a warrant's TBSCertificate, a pre-QTM package, cut or padded bytes.
  const other = await issuedCard({ role: 'manager', holder: 'CN=Olga Card,O=Shop' });
  const foreign = buildTbsCertList(content, other.issued.certificate).tbs;
  const warrantTbs = buildTbsCertificate({ subject: 'CN=x', publicKey: s.publicKey, notBefore: new Date(), notAfter: new Date(Date.now() + HOUR), isCa: false, keyUsage: { digitalSignature: true }, proxyCommonName: 'AB' }, { certificate: x.issued.certificate, issuerKey: x.issued.certificate.publicKey }).tbs;
  const pkg = encodeHeader({ version: 2, serverId: Buffer.alloc(32), transactionId: 1, time: 1, contentId: Buffer.alloc(32), fingerprintA: Buffer.alloc(32), fingerprintB: Buffer.alloc(32) });
  const own = buildTbsCertList(content, x.issued.certificate).tbs;
  for (const [what, data] of [['another issuer', foreign], ['a warrant', warrantTbs], ['a package', pkg], ['cut', own.subarray(0, own.length - 1)], ['trailing', Buffer.concat([own, Buffer.of(0)])]] as const) {
    await assert.rejects(x.client.signCrl(data), refusedWith(SW.WRONG_DATA), what);
  }
  const customer = await issuedCard();
  await customer.client.select();
  await customer.client.verifyPin(PIN);
  await assert.rejects(customer.client.signCrl(buildTbsCertList(content, customer.issued.certificate).tbs), refusedWith(SW.CONDITIONS_NOT_SATISFIED), 'a customer card that may not delegate signs no list');
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'x.pem'), x.issued.certificate.toString());
  writeFileSync(join(dir, 'x.crl'), crlPem(list.der));
  const r = spawnSync('openssl', ['crl', '-in', join(dir, 'x.crl'), '-CAfile', join(dir, 'x.pem'), '-noout', '-text'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /verify OK/);
  assert.match(r.stdout, /CRL Number: \s+4\b[\s\S]*Serial Number: 1A2B/);
});

test('property: the CRL check never throws, whatever the bytes', () => {
  const cert = Buffer.from(authority().ca.certificate.raw);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
    assert.equal(typeof crlTbsProblem(Buffer.from(bytes), cert), 'string');
  }));
});
