/**
 * -r/--reader as opensc-tool and ykman read it: exact name, index, or a unique case-insensitive
 * part of the name; --wait for a card. The PC/SC part uses the second vpcd slot (port 35964,
 * "Virtual PCD 00 01") so it does not take the first one from the other PC/SC tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { resolveReaderName } from '../../src/card/transports/pcsc.js';
import { CardUnavailableError } from '../../src/card/status-words.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { QTM_BIN, qtm, ROOT, tempDir } from '../helpers.js';
import { requirePcscd } from './pcsc-helpers.js';

const NAMES = ['Virtual PCD 00 00', 'Virtual PCD 00 01', 'Yubico YubiKey OTP+FIDO+CCID 01 00'];

test('resolveReaderName: exact name, index, unique case-insensitive part; ambiguous or unknown say which', () => {
  assert.equal(resolveReaderName('Virtual PCD 00 01', NAMES), 'Virtual PCD 00 01');
  assert.equal(resolveReaderName('0', NAMES), 'Virtual PCD 00 00');
  assert.equal(resolveReaderName('2', NAMES), 'Yubico YubiKey OTP+FIDO+CCID 01 00');
  assert.equal(resolveReaderName('yubikey', NAMES), 'Yubico YubiKey OTP+FIDO+CCID 01 00');
  assert.equal(resolveReaderName('pcd 00 01', NAMES), 'Virtual PCD 00 01');
  assert.throws(() => resolveReaderName('virtual', NAMES), (e) => e instanceof CardUnavailableError && /"virtual" names 2 PC\/SC readers: "Virtual PCD 00 00", "Virtual PCD 00 01"/.test(e.message));
  assert.throws(() => resolveReaderName('3', NAMES), (e) => e instanceof CardUnavailableError && /no PC\/SC reader number 3/.test(e.message) && /"Virtual PCD 00 00" \(0\)/.test(e.hint!));
  assert.throws(() => resolveReaderName('gemalto', NAMES), (e) => e instanceof CardUnavailableError && /no PC\/SC reader named "gemalto"/.test(e.message));
  assert.throws(() => resolveReaderName('0', []), (e) => e instanceof CardUnavailableError && /no reader found/.test(e.hint!));
});

test('--wait waits for the card; -r takes the index or a part of the name (through pcscd)', async (t) => {
  if (!(await requirePcscd(t))) return;
  const dir = tempDir(t);
  const card = join(dir, 'blank.card.json');
  FileStorage.create(card, 2);
  // No card in slot 01 yet: --wait announces it is waiting, then reads the card once it is in.
  const waiting = spawn(process.execPath, [QTM_BIN, 'card', 'info', '-r', 'pcd 00 01', '--wait', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  waiting.stdout.on('data', (d) => (stdout += d));
  waiting.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => waiting.once('exit', r));
  let emulator: ReturnType<typeof spawn> | undefined;
  try {
    const deadline = Date.now() + 10_000;
    while (!/waiting for a card/.test(stderr) && Date.now() < deadline && waiting.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    assert.equal(stderr, 'waiting for a card in "Virtual PCD 00 01" (Ctrl-C to stop)\n');
    emulator = spawn(process.execPath, [QTM_BIN, 'card', 'emulate', '--card', card, '--vpcd', ':35964'], { cwd: ROOT, stdio: 'ignore' });
    assert.equal(await exited, 0, stderr);
    assert.equal(JSON.parse(stdout).lifecycle, 'personalisation');
    const listed = qtm(['card', 'list-readers']);
    assert.match(listed.stdout, /^1\tVirtual PCD 00 01\tcard present, ATR [0-9A-F]+$/m, 'the number -r takes is listed');
    const byIndex = qtm(['card', 'info', '-r', '1', '--json']);
    assert.equal(byIndex.status, 0, byIndex.stderr);
    assert.equal(JSON.parse(byIndex.stdout).serial, JSON.parse(stdout).serial);
    const ambiguous = qtm(['card', 'info', '--reader', 'virtual pcd']);
    assert.equal(ambiguous.status, 2);
    assert.match(ambiguous.stderr, /^qtm: error: "virtual pcd" names \d+ PC\/SC readers: .*\(give more of the name, or its number from `qtm card list-readers`\)\n$/);
    const noWaitWithFile = qtm(['card', 'info', '--card', card, '--wait']);
    assert.equal(noWaitWithFile.status, 2);
    assert.match(noWaitWithFile.stderr, /--wait is for a card inserted into a PC\/SC reader/);
  } finally {
    waiting.kill();
    if (emulator) {
      const done = new Promise((r) => emulator!.once('exit', r));
      emulator.kill('SIGTERM');
      await done;
    }
  }
});

test('card emulate --vpcd :35964 announces the reader the card is really in, "Virtual PCD 00 01"', async (t) => {
  if (!(await requirePcscd(t))) return;
  const card = join(tempDir(t), 'emu.card.json');
  FileStorage.create(card, 2);
  const child = spawn(process.execPath, [QTM_BIN, 'card', 'emulate', '--card', card, '--vpcd', ':35964'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const deadline = Date.now() + 10_000;
    while (!/serving/.test(stderr) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /^serving .* to vpcd at :35964 \(reader "Virtual PCD 00 01"\); Ctrl-C to stop\n/);
    const deadline2 = Date.now() + 10_000;
    let readers: { name: string; cardPresent: boolean }[] = [];
    while (Date.now() < deadline2) {
      readers = JSON.parse(qtm(['card', 'list-readers', '--json']).stdout).readers;
      if (readers.some((r) => r.name === 'Virtual PCD 00 01' && r.cardPresent)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(readers.some((r) => r.name === 'Virtual PCD 00 01' && r.cardPresent), JSON.stringify(readers));
  } finally {
    const done = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await done;
  }
});
