import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogStore, LOCK_FILE, LOG_FILE } from '../../src/store/log-store.js';
import type { ConfirmedEntry, PreparedEntry } from '../../src/store/types.js';
import { collect, ROOT, tempDir } from '../helpers.js';

const prepared = (transactionId: number): PreparedEntry => ({
  type: 'prepared', transactionId, orderId: `o${transactionId}`, time: 1, content: 'YQ==', header: 'AA==', clientCertificate: '', cardSerial: '00',
});

test('entries survive a reopen; states fold in order; concurrent appends are all durable', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await Promise.all(Array.from({ length: 50 }, (_, i) => s.append(prepared(i + 1))));
  await s.append({ type: 'delivered', transactionId: 3, proof: 'AAAAAAAAAAA=', at: 'now' });
  await s.close();
  const r = LogStore.open(dir);
  assert.equal((await r.lastTransactionId()), 50);
  assert.equal((await collect(r.all())).length, 50);
  assert.equal((await r.get(3))!.state, 'delivered'); // delivered without confirm folds onto prepared
  await r.close();
});

test('a torn last line (kill -9 mid-write) is cut off; a damaged line elsewhere refuses to open', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await s.append(prepared(1));
  await s.close();
  appendFileSync(join(dir, LOG_FILE), '{"type":"prepared","transactionId":2,"ord');
  const r = LogStore.open(dir);
  assert.equal((await r.lastTransactionId()), 1);
  await r.append(prepared(2));
  await r.close();
  assert.equal(readFileSync(join(dir, LOG_FILE), 'utf8').split('\n').filter(Boolean).length, 2);
  const lines = readFileSync(join(dir, LOG_FILE), 'utf8').split('\n');
  lines[0] = lines[0]!.slice(0, 10);
  writeFileSync(join(dir, LOG_FILE), lines.join('\n'));
  assert.throws(() => LogStore.open(dir), /damaged at line 1/);
});

test('kill -9 at any moment never loses an acknowledged transaction', async (t) => {
  const dir = tempDir(t);
  const writer = `
    const { LogStore } = await import(${JSON.stringify(join(ROOT, 'dist/src/store/log-store.js'))});
    const s = LogStore.open(${JSON.stringify(dir)});
    let id = (await s.lastTransactionId());
    const one = async () => { const n = ++id; await s.append({ type: 'prepared', transactionId: n, orderId: 'o', time: 1, content: 'YQ==', header: 'AA==', clientCertificate: '', cardSerial: '00' }); process.stdout.write(n + '\\n'); };
    for (;;) await Promise.all([one(), one(), one(), one()]);
  `;
  const acknowledged = new Set<number>();
  for (let round = 0; round < 8; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach((n) => acknowledged.add(Number(n))));
    // Kill at a random moment of the writing, not of node's start-up (slow on a busy machine).
    await new Promise((r) => child.stdout!.once('data', r));
    await new Promise((r) => setTimeout(r, Math.random() * 150));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const s = LogStore.open(dir);
    for (const n of acknowledged) assert.ok((await s.get(n)), `acknowledged transaction ${n} lost in round ${round}`);
    await s.close();
  }
  assert.ok(acknowledged.size > 20, `only ${acknowledged.size} appends happened`);
});

const confirmed = (transactionId: number, size = 8) => ({
  type: 'confirmed' as const, transactionId,
  firstMessage: { signatureB: 'AA==', challenge: 'AA==', slot: 1, priority: 0 },
  package: Buffer.alloc(size, transactionId).toString('base64'), cardRecord: 'AA==', envelope: 'AA==',
});

test('records are read back from the file exactly, also across read-chunk boundaries; pending receipts are indexed by card', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  // 300 KB entries: several straddle the 1 MB chunks the index is built from.
  for (let id = 1; id <= 12; id++) {
    await s.append({ ...prepared(id), cardSerial: id % 2 ? 'AA' : 'BB' });
    await s.append(confirmed(id, 300_000));
  }
  await s.append({ type: 'delivered', transactionId: 3, proof: 'AA==', at: 'now' });
  assert.deepEqual((await s.pendingFor('AA')), [1, 5, 7, 9, 11]);
  assert.deepEqual((await s.pendingFor('BB')), [2, 4, 6, 8, 10, 12]);
  await s.close();
  const r = LogStore.open(dir);
  for (let id = 1; id <= 12; id++) {
    const rec = (await r.get(id))!;
    assert.equal(rec.confirmed!.package, Buffer.alloc(300_000, id).toString('base64'), `transaction ${id}`);
    assert.equal(rec.prepared.orderId, `o${id}`);
  }
  assert.deepEqual((await r.pendingFor('AA')), [1, 5, 7, 9, 11]);
  assert.deepEqual((await r.countByState()), { prepared: 0, confirmed: 11, delivered: 1 });
  assert.deepEqual((await collect(r.all())).map((x) => x.transactionId), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  await r.close();
});

test('one writer at a time; a lock left by a dead process is taken over; readers never truncate', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await s.append(prepared(1));
  assert.throws(() => LogStore.open(dir), new RegExp(`in use by process ${process.pid}`));
  // A reader beside the writer sees a line still being written as not there yet, and leaves it.
  appendFileSync(join(dir, LOG_FILE), '{"type":"prepared","transactionId":2,"ord');
  const reader = LogStore.open(dir, { readOnly: true });
  assert.equal(await reader.lastTransactionId(), 1);
  await assert.rejects(reader.append(prepared(3)), /read-only/);
  await reader.close();
  assert.match(readFileSync(join(dir, LOG_FILE), 'utf8'), /"ord$/);
  await s.close();

  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => dead.once('exit', r));
  writeFileSync(join(dir, LOCK_FILE), `${dead.pid}\n`);
  const taken = LogStore.open(dir);
  assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8').trim(), String(process.pid));
  await taken.close();
  assert.throws(() => LogStore.open(join(dir, 'nowhere'), { readOnly: true }), /no transaction store/);
});

test('open fair exchanges are indexed and survive a restart, so the deadline sweeper finds them', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  for (const id of [1, 2, 3]) await s.append({ ...prepared(id), fair: { deadline: 1000 + id, x: 'AA==', escrowX: 'AA==' } });
  await s.append(prepared(4));
  await s.append({ type: 'fair-aborted', transactionId: 1, reason: 'test' });
  await s.append({ type: 'resolved', transactionId: 2, signatureB: 'AA==', package: 'AA==', cardRecord: 'AA==' });
  assert.deepEqual([...(await s.openFairExchanges())], [[3, 1003]]);
  await s.close();
  const r = LogStore.open(dir);
  assert.deepEqual([...(await r.openFairExchanges())], [[3, 1003]]);
  assert.equal((await r.get(2))!.state, 'confirmed', 'resolved at the TTP: signed, receipt not yet on the card');
  assert.deepEqual((await r.pendingFor('00')), [2]);
  await r.close();
});

test('appendSigned: of concurrent signings of one transaction exactly one is stored, the others get it back', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await s.append(prepared(7));
  const confirmed = (challenge: string): ConfirmedEntry => ({
    type: 'confirmed', transactionId: 7, firstMessage: { signatureB: 'AA==', challenge, slot: 1, priority: 0 }, package: 'AA==', cardRecord: 'AA==', envelope: challenge,
  });
  // All issued in the same tick, before any of them is durable.
  const results = await Promise.all(['QQ==', 'Qg==', 'Qw=='].map((c) => s.appendSigned(confirmed(c))));
  assert.deepEqual(results.map((r) => r.stored), [true, false, false]);
  for (const r of results.slice(1)) assert.equal(!r.stored && r.existing.envelope, 'QQ==');
  // Once stored, a later one is refused the same way, and a TTP resolve too.
  const late = await s.appendSigned({ type: 'resolved', transactionId: 7, signatureB: 'AA==', package: 'AA==', cardRecord: 'AA==' });
  assert.equal(late.stored, false);
  await s.close();
  const lines = readFileSync(join(dir, LOG_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  assert.deepEqual(lines.map((l) => l.type), ['prepared', 'confirmed']);
});

test('one concept order gives one transaction: a retried prepare, even concurrent or after a reopen, gets the same ID', async (t) => {
  const dir = tempDir(t);
  const now = Math.floor(Date.now() / 1000);
  const s = LogStore.open(dir);
  let built = 0;
  const build = (orderId: string) => (id: number): PreparedEntry => {
    built++;
    return { ...prepared(id), orderId, time: now };
  };
  const [a, b] = await Promise.all([s.appendPrepared(build('order-A'), { orderId: 'order-A' }), s.appendPrepared(build('order-A'), { orderId: 'order-A' })]);
  assert.deepEqual([a, b], [{ transactionId: 1, created: true }, { transactionId: 1, created: false }]);
  assert.deepEqual(await s.appendPrepared(build('order-B'), { orderId: 'order-B' }), { transactionId: 2, created: true });
  assert.equal(built, 2, 'the builder of a repeated order is not called');
  await s.close();
  const r = LogStore.open(dir);
  assert.deepEqual(await r.appendPrepared(build('order-B'), { orderId: 'order-B' }), { transactionId: 2, created: false }, 'remembered across a reopen');
  // An order older than the store's memory is refused by the server before it gets here: a new ID.
  const old = await r.appendPrepared((id) => ({ ...prepared(id), orderId: 'order-C', time: 1 }), { orderId: 'order-C' });
  assert.deepEqual(await r.appendPrepared((id) => ({ ...prepared(id), orderId: 'order-C', time: 1 }), { orderId: 'order-C' }), { transactionId: old.transactionId + 1, created: true });
  assert.equal(built, 2);
  await r.close();
});

test('exclusive runs the tasks of one transaction one after the other, and other transactions beside them', async (t) => {
  const s = LogStore.open(tempDir(t));
  const events: string[] = [];
  const task = (name: string, ms: number) => async () => {
    events.push(`${name} start`);
    await new Promise((r) => setTimeout(r, ms));
    events.push(`${name} end`);
    return name;
  };
  const failing = s.exclusive(1, async () => {
    throw new Error('first fails');
  });
  const results = await Promise.all([failing.catch((e: Error) => e.message), s.exclusive(1, task('one-a', 30)), s.exclusive(1, task('one-b', 1)), s.exclusive(2, task('two', 1))]);
  assert.deepEqual(results, ['first fails', 'one-a', 'one-b', 'two']);
  assert.ok(events.indexOf('one-a end') < events.indexOf('one-b start'), 'one-b waited for one-a');
  assert.ok(events.indexOf('two end') < events.indexOf('one-a end'), 'transaction 2 did not wait for transaction 1');
  await s.close();
});
