import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decodeBundle, type ProofBundle } from '../../src/bundle/proof-bundle.js';
import { verifyBundle, type CheckName } from '../../src/verify/verify-bundle.js';
import { loadTrustAnchors } from '../../src/verify/trust.js';
import { sampleProof } from '../../src/proof/sample.js';
import { fixture, fixtureText } from '../helpers.js';

const trustAnchors = loadTrustAnchors([fixture('ca', 'ca.pem')]);
const bundles = {
  v1: decodeBundle(fixtureText('bundles', 'sample-v1.json')),
  v2: decodeBundle(fixtureText('bundles', 'sample-v2.json')),
  v3: decodeBundle(fixtureText('bundles', 'sample-v3.json')),
  'v3-proxy': decodeBundle(fixtureText('bundles', 'sample-v3-proxy.json')),
  'v2-proxy-attested': decodeBundle(fixtureText('bundles', 'sample-v2-proxy-attested.json')),
};

function failed(bundle: ProofBundle, options: { at?: Date; content?: Buffer } = {}): CheckName[] {
  return verifyBundle(bundle, { trustAnchors, ...options }).failures.map((f) => f.name);
}

test('the fixture bundles verify, v1 flagged as legacy', () => {
  const v2 = verifyBundle(bundles.v2, { trustAnchors });
  assert.equal(v2.valid, true, JSON.stringify(v2.failures));
  assert.equal(v2.legacy, false);
  // 17 checks, and since package version 3 "party-a-is-server" (field 6 = field 2 without a warrant).
  assert.equal(v2.checks.length, 18);
  for (const name of ['v3', 'v3-proxy', 'v2-proxy-attested'] as const) {
    const r = verifyBundle(bundles[name], { trustAnchors });
    assert.equal(r.valid, true, `${name}: ${JSON.stringify(r.failures)}`);
  }
  const v1 = verifyBundle(bundles.v1, { trustAnchors });
  assert.equal(v1.valid, true, JSON.stringify(v1.failures));
  assert.equal(v1.legacy, true);
  assert.ok(v1.checks.find((c) => c.name === 'profile')!.warning);
});

for (const profile of ['v1', 'v2', 'v3', 'v3-proxy', 'v2-proxy-attested'] as const) {
  test(`${profile}: flipping any single bit of the package makes verification fail with a named check`, () => {
    const bundle = bundles[profile];
    const pkg = bundle.package;
    let flips = 0;
    for (let i = 0; i < pkg.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(pkg);
        tampered[i]! ^= 1 << bit;
        const names = failed({ ...bundle, package: tampered });
        assert.ok(names.length > 0, `bit ${bit} of byte ${i} went unnoticed`);
        flips++;
      }
    }
    assert.equal(flips, pkg.length * 8);
  });
}

test('each field of the package, when changed, names the check that guards it', () => {
  const b = bundles.v2;
  const at = (offset: number) => {
    const t = Buffer.from(b.package);
    t[offset]! ^= 0x01;
    return failed({ ...b, package: t });
  };
  assert.deepEqual(at(0), ['package']); // version 2 -> 3: unknown version
  assert.ok(at(1).includes('server-id'));
  assert.ok(at(33).includes('signature-server') && at(33).includes('signature-a') && at(33).includes('signature-b')); // transaction ID
  assert.ok(at(40).includes('signature-server')); // time
  assert.ok(at(41).includes('content-id'));
  assert.ok(at(73).includes('fingerprint-a') && !at(73).includes('signature-server'));
  assert.ok(at(105).includes('fingerprint-b') && !at(105).includes('signature-server'));
  assert.deepEqual(at(200), ['signature-a']);
  assert.deepEqual(at(b.package.length - 1), ['signature-server']);
});

test('edited content fails the content ID check', () => {
  const content = Buffer.from(bundles.v2.content!);
  content[content.indexOf('24.50')] = '9'.charCodeAt(0);
  assert.deepEqual(failed({ ...bundles.v2, content }), ['content-id']);
});

test('detached content: required, and checked when given', () => {
  const { content, ...detached } = bundles.v2;
  assert.deepEqual(failed(detached), ['content-id']);
  assert.deepEqual(failed(detached, { content: content! }), []);
});

test('content that is not plain text is reported by the plain-text check', () => {
  const names = failed({ ...bundles.v2, content: Buffer.from('pay \u202E01 EUR\n') });
  assert.ok(names.includes('plain-text'));
});

test('a swapped certificate fails the fingerprint and signature checks for that party', () => {
  const otherCustomer = bundles.v1.certificates.partyB; // a different key, same CA
  const names = failed({ ...bundles.v2, certificates: { ...bundles.v2.certificates, partyB: otherCustomer } });
  assert.deepEqual(names.sort(), ['fingerprint-b', 'signature-b']);
});

test('a certificate in the wrong role is refused (server certificate as the customer card)', () => {
  const server = bundles.v2.certificates.server;
  const names = failed({ ...bundles.v2, certificates: { ...bundles.v2.certificates, partyB: server } });
  assert.ok(names.includes('role-b'));
});

test('a time outside the certificates\' validity fails every chain check', () => {
  for (const at of [new Date('2025-06-01T00:00:00Z'), new Date('2050-01-01T00:00:00Z')]) {
    assert.deepEqual(failed(bundles.v2, { at }).sort(), ['chain-a', 'chain-b', 'chain-server']);
  }
});

test('a package time moved outside validity fails signatures and chains', () => {
  const t = Buffer.from(bundles.v2.package);
  t.writeUInt32BE(Math.floor(Date.parse('2060-01-01T00:00:00Z') / 1000), 37);
  const names = failed({ ...bundles.v2, package: t });
  for (const n of ['signature-server', 'signature-a', 'signature-b', 'chain-server', 'chain-a', 'chain-b'] as const) assert.ok(names.includes(n), n);
});

test('a proof signed under another CA does not chain to the trust anchor', async () => {
  const other = await sampleProof('v2');
  const report = verifyBundle(other.bundle, { trustAnchors });
  assert.deepEqual(report.failures.map((f) => f.name).sort(), ['chain-a', 'chain-b', 'chain-server']);
  assert.equal(verifyBundle(other.bundle, { trustAnchors: [other.ca.certificate] }).valid, true);
});

test('a card record that does not match the package is reported', () => {
  const rec = Buffer.from(bundles.v2.cardRecord!);
  rec.writeUInt32BE(43, 1);
  const report = verifyBundle({ ...bundles.v2, cardRecord: rec }, { trustAnchors });
  assert.deepEqual(report.failures.map((f) => f.name), ['card-record']);
  assert.match(report.failures[0]!.detail, /transaction 43 vs 42/);
});

test('the package bytes on disk match the bundle (sanity of the fixtures)', () => {
  assert.deepEqual(readFileSync(fixture('vectors', 'package-v2.bin')), bundles.v2.package);
});
