import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, mkdirSync, copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { fixture, fixtureText, qtm, tempDir } from '../helpers.js';

const CA = fixture('ca', 'ca.pem');
const ANSI = /\x1b\[/;

function commandPaths(): string[][] {
  const top = qtm(['--help']).stdout;
  const groups = [...top.matchAll(/^  (\w[\w-]*)\b/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  const paths: string[][] = [];
  for (const g of groups) {
    paths.push([g]);
    const sub = qtm([g, '--help']).stdout;
    const section = sub.split('Commands:')[1];
    if (section) for (const m of section.split('\n\n')[0]!.matchAll(/^  (\w[\w-]*)\b/gm)) if (m[1] !== 'help') paths.push([g, m[1]!]);
  }
  return paths;
}

test('every command has --help with examples and exits 0', () => {
  const paths = commandPaths();
  assert.ok(paths.length >= 6, paths.join(' '));
  for (const p of paths) {
    const r = qtm([...p, '--help']);
    assert.equal(r.status, 0, p.join(' '));
    const isGroup = /Commands:/.test(r.stdout);
    if (!isGroup) assert.match(r.stdout, /Examples:\n  \$ (\S+=\S+ )?qtm /, `${p.join(' ')} --help has no examples`);
  }
});

test('usage errors exit 2 with one line on stderr', () => {
  const r = qtm(['verify', fixture('bundles', 'sample-v2.json')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^qtm: error: no trust anchor given \(pass the CA certificate with --trust CA.pem\)\n$/);
  assert.equal(qtm(['no-such-command']).status, 2);
});

test('verify: valid bundle, exit 0, human report, no colour without a TTY', () => {
  const r = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA], { env: { FORCE_COLOR: '1' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^VALID .*transaction 42/);
  assert.match(r.stdout, /party B  CN=Alice Example/);
  assert.doesNotMatch(r.stdout, ANSI);
  assert.equal(r.stderr, '');
});

test('verify: invalid bundle exits 1 and names the failed check', (t) => {
  const dir = tempDir(t);
  const b = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  const pkg = Buffer.from(b.package);
  pkg[pkg.length - 1]! ^= 1;
  writeFileSync(join(dir, 'bad.json'), encodeBundle({ ...b, package: pkg }));
  const r = qtm(['verify', join(dir, 'bad.json'), '--trust', CA]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /INVALID .*\n  ✘ signature-server: server signature over fields 1-5 does not verify/);
});

test('verify: unusable input exits 2 and says what is wrong', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'junk.json'), '{"hello": 1}');
  const r = qtm(['verify', join(dir, 'junk.json'), '--trust', CA]);
  assert.equal(r.status, 2);
  assert.match(r.stdout, /UNUSABLE .*mediaType must be/);
  const missing = qtm(['verify', join(dir, 'nope.json'), '--trust', CA]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^qtm: error: .*nope.json: no such file or directory/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const badTrust = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', fixture('keys', 'server-v2.pem')]);
  assert.equal(badTrust.status, 2);
  assert.match(badTrust.stderr, /is not a CA certificate/);
});

test('verify: a directory, a quoted glob, a summary line and JSON output', (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'sub'));
  copyFileSync(fixture('bundles', 'sample-v1.json'), join(dir, 'a.json'));
  copyFileSync(fixture('bundles', 'sample-v2.json'), join(dir, 'sub', 'b.json'));
  const r = qtm(['verify', dir, '--trust', CA]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /2 bundles: 2 valid, 0 invalid, 0 unusable, 1 legacy v1/);
  // A glob may stand for many bundles: JSON Lines, one result per bundle, then the summary.
  const g = qtm(['verify', join(dir, '*.json'), '--trust', CA, '--json']);
  const [result, summary, ...rest] = g.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rest, []);
  assert.equal(result.status, 'valid');
  assert.equal(result.checks.length, 18); // 17, and "party-a-is-server" since package version 3
  assert.deepEqual([summary.summary.total, summary.summary.valid, summary.summary.legacy], [1, 1, 1]);
  // One bundle file: the one JSON document it always was.
  const one = JSON.parse(qtm(['verify', join(dir, 'a.json'), '--trust', CA, '--json']).stdout);
  assert.deepEqual(one.summary, { total: 1, valid: 1, invalid: 0, unusable: 0, legacy: 1 });
  assert.equal(one.results[0].checks.length, 18);
});

test('verify --content for a detached bundle, --at for another evaluation time', (t) => {
  const dir = tempDir(t);
  const { content: _c, ...detached } = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  writeFileSync(join(dir, 'd.json'), encodeBundle(detached));
  assert.equal(qtm(['verify', join(dir, 'd.json'), '--trust', CA]).status, 1);
  assert.equal(qtm(['verify', join(dir, 'd.json'), '--trust', CA, '--content', fixture('content', 'order.txt')]).status, 0);
  const late = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA, '--at', '2070-01-01T00:00:00Z', '--json']);
  assert.equal(late.status, 1);
  assert.deepEqual(JSON.parse(late.stdout).results[0].failures.map((f: { name: string }) => f.name).sort(), ['chain-a', 'chain-b', 'chain-server']);
  assert.equal(qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA, '--at', 'yesterday']).status, 2);
});

test('package sizes reproduces the patent figures; package decode reads a bundle', () => {
  const v1 = JSON.parse(qtm(['package', 'sizes', '--profile', 'v1', '--json']).stdout);
  assert.equal(v1.packageBytes, 473);
  assert.equal(v1.cardRecordBytes, 29);
  assert.equal(v1.packageFormula, '1+20+4+4+20+20+20+3*128');
  // The patent's figures are the v1 profile; the default is v2, as everywhere else (issue 14).
  const human = qtm(['package', 'sizes', '--profile', 'v1']).stdout;
  assert.match(human, /QTM package  473 bytes/);
  assert.match(human, /card record  29 bytes/);
  assert.equal(JSON.parse(qtm(['package', 'sizes', '--json']).stdout).profile, 'v2');
  const d = JSON.parse(qtm(['package', 'decode', fixture('bundles', 'sample-v1.json'), '--json']).stdout);
  assert.equal(d.bytes, 473);
  assert.equal(d.transactionId, 42);
  assert.equal(d.cardRecord.bytes, 29);
});

test('ca init and issue: passphrases from the environment only, never overwrite, clear errors', (t) => {
  const dir = tempDir(t);
  const env = { QTM_CA_PASSPHRASE: 'ca passphrase 1', QTM_KEY_PASSPHRASE: 'key passphrase 1' };
  const noSecret = qtm(['ca', 'init', '--out', join(dir, 'ca')]);
  assert.equal(noSecret.status, 2);
  assert.match(noSecret.stderr, /CA passphrase needed \(set QTM_CA_PASSPHRASE/);
  assert.equal(existsSync(join(dir, 'ca')), false, 'nothing created without a passphrase');
  const init = qtm(['ca', 'init', '--out', join(dir, 'ca'), '--json'], { env });
  assert.equal(init.status, 0, init.stderr);
  assert.equal(JSON.parse(init.stdout).profile, 'v2');
  const issue = qtm(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'signer', '--subject', 'CN=Receipts', '--out', join(dir, 'rec'), '--json'], { env });
  assert.equal(issue.status, 0, issue.stderr);
  // --out into a folder that does not exist yet makes it, private to the user.
  const nested = qtm(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'server', '--subject', 'CN=localhost', '--out', join(dir, 'keys', 'tls')], { env });
  assert.equal(nested.status, 0, nested.stderr);
  assert.equal(statSync(join(dir, 'keys')).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'keys', 'tls-key.pem')).mode & 0o777, 0o600);
  const key = readFileSync(join(dir, 'rec-key.pem'), 'utf8');
  assert.match(key, /BEGIN ENCRYPTED PRIVATE KEY/);
  assert.doesNotMatch(issue.stdout + issue.stderr, /PRIVATE KEY|ca passphrase 1|key passphrase 1/);
  const again = qtm(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'signer', '--subject', 'CN=Receipts', '--out', join(dir, 'rec')], { env });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists/);
  assert.equal(readFileSync(join(dir, 'rec-key.pem'), 'utf8'), key);
  const wrong = qtm(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'server', '--subject', 'CN=x', '--out', join(dir, 'x')], { env: { ...env, QTM_CA_PASSPHRASE: 'nope nope' } });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /wrong CA passphrase/);
  const badRole = qtm(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'king', '--subject', 'CN=x', '--out', join(dir, 'x')], { env });
  assert.equal(badRole.status, 2);
  const short = qtm(['ca', 'init', '--out', join(dir, 'ca2')], { env: { QTM_CA_PASSPHRASE: 'short' } });
  assert.equal(short.status, 2);
  assert.match(short.stderr, /at least 8 characters/);
});
