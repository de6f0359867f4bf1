/** C2SP tlog-witness over HTTP through the real CLI: qtm log witness-serve and qtm log push. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogDir } from '../../src/tlog/log-dir.js';
import { cosignatureVerifier } from '../../src/tlog/cosignature.js';
import { readVkeyFile } from '../../src/tlog/log-key.js';
import { decodeNote, decodeSkey, ed25519NoteSigner, encodeSkey, encodeVkey, verifyNote } from '../../src/tlog/note.js';
import { qtm, QTM_BIN, tempDir } from '../helpers.js';

const env = { QTM_KEY_PASSPHRASE: 'witness test passphrase' };
const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 11) }));
const leaf = (i: number, v = '') => ({ transactionId: i + 1, package: Buffer.from(`package ${i}${v}`) });

async function makeLog(dir: string, n: number, rewrite?: number): Promise<string> {
  const log = LogDir.open(dir, ed25519NoteSigner(skey));
  for (let i = 0; i < n; i++) await log.append(leaf(i, i === rewrite ? ' rewritten' : ''));
  await log.close();
  return join(dir, 'www');
}

test('qtm log push gets a cosignature from qtm log witness-serve; a forked log is refused (exit 1)', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'log.vkey'), `${encodeVkey(skey)}\n`);
  assert.equal(qtm(['log', 'witness-key', '--out', join(dir, 'w1'), '--name', 'witness.example/w1'], { env }).status, 0);
  const child = spawn(process.execPath, [QTM_BIN, 'log', 'witness-serve', '--key', join(dir, 'w1'), '--log-key', join(dir, 'log.vkey'), '--state-dir', join(dir, 'state')],
    { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => { child.kill('SIGTERM'); });
  const url = await new Promise<string>((resolve, reject) => {
    let head = '';
    child.stderr!.on('data', (d: Buffer) => {
      head += d;
      const m = /"event":"listening","url":"([^"]+)"/.exec(head);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`witness exited ${code}: ${head}`)));
  });
  const logDir = join(dir, 'log');
  let www = await makeLog(logDir, 5);
  const push = (w: string) => qtm(['log', 'push', '--log', w, '--log-key', join(dir, 'log.vkey'), '--witness', url, '--json']);
  let r = push(www);
  assert.equal(r.status, 0, r.stderr);
  const v = cosignatureVerifier(readVkeyFile(join(dir, 'w1.vkey'), [4]));
  assert.deepEqual(verifyNote(decodeNote(JSON.parse(r.stdout).cosigned), [v]), [v]);
  // The log grows: the push learns the witness's size (409) and sends the consistency proof.
  const log = LogDir.open(logDir, ed25519NoteSigner(skey));
  for (let i = 5; i < 300; i++) await log.append(leaf(i));
  await log.close();
  r = push(www);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).size, 300);
  // The shop rewrites leaf 3 and grows: no consistency proof from 300 can verify.
  www = await makeLog(join(dir, 'forked'), 301, 3);
  r = push(www);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /refused the checkpoint \(HTTP 422\): consistency proof does not lead to the old root of size 300: the log forked/);
  // Same size, another root.
  www = await makeLog(join(dir, 'forked-same'), 300, 3);
  r = push(www);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /HTTP 409\): LOG FORKED: another root for size 300/);
});
