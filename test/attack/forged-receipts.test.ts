/**
 * Attack suite, issue 17 section 1: forged and relabelled receipts. Each attacker takes genuine
 * proofs (the shop's server signed them) and builds a new bundle by hand with nothing but keys it
 * holds itself: a manager's key, another shop's receipt key, its own card (a `--may-delegate`
 * card holds the card-signing and warrant-issuing usages at once), or keys it makes. Every forgery
 * is mounted through the real `qtm verify` CLI and through docs/verify-with-openssl.sh, and both
 * must refuse it, `qtm verify` by the named check that stops it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle, type ProofBundle } from '../../src/bundle/proof-bundle.js';
import { fingerprint, generateKeyPair, keyFingerprint, signBytes } from '../../src/crypto/keys.js';
import { OID } from '../../src/crypto/oids.js';
import { issueKeyAndCertificate, openCa } from '../../src/pki/ca.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { attestationStatement } from '../../src/protocol/proxy-attestation.js';
import { decodePackage, encodeHeader, encodePackage, encodeServerSigned, warrantDigestOf, type QtmPackage } from '../../src/protocol/qtm-package.js';
import { issueWarrant } from '../../src/warrant/warrant.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { fixture, fixtureIdentity, FIXTURE_PASSPHRASE, qtm, requireTool, ROOT, tempDir } from '../helpers.js';

const profile = PROFILES.v2;
const ca = openCa(fixture('ca'), FIXTURE_PASSPHRASE);
const caPem = fixture('ca', 'ca.pem');
const issued = new Date('2026-01-01T00:00:00Z');
const shop = fixtureIdentity('server-v2'); // the genuine shop's receipt key: the attackers never use its private half
const alice = fixtureIdentity('customer-v2');
const manager = fixtureIdentity('manager-v2');
const genuine = {
  v2: decodeBundle(readFileSync(fixture('bundles', 'sample-v2.json'), 'utf8')),
  v3: decodeBundle(readFileSync(fixture('bundles', 'sample-v3.json'), 'utf8')),
  v3proxy: decodeBundle(readFileSync(fixture('bundles', 'sample-v3-proxy.json'), 'utf8')),
  v2proxyAttested: decodeBundle(readFileSync(fixture('bundles', 'sample-v2-proxy-attested.json'), 'utf8')),
};

type Holder = { certificate: X509Certificate; privateKey: KeyObject };
const issue = (role: 'signer' | 'server' | 'manager' | 'card', subject: string, extra: string[] = []): Holder =>
  issueKeyAndCertificate(ca, { role, subject, keySpec: 'rsa2048', now: issued, days: 3650, extraExtKeyUsage: extra });
const otherShop = issue('signer', 'CN=Other Shop receipts,O=Other Shop');
const tls = issue('server', 'CN=localhost');
// Bob's card may delegate (the reverse case): card signing and warrant issuing in one certificate.
const bob = issue('card', 'CN=Bob Buyer,serialNumber=0B0B0B0B0B0B0B0B', [OID.ekuWarrantIssuing]);
const mallory = issue('manager', 'CN=Mallory Manager,O=Example Shop B.V.');
const pem = (c: X509Certificate) => c.toString();

/** Re-signs fields 1-7 of `pkg` with other A and B keys, keeping the server's signature byte for byte. */
function resign(pkg: QtmPackage, a: { key: KeyObject; publicKey: KeyObject }, b: { key: KeyObject; publicKey: KeyObject }, changes: Partial<QtmPackage> = {}): Buffer {
  const header = { ...pkg, fingerprintA: fingerprint(a.publicKey, profile), fingerprintB: fingerprint(b.publicKey, profile), ...changes };
  const bytes = encodeHeader(header);
  return encodePackage({ ...header, signatureA: signBytes(profile, a.key, bytes), signatureB: signBytes(profile, b.key, bytes) });
}

const holderKeys = (h: Holder) => ({ key: h.privateKey, publicKey: h.certificate.publicKey });
const aliceKeys = { key: alice.privateKey, publicKey: alice.certificates[0]!.publicKey };

function backdatedWarrant(issuer: Holder | { certificate: X509Certificate; privateKey: KeyObject }, subjectKey: KeyObject, customer: X509Certificate): X509Certificate {
  return issueWarrant({
    issuer, subjectKey, customers: [{ fingerprint: keyFingerprint(customer.publicKey) }],
    notBefore: issued, notAfter: new Date('2030-01-01T00:00:00Z'),
  });
}

interface Forgery {
  readonly name: string;
  readonly bundle: ProofBundle;
  /** Checks `qtm verify` must name among its failures. */
  readonly checks: readonly string[];
  /** What the openssl recipe must say. */
  readonly openssl: RegExp;
}

function forgeries(): Forgery[] {
  const list: Forgery[] = [];
  for (const version of ['v2', 'v3'] as const) {
    const g = genuine[version];
    const pkg = decodePackage(g.package);
    const sign = (fn: string) => (version === 'v3' ? ['signature-server', fn] : [fn]);
    list.push({
      name: `${version}: a manager's certificate as party A, A and B re-signed, no warrant`,
      bundle: { ...g, package: resign(pkg, holderKeys({ certificate: manager.certificates[0]!, privateKey: manager.privateKey }), aliceKeys), certificates: { ...g.certificates, partyA: [pem(manager.certificates[0]!)] } },
      checks: [...sign('party-a-is-server'), 'role-a'],
      openssl: version === 'v3' ? /server signature does not verify/ : /party A must be the server: field 6 is not field 2/,
    });
    list.push({
      name: `${version}: another shop's receipt-signing certificate as party A`,
      bundle: { ...g, package: resign(pkg, holderKeys(otherShop), aliceKeys), certificates: { ...g.certificates, partyA: [pem(otherShop.certificate)] } },
      checks: sign('party-a-is-server'),
      openssl: version === 'v3' ? /server signature does not verify/ : /party A must be the server: field 6 is not field 2/,
    });
    list.push({
      name: `${version}: the shop's TLS certificate as party A`,
      bundle: { ...g, package: resign(pkg, holderKeys(tls), aliceKeys), certificates: { ...g.certificates, partyA: [pem(tls.certificate)] } },
      checks: [...sign('party-a-is-server'), 'role-a'],
      openssl: version === 'v3' ? /server signature does not verify/ : /party A must be the server: field 6 is not field 2/,
    });
    list.push({
      name: `${version}: A = B = a --may-delegate customer card, on another customer's transaction`,
      bundle: { ...g, package: resign(pkg, holderKeys(bob), holderKeys(bob)), certificates: { ...g.certificates, partyA: [pem(bob.certificate)], partyB: [pem(bob.certificate)] } },
      checks: [...sign('party-a-is-server'), 'role-a'],
      openssl: version === 'v3' ? /server signature does not verify/ : /party A must be the server: field 6 is not field 2/,
    });
    // With a warrant: Bob's card issues a warrant to a key S' he made, naming himself; S' signs A.
    const sPrime = generateKeyPair('rsa2048');
    const selfWarrant = backdatedWarrant(bob, sPrime.publicKey, bob.certificate);
    list.push({
      name: `${version}: a --may-delegate card's warrant to its own key S', naming itself, server signature copied`,
      bundle: {
        ...g,
        package: resign(pkg, { key: sPrime.privateKey, publicKey: sPrime.publicKey }, holderKeys(bob)),
        certificates: { ...g.certificates, partyA: [pem(bob.certificate)], partyB: [pem(bob.certificate)] },
        warrants: [pem(selfWarrant)],
      },
      checks: [...(version === 'v3' ? ['signature-server'] : []), 'warrant-binding', 'warrant'],
      openssl: version === 'v3' ? /server signature does not verify/ : /package version 2 does not bind the warrant/,
    });
    // Relabel, nothing re-signed: a warrant to the server's receipt key (public in every
    // certificate) added to a genuine receipt, with party A set to the warrant's issuer.
    for (const [who, issuer] of [['a manager', mallory], ['a --may-delegate card', bob]] as const) {
      list.push({
        name: `${version}: relabel by ${who}: a backdated warrant to the server's receipt key added to a genuine receipt`,
        bundle: { ...g, certificates: { ...g.certificates, partyA: [pem(issuer.certificate)] }, warrants: [pem(backdatedWarrant(issuer, shop.certificates[0]!.publicKey, alice.certificates[0]!))] },
        checks: ['warrant-binding'],
        openssl: version === 'v3' ? /the server did not sign under this warrant/ : /package version 2 does not bind the warrant/,
      });
    }
  }

  // Take over another manager's proxy receipt: a warrant from Mallory to S (public in every
  // proxy bundle and warrant request) replaces Xavier's; nothing re-signed.
  const proxy = genuine.v3proxy;
  const s = new X509Certificate(proxy.warrants![0]!).publicKey;
  list.push({
    name: 'v3: relabel a proxy receipt: a warrant from another manager to the server\'s proxy key S',
    bundle: { ...proxy, certificates: { ...proxy.certificates, partyA: [pem(mallory.certificate)] }, warrants: [pem(backdatedWarrant(mallory, s, alice.certificates[0]!))] },
    checks: ['warrant-binding'],
    openssl: /the server did not sign under this warrant/,
  });
  const attested = genuine.v2proxyAttested;
  list.push({
    name: 'v2 attested: the attestation kept, the warrant swapped for another manager\'s',
    bundle: { ...attested, certificates: { ...attested.certificates, partyA: [pem(mallory.certificate)] }, warrants: [pem(backdatedWarrant(mallory, s, alice.certificates[0]!))] },
    checks: ['warrant-binding'],
    openssl: /attestation does not verify/,
  });
  list.push({
    name: 'v3: a second warrant added to a genuine proxy proof (only the first would be checked)',
    bundle: { ...proxy, warrants: [...proxy.warrants!, pem(backdatedWarrant(mallory, s, alice.certificates[0]!))] },
    checks: ['warrant'],
    openssl: /carries 2 warrants/,
  });
  list.push({
    name: 'v3: the attestation of a v2 proof pasted onto a v3 proof',
    bundle: { ...genuine.v3, attestation: attested.attestation! },
    checks: ['warrant-binding'],
    openssl: /attestation belongs only to a package version 2 proxy proof/,
  });
  list.push({
    name: 'v2: a proxy proof without the server\'s attestation',
    bundle: { ...attested, attestation: undefined } as ProofBundle,
    checks: ['warrant-binding'],
    openssl: /package version 2 does not bind the warrant/,
  });
  // The attacker is its own "server": a manager's certificate, or the TLS certificate, signs
  // fields 1-7 and a zero warrant digest as the server, and is party A too.
  for (const [who, fake] of [['a manager', mallory], ['the TLS key', tls]] as const) {
    const header = {
      version: 3 as const, serverId: fingerprint(fake.certificate.publicKey, profile), transactionId: 9, time: Math.floor(Date.parse('2026-11-24T12:00:00Z') / 1000),
      contentId: decodePackage(genuine.v3.package).contentId, fingerprintA: fingerprint(fake.certificate.publicKey, profile), fingerprintB: fingerprint(aliceKeys.publicKey, profile),
      warrantDigest: warrantDigestOf(undefined),
    };
    const bytes = encodeHeader(header);
    const pkg = encodePackage({ ...header, signatureA: signBytes(profile, fake.privateKey, bytes), signatureB: signBytes(profile, alice.privateKey, bytes), signatureServer: signBytes(profile, fake.privateKey, encodeServerSigned(header)) });
    list.push({
      name: `v3: ${who} as the server and party A of a package it made`,
      bundle: { ...genuine.v3, package: pkg, cardRecord: undefined, certificates: { ...genuine.v3.certificates, server: [pem(fake.certificate)], partyA: [pem(fake.certificate)] } } as ProofBundle,
      checks: ['role-server', 'role-a'],
      openssl: /server certificate lacks the extended key usage/,
    });
  }
  return list;
}

function withoutUndefined(b: ProofBundle): ProofBundle {
  return Object.fromEntries(Object.entries(b).filter(([, v]) => v !== undefined)) as unknown as ProofBundle;
}

test('the genuine proofs the attackers start from verify, with qtm verify and with openssl alone', (t) => {
  const dir = tempDir(t);
  for (const [name, b] of Object.entries(genuine)) {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, encodeBundle(b));
    const r = qtm(['verify', file, '--trust', caPem]);
    assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}`);
  }
  if (!requireTool(t, 'jq', 'apt-get install jq')) return;
  for (const name of Object.keys(genuine)) {
    const o = spawnSync('sh', [join(ROOT, 'docs', 'verify-with-openssl.sh'), join(dir, `${name}.json`), caPem], { encoding: 'utf8' });
    assert.equal(o.status, 0, `${name}: ${o.stderr}`);
    assert.match(o.stdout, /ALL CHECKS PASSED/);
  }
});

for (const f of forgeries()) {
  test(`attack: ${f.name} is refused by qtm verify (${f.checks.join(', ')}) and by openssl`, (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'forged.json');
    writeFileSync(file, encodeBundle(withoutUndefined(f.bundle)));
    const r = qtm(['verify', file, '--trust', caPem, '--json']);
    assert.equal(r.status, 1, `qtm verify must call it INVALID: ${r.stdout}${r.stderr}`);
    const failures = (JSON.parse(r.stdout).results[0].failures as { name: string }[]).map((x) => x.name);
    for (const c of f.checks) assert.ok(failures.includes(c), `expected ${c} among ${failures.join(', ')}`);
    if (!requireTool(t, 'jq', 'apt-get install jq')) return;
    const o = spawnSync('sh', [join(ROOT, 'docs', 'verify-with-openssl.sh'), file, caPem], { encoding: 'utf8' });
    assert.notEqual(o.status, 0, `the openssl recipe passed a forgery: ${o.stdout}`);
    assert.doesNotMatch(o.stdout, /ALL CHECKS PASSED/);
    assert.match(o.stderr, f.openssl);
  });
}

test('attack: flipping any bit of the v2 attestation fails warrant-binding', () => {
  const a = genuine.v2proxyAttested.attestation!;
  for (let i = 0; i < a.length * 8; i += 7) {
    const flipped = Buffer.from(a);
    flipped[i >> 3]! ^= 1 << (i & 7);
    const report = verifyBundle({ ...genuine.v2proxyAttested, attestation: flipped }, { trustAnchors: [new X509Certificate(readFileSync(caPem))] });
    assert.deepEqual(report.failures.map((x) => x.name), ['warrant-binding'], `bit ${i}`);
  }
  // And the statement is exactly the documented 89 bytes over this package and warrant.
  const statement = attestationStatement(genuine.v2proxyAttested.package, new X509Certificate(genuine.v2proxyAttested.warrants![0]!).raw);
  assert.equal(statement.length, 89);
  assert.equal(statement.subarray(0, 25).toString('latin1'), 'qtm proxy attestation v2\0');
});


test('attack: qtm verify --content with another text than the bundle carries is refused (content-id), not silently ignored', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'other.txt'), 'Pay 1000000 EUR to Mallory\n');
  const r = qtm(['verify', fixture('bundles', 'sample-v3.json'), '--trust', caPem, '--content', join(dir, 'other.txt'), '--json']);
  assert.equal(r.status, 1, r.stdout);
  const failures = JSON.parse(r.stdout).results[0].failures as { name: string; detail: string }[];
  assert.deepEqual(failures.map((f) => f.name), ['content-id']);
  assert.match(failures[0]!.detail, /is not the content the bundle carries/);
  // The same text the bundle carries is fine.
  assert.equal(qtm(['verify', fixture('bundles', 'sample-v3.json'), '--trust', caPem, '--content', fixture('content', 'order.txt')]).status, 0);
});
