/**
 * Warrants in the verifier: a proxy signature traces back to manager X, and every way a warrant
 * can be wrong (customer not covered, expired, not yet valid, revoked, forged, widened, bits
 * flipped) fails the proof. openssl, which no one here wrote, accepts a good warrant chain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, keyFingerprint } from '../../src/crypto/keys.js';
import { issueCertificate, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { keySigner, makeProof } from '../../src/proof/make-proof.js';
import { memoryCa, memorySigner } from '../../src/proof/sample.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { issueWarrant, parseWarrant } from '../../src/warrant/warrant.js';
import { crlPem, issueCrl, type Crl } from '../../src/warrant/crl.js';
import type { CustomerRef } from '../../src/warrant/policy.js';
import { encodeBundle, type ProofBundle } from '../../src/bundle/proof-bundle.js';
import { DecodeError } from '../../src/errors.js';
import { qtm, requireTool, ROOT, tempDir } from '../helpers.js';

const profile = PROFILES.v2;
const HOUR = 3_600_000;
const now = new Date();
const ca = memoryCa();
const xavier = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Manager,O=Example Shop' });
const server = memorySigner(ca, 'v2', 'signer', 'CN=Example Shop receipts', 'rsa2048');
const yara = memorySigner(ca, 'v2', 'card', 'CN=Yara Buyer,serialNumber=1111111111111111', 'rsa2048');
const zed = memorySigner(ca, 'v2', 'card', 'CN=Zed Other,serialNumber=2222222222222222', 'rsa2048');
const s = generateKeyPair('rsa2048');
const coversYara: CustomerRef[] = [{ fingerprint: keyFingerprint(yara.certificates[0]!.publicKey) }];

function warrant(o: { customers?: CustomerRef[]; from?: Date; to?: Date; issuer?: { certificate: X509Certificate; privateKey: import('node:crypto').KeyObject } } = {}) {
  return issueWarrant({ issuer: o.issuer ?? xavier, subjectKey: s.publicKey, customers: o.customers ?? coversYara, notBefore: o.from ?? new Date(now.getTime() - HOUR), notAfter: o.to ?? new Date(now.getTime() + HOUR) });
}

/** A package whose A signature the server made with S on X's behalf. */
async function proxyProof(w: X509Certificate, customer = yara, time = now): Promise<ProofBundle> {
  const { bundle } = await makeProof({ profile, transactionId: 7, time: Math.floor(time.getTime() / 1000), content: Buffer.from('2 x paper\n'), server, partyA: keySigner(profile, s.privateKey, [w]), partyB: customer, warrant: w });
  return { ...bundle, certificates: { ...bundle.certificates, partyA: [xavier.certificate.toString()] }, warrants: [w.toString()] };
}

const failed = (b: ProofBundle, opts: { revocations?: Crl; clockToleranceSeconds?: number } = {}) => verifyBundle(b, { trustAnchors: [ca.certificate], ...opts }).failures.map((f) => `${f.name}: ${f.detail}`).join('\n');

test('a proxy signature verifies and says on whose behalf, under which warrant, covering whom', async () => {
  const w = warrant();
  const report = verifyBundle(await proxyProof(w), { trustAnchors: [ca.certificate] });
  assert.deepEqual(report.failures, []);
  const detail = report.checks.find((c) => c.name === 'warrant')!.detail;
  assert.match(detail, new RegExp(`signed by "CN=Example Shop receipts" on behalf of "CN=Xavier Manager, O=Example Shop" under warrant ${w.serialNumber.toUpperCase()} \\(valid from .+ to .+, covers "CN=Yara Buyer, serialNumber=1111111111111111"\\)`));
  assert.equal(report.warrant?.serial, w.serialNumber.toUpperCase());
  assert.equal(parseWarrant(w).pathLength, 0);
});

test('a warrant for Y used for Z fails, even if the server signed anyway', async () => {
  assert.match(failed(await proxyProof(warrant(), zed)), /warrant: warrant [0-9A-F]+ does not cover "CN=Zed Other/);
});

test('expired and not-yet-valid warrants fail at the transaction time', async () => {
  assert.match(failed(await proxyProof(warrant({ from: new Date(now.getTime() - 3 * HOUR), to: new Date(now.getTime() - 2 * HOUR) }))), /expired at/);
  assert.match(failed(await proxyProof(warrant({ from: new Date(now.getTime() + HOUR), to: new Date(now.getTime() + 2 * HOUR) }))), /not valid until/);
});

/** X's signed revocation list (src/warrant/crl.ts) revoking these serials at these times. */
function crl(entries: { serial: string; revocationDate: Date }[], o: { thisUpdate?: Date; issuer?: typeof xavier; crlNumber?: bigint } = {}) {
  const thisUpdate = o.thisUpdate ?? new Date(now.getTime() + 10 * 60_000);
  return issueCrl({ crlNumber: o.crlNumber ?? 1n, thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + HOUR), entries }, o.issuer ?? xavier);
}

test('a revoked warrant fails for signatures dated later than the revocation minus T, not before', async () => {
  const w = warrant();
  const serial = w.serialNumber.toUpperCase();
  const b = await proxyProof(w);
  const at = (ms: number) => [{ serial, revocationDate: new Date(now.getTime() + ms) }];
  assert.match(failed(b, { revocations: crl(at(-60_000)) }), /was revoked at/);
  assert.equal(failed(b, { revocations: crl(at(180_000)) }), '', 'revoked 3 minutes after the record: valid');
  // Revoked 60 s after the record's time: within T = 120 s, the server may have backdated it.
  assert.match(failed(b, { revocations: crl(at(60_000)) }), /was revoked at .*may have been backdated: refused/);
  assert.equal(failed(b, { revocations: crl(at(60_000)), clockToleranceSeconds: 30 }), '', 'with T = 30 s it is not');
  const report = verifyBundle(b, { trustAnchors: [ca.certificate], revocations: crl([], { crlNumber: 7n }) });
  assert.match(report.checks.find((c) => c.name === 'warrant')!.detail, /not revoked \(revocation list number 7 of \d{4}-.*\)/);
  assert.equal(report.warrant?.revocation?.crlNumber, '7');
});

test('only X\'s own list counts: another manager\'s list of the same serial fails the check, it is not applied', async () => {
  const other = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Olga Other,O=Example Shop' });
  const w = warrant();
  const b = await proxyProof(w);
  const m = failed(b, { revocations: crl([], { issuer: other }) });
  assert.match(m, /warrant: .*the revocation list is not issued by "CN=Xavier Manager, O=Example Shop": give X's own list to --revocations/);
  // A list with X's name whose signature is another key's: forged.
  const impostor = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Manager,O=Example Shop' });
  assert.match(failed(b, { revocations: crl([], { issuer: impostor }) }), /naming "CN=Xavier Manager, O=Example Shop" is not signed by its key/);
});

test('a list older than the transaction says "revocation status unknown"', async () => {
  const b = await proxyProof(warrant());
  const report = verifyBundle(b, { trustAnchors: [ca.certificate], revocations: crl([], { thisUpdate: new Date(now.getTime() - HOUR), crlNumber: 3n }) });
  assert.equal(report.valid, true);
  assert.match(report.checks.find((c) => c.name === 'warrant')!.detail, /revocation status unknown \(revocation list number 3 of .* is older than the transaction\)/);
  assert.equal(report.warrant?.revocation?.status, 'unknown');
});

test('a forged warrant (same name as X, another key) and a widened one (policy edited) fail', async () => {
  const impostor = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Manager,O=Example Shop' });
  assert.match(failed(await proxyProof(warrant({ issuer: impostor }))), /is not signed by "CN=Xavier Manager, O=Example Shop"/);

  const w = warrant();
  const der = Buffer.from(w.raw);
  const yaraFp = Buffer.from(keyFingerprint(yara.certificates[0]!.publicKey));
  const at = der.indexOf(yaraFp);
  assert.ok(at > 0, 'the policy is readable in the DER');
  Buffer.from(keyFingerprint(zed.certificates[0]!.publicKey)).copy(der, at);
  const widened = new X509Certificate(der);
  assert.match(failed(await proxyProof(widened, zed)), /is not signed by/);
});

test('a warrant names customers by key, or by subject with the CA that issued their card', async () => {
  const bySubject = warrant({ customers: [{ subject: ['CN=Yara Buyer'], issuer: keyFingerprint(ca.certificate.publicKey) }] });
  assert.equal(failed(await proxyProof(bySubject)), '');
  assert.match(failed(await proxyProof(bySubject, zed)), /does not cover/);
  const otherCa = memoryCa();
  const elsewhere = warrant({ customers: [{ subject: ['CN=Yara Buyer'], issuer: keyFingerprint(otherCa.certificate.publicKey) }] });
  assert.match(failed(await proxyProof(elsewhere)), /does not cover/);
});

test('with a warrant, party A must be a manager: the server\'s own certificate cannot stand in', async () => {
  const b = await proxyProof(warrant());
  const asServer = { ...b, certificates: { ...b.certificates, partyA: b.certificates.server } };
  assert.match(failed(asServer), /role-a: .*lacks the required extended key usage/);
});

test('flipping any bit of the warrant fails the proof', async () => {
  const w = warrant();
  const good = await proxyProof(w);
  let tried = 0;
  // Every bit would be ~9000 verifications; a stride of 5 bits reaches every byte of the DER.
  for (let bit = 0; bit < w.raw.length * 8; bit += 5) {
    const der = Buffer.from(w.raw);
    der[bit >> 3]! ^= 1 << (bit & 7);
    const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
    const report = verifyBundle({ ...good, warrants: [pem] }, { trustAnchors: [ca.certificate] });
    assert.equal(report.valid, false, `bit ${bit} flipped still verifies`);
    tried++;
  }
  assert.ok(tried > 1000);
});

test('an ordinary certificate is not a warrant; issuing needs a manager', () => {
  assert.throws(() => parseWarrant(xavier.certificate), (e) => e instanceof DecodeError && /no RFC 3820 proxyCertInfo/.test(e.message));
  const notManager = issueCertificate(ca, { role: 'signer', subject: 'CN=Not a manager', publicKey: generateKeyPair('rsa2048').publicKey });
  assert.throws(() => issueWarrant({ issuer: { certificate: notManager, privateKey: s.privateKey }, subjectKey: s.publicKey, customers: coversYara, notBefore: now, notAfter: new Date(now.getTime() + HOUR) }), /not a manager/);
});

test('openssl accepts the warrant chain with -allow_proxy_certs, and refuses it without', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.pem'), ca.certificate.toString());
  writeFileSync(join(dir, 'x.pem'), xavier.certificate.toString());
  writeFileSync(join(dir, 'warrant.pem'), warrant().toString());
  const ok = spawnSync('openssl', ['verify', '-allow_proxy_certs', '-CAfile', join(dir, 'ca.pem'), '-untrusted', join(dir, 'x.pem'), join(dir, 'warrant.pem')], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /warrant\.pem: OK/);
  const refused = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-untrusted', join(dir, 'x.pem'), join(dir, 'warrant.pem')], { encoding: 'utf8' });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stdout + refused.stderr, /proxy certificates not allowed/i);
  const text = spawnSync('openssl', ['x509', '-in', join(dir, 'warrant.pem'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
  assert.match(text, /Proxy Certificate Information: critical[\s\S]*Path Length Constraint: 0[\s\S]*Policy Text: \{"version":1,"customers":\[\{"fingerprint":"[0-9a-f]{64}"\}\]\}/);
});

test('the documented openssl-only script checks a proxy proof, and refuses one for a customer the warrant does not name', async (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl') || !requireTool(t, 'jq', 'apt-get install jq')) return;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.pem'), ca.certificate.toString());
  const w = warrant();
  writeFileSync(join(dir, 'good.json'), encodeBundle(await proxyProof(w)));
  writeFileSync(join(dir, 'zed.json'), encodeBundle(await proxyProof(w, zed)));
  const script = join(ROOT, 'docs', 'verify-with-openssl.sh');
  const good = spawnSync('sh', [script, join(dir, 'good.json'), join(dir, 'ca.pem')], { encoding: 'utf8' });
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, new RegExp(`signed by proxy for subject=CN ?= ?Xavier Manager, O ?= ?Example Shop under warrant serial=${w.serialNumber.toUpperCase()}, which names party B: OK`));
  assert.match(good.stdout, /ALL CHECKS PASSED/);
  const bad = spawnSync('sh', [script, join(dir, 'zed.json'), join(dir, 'ca.pem')], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /the warrant does not name party B's key/);
});

test('verify-with-openssl.sh checks X\'s CRL with `openssl crl -CAfile` and compares the dates itself, as qtm verify does', async (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl') || !requireTool(t, 'jq', 'apt-get install jq')) return;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.pem'), ca.certificate.toString());
  const w = warrant();
  const serial = w.serialNumber.toUpperCase();
  const b = await proxyProof(w);
  writeFileSync(join(dir, 'good.json'), encodeBundle(b));
  const other = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Olga Other,O=Example Shop' });
  const impostor = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Manager,O=Example Shop' });
  const lists: [string, Crl, RegExp | null][] = [
    ['clean', crl([], { crlNumber: 5n }), /revocation: list 0x05 of .*: warrant [0-9A-F]+ not revoked: OK/],
    ['old', crl([], { thisUpdate: new Date(now.getTime() - HOUR) }), /revocation status unknown/],
    ['revoked', crl([{ serial, revocationDate: new Date(now.getTime() - 60_000) }]), null],
    ['within-t', crl([{ serial, revocationDate: new Date(now.getTime() + 60_000) }]), null],
    ['other', crl([], { issuer: other }), null],
    ['impostor', crl([], { issuer: impostor }), null],
  ];
  const script = join(ROOT, 'docs', 'verify-with-openssl.sh');
  for (const [name, list, ok] of lists) {
    const file = join(dir, `${name}.crl`);
    writeFileSync(file, name === 'clean' ? list.der : crlPem(list.der)); // DER and PEM both read
    const o = spawnSync('sh', [script, join(dir, 'good.json'), join(dir, 'ca.pem'), file], { encoding: 'utf8' });
    const q = verifyBundle(b, { trustAnchors: [ca.certificate], revocations: list });
    assert.equal(o.status === 0, q.valid, `${name}: openssl and qtm agree: ${o.stdout}${o.stderr}`);
    if (ok) assert.match(o.stdout, ok, name);
    else assert.match(o.stderr, name === 'other' || name === 'impostor' ? /is not signed by party A/ : /was revoked at .* minus 120 s is refused/, name);
  }
});

test('a warrant with a critical extension qtm does not process is refused by the reader and by qtm verify (RFC 5280 4.2)', async (t) => {
  const { buildCertificate, randomSerialHex } = await import('../../src/crypto/x509.js');
  const { proxyCertInfoAsn1 } = await import('../../src/crypto/proxy-cert-info.js');
  const { OID, oidDerContent } = await import('../../src/crypto/oids.js');
  const { encodePolicy } = await import('../../src/warrant/policy.js');
  const forge = (await import('node-forge')).default;
  const serialHex = randomSerialHex();
  // What issueWarrant builds, plus one critical extension under an OID no one here knows: a
  // manager (or anyone holding X's key) adding a restriction that qtm would otherwise skip.
  const unknownCritical = { id: '1.3.6.1.4.1.99999.7', critical: true, value: forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.NULL, false, '') };
  const w = buildCertificate({
    subject: 'CN=unused', proxyCommonName: serialHex.toUpperCase(), publicKey: s.publicKey, serialHex, isCa: false,
    notBefore: new Date(now.getTime() - HOUR), notAfter: new Date(now.getTime() + HOUR), keyUsage: { digitalSignature: true, nonRepudiation: true },
    extraExtensions: [
      { id: OID.proxyCertInfo, critical: true, value: proxyCertInfoAsn1({ pathLength: 0, policyLanguage: oidDerContent(OID.warrantPolicy), policy: encodePolicy({ version: 1, customers: coversYara }) }) },
      unknownCritical,
    ],
  }, xavier);
  assert.throws(() => parseWarrant(w), (err: Error) => err instanceof DecodeError && /critical extension qtm does not process \(1\.3\.6\.1\.4\.1\.99999\.7\)/.test(err.message));
  assert.doesNotThrow(() => parseWarrant(warrant()), 'a warrant as qtm issues it (critical proxyCertInfo, keyUsage, basicConstraints) is read');
  const file = join(tempDir(t), 'unknown-critical.json');
  writeFileSync(file, encodeBundle(await proxyProof(w)));
  writeFileSync(join(file, '..', 'ca.pem'), ca.certificate.toString());
  const r = qtm(['verify', file, '--trust', join(file, '..', 'ca.pem')]);
  assert.equal(r.status, 1, r.stderr + r.stdout);
  assert.match(r.stdout, /warrant.*unusable: .*critical extension qtm does not process \(1\.3\.6\.1\.4\.1\.99999\.7\)/);
});
