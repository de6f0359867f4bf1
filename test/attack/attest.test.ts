/**
 * `qtm server attest`: a package version 2 proof signed by proxy is believed only when the server
 * attests it from its own store. The store here holds what an older server recorded for the
 * fixture transaction 43 (the warrant at prepare, the package at confirm); attackers bring a
 * swapped warrant, a re-signed package, or a proof of another version, through the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle, type ProofBundle } from '../../src/bundle/proof-bundle.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { issueKeyAndCertificate, openCa } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { decodePackage, encodeHeader } from '../../src/protocol/qtm-package.js';
import { LogStore } from '../../src/store/log-store.js';
import { issueWarrant } from '../../src/warrant/warrant.js';
import { fixture, fixtureIdentity, FIXTURE_PASSPHRASE, qtm, requireTool, ROOT, tempDir } from '../helpers.js';

const caPem = fixture('ca', 'ca.pem');
const env = { QTM_KEY_PASSPHRASE: FIXTURE_PASSPHRASE };
const v2proxy = decodeBundle(readFileSync(fixture('bundles', 'sample-v2-proxy.json'), 'utf8'));
const manager = fixtureIdentity('manager-v2');

async function storeWith(dir: string, b: ProofBundle): Promise<string> {
  const storeDir = join(dir, 'store');
  const store = LogStore.open(storeDir);
  const pkg = decodePackage(b.package);
  await store.append({
    type: 'prepared', transactionId: pkg.transactionId, orderId: 'o-43', time: pkg.time, content: b.content!.toString('base64'),
    header: encodeHeader(pkg).toString('base64'), clientCertificate: b.certificates.partyB.join(''), cardSerial: '0102030405060708',
    warrant: { serial: new X509Certificate(b.warrants![0]!).serialNumber, certificates: [b.warrants![0]!, manager.certificates[0]!.toString()] },
  });
  await store.append({
    type: 'confirmed', transactionId: pkg.transactionId, firstMessage: { signatureB: Buffer.from(pkg.signatureB).toString('base64'), challenge: 'AAAAAAAAAAA=', slot: 1, priority: 5 },
    package: b.package.toString('base64'), cardRecord: b.cardRecord!.toString('base64'), envelope: 'AA==',
  });
  await store.close();
  return storeDir;
}

test('the server attests a version 2 proxy proof its store holds; qtm verify and openssl then accept it', async (t) => {
  const dir = tempDir(t);
  const storeDir = await storeWith(dir, v2proxy);
  const before = qtm(['verify', fixture('bundles', 'sample-v2-proxy.json'), '--trust', caPem, '--json']);
  assert.equal(before.status, 1);
  assert.deepEqual(JSON.parse(before.stdout).results[0].failures.map((f: { name: string }) => f.name), ['warrant-binding']);
  const out = join(dir, 'attested.json');
  const r = qtm(['server', 'attest', fixture('bundles', 'sample-v2-proxy.json'), '--store', storeDir, '--signer', fixture('keys', 'server-v2'), '--out', out], { env });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(decodeBundle(readFileSync(out, 'utf8')).attestation);
  const after = qtm(['verify', out, '--trust', caPem]);
  assert.equal(after.status, 0, after.stdout);
  assert.match(after.stdout, /on behalf of "CN=Xavier Manager/);
  // To stdout as well, for pipes.
  const piped = qtm(['server', 'attest', fixture('bundles', 'sample-v2-proxy.json'), '--store', storeDir, '--signer', fixture('keys', 'server-v2')], { env });
  assert.equal(piped.status, 0, piped.stderr);
  assert.deepEqual(decodeBundle(piped.stdout).attestation, decodeBundle(readFileSync(out, 'utf8')).attestation);
  if (!requireTool(t, 'jq', 'apt-get install jq')) return;
  const o = spawnSync('sh', [join(ROOT, 'docs', 'verify-with-openssl.sh'), out, caPem], { encoding: 'utf8' });
  assert.equal(o.status, 0, o.stderr);
  assert.match(o.stdout, /the server attests it signed this package under this warrant/);
});

test('attack: the server refuses to attest a swapped warrant, a package it did not sign, or a version 3 proof', async (t) => {
  const dir = tempDir(t);
  const storeDir = await storeWith(dir, v2proxy);
  const ca = openCa(fixture('ca'), FIXTURE_PASSPHRASE);
  const mallory = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Mallory Manager', keySpec: 'rsa2048', now: new Date('2026-01-01T00:00:00Z') });
  const customer = new X509Certificate(v2proxy.certificates.partyB[0]!);
  const s = new X509Certificate(v2proxy.warrants![0]!).publicKey;
  const swapped = issueWarrant({ issuer: mallory, subjectKey: s, customers: [{ fingerprint: keyFingerprint(customer.publicKey) }], notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') });
  const tampered = Buffer.from(v2proxy.package);
  tampered[tampered.length - 1]! ^= 1; // a server signature byte: not the stored package
  const cases: [string, ProofBundle, RegExp][] = [
    ['swapped warrant', { ...v2proxy, certificates: { ...v2proxy.certificates, partyA: [mallory.certificate.toString()] }, warrants: [swapped.toString()] }, /signed under another warrant/],
    ['package not in the store', { ...v2proxy, package: tampered }, /store holds another package/],
    ['version 3 proof', decodeBundle(readFileSync(fixture('bundles', 'sample-v3-proxy.json'), 'utf8')), /only a version 2 proxy proof needs an attestation/],
    ['another server\'s proof', v2proxy, /names another server/],
  ];
  for (const [name, bundle, message] of cases) {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, encodeBundle(bundle));
    const signer = name === 'another server\'s proof' ? join(dir, 'other') : fixture('keys', 'server-v2');
    if (name === 'another server\'s proof') {
      const other = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Other receipts', keySpec: 'rsa2048' });
      writeIdentity(signer, [other.certificate], other.privateKey, FIXTURE_PASSPHRASE);
    }
    const r = qtm(['server', 'attest', file, '--store', storeDir, '--signer', signer], { env });
    assert.equal(r.status, 1, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.equal(r.stdout, '', `${name}: nothing attested`);
  }
});
