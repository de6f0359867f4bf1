/**
 * The TTP's store (issue 10): an append-only log, its index snapshot, its lock, its crash
 * handling, its compare-and-set, and the conversion of the lowdb document of earlier versions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { decodeTtpLine, encodeTtpLine, LogTtpStore, TTP_INDEX, TTP_LOG, TTP_LOWDB, TTP_LOWDB_MIGRATED, type TtpRecord } from '../../src/fair/ttp-store.js';
import { DecodeError, type QtmError } from '../../src/errors.js';
import { ROOT, tempDir } from '../helpers.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const labelOf = (i: number | string) => createHash('sha256').update(`label ${i}`).digest('hex');

/** A record as the TTP writes one: aborted with its token, or resolved with X and Y. */
function record(i: number, state: 'aborted' | 'resolved' = i % 2 ? 'aborted' : 'resolved', at = 1_790_000_000_000 + i): TtpRecord {
  const key = labelOf(i);
  const base = { key, label: key, headerHash: createHash('sha256').update(`header ${i}`).digest('hex'), at: new Date(at).toISOString() };
  return state === 'aborted'
    ? { ...base, state, token: randomBytes(384).toString('base64') }
    : { ...base, state, x: randomBytes(256).toString('base64'), y: randomBytes(256).toString('base64') };
}

const logLines = (dir: string) => readFileSync(join(dir, TTP_LOG), 'utf8').split('\n').filter(Boolean);

async function withStore<T>(dir: string, f: (s: LogTtpStore) => Promise<T>, warnings: string[] = [], snapshotEvery?: number): Promise<T> {
  const s = await LogTtpStore.open(dir, { onWarning: (m) => warnings.push(m), ...(snapshotEvery ? { snapshotEvery } : {}) });
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

test('round trip: what is put is what is got, after a restart too; one line per decision', async (t) => {
  const dir = tempDir(t);
  const records = [record(1), record(2), record(3)];
  await withStore(dir, async (s) => {
    for (const r of records) assert.equal(await s.put(r), r);
    for (const r of records) assert.deepEqual(await s.get(r.key), r);
    assert.equal(await s.get(labelOf('never')), undefined);
    assert.equal(await s.get('not a label'), undefined);
    assert.equal(await s.count(), 3);
  });
  await withStore(dir, async (s) => {
    for (const r of records) assert.deepEqual(await s.get(r.key), r);
    assert.equal(await s.count(), 3);
  });
  assert.deepEqual(logLines(dir).map((l) => decodeTtpLine(l)), records);
  assert.equal(statSync(join(dir, TTP_LOG)).mode & 0o777, 0o600);
});

test('compare-and-set: a decided label never changes; of concurrent puts on one label exactly one is stored', async (t) => {
  const dir = tempDir(t);
  await withStore(dir, async (s) => {
    const rivals = Array.from({ length: 20 }, (_, i) => record(7, i % 2 ? 'aborted' : 'resolved', 1_790_000_000_000 + i));
    const others = Array.from({ length: 30 }, (_, i) => record(100 + i));
    const answers = await Promise.all([...rivals, ...others].map((r) => s.put(r)));
    for (const a of answers.slice(0, rivals.length)) assert.deepEqual(a, rivals[0], 'every rival is answered with the first decision');
    assert.deepEqual(answers.slice(rivals.length), others);
    // Later, once it is on disk, too.
    assert.deepEqual(await s.put(record(7, 'aborted', 1_800_000_000_000)), rivals[0]);
    assert.deepEqual(await s.get(labelOf(7)), rivals[0]);
    assert.equal(await s.count(), 31);
  });
  const lines = logLines(dir);
  assert.equal(lines.length, 31, 'the losers wrote nothing');
  assert.equal(new Set(lines.map((l) => decodeTtpLine(l).key)).size, 31);
});

test('a torn last line (a write cut by a crash) is cut off at open; the store goes on', async (t) => {
  for (const tail of ['half a line', 'zeros']) {
    const dir = tempDir(t);
    await withStore(dir, async (s) => {
      for (let i = 0; i < 3; i++) await s.put(record(i));
    });
    const intact = statSync(join(dir, TTP_LOG)).size;
    const torn = record(3);
    const line = encodeTtpLine(torn);
    appendFileSync(join(dir, TTP_LOG), tail === 'zeros' ? Buffer.alloc(4096) : line.slice(0, line.length >> 1));
    const warnings: string[] = [];
    await withStore(dir, async (s) => {
      assert.equal(statSync(join(dir, TTP_LOG)).size, intact, `${tail}: cut back to the last complete line`);
      assert.equal(await s.get(torn.key), undefined, 'a torn line was never answered, so it is not a decision');
      assert.equal(await s.count(), 3);
      assert.equal(await s.put(torn), torn);
    }, warnings);
    assert.match(warnings.join('\n'), /cut a torn last line \(\d+ bytes at byte \d+\)/);
    await withStore(dir, async (s) => assert.deepEqual(await s.get(torn.key), torn));
    assert.equal(logLines(dir).length, 4);
  }
});

test('a damaged complete line is damage: opening refuses and names where; a line the snapshot covers is refused when read', async (t) => {
  const dir = tempDir(t);
  const damaged = record(1, 'aborted');
  await withStore(dir, async (s) => {
    for (const r of [record(0), damaged, record(2)]) await s.put(r);
  });
  const text = readFileSync(join(dir, TTP_LOG), 'utf8');
  writeFileSync(join(dir, TTP_LOG), text.replace('"state":"aborted"', '"state":"abortXd"'));
  // Covered by the snapshot: not parsed at open, refused when read.
  await withStore(dir, async (s) => {
    await assert.rejects(s.get(damaged.key), (e: QtmError) => e.code === 'E_FILE_DAMAGED' && /damaged: the record at byte \d+: .*"state"/.test(e.message));
    assert.ok(await s.get(labelOf(2)));
  });
  // Without the snapshot, opening scans the log and refuses.
  writeFileSync(join(dir, TTP_INDEX), 'gone');
  await assert.rejects(LogTtpStore.open(dir), (e: QtmError) => e.code === 'E_FILE_DAMAGED' && /the line at byte \d+/.test(e.message) && e.hint === 'restore it from backup');
  // A second line for a decided label is damage too (a decided record never changes).
  const dup = tempDir(t);
  mkdirSync(dup, { recursive: true });
  writeFileSync(join(dup, TTP_LOG), `${encodeTtpLine(record(5, 'aborted'))}\n${encodeTtpLine(record(5, 'resolved'))}\n`);
  await assert.rejects(LogTtpStore.open(dup), /a second record for label/);
  assert.ok(!existsSync(join(dup, 'LOCK')), 'a refused open leaves no lock behind');
});

test('one TTP per store: a second open is refused with the holder\'s PID; after close it opens', async (t) => {
  const dir = tempDir(t);
  const first = await LogTtpStore.open(dir);
  await assert.rejects(LogTtpStore.open(dir), (e: QtmError) => e.code === 'E_INPUT' && e.message === `the TTP store ${dir} is in use by process ${process.pid}` && /another --store/.test(e.hint ?? ''));
  await first.close();
  await (await LogTtpStore.open(dir)).close();
});

/** A TTP process that writes `n` decisions, says so, and waits to be killed. */
function writerProcess(dir: string, n: number, snapshotEvery: number): Promise<{ kill(): Promise<void>; records: TtpRecord[] }> {
  const script = `
    import { LogTtpStore } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'fair', 'ttp-store.js'))};
    const records = JSON.parse(process.argv[1]);
    const s = await LogTtpStore.open(process.argv[2], { snapshotEvery: ${snapshotEvery} });
    for (const r of records) await s.put(r);
    process.stdout.write('written\\n');
    setInterval(() => {}, 1000);`;
  const records = Array.from({ length: n }, (_, i) => record(i));
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(records), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (String(d).includes('written')) resolve({ records, kill: () => new Promise((r) => { child.once('exit', () => r()); child.kill('SIGKILL'); }) });
    });
    child.once('exit', (code) => reject(new Error(`the writer exited ${code}`)));
  });
}

test('kill -9 of the TTP: its lock is taken over and every answered decision is there (snapshot plus the lines after it)', async (t) => {
  const dir = tempDir(t);
  const writer = await writerProcess(dir, 25, 10);
  await assert.rejects(LogTtpStore.open(dir), /is in use by process \d+/, 'the live writer holds the lock');
  assert.ok(existsSync(join(dir, TTP_INDEX)), 'a snapshot was saved after 10 records');
  await writer.kill();
  const warnings: string[] = [];
  await withStore(dir, async (s) => {
    assert.equal(await s.count(), 25);
    for (const r of writer.records) assert.deepEqual(await s.get(r.key), r);
  }, warnings, 10);
  assert.deepEqual(warnings, [], 'the snapshot matched the log; nothing was torn');
});

test('the index snapshot is checked against the log: a log replaced, cut or a damaged snapshot is rebuilt from the log', async (t) => {
  const dir = tempDir(t);
  const records = Array.from({ length: 12 }, (_, i) => record(i));
  await withStore(dir, async (s) => {
    for (const r of records) await s.put(r);
  }, [], 5);
  const index = readFileSync(join(dir, TTP_INDEX));
  const full = readFileSync(join(dir, TTP_LOG));

  // A damaged snapshot.
  const flipped = Buffer.from(index);
  flipped[70]! ^= 1;
  writeFileSync(join(dir, TTP_INDEX), flipped);
  let warnings: string[] = [];
  await withStore(dir, async (s) => {
    for (const r of records) assert.deepEqual(await s.get(r.key), r);
  }, warnings);
  assert.match(warnings.join('\n'), /does not match its checksum; rebuilding the index from the log/);

  // The log restored from an older backup (shorter than the snapshot covers).
  writeFileSync(join(dir, TTP_INDEX), index);
  const firstFive = logLines(dir).slice(0, 5).map((l) => `${l}\n`).join('');
  writeFileSync(join(dir, TTP_LOG), firstFive);
  warnings = [];
  await withStore(dir, async (s) => {
    assert.equal(await s.count(), 5);
    assert.equal(await s.get(records[7]!.key), undefined);
  }, warnings);
  assert.match(warnings.join('\n'), /covers \d+ bytes of a \d+-byte log/);

  // Another log of the same length: the last line the snapshot names is not there.
  writeFileSync(join(dir, TTP_INDEX), index);
  const other = Array.from({ length: 12 }, (_, i) => encodeTtpLine({ ...records[i]!, headerHash: labelOf(`other ${i}`) })).map((l) => `${l}\n`).join('');
  assert.equal(other.length, full.length);
  writeFileSync(join(dir, TTP_LOG), other);
  warnings = [];
  await withStore(dir, async (s) => {
    assert.equal((await s.get(records[11]!.key))!.headerHash, labelOf('other 11'));
  }, warnings);
  assert.match(warnings.join('\n'), /does not match the log where it ends/);
});

test('migration: a lowdb ttp.json is converted on first open, kept aside, and replaced by a note an older qtm refuses', async (t) => {
  const dir = tempDir(t);
  const records = [record(1), record(2)];
  const doc = {
    version: 1,
    records: {
      [records[0]!.key]: records[0], [records[1]!.key]: records[1],
      // Keyed by server ID and transaction ID: written before records were keyed by L.
      'aabbcc/7': { key: 'aabbcc/7', headerHash: labelOf('h'), label: labelOf('l'), state: 'aborted', at: new Date().toISOString() },
    },
  };
  const original = JSON.stringify(doc) + '\n';
  writeFileSync(join(dir, TTP_LOWDB), original);
  const warnings: string[] = [];
  await withStore(dir, async (s) => {
    for (const r of records) assert.deepEqual(await s.get(r.key), r);
    assert.equal(await s.count(), 2);
    await s.put(record(3));
  }, warnings);
  assert.match(warnings.join('\n'), /converted 2 records from ttp\.json \(lowdb\) to ttp\.log.*1 records keyed by server and transaction ID/);
  assert.equal(readFileSync(join(dir, TTP_LOWDB_MIGRATED), 'utf8'), original);
  const note = readFileSync(join(dir, TTP_LOWDB), 'utf8');
  assert.throws(() => JSON.parse(note), 'an older qtm (lowdb) cannot read the note: it refuses instead of serving an empty store');
  assert.match(note, /moved to ttp\.log/);
  // Once only: the next open reads the log.
  const again: string[] = [];
  await withStore(dir, async (s) => assert.equal(await s.count(), 3), again);
  assert.deepEqual(again, []);
});

test('migration cut by a crash is finished; a document that differs from the log, or a bad record, is refused with nothing written', async (t) => {
  const records = [record(1), record(2)];
  const doc = JSON.stringify({ version: 1, records: Object.fromEntries(records.map((r) => [r.key, r])) });
  // Crash after the log was written, before the document was set aside.
  const cut = tempDir(t);
  writeFileSync(join(cut, TTP_LOG), records.map((r) => `${encodeTtpLine(r)}\n`).join(''));
  writeFileSync(join(cut, TTP_LOWDB), doc);
  await withStore(cut, async (s) => assert.equal(await s.count(), 2));
  assert.equal(readFileSync(join(cut, TTP_LOWDB_MIGRATED), 'utf8'), doc);

  const differ = tempDir(t);
  writeFileSync(join(differ, TTP_LOG), `${encodeTtpLine(records[0]!)}\n`);
  writeFileSync(join(differ, TTP_LOWDB), doc);
  await assert.rejects(LogTtpStore.open(differ), (e: QtmError) => e.code === 'E_FILE_DAMAGED' && /holds both ttp\.json and ttp\.log, with different records/.test(e.message));
  assert.equal(readFileSync(join(differ, TTP_LOWDB), 'utf8'), doc, 'nothing changed');

  const bad = tempDir(t);
  writeFileSync(join(bad, TTP_LOWDB), JSON.stringify({ version: 1, records: { [records[0]!.key]: { ...records[0], state: 'resolved' } } }));
  await assert.rejects(LogTtpStore.open(bad), /cannot be converted: the record for label [0-9a-f]{16}…: .*a resolved record holds no "token"/);
  assert.ok(!existsSync(join(bad, TTP_LOG)), 'no partial log');
  writeFileSync(join(bad, TTP_LOWDB), '{"version":1,');
  await assert.rejects(LogTtpStore.open(bad), /neither a lowdb TTP document nor a migration note/);
});

// ---------------------------------------------------------------------------------------------
// The line decoder.

const hex32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(hex);
const signature = fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b).toString('base64'));
const time = fc.integer({ min: 0, max: 253_402_300_799_999 }).map((ms) => new Date(ms).toISOString());
const arbRecord: fc.Arbitrary<TtpRecord> = fc.tuple(hex32, hex32, time, fc.boolean(), signature, signature).map(([key, headerHash, at, aborted, a, b]) =>
  aborted ? { key, label: key, headerHash, at, state: 'aborted' as const, token: a } : { key, label: key, headerHash, at, state: 'resolved' as const, x: a, y: b });

/** Either a DecodeError, or a record whose own line decodes to it again. */
function decodesCleanly(input: string | Uint8Array): void {
  let r: TtpRecord;
  try {
    r = decodeTtpLine(input);
  } catch (err) {
    assert.ok(err instanceof DecodeError, `not a DecodeError: ${String(err)}`);
    return;
  }
  assert.deepEqual(decodeTtpLine(encodeTtpLine(r)), r);
}

test('line decoder (property): every record round-trips through its line', () => {
  fc.assert(fc.property(arbRecord, (r) => {
    const line = encodeTtpLine(r);
    assert.ok(!line.includes('\n'));
    assert.deepEqual(decodeTtpLine(line), r);
    assert.deepEqual(decodeTtpLine(Buffer.from(line)), r);
  }));
});

test('line decoder (property): any text, bytes or mutated line is a DecodeError or a valid record, never anything else', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array({ maxLength: 200 })), decodesCleanly), { numRuns: 300 });
  const mutated = fc.tuple(arbRecord, fc.nat(), fc.nat({ max: 40 }), fc.string({ maxLength: 12 })).map(([r, at, cut, insert]) => {
    const line = encodeTtpLine(r);
    const i = at % (line.length + 1);
    return line.slice(0, i) + insert + line.slice(Math.min(line.length, i + cut));
  });
  fc.assert(fc.property(mutated, decodesCleanly), { numRuns: 500 });
  // Fields of the right shape in the wrong combination.
  const field = fc.record({
    v: fc.constantFrom(1, 2, '1'), key: fc.oneof(hex32, fc.constant('AB'.repeat(32))), label: hex32, headerHash: hex32,
    state: fc.constantFrom('aborted', 'resolved', 'none'), x: fc.option(signature), y: fc.option(signature), token: fc.option(signature), at: fc.oneof(time, fc.constant('2026-01-01')),
  }, { requiredKeys: [] });
  fc.assert(fc.property(field, (o) => decodesCleanly(JSON.stringify(o))), { numRuns: 500 });
});

test('line decoder: the refusals name what is wrong', () => {
  const r = record(1, 'resolved');
  const line = encodeTtpLine(r);
  const refused = (text: string | Uint8Array, why: RegExp) => assert.throws(() => decodeTtpLine(text), (e: Error) => e instanceof DecodeError && why.test(e.message));
  refused(line.slice(0, -1), /not JSON/);
  refused(line.replace('{', '{"v":1,'), /duplicate key "v"/);
  refused(line.replace('"v":1', '"v":1,"extra":0'), /unknown field "extra"/);
  refused(line.replace(r.key, r.key.toUpperCase()), /"key" must be a label/);
  refused(line.replace(`"label":"${r.key}"`, `"label":"${labelOf('x')}"`), /"label" must equal "key"/);
  refused(line.replace(`"x":"${r.x!}"`, `"x":"${r.x!.slice(0, -4)}A==="`), /"x" must be a signature in canonical base64/);
  refused(line.replace(r.at, r.at.replace('Z', '+00:00')), /"at" must be a UTC time/);
  refused(line.replace('"resolved"', '"aborted"'), /an aborted record holds no "x" or "y"/);
  refused(line.replace(/}$/, `,"token":"${r.x!}"}`), /a resolved record holds no "token"/);
  refused(Buffer.concat([Buffer.from(line.slice(0, 20)), Buffer.from([0xff]), Buffer.from(line.slice(21))]), /not UTF-8/);
  assert.throws(() => encodeTtpLine({ ...r, y: undefined }), /"y" must be a signature/, 'the writer never writes a line it could not read back');
});
