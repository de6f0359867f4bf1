/**
 * The log store's on-disk index (src/store/log-index.ts) and its snapshot: a writer opens from
 * them and reads only the log written since; a stale one is caught up, a damaged or foreign one
 * is rebuilt with a warning, an edit below the snapshot is caught when its line is read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_SNAPSHOT, LogStore, LOG_FILE, SNAPSHOT_EVERY } from '../../src/store/log-store.js';
import { IDS_FILE, IDX_FILE } from '../../src/store/log-index.js';
import type { PreparedEntry, StoreEntry, TransactionRecord } from '../../src/store/types.js';
import fc from 'fast-check';
import { collect, tempDir } from '../helpers.js';

const prepared = (transactionId: number, cardKey = 'a'.repeat(64)): PreparedEntry => ({
  type: 'prepared', transactionId, orderId: `o${transactionId}`, time: 1, content: 'YQ==', header: 'AA==', clientCertificate: '', cardSerial: '00', cardKey,
});
const confirmed = (transactionId: number): StoreEntry => ({
  type: 'confirmed', transactionId, firstMessage: { signatureB: 'AA==', challenge: 'AA==', slot: 1, priority: 0 }, package: 'AA==', cardRecord: 'AA==', envelope: 'AA==',
});
const delivered = (transactionId: number): StoreEntry => ({ type: 'delivered', transactionId, proof: 'AAAAAAAAAAA=', at: 'now' });

/** Five transactions: 1-3 delivered, 4 confirmed (pending for its card), 5 prepared. */
async function fill(s: LogStore, from = 1): Promise<void> {
  for (let id = from; id < from + 5; id++) {
    await s.append(prepared(id, id === from + 3 ? 'b'.repeat(64) : 'a'.repeat(64)));
    if (id < from + 4) await s.append(confirmed(id));
    if (id < from + 3) await s.append(delivered(id));
  }
}

/** What the store answers, whichever index it used. */
async function view(s: LogStore) {
  const records = await collect(s.all()) as TransactionRecord[];
  return {
    last: await s.lastTransactionId(),
    states: records.map((r) => `${r.transactionId}:${r.state}`),
    counts: await s.countByState(),
    pendingB: await s.pendingFor('b'.repeat(64)),
    pendingA: await s.pendingFor('a'.repeat(64)),
  };
}

function open(dir: string) {
  const warnings: string[] = [];
  const store = LogStore.open(dir, { onWarning: (m) => warnings.push(m) });
  return { store, warnings };
}

test('a writer reopens from its index without warnings, and answers as one that read the whole log', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await fill(s);
  const before = await view(s);
  await s.close();
  const { store, warnings } = open(dir);
  assert.deepEqual(warnings, []);
  assert.deepEqual(await view(store), before);
  assert.deepEqual(before.pendingB, [4]);
  await store.append(delivered(4));
  assert.deepEqual(await store.pendingFor('b'.repeat(64)), []);
  await store.close();
  const audit = LogStore.open(dir, { readOnly: true });
  assert.deepEqual((await view(audit)).pendingB, []);
  assert.equal((await audit.get(4))!.state, 'delivered');
  await audit.close();
});

test('a stale index (the log grew after the snapshot: a crash) is caught up from the snapshot\'s end', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await fill(s);
  await s.close();
  const snapshot = readFileSync(join(dir, INDEX_SNAPSHOT));
  const idx = readFileSync(join(dir, IDX_FILE));
  const ids = readFileSync(join(dir, IDS_FILE));
  const s2 = LogStore.open(dir);
  await fill(s2, 6);
  await s2.append(delivered(9));
  const expected = await view(s2);
  await s2.close();
  // Back to the old snapshot and index files, as after a kill -9 before the next snapshot
  // (the index files may hold records and slots written after it).
  // (the entry records written after it survive; slots go to their file only after a snapshot).
  const newIds = readFileSync(join(dir, IDS_FILE));
  writeFileSync(join(dir, INDEX_SNAPSHOT), snapshot);
  writeFileSync(join(dir, IDX_FILE), Buffer.concat([idx, readFileSync(join(dir, IDX_FILE)).subarray(idx.length)]));
  writeFileSync(join(dir, IDS_FILE), ids);
  const { store, warnings } = open(dir);
  assert.deepEqual(warnings, []);
  assert.deepEqual(await view(store), expected);
  assert.deepEqual(expected.pendingB, [4], 'transaction 9 (card b) was delivered after the snapshot');
  await store.close();

  // A slot file newer than the snapshot (restored apart from it): rebuilt, with a warning.
  writeFileSync(join(dir, INDEX_SNAPSHOT), snapshot);
  writeFileSync(join(dir, IDS_FILE), newIds);
  const again = open(dir);
  assert.match(again.warnings.join('\n'), /does not match its snapshot .* rebuilding it from the whole log/);
  assert.deepEqual(await view(again.store), expected);
  await again.store.close();
});

test('a torn last line after the snapshot is cut; the index covers what is complete', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await fill(s);
  const expected = await view(s);
  await s.close();
  appendFileSync(join(dir, LOG_FILE), '{"seq":99,"prev":"00","type":"prepa');
  const { store, warnings } = open(dir);
  assert.deepEqual(warnings, []);
  assert.deepEqual(await view(store), expected);
  await store.append(prepared(6));
  await store.close();
  assert.equal((await view(open(dir).store)).last, 6);
});

test('an index snapshot that is damaged, or made for another log, is not used: the index is rebuilt, with a warning', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await fill(s);
  const expected = await view(s);
  await s.close();
  const good = readFileSync(join(dir, INDEX_SNAPSHOT), 'utf8');

  const other = tempDir(t);
  const o = LogStore.open(other);
  await fill(o);
  await o.append(prepared(6, 'c'.repeat(64)));
  await o.close();
  const cases: [string, () => void, RegExp][] = [
    ['not JSON', () => writeFileSync(join(dir, INDEX_SNAPSHOT), '{"format":'), /was not used .*rebuilding the index from the whole log/],
    ['a count changed (digest)', () => writeFileSync(join(dir, INDEX_SNAPSHOT), good.replace('"maxId":5', '"maxId":50')), /digest does not match/],
    ['index file cut short', () => {
      writeFileSync(join(dir, INDEX_SNAPSHOT), good);
      writeFileSync(join(dir, IDX_FILE), readFileSync(join(dir, IDX_FILE)).subarray(0, 40));
    }, /holds fewer than/],
    ['from another log (longer)', () => {
      for (const f of [INDEX_SNAPSHOT, IDX_FILE, IDS_FILE]) copyFileSync(join(other, f), join(dir, f));
    }, /covers \d+ bytes, the log has/],
    ['from another log (its first entry differs)', () => {
      const mine = readFileSync(join(dir, LOG_FILE), 'utf8').split('\n');
      const theirs = readFileSync(join(other, LOG_FILE), 'utf8').split('\n');
      writeFileSync(join(other, LOG_FILE), [mine[0], ...theirs.slice(1)].join('\n')); // so only my first line is in it
      const o2 = LogStore.open(other, {});
      return o2.close().then(() => {
        for (const f of [INDEX_SNAPSHOT, IDX_FILE, IDS_FILE]) copyFileSync(join(other, f), join(dir, f));
      });
    }, /was not used/],
  ];
  for (const [name, damage, warning] of cases) {
    await damage();
    const { store, warnings } = open(dir);
    assert.match(warnings.join('\n'), warning, name);
    assert.deepEqual(await view(store), expected, name);
    await store.close();
    // The rebuilt index is used from then on, without a warning.
    const { store: next, warnings: none } = open(dir);
    assert.deepEqual(none, [], name);
    assert.deepEqual(await view(next), expected, name);
    await next.close();
  }
});

test('a log line edited below the snapshot is caught when it is read through the index', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await fill(s);
  await s.close();
  const lines = readFileSync(join(dir, LOG_FILE), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes('"type":"prepared","transactionId":2'));
  lines[i] = lines[i]!.replace('"content":"YQ=="', '"content":"Yg=="');
  writeFileSync(join(dir, LOG_FILE), lines.join('\n'));
  const { store } = open(dir);
  assert.equal((await store.get(1))!.state, 'delivered', 'other transactions are served');
  await assert.rejects(store.get(2), /store .* is damaged: the entry at byte \d+ is not the one indexed there/);
  await store.close();
  // The audit reads the whole chain and names the line.
  const audit = LogStore.open(dir, { readOnly: true });
  assert.match(audit.findings.problems.join('\n'), /chain is broken/);
  await audit.close();
});

test('a running writer snapshots its index every SNAPSHOT_EVERY entries, so a crash leaves at most that much log to read', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await Promise.all(Array.from({ length: SNAPSHOT_EVERY + 10 }, (_, i) => s.append(prepared(i + 1))));
  const snap = JSON.parse(readFileSync(join(dir, INDEX_SNAPSHOT), 'utf8')) as { entries: number };
  assert.ok(snap.entries >= SNAPSHOT_EVERY, `snapshot taken while running (${snap.entries} entries)`);
  // kill -9 now: the files as they stand, no close.
  const copy = tempDir(t);
  for (const f of [LOG_FILE, INDEX_SNAPSHOT, IDX_FILE, IDS_FILE]) copyFileSync(join(dir, f), join(copy, f));
  await s.close();
  const { store, warnings } = open(copy);
  assert.deepEqual(warnings, []);
  assert.equal(await store.lastTransactionId(), SNAPSHOT_EVERY + 10);
  assert.equal((await store.countByState()).prepared, SNAPSHOT_EVERY + 10);
  await store.close();
});

test('property: a snapshot or index file changed in any byte, or cut anywhere, never changes what the store answers', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await fill(s);
  const expected = await view(s);
  await s.close();
  const files = Object.fromEntries([INDEX_SNAPSHOT, IDX_FILE].map((f) => [f, readFileSync(join(dir, f))]));
  await fc.assert(fc.asyncProperty(
    fc.constantFrom(INDEX_SNAPSHOT, IDX_FILE), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(),
    async (file, at, xor, cut) => {
      for (const [f, data] of Object.entries(files)) writeFileSync(join(dir, f), data);
      const data = Buffer.from(files[file]!);
      const i = at % data.length;
      if (cut) writeFileSync(join(dir, file), data.subarray(0, i));
      else {
        data[i]! ^= xor;
        writeFileSync(join(dir, file), data);
      }
      const { store } = open(dir);
      try {
        // Either the change is caught (rebuilt, or a read refused) or it changed nothing read.
        const got = await view(store).catch((err: Error) => err);
        if (got instanceof Error) assert.match(got.message, /is damaged|index record|index slot|not transaction/);
        else assert.deepEqual(got, expected);
      } finally {
        await store.close();
      }
    }), { numRuns: 60 });
});
