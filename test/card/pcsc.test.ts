/**
 * Through the real PC/SC stack: qtm card emulate -> vpcd -> pcscd -> pcsclite / opensc-tool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { initCa } from '../../src/pki/ca.js';
import { initSam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { PcscTransport } from '../../src/card/transports/pcsc.js';
import { sealRecord, storageProof } from '../../src/crypto/secure-write.js';
import { CardStatusError, SW } from '../../src/card/status-words.js';
import { qtm, requireTool, tempDir } from '../helpers.js';
import { READER, requirePcscd, startEmulator, stopEmulator } from './pcsc-helpers.js';

test('issue, read and write a virtual card through pcscd; opensc-tool talks to it too', async (t) => {
  if (!(await requirePcscd(t))) return;
  if (!requireTool(t, 'opensc-tool', 'apt-get install opensc')) return;
  const dir = tempDir(t);
  const env = { QTM_CA_PASSPHRASE: 'ca passphrase', QTM_SAM_PASSPHRASE: 'sam passphrase', QTM_PIN: '2468', QTM_PUK: '13572468' };
  initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=PCSC Test CA', passphrase: env.QTM_CA_PASSPHRASE });
  const sam = initSam(join(dir, 'shop.sam'), env.QTM_SAM_PASSPHRASE);
  const emulator = await startEmulator(join(dir, 'alice.card.json'), ['--slots', '4']);
  t.after(() => stopEmulator(emulator));

  // A client no one here wrote: SELECT our application, GET CHALLENGE.
  const sc = spawnSync('opensc-tool', ['-r', READER, '-s', '00A4040007F051544D010001', '-s', '0084000010'], { encoding: 'utf8' });
  assert.equal(sc.status, 0, sc.stderr);
  const received = sc.stdout.split('\n').filter((l) => l.startsWith('Received'));
  assert.equal(received[0], 'Received (SW1=0x90, SW2=0x00)');
  // GET CHALLENGE before personalisation is refused with 6985, as the command table says.
  assert.equal(received[1], 'Received (SW1=0x69, SW2=0x85)');

  const issue = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice PCSC', '--reader', READER, '--slots', '4', '--json'], { env });
  assert.equal(issue.status, 0, issue.stderr);
  const issued = JSON.parse(issue.stdout);
  assert.match(issued.subject, /serialNumber=/);

  const sc2 = spawnSync('opensc-tool', ['-r', READER, '-s', '00A4040007F051544D010001', '-s', '0084000010'], { encoding: 'utf8' });
  const lines = sc2.stdout.split('\n');
  const challengeAt = lines.findIndex((l) => l.startsWith('Received (SW1=0x90')) ;
  assert.ok(challengeAt >= 0);
  assert.match(sc2.stdout, /Sending: 00 84 00 00 10 \nReceived \(SW1=0x90, SW2=0x00\):\n([0-9A-F]{2} ){16}/);

  const info = qtm(['card', 'info', '--reader', READER, '--json']);
  assert.equal(info.status, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).serial, issued.serial);
  assert.equal(JSON.parse(info.stdout).lifecycle, 'operational');

  // A secure write through PC/SC with the library, then the CLI reads it back without PIN.
  const transport = await PcscTransport.connect(READER);
  try {
    const client = new CardClient(transport);
    await client.select();
    await client.verifyPin(env.QTM_PIN);
    const keys = sam.cardKeys(Buffer.from(issued.serial, 'hex'));
    const record = Buffer.concat([Buffer.of(2, 0, 0, 0, 9), Buffer.alloc(4, 1), Buffer.alloc(32, 2), Buffer.alloc(8, 3), Buffer.of(1)]);
    const r = await client.getChallenge();
    const envelope = sealRecord(keys, r, 2, record);
    assert.deepEqual(await client.secureWrite(2, envelope), storageProof(keys, r, record));
    await assert.rejects(client.secureWrite(2, envelope), (e) => e instanceof CardStatusError && e.sw === SW.REFERENCE_DATA_UNUSABLE);
  } finally {
    await transport.close();
  }
  const list = qtm(['receipts', 'list', '--reader', READER, '--json']);
  assert.equal(list.status, 0, list.stderr);
  const slots = JSON.parse(list.stdout).slots;
  assert.deepEqual(slots.map((s: { state: string }) => s.state), ['free', 'used', 'free', 'free']);
  assert.equal(slots[1].transactionId, 9);
});

test('a reader that does not exist is a clear error, exit 2', async (t) => {
  if (!(await requirePcscd(t))) return;
  const r = qtm(['card', 'info', '--reader', 'No Such Reader 00 00']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no PC\/SC reader named "No Such Reader 00 00" \(readers: "Virtual PCD 00 00"/);
});

test('qtm demo --pcsc runs the whole transaction through pcscd', async (t) => {
  if (!(await requirePcscd(t))) return;
  const r = qtm(['demo', '--pcsc', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.valid, true);
  assert.match(j.story.join(' '), /PC\/SC reader "Virtual PCD 00 00"/);
});
