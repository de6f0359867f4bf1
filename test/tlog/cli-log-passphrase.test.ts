/**
 * The log's and the witnesses' keys take their passphrase from a file as every other key does
 * (`--passphrase-file`, `--key-passphrase-file`: the helper of src/cli/secrets.ts), through the
 * real CLI, with no passphrase in the environment: `qtm log init`, `witness-key`, `witness` and
 * `witness-serve`. A wrong or unreadable file is one line and its exit code, and nothing is signed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogDir } from '../../src/tlog/log-dir.js';
import { readNoteKey } from '../../src/tlog/log-key.js';
import { decodeSkey, ed25519NoteSigner, encodeSkey, encodeVkey, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519 } from '../../src/tlog/note.js';
import { qtm, QTM_BIN, tempDir } from '../helpers.js';

const PASS = 'log key passphrase from a file';
const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 7) }));

/** A log of `n` leaves in `dir` (its www/ is what a witness reads) and its public key file. */
async function makeLog(dir: string, n: number): Promise<{ www: string; vkey: string }> {
  const log = LogDir.open(join(dir, 'log'), ed25519NoteSigner(skey));
  for (let i = 0; i < n; i++) await log.append({ transactionId: i + 1, package: Buffer.from(`package ${i}`) });
  await log.close();
  writeFileSync(join(dir, 'log.vkey'), `${encodeVkey(skey)}\n`);
  return { www: join(dir, 'log', 'www'), vkey: join(dir, 'log.vkey') };
}

/** Runs `qtm log witness-serve` until it listens (resolves its URL) or exits (resolves its exit code and stderr). */
function witnessServe(args: string[], env: Record<string, string> = {}): Promise<{ url?: string; status?: number | null; stderr: string; stop(): void }> {
  const child = spawn(process.execPath, [QTM_BIN, 'log', 'witness-serve', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const stop = () => { child.kill('SIGTERM'); };
  return new Promise((resolve) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d;
      const m = /"event":"listening","url":"([^"]+)"/.exec(stderr);
      if (m) resolve({ url: m[1]!, stderr, stop });
    });
    child.once('exit', (status) => resolve({ status, stderr, stop }));
  });
}

test('qtm log init and witness-key: the passphrase from --passphrase-file or --key-passphrase-file, none in the environment', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'key.pass'), `${PASS}\n`, { mode: 0o600 });
  const init = qtm(['log', 'init', '--out', join(dir, 'log'), '--origin', 'shop.example/log', '--passphrase-file', join(dir, 'key.pass'), '--json']);
  assert.equal(init.status, 0, init.stderr);
  assert.equal(readNoteKey(join(dir, 'log'), PASS, SIG_TYPE_ED25519).name, 'shop.example/log', 'the key is encrypted under the first line of the file');
  const wkey = qtm(['log', 'witness-key', '--out', join(dir, 'w1'), '--name', 'witness.example/w1', '--key-passphrase-file', join(dir, 'key.pass')]);
  assert.equal(wkey.status, 0, wkey.stderr);
  assert.equal(readNoteKey(join(dir, 'w1'), PASS, SIG_TYPE_COSIGNATURE_V1).name, 'witness.example/w1');

  // A file whose first line is empty, or a passphrase too short for a new key: nothing is written.
  writeFileSync(join(dir, 'empty.pass'), '\nsecond line\n');
  const empty = qtm(['log', 'init', '--out', join(dir, 'log2'), '--origin', 'shop.example/log2', '--passphrase-file', join(dir, 'empty.pass')]);
  assert.equal(empty.status, 2);
  assert.match(empty.stderr, /^qtm: error: --passphrase-file .*empty\.pass: the first line is empty, no key passphrase in it\n$/);
  writeFileSync(join(dir, 'short.pass'), 'short\n');
  const short = qtm(['log', 'witness-key', '--out', join(dir, 'w2'), '--name', 'witness.example/w2', '--passphrase-file', join(dir, 'short.pass')]);
  assert.equal(short.status, 2);
  assert.match(short.stderr, /^qtm: error: key passphrase must be at least 8 characters\n$/);
  assert.ok(!existsSync(join(dir, 'log2-key.pem')) && !existsSync(join(dir, 'w2-key.pem')), 'no key file was written');

  for (const sub of ['init', 'witness-key', 'witness', 'witness-serve']) {
    const help = qtm(['log', sub, '--help']).stdout;
    assert.match(help, /^ {2}--passphrase-file <file>/m, `qtm log ${sub} --help`);
    assert.match(help, /^ {2}--key-passphrase-file <file>/m, `qtm log ${sub} --help`);
    assert.match(help, /The key passphrase comes from --passphrase-file/, `qtm log ${sub} --help says where the passphrase comes from`);
    assert.match(help, /--passphrase-file \S+\.pass/, `qtm log ${sub} --help has an example with the file`);
  }
});

test('attack: qtm log witness with a wrong or unreadable passphrase file is one line (exit 1, exit 2) and cosigns nothing; the right file cosigns and wins over the environment', async (t) => {
  const dir = tempDir(t);
  const { www, vkey } = await makeLog(dir, 5);
  writeFileSync(join(dir, 'key.pass'), `${PASS}\r\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'wrong.pass'), 'not the passphrase\n', { mode: 0o600 });
  assert.equal(qtm(['log', 'witness-key', '--out', join(dir, 'w1'), '--name', 'witness.example/w1', '--passphrase-file', join(dir, 'key.pass')]).status, 0);
  const state = join(dir, 'w1-state.json');
  const witness = (file: string, env: Record<string, string> = {}) =>
    qtm(['log', 'witness', '--log', www, '--log-key', vkey, '--key', join(dir, 'w1'), '--state', state, '--out', join(dir, 'cosigned.txt'), '--passphrase-file', file], { env });

  const wrong = witness(join(dir, 'wrong.pass'));
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^qtm: error: wrong passphrase for .*w1-key\.pem \(check QTM_KEY_PASSPHRASE, or the passphrase file given\)\n$/);
  const missing = witness(join(dir, 'nope.pass'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^qtm: error: --passphrase-file .*nope\.pass: cannot read the key passphrase: ENOENT \(check the path and its permissions\)\n$/);
  assert.ok(!existsSync(state) && !existsSync(join(dir, 'cosigned.txt')), 'nothing was cosigned, no state was written');

  // The file on the command line wins over a wrong passphrase in the environment.
  const ok = witness(join(dir, 'key.pass'), { QTM_KEY_PASSPHRASE: 'not the passphrase' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^cosigned shop\.example\/log at size 5/);
  assert.ok(existsSync(state));
});

test('attack: qtm log witness-serve with a wrong passphrase file exits 1 with one line before it listens; with the right one it serves', async (t) => {
  const dir = tempDir(t);
  const { vkey } = await makeLog(dir, 1);
  writeFileSync(join(dir, 'key.pass'), `${PASS}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'wrong.pass'), 'not the passphrase\n', { mode: 0o600 });
  assert.equal(qtm(['log', 'witness-key', '--out', join(dir, 'w1'), '--name', 'witness.example/w1', '--passphrase-file', join(dir, 'key.pass')]).status, 0);
  const args = (file: string) => ['--key', join(dir, 'w1'), '--log-key', vkey, '--state-dir', join(dir, 'state'), '--passphrase-file', file];

  const wrong = await witnessServe(args(join(dir, 'wrong.pass')));
  assert.equal(wrong.url, undefined, 'it did not listen');
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^qtm: error: wrong passphrase for .*w1-key\.pem \(check QTM_KEY_PASSPHRASE, or the passphrase file given\)\n$/);

  const ok = await witnessServe(args(join(dir, 'key.pass')));
  t.after(() => ok.stop());
  assert.match(ok.url ?? '', /^http:\/\/127\.0\.0\.1:\d+\/$/, ok.stderr);
});
