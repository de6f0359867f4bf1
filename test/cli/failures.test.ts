/**
 * Failures that must not read as the wrong thing (issue 14): each through the real CLI, with its
 * message and exit code. The interactive ones (Ctrl-C at a prompt) are in test/e2e/cli.test.ts;
 * `card emulate --vpcd :35964` is in test/card/reader-choice.test.ts, with the other user of that slot.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa } from '../../src/pki/ca.js';
import { initSam } from '../../src/sam/sam.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { fixture, QTM_BIN, qtm, ROOT, tempDir } from '../helpers.js';

const env = { QTM_CA_PASSPHRASE: 'ca passphrase', QTM_SAM_PASSPHRASE: 'sam passphrase', QTM_PIN: '1234', QTM_PUK: '12345678' };
const CA = fixture('ca', 'ca.pem');
let issued: string;

before(() => {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-failures-'));
  initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Failures CA', passphrase: env.QTM_CA_PASSPHRASE });
  initSam(join(dir, 'shop.sam'), env.QTM_SAM_PASSPHRASE);
  issued = join(dir, 'alice.card.json');
  const r = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice', '--card', issued, '--slots', '3'], { env });
  assert.equal(r.status, 0, r.stderr);
});

/** Runs qtm with its stdout read by nobody: the reading end is closed before qtm writes. */
function withClosedStdout(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [QTM_BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: tmpdir() }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.once('close', (status) => resolve({ status, stderr }));
  });
}

test('a closed stdout (`| head`) ends quietly with exit 0: verify, receipts list, card info', async () => {
  for (const args of [['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA], ['verify', fixture('bundles'), '--trust', CA, '--json'], ['receipts', 'list', '--card', issued], ['card', 'info', '--card', issued]]) {
    const r = await withClosedStdout(args);
    assert.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
    assert.equal(r.status, 0, args.join(' '));
  }
});

function pcscBindingLoads(): boolean {
  try {
    createRequire(import.meta.url)('pcsclite');
    return true;
  } catch {
    return false;
  }
}

test('pcscd not reachable: one line naming the PC/SC service, how to start it, or --card FILE; exit 2', (t) => {
  if (!pcscBindingLoads()) {
    if (process.env.CI) throw new Error('the pcsclite binding must load in CI');
    return t.skip('pcsclite binding not installed (apt-get install libpcsclite-dev; npm ci)');
  }
  const noService = { PCSCLITE_CSOCK_NAME: '/nonexistent' };
  for (const args of [['card', 'list-readers'], ['receipts', 'list', '--reader', 'Virtual PCD 00 00']]) {
    const r = qtm(args, { env: noService });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^qtm: error: the PC\/SC service \(pcscd\) is not reachable: .* \(start it: `sudo systemctl start pcscd` or `sudo pcscd`; or use --card FILE for a virtual card in this process\)\n$/);
    assert.equal(r.stdout, '');
  }
  const json = qtm(['card', 'list-readers', '--json'], { env: noService });
  assert.equal(json.status, 2);
  assert.deepEqual(Object.keys(JSON.parse(json.stdout).error), ['code', 'message', 'exitCode']);
  assert.equal(JSON.parse(json.stdout).error.code, 'E_CARD_UNAVAILABLE');
});

test('an unissued card: receipts list and show say the card is not issued, exit 1; card info still reports it', (t) => {
  const blank = join(tempDir(t), 'blank.card.json');
  FileStorage.create(blank, 4);
  for (const args of [['receipts', 'list', '--card', blank], ['receipts', 'show', '1', '--card', blank]]) {
    const r = qtm(args);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^qtm: error: card [0-9A-F]+ is not issued: it holds no receipts yet \(issue it with `qtm card issue`\)\n$/);
    assert.equal(r.stdout, '');
  }
  const info = qtm(['card', 'info', '--card', blank]);
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /\(personalisation\)/);
});

test('the third wrong PIN says the PIN is now blocked', (t) => {
  const dir = tempDir(t);
  const card = join(dir, 'card.json');
  copyFileSync(issued, card); // a copy, so the other tests keep a usable card
  const tries = [1, 2, 3].map(() => qtm(['card', 'pin', 'change', '--card', card], { env: { QTM_PIN: '0000', QTM_NEW_PIN: '5678' } }));
  assert.deepEqual(tries.map((r) => r.status), [1, 1, 1]);
  assert.match(tries[1]!.stderr, /^qtm: error: wrong PIN: 1 try left before it blocks \(check it and try again\)\n$/);
  assert.match(tries[2]!.stderr, /^qtm: error: wrong PIN: the PIN is now blocked \(unblock it with `qtm card pin unblock` and the PUK\)\n$/);
  assert.equal(JSON.parse(qtm(['card', 'info', '--card', card, '--json']).stdout).pinTriesLeft, 0);
});

test('under --json a failure prints {"error":{"code","message","exitCode"}} on stdout, the line on stderr', (t) => {
  const blank = join(tempDir(t), 'blank.card.json');
  FileStorage.create(blank, 2);
  const notIssued = qtm(['receipts', 'list', '--card', blank, '--json']);
  assert.equal(notIssued.status, 1);
  const e = JSON.parse(notIssued.stdout).error;
  assert.deepEqual(Object.keys(e), ['code', 'message', 'exitCode']);
  assert.equal(e.code, 'E_NOT_ISSUED');
  assert.equal(e.exitCode, 1);
  assert.match(e.message, /is not issued/);
  assert.match(notIssued.stderr, /^qtm: error: card .* is not issued/);

  const noTrust = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--json']);
  assert.equal(noTrust.status, 2);
  assert.deepEqual(JSON.parse(noTrust.stdout), { error: { code: 'E_INPUT', message: 'no trust anchor given (pass the CA certificate with --trust CA.pem)', exitCode: 2 } });

  const usage = qtm(['receipts', 'list', '--no-such-flag', '--json']);
  assert.equal(usage.status, 2);
  assert.equal(JSON.parse(usage.stdout).error.code, 'E_USAGE');
  assert.match(usage.stderr, /^qtm: error: unknown option '--no-such-flag'/);
});

test('one error prefix: usage errors from the option parser also start with "qtm: error:"', () => {
  const r = qtm(['verify', '--at', 'yesterday', fixture('bundles', 'sample-v2.json')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^qtm: error: option '--at <time>' argument 'yesterday' is invalid/);
  const missing = qtm(['no-such-command']);
  assert.match(missing.stderr, /^qtm: error: unknown command 'no-such-command'/);
});
