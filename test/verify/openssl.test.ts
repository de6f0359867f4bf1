/**
 * The formats proven against a tool no one here wrote: openssl verifies qtm's signatures, qtm
 * verifies openssl's, and the audit script in docs/ passes on the fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { encodeHeader, encodePackage, encodeServerSigned, decodePackage } from '../../src/protocol/qtm-package.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { loadTrustAnchors } from '../../src/verify/trust.js';
import { FIXTURE_PASSPHRASE, fixture, fixtureText, qtm, requireTool, ROOT, tempDir } from '../helpers.js';

test('openssl verifies each signature qtm made (v1 and v2)', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  for (const profile of ['v1', 'v2'] as const) {
    const b = decodeBundle(fixtureText('bundles', `sample-${profile}.json`));
    const p = decodePackage(b.package);
    const hash = profile === 'v1' ? '-sha1' : '-sha256';
    writeFileSync(join(dir, 'header.bin'), encodeHeader(p));
    writeFileSync(join(dir, 'server.bin'), encodeServerSigned(p));
    for (const [who, sig, signed, certs] of [
      ['a', p.signatureA, 'header.bin', b.certificates.partyA],
      ['b', p.signatureB, 'header.bin', b.certificates.partyB],
      ['server', p.signatureServer, 'server.bin', b.certificates.server],
    ] as const) {
      writeFileSync(join(dir, `${who}.pem`), certs[0]!);
      writeFileSync(join(dir, `${who}.sig`), sig);
      const pub = execFileSync('openssl', ['x509', '-in', join(dir, `${who}.pem`), '-pubkey', '-noout']);
      writeFileSync(join(dir, `${who}.pub`), pub);
      const out = execFileSync('openssl', ['dgst', hash, '-verify', join(dir, `${who}.pub`), '-signature', join(dir, `${who}.sig`), join(dir, signed)], { encoding: 'utf8' });
      assert.match(out, /Verified OK/, `${profile} ${who}`);
      // And openssl rejects it once the signed bytes change.
      const tampered = Buffer.from(readFileSync(join(dir, signed)));
      tampered[5]! ^= 1;
      writeFileSync(join(dir, 'tampered.bin'), tampered);
      const bad = spawnSync('openssl', ['dgst', hash, '-verify', join(dir, `${who}.pub`), '-signature', join(dir, `${who}.sig`), join(dir, 'tampered.bin')], { encoding: 'utf8' });
      assert.notEqual(bad.status, 0);
    }
  }
});

test('qtm verifies a package whose three signatures openssl made', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  const b = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  const p = decodePackage(b.package);
  writeFileSync(join(dir, 'header.bin'), encodeHeader(p));
  writeFileSync(join(dir, 'server.bin'), encodeServerSigned(p));
  const opensslSign = (key: string, file: string) => execFileSync('openssl', [
    'dgst', '-sha256', '-sign', fixture('keys', `${key}-key.pem`), '-passin', `pass:${FIXTURE_PASSPHRASE}`, join(dir, file),
  ]);
  const rebuilt = encodePackage({
    ...p,
    signatureA: opensslSign('server-v2', 'header.bin'),
    signatureB: opensslSign('customer-v2', 'header.bin'),
    signatureServer: opensslSign('server-v2', 'server.bin'),
  });
  // RSA PKCS#1 v1.5 is deterministic: openssl's signatures are qtm's, byte for byte.
  assert.deepEqual(rebuilt, b.package);
  const report = verifyBundle({ ...b, package: rebuilt }, { trustAnchors: loadTrustAnchors([fixture('ca', 'ca.pem')]) });
  assert.equal(report.valid, true);
  writeFileSync(join(dir, 'bundle.json'), encodeBundle({ ...b, package: rebuilt }));
  assert.equal(qtm(['verify', join(dir, 'bundle.json'), '--trust', fixture('ca', 'ca.pem')]).status, 0);
});

test('openssl verifies qtm-issued certificates against the qtm CA', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  for (const name of ['server-v1', 'server-v2', 'customer-v1', 'customer-v2']) {
    const out = execFileSync('openssl', ['verify', '-attime', '1795521600', '-CAfile', fixture('ca', 'ca.pem'), fixture('keys', `${name}.pem`)], { encoding: 'utf8' });
    assert.match(out, /: OK/);
  }
});

test('the documented openssl-only audit script accepts the fixtures and rejects a tampered bundle', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl') || !requireTool(t, 'jq', 'apt-get install jq')) return;
  const script = join(ROOT, 'docs', 'verify-with-openssl.sh');
  for (const profile of ['v1', 'v2']) {
    const r = spawnSync('sh', [script, fixture('bundles', `sample-${profile}.json`), fixture('ca', 'ca.pem')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ALL CHECKS PASSED/);
  }
  const dir = tempDir(t);
  const b = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  const tampered = Buffer.from(b.package);
  tampered[300]! ^= 0x80;
  writeFileSync(join(dir, 't.json'), encodeBundle({ ...b, package: tampered }));
  const r = spawnSync('sh', [script, join(dir, 't.json'), fixture('ca', 'ca.pem')], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /signature does not verify/);
});
