/**
 * Attacks on `qtm verify` with hand-made bundle files (issue 17, section 3). Each test forges
 * the file from the genuine fixture by editing its text, runs the real CLI on it and asserts
 * the named refusal and the exit code: 0 valid, 1 invalid, 2 unusable, 3 internal error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, fixtureText, qtm, QTM_BIN, ROOT, tempDir } from '../helpers.js';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { memoryCa } from '../../src/proof/sample.js';
import { crlPem, issueCrl } from '../../src/warrant/crl.js';

const CA = fixture('ca', 'ca.pem');
const sample = fixtureText('bundles', 'sample-v2.json');
const genuine = JSON.parse(sample) as Record<string, any>;

function write(dir: string, name: string, text: string | Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The genuine bundle's text with one JSON member inserted right after the opening "{" of `at`. */
function insertAfter(at: string, member: string): string {
  const i = sample.indexOf(at);
  assert.ok(i >= 0, at);
  return sample.slice(0, i + at.length) + member + sample.slice(i + at.length);
}

test('attack: a 6 MiB base64 field is unusable (exit 2) before parsing, and a folder run goes on to the next file', (t) => {
  const dir = tempDir(t);
  const big = { ...genuine, content: { ...genuine.content, base64: 'A'.repeat(6 * 1024 * 1024) } };
  write(dir, 'a-huge.json', JSON.stringify(big));
  copyFileSync(fixture('bundles', 'sample-v2.json'), join(dir, 'b-genuine.json'));

  const t0 = performance.now();
  const one = qtm(['verify', join(dir, 'a-huge.json'), '--trust', CA]);
  const ms = performance.now() - t0;
  assert.equal(one.status, 2, one.stderr);
  assert.match(one.stdout, /UNUSABLE .*a-huge\.json: proof bundle: 6\d{6} bytes, over the 524288-byte cap .*not read/);
  assert.doesNotMatch(one.stderr, /internal error|call stack/);
  t.diagnostic(`6 MiB bundle refused in ${ms.toFixed(0)} ms (whole process)`);

  // A folder is an archive run: JSON Lines, one result per bundle, then the summary.
  const all = qtm(['verify', dir, '--trust', CA, '--json']);
  assert.equal(all.status, 2, all.stderr);
  const lines = all.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  const summary = lines.pop().summary as Record<string, number>;
  assert.deepEqual([summary.total, summary.valid, summary.invalid, summary.unusable, summary.legacy], [2, 1, 0, 1, 0]);
  assert.deepEqual(lines.map((r: { file: string; status: string }) => [r.file.slice(dir.length + 1), r.status]), [['a-huge.json', 'unusable'], ['b-genuine.json', 'valid']]);
});

test('attack: under the file cap, an oversized field, a long PEM and deep nesting are each refused by name, not by a crash', (t) => {
  const dir = tempDir(t);
  const cases: [string, string, RegExp][] = [
    ['content-500k.json', JSON.stringify({ ...genuine, content: { ...genuine.content, base64: 'QUFB'.repeat(120_000) } }), /content\.base64 is longer than 65536 bytes/],
    ['package-400k.json', JSON.stringify({ ...genuine, package: 'QUFB'.repeat(100_000) }), /package is longer than 4096 bytes/],
    ['pem-400k.json', JSON.stringify({ ...genuine, certificates: { ...genuine.certificates, server: [`-----BEGIN CERTIFICATE-----\n${'A'.repeat(400_000)}\n-----END CERTIFICATE-----\n`] } }), /certificates\.server\[0\] is not a PEM certificate of at most 8192 characters/],
    ['nine-certs.json', JSON.stringify({ ...genuine, certificates: { ...genuine.certificates, partyB: Array(9).fill(genuine.certificates.partyB[0]) } }), /certificates\.partyB holds 9 certificates, at most 8 are read/],
    ['deep.json', `{"mediaType":"application/vnd.qtm.proof+json","version":1,"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`, /nested deeper than 32 levels/],
  ];
  for (const [name, text, pattern] of cases) {
    assert.ok(Buffer.byteLength(text) <= 512 * 1024, `${name} is under the file cap`);
    const r = qtm(['verify', write(dir, name, text), '--trust', CA]);
    assert.equal(r.status, 2, `${name}: ${r.stderr}`);
    assert.match(r.stdout, pattern, name);
    assert.doesNotMatch(r.stderr, /internal error/);
  }
});

test('attack: a duplicated key (a reader keeping the first would see other data) is unusable, naming the key', (t) => {
  const dir = tempDir(t);
  const other = Buffer.from(genuine.package, 'base64');
  other[40]! ^= 1;
  const cases: [string, string, RegExp][] = [
    // JSON.parse keeps the last "package", the genuine one; a first-wins reader sees the forged one.
    ['dup-package.json', insertAfter('{', `\n  "package": "${other.toString('base64')}",`), /duplicate key "package" in the top-level object/],
    ['dup-content.json', insertAfter('"content": {', `\n    "base64": "${Buffer.from('pay 1000 EUR\n').toString('base64')}",`), /duplicate key "base64" in "content"/],
    ['dup-escaped.json', insertAfter('"certificates": {', `\n    "\\u0073erver": ${JSON.stringify(genuine.certificates.partyB)},`), /duplicate key "server" in "certificates"/],
  ];
  for (const [name, text, pattern] of cases) {
    assert.doesNotThrow(() => JSON.parse(text), `${name} is valid JSON for JSON.parse`);
    const r = qtm(['verify', write(dir, name, text), '--trust', CA]);
    assert.equal(r.status, 2, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`UNUSABLE .*${name}: proof bundle: ${pattern.source}`), name);
  }
});

test('attack: unknown nested fields, prototype names included, are unusable, naming the field path', (t) => {
  const dir = tempDir(t);
  const cases: [string, string, string][] = [
    ['content-constructor.json', '"content": {', 'content.constructor'],
    ['certificates-proto.json', '"certificates": {', 'certificates.__proto__'],
    ['certificates-partyC.json', '"certificates": {', 'certificates.partyC'],
  ];
  for (const [name, at, path] of cases) {
    const key = path.split('.')[1]!;
    const text = insertAfter(at, `\n    "${key}": ${key === 'partyC' ? JSON.stringify(genuine.certificates.partyA) : '{}'},`);
    const r = qtm(['verify', write(dir, name, text), '--trust', CA]);
    assert.equal(r.status, 2, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`UNUSABLE .*${name}: proof bundle: unknown field "${path.replace('.', '\\.')}"`), name);
  }
});

test('attack: an undecodable package gives an INVALID report that says so, never "undefined"', (t) => {
  const dir = tempDir(t);
  const file = write(dir, 'garbage-package.json', JSON.stringify({ ...genuine, package: Buffer.from('not a QTM package').toString('base64') }, null, 2));
  const r = qtm(['verify', file, '--trust', CA]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /^INVALID .*garbage-package\.json: no transaction can be named \(the package does not decode\)\n {2}✘ package: /m);
  assert.doesNotMatch(r.stdout, /undefined/);
});

test('attack: a revocation list that is not a signed X.509 CRL (old unsigned JSON, empty, cut, a certificate) is unusable input to qtm verify (exit 2)', (t) => {
  const dir = tempDir(t);
  const fp = 'ab'.repeat(32);
  const ca = memoryCa();
  const x = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Hostile' });
  const now = new Date();
  const der = issueCrl({ crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + 60_000), entries: [] }, x).der;
  const cases: [string, string | Buffer, RegExp][] = [
    // The old unsigned list: whoever holds the file can drop an entry, so it no longer counts at all.
    ['dup.json', `{"version":1,"revoked":[{"serial":"AB12","issuer":"${fp}","revokedAt":"2020-01-01T00:00:00.000Z","revokedAt":"2099-01-01T00:00:00.000Z"}]}`, /an unsigned JSON revocation list is no longer accepted/],
    ['plain.json', `{"version":1,"revoked":[]}`, /an unsigned JSON revocation list is no longer accepted/],
    ['empty.crl', '', /revocation list \(CRL\): empty/],
    ['cut.crl', der.subarray(0, der.length - 7), /revocation list \(CRL\): not valid DER/],
    ['cut.pem.crl', crlPem(der).slice(0, 200), /revocation list \(CRL\): not valid DER|not one PEM/],
    ['cert.crl', x.certificate.toString(), /revocation list \(CRL\): not valid DER|not a CertificateList|not a version 2 CRL/],
  ];
  for (const [name, text, pattern] of cases) {
    const r = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA, '--revocations', write(dir, name, text)]);
    assert.equal(r.status, 2, `${name}: ${r.stdout}${r.stderr}`);
    assert.ok(r.stderr.startsWith('qtm: error: ') && r.stderr.includes(`${name}: `), `${name}: one line naming the file: ${r.stderr}`);
    assert.match(r.stderr, pattern, name);
    assert.equal(r.stdout, '', `${name}: nothing verified`);
  }
});

test('a bug met on one file of a folder run is reported for that file (exit 3); the files after it are still verified', (t) => {
  const dir = tempDir(t);
  copyFileSync(fixture('bundles', 'sample-v2.json'), join(dir, 'a.json'));
  copyFileSync(fixture('bundles', 'sample-v2.json'), join(dir, 'b.json'));
  // Fault injection: the first certificate signature check throws a plain Error, as a bug would.
  const inject = 'data:text/javascript,' + encodeURIComponent(
    'import { X509Certificate } from "node:crypto"; const v = X509Certificate.prototype.verify;'
    + 'X509Certificate.prototype.verify = function (k) { X509Certificate.prototype.verify = v; throw new Error("injected fault"); };');
  // One worker thread (the preloaded fault is in each thread, so two would each fail once).
  const r = spawnSync(process.execPath, ['--import', inject, QTM_BIN, 'verify', dir, '--trust', CA, '--json', '--jobs', '1'], { encoding: 'utf8', cwd: ROOT, env: { PATH: process.env.PATH ?? '' } });
  assert.equal(r.status, 3, r.stderr);
  const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.pop().summary.internal, 1);
  assert.deepEqual(lines.map((x: { status: string }) => x.status), ['unusable', 'valid']);
  assert.match(lines[0]!.error!, /^internal error: injected fault \(run again with --debug and report the output\)$/);
});
