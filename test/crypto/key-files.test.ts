/**
 * Key files at rest: PBKDF2-HMAC-SHA256 at 600,000 iterations and AES-256-CBC in a PKCS#8 file
 * that openssl opens; old files (OpenSSL's 2,048 iterations) keep opening and `qtm key rewrap`
 * brings them up to date without a passphrase on the command line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, decryptPrivateKey, keyFileKdf, KEY_FILE_KDF } from '../../src/crypto/keys.js';
import { qtm, requireTool, tempDir } from '../helpers.js';

const PASS = 'key file passphrase ü';

function asn1parse(file: string): string {
  const r = spawnSync('openssl', ['asn1parse', '-in', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function opensslOpens(file: string, passphrase: string): boolean {
  const r = spawnSync('openssl', ['pkey', '-in', file, '-passin', 'env:KEYPASS', '-noout'], { encoding: 'utf8', env: { ...process.env, KEYPASS: passphrase } });
  return r.status === 0;
}

test('qtm ca init and ca issue write keys with PBKDF2-HMAC-SHA256 at 600,000 iterations, AES-256-CBC; openssl opens them', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS };
  const init = qtm(['ca', 'init', '--out', join(dir, 'ca')], { env });
  assert.equal(init.status, 0, init.stderr);
  const issue = qtm(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'signer', '--subject', 'CN=KDF receipts', '--out', join(dir, 'receipts')], { env });
  assert.equal(issue.status, 0, issue.stderr);
  for (const file of [join(dir, 'ca', 'ca-key.pem'), join(dir, 'receipts-key.pem')]) {
    const parsed = asn1parse(file);
    // 600000 = 0x0927C0, as openssl prints the iteration count.
    assert.match(parsed, /:PBES2\s/);
    assert.match(parsed, /:PBKDF2\s/);
    assert.match(parsed, /INTEGER\s+:0927C0\s/);
    assert.match(parsed, /:hmacWithSHA256\s/);
    assert.match(parsed, /:aes-256-cbc\s/);
    assert.ok(opensslOpens(file, PASS), `openssl pkey opens ${file}`);
    assert.ok(!opensslOpens(file, 'wrong passphrase'));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.doesNotMatch(readFileSync(file, 'utf8'), /BEGIN PRIVATE KEY/);
  }
  assert.equal(KEY_FILE_KDF.iterations, 600_000);
});

test('qtm key rewrap: an old 2,048-iteration key file is rewritten at 600,000, same key, same passphrase', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  const { privateKey } = generateKeyPair('p256');
  const file = join(dir, 'old-key.pem');
  // How qtm wrote keys before: KeyObject.export, OpenSSL's default PBKDF2 count.
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string, { mode: 0o600 });
  assert.equal(keyFileKdf(readFileSync(file, 'utf8'))!.iterations, 2048);
  assert.ok(decryptPrivateKey(readFileSync(file, 'utf8'), PASS).equals(privateKey), 'old files keep opening');

  const original = readFileSync(file);
  // Wrong passphrase: refused, exit 1, file untouched.
  const wrong = qtm(['key', 'rewrap', file], { env: { QTM_KEY_PASSPHRASE: 'not it' } });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^qtm: error: wrong passphrase for .*old-key\.pem/);
  assert.deepEqual(readFileSync(file), original);
  // No passphrase anywhere and no terminal: exit 2, nothing changed.
  const none = qtm(['key', 'rewrap', file]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /set QTM_KEY_PASSPHRASE/);
  // Never a flag.
  assert.equal(qtm(['key', 'rewrap', '--passphrase', PASS, file]).status, 2);
  assert.deepEqual(readFileSync(file), original);

  const r = qtm(['key', 'rewrap', file, '--json'], { env: { QTM_KEY_PASSPHRASE: PASS } });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!(r.stdout + r.stderr).includes(PASS), 'the passphrase is never printed');
  const result = JSON.parse(r.stdout);
  assert.deepEqual(result.before, { iterations: 2048, prf: 'hmacWithSHA256', cipher: 'aes256-CBC' });
  assert.deepEqual(result.after, { iterations: 600000, prf: 'hmacWithSHA256', cipher: 'aes256-CBC' });
  assert.match(asn1parse(file), /INTEGER\s+:0927C0\s[\s\S]*:hmacWithSHA256\s/);
  assert.ok(decryptPrivateKey(readFileSync(file, 'utf8'), PASS).equals(privateKey), 'the same key, the same passphrase');
  assert.ok(opensslOpens(file, PASS));
  assert.equal(statSync(file).mode & 0o777, 0o600);

  // A CA key takes its passphrase from QTM_CA_PASSPHRASE with --ca.
  const caFile = join(dir, 'ca-key.pem');
  writeFileSync(caFile, privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'ca pass' }) as string, { mode: 0o600 });
  assert.equal(qtm(['key', 'rewrap', '--ca', caFile], { env: { QTM_CA_PASSPHRASE: 'ca pass', QTM_KEY_PASSPHRASE: PASS } }).status, 0);
  assert.equal(keyFileKdf(readFileSync(caFile, 'utf8'))!.iterations, 600_000);
});

test('qtm key rewrap refuses what is not an encrypted key file, and shows examples', (t) => {
  const dir = tempDir(t);
  const plain = join(dir, 'plain.pem');
  writeFileSync(plain, generateKeyPair('p256').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const r = qtm(['key', 'rewrap', plain], { env: { QTM_KEY_PASSPHRASE: PASS } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /is not an encrypted PKCS#8 key file/);
  assert.equal(qtm(['key', 'rewrap', join(dir, 'missing.pem')], { env: { QTM_KEY_PASSPHRASE: PASS } }).status, 2);
  const help = qtm(['key', 'rewrap', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Examples:\n\s+\$ QTM_KEY_PASSPHRASE=\.\.\. qtm key rewrap keys\/receipts-key\.pem/);
});
