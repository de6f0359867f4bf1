/**
 * Attacks on one virtual card file from several processes at once (issue 17, section 4): the
 * card file is locked across each whole APDU, scrypt included, and a PIN block that is not a PIN
 * costs no try. Every attacker here is a separate Node process sending raw APDUs through the
 * real in-process transport on the same file, or the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { SW } from '../../src/card/status-words.js';
import { decodeResponse } from '../../src/card/apdu.js';
import { VirtualCard } from '../../src/card/virtual/virtual-card.js';
import { processStartTime } from '../../src/util/lock-file.js';
import { RefusedError } from '../../src/errors.js';
import { QTM_AID } from '../../src/card/app-spec.js';
import { decodeCardRecord } from '../../src/protocol/card-record.js';
import { authority, PIN, PUK } from './card-helpers.js';
import { collect, qtm, QTM_BIN, ROOT, tempDir } from '../helpers.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

const SELECT = Buffer.concat([Buffer.from([0x00, 0xa4, 0x04, 0x00, QTM_AID.length]), QTM_AID]).toString('hex');
const pinBlock = (pin: string) => Buffer.concat([Buffer.from(pin, 'ascii'), Buffer.alloc(8 - pin.length, 0xff)]).toString('hex');
const VERIFY = (blockHex: string) => `0020008108${blockHex}`;

async function issuedFile(dir: string, slots = 4): Promise<string> {
  const { ca, sam, register } = authority();
  const file = join(dir, 'card.json');
  FileStorage.create(file, slots);
  await issueCard(new CardClient(InProcessTransport.forFile(file)), { ca, sam, register, holder: 'CN=Lock Test', pin: PIN, puk: PUK, slots, profile: 'v2' });
  return file;
}

/**
 * A process on the card file that, for each line "HEX HEX ..." on stdin, sends those APDUs in
 * order (after a SELECT) and prints the last status word; `loop` repeats the first line forever,
 * 25 ms apart.
 */
function apduProcess(file: string): ChildProcess {
  const code = `
    import { InProcessTransport } from ${JSON.stringify(join(ROOT, 'dist/src/card/transports/in-process.js'))};
    import { createInterface } from 'node:readline';
    const t = InProcessTransport.forFile(${JSON.stringify(file)});
    const sw = (r) => r.subarray(r.length - 2).toString('hex');
    process.stdout.write('ready\\n');
    for await (const line of createInterface({ input: process.stdin })) {
      const [mode, ...apdus] = line.trim().split(' ');
      do {
        let last = '';
        for (const a of ['${SELECT}', ...apdus]) last = sw(await t.transmit(Buffer.from(a, 'hex')));
        if (mode !== 'loop') process.stdout.write(last + '\\n');
        else await new Promise((r) => setTimeout(r, 25)); // a person's loop leaves the card a moment
      } while (mode === 'loop');
    }
  `;
  return spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
}

function lines(child: ChildProcess): () => Promise<string> {
  const queue: string[] = [];
  const waiters: ((s: string) => void)[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(l);
      else queue.push(l);
    }
  });
  return () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r)));
}

async function cardStatus(file: string) {
  const info = qtm(['card', 'info', '--card', file, '--json']);
  assert.equal(info.status, 0, info.stderr);
  return JSON.parse(info.stdout) as { pinTriesLeft: number; pukTriesLeft: number; slotsUsed: number };
}

test('6 processes sending a wrong PIN at once: exactly 3 are checked, the counter ends at exactly 0', async (t) => {
  const dir = tempDir(t);
  const file = await issuedFile(dir);
  const children = Array.from({ length: 6 }, () => apduProcess(file));
  t.after(() => children.forEach((c) => c.kill('SIGKILL')));
  const readers = children.map(lines);
  for (const r of readers) assert.equal(await r(), 'ready');
  // All six go at once: each sends SELECT then VERIFY with a wrong, well-formed PIN.
  for (const c of children) c.stdin!.write(`once ${VERIFY(pinBlock('0000'))}\n`);
  const sws = (await Promise.all(readers.map((r) => r()))).sort();
  assert.deepEqual(sws, ['63c0', '63c1', '63c2', '6983', '6983', '6983'], 'three tries checked, three refused as blocked');
  assert.equal((await cardStatus(file)).pinTriesLeft, 0);
  assert.equal(existsSync(`${file}.lock`), false, 'no lock left behind');
});

test('kill -9 while a process holds the card lock (in its scrypt): the next process takes the card over', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const file = await issuedFile(dir);
  let caught = 0;
  for (let round = 0; caught < 3 && round < 20; round++) {
    const child = apduProcess(file);
    const read = lines(child);
    assert.equal(await read(), 'ready');
    // The right PIN, over and over: each VERIFY holds the lock across its scrypt (~95% of the time).
    child.stdin!.write(`loop ${VERIFY(pinBlock(PIN))}\n`);
    await new Promise((r) => setTimeout(r, 150 + Math.random() * 150));
    const until = Date.now() + 5_000;
    while (!existsSync(`${file}.lock`) && Date.now() < until) await new Promise((r) => setImmediate(r));
    assert.ok(existsSync(`${file}.lock`), 'a process in an APDU holds the card lock file');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    if (!existsSync(`${file}.lock`)) continue; // it had just released it: try again
    caught++;
    // The lock names a process that no longer runs: the real CLI takes the card over at once.
    const started = Date.now();
    const status = await cardStatus(file);
    assert.ok(Date.now() - started < 10_000, 'no wait for a dead holder');
    // Killed between decrement and check: that try is spent (docs/CARD.md), never more.
    assert.ok(status.pinTriesLeft >= 2, `tries left ${status.pinTriesLeft}`);
    assert.equal(existsSync(`${file}.lock`), false);
    // And the card still works: a fresh process verifies the right PIN (which restores the tries).
    const next = apduProcess(file);
    const nextRead = lines(next);
    assert.equal(await nextRead(), 'ready');
    next.stdin!.end(`once ${VERIFY(pinBlock(PIN))}\n`);
    assert.equal(await nextRead(), '9000');
    await new Promise((r) => next.once('exit', r));
  }
  assert.equal(caught, 3, 'killed three times while the lock was held');
  assert.equal((await cardStatus(file)).pinTriesLeft, 3);
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'no temp copy of the card left behind');
});

test('a malformed PIN or PUK block is 6A80 and costs no try (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER)', async (t) => {
  const dir = tempDir(t);
  const file = await issuedFile(dir);
  const child = apduProcess(file);
  t.after(() => child.kill('SIGKILL'));
  const read = lines(child);
  assert.equal(await read(), 'ready');
  const send = async (apdu: string) => {
    child.stdin!.write(`once ${apdu}\n`);
    return read();
  };
  const malformed = [
    '31323334FF35FFFF', // digits after the padding
    '3132FFFFFFFFFFFF', // two digits
    '31323334353637FE', // padding that is not FF
    '313233343536373A', // ':' is not a digit
    'FFFFFFFFFFFFFFFF', // empty
    '0000000000000000',
  ];
  for (const block of malformed) {
    assert.equal(await send(VERIFY(block)), SW.WRONG_DATA.toString(16), `VERIFY ${block}`);
    assert.equal(await send(`0024008110${block}${pinBlock('4321')}`), SW.WRONG_DATA.toString(16), `CHANGE old ${block}`);
    assert.equal(await send(`002C008110${block}${pinBlock('4321')}`), SW.WRONG_DATA.toString(16), `RESET RETRY COUNTER PUK ${block}`);
  }
  // A PUK must be 8 digits: a well-formed 4-digit block is still not a PUK.
  assert.equal(await send(`002C008110${pinBlock('1234')}${pinBlock('4321')}`), SW.WRONG_DATA.toString(16));
  // The real CLI sends what it is given as the old PIN or the PUK; the card refuses it the same way.
  const change = qtm(['card', 'pin', 'change', '--card', file], { env: { QTM_PIN: '12a4', QTM_NEW_PIN: '4321' } });
  assert.equal(change.status, 1);
  assert.match(change.stderr, /^qtm: error: card refused CHANGE REFERENCE DATA: 6A80 incorrect data/);
  const unblock = qtm(['card', 'pin', 'unblock', '--card', file], { env: { QTM_PUK: '1234567x', QTM_NEW_PIN: '4321' } });
  assert.equal(unblock.status, 1);
  assert.match(unblock.stderr, /^qtm: error: card refused RESET RETRY COUNTER: 6A80 incorrect data/);
  const status = await cardStatus(file);
  assert.equal(status.pinTriesLeft, 3, 'no PIN try spent');
  assert.equal(status.pukTriesLeft, 5, 'no PUK try spent');
  // A well-formed wrong PIN still costs one, as before.
  assert.equal(await send(VERIFY(pinBlock('0000'))), '63c2');
});

test('qtm sign beside qtm card pin change loops on one card file: every acknowledged receipt is on the card', { timeout: 180_000 }, async (t) => {
  const { makeWorld, PIN: E2E_PIN } = await import('../e2e/env.js');
  const { issueCard: issue } = await import('../../src/card/issue.js');
  const world = await makeWorld();
  t.after(() => world.close());
  const file = join(world.dir, 'shared.card.json');
  FileStorage.create(file, 8);
  await issue(new CardClient(InProcessTransport.forFile(file)), { ca: world.ca, sam: world.sam, register: IssuanceRegister.open(join(world.dir, 'register'), world.sam.kcv), holder: 'CN=Concurrent Customer', pin: E2E_PIN, puk: PUK, slots: 8, profile: 'v2' });
  const caPem = join(world.dir, 'trust.pem');
  writeFileSync(caPem, world.ca.certificate.toString());
  const env = { ...process.env, QTM_PIN: E2E_PIN, QTM_NEW_PIN: E2E_PIN, QTM_ARCHIVE: join(world.dir, 'archive') };
  const run = (args: string[]) => new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [QTM_BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.on('data', (d) => (stderr += d));
    c.once('exit', (status) => resolve({ status, stderr }));
  });
  let signing = true;
  let changes = 0;
  const changeFailures: string[] = [];
  const changer = (async () => {
    while (signing) {
      const r = await run(['card', 'pin', 'change', '--card', file]);
      if (r.status === 0) changes++;
      else changeFailures.push(r.stderr);
    }
  })();
  t.after(async () => {
    signing = false;
    await changer;
  });
  // And the very APDU `qtm card pin change` sends, in a tight loop from another process, so that
  // nearly every secure write falls inside a PIN change's read-scrypt-write.
  const looper = apduProcess(file);
  t.after(() => looper.kill('SIGKILL'));
  assert.equal(await lines(looper)(), 'ready');
  looper.stdin!.write(`loop 0024008110${pinBlock(E2E_PIN)}${pinBlock(E2E_PIN)}\n`);
  const SIGNS = 6;
  for (let i = 0; i < SIGNS; i++) {
    const r = await run(['sign', '--server', world.url, '--trust', caPem, '--card', file, '--items', 'PAPER-A4:1', '--yes', '--json']);
    assert.equal(r.status, 0, r.stderr);
  }
  signing = false;
  await changer;
  looper.kill('SIGKILL');
  await new Promise((r) => looper.once('exit', r));
  assert.deepEqual(changeFailures, []);
  assert.ok(changes >= 2, `the PIN was changed ${changes} times while signing`);
  const delivered = (await collect(world.server.store.all())).filter((rec) => rec.state === 'delivered').map((rec) => rec.transactionId);
  assert.equal(delivered.length, SIGNS, 'every receipt acknowledged to the server');
  const image = new FileStorage(file).load();
  const onCard = image.slots.filter((s): s is string => s !== null).map((s) => decodeCardRecord(Buffer.from(s, 'hex')).transactionId).sort((a, b) => a - b);
  assert.deepEqual(onCard, delivered.sort((a, b) => a - b), 'each acknowledged receipt is on the card');
});

test('stale-lock rule: a dead PID or a reused PID (other start time) is taken over; a live holder is waited for, then E_CARD_BUSY', async (t) => {
  const dir = tempDir(t);
  const file = await issuedFile(dir);
  const lock = `${file}.lock`;
  const getData = Buffer.from('00CA010011', 'hex');
  const select = Buffer.from(SELECT, 'hex');
  // A live process holds the card (its real PID and start time): we wait, then refuse by name.
  const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  await new Promise((r) => holder.once('spawn', r));
  const start = processStartTime(holder.pid!);
  writeFileSync(lock, `${holder.pid} ${start ?? '-'}\n`);
  const card = new VirtualCard(new FileStorage(file, 300));
  card.reset();
  const t0 = Date.now();
  assert.throws(() => card.transmit(select), (e: unknown) => e instanceof RefusedError && e.code === 'E_CARD_BUSY' && e.message.includes(`in use by process ${holder.pid}`));
  assert.ok(Date.now() - t0 >= 300, 'waited for the holder');
  assert.equal(readFileSync(lock, 'utf8'), `${holder.pid} ${start ?? '-'}\n`, 'a live holder\'s lock is left alone');
  if (start !== undefined) {
    // The same PID with another start time is a reused PID: the lock is stale.
    writeFileSync(lock, `${holder.pid} ${BigInt(start) + 1n}\n`);
    assert.equal(decodeResponse(card.transmit(select)).sw, SW.OK);
    assert.equal(existsSync(lock), false);
  }
  // A PID that no longer runs.
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  writeFileSync(lock, `${holder.pid} ${start ?? '-'}\n`);
  assert.equal(decodeResponse(card.transmit(select)).sw, SW.OK);
  assert.equal(decodeResponse(card.transmit(getData)).sw, SW.OK);
  assert.equal(existsSync(lock), false);
});
