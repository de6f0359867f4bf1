/**
 * Which commits carry a signed head (src/store/log-store.ts): every commit with a receipt
 * (confirmed, resolved), others within the head interval and at close. What a crash or an
 * editor leaves after the last head: a receipt is cut (never acknowledged), other entries are
 * kept and signed, with a warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogStore, LOG_FILE } from '../../src/store/log-store.js';
import { headSigner, lineHash } from '../../src/store/head.js';
import type { ConfirmedEntry, PreparedEntry } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const heads = headSigner(publicKey, privateKey);

const prepared = (transactionId: number): PreparedEntry => ({
  type: 'prepared', transactionId, orderId: `o${transactionId}`, time: 1, content: 'YQ==', header: 'AA==', clientCertificate: '', cardSerial: '00',
});
const confirmed = (transactionId: number): ConfirmedEntry => ({
  type: 'confirmed', transactionId, firstMessage: { signatureB: 'AA==', challenge: 'AA==', slot: 1, priority: 0 }, package: 'AA==', cardRecord: 'AA==', envelope: 'AA==',
});
type Line = Record<string, unknown>;
const lines = (dir: string): Line[] => readFileSync(join(dir, LOG_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
const kinds = (dir: string) => lines(dir).map((l) => ('head' in l ? 'head' : String(l.type)));

test('a head is signed for each commit with a receipt, for other commits within the interval, and at close', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir, { heads, headIntervalMs: 200 });
  await s.append(prepared(1));
  assert.deepEqual(kinds(dir), ['prepared'], 'a prepare alone waits for the interval');
  await s.append(confirmed(1));
  assert.deepEqual(kinds(dir), ['prepared', 'confirmed', 'head'], 'the receipt\'s commit ends with a head, covering what came before');
  assert.equal((await s.head())!.seq, 2);
  await s.append({ type: 'delivered', transactionId: 1, proof: 'AAAAAAAAAAA=', at: 'now' });
  assert.deepEqual(kinds(dir).slice(3), ['delivered']);
  // Waits on the store's own timer, not on a speed: the head comes when the interval has passed.
  for (let i = 0; i < 100 && kinds(dir).length < 5; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(kinds(dir).slice(3), ['delivered', 'head'], 'the interval signed the delivered entry');
  await s.append(prepared(2));
  await s.close();
  assert.deepEqual(kinds(dir).slice(5), ['prepared', 'head'], 'a clean stop leaves nothing unsigned');
  const r = LogStore.open(dir, { readOnly: true, heads });
  assert.deepEqual(r.findings.problems, []);
  await r.close();
});

test('after a crash: a receipt after the last head is cut with what follows it; other unsigned entries are kept and signed, with a warning', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir, { heads, headIntervalMs: 60_000 });
  await s.append(prepared(1));
  await s.append(confirmed(1));
  await s.append(prepared(2)); // acknowledged, no head yet
  // kill -9 here: no close, no head. Simulated by reading the file as it stands.
  const crashed = readFileSync(join(dir, LOG_FILE));
  await s.close();
  writeFileSync(join(dir, LOG_FILE), crashed);

  const warnings: string[] = [];
  const a = LogStore.open(dir, { heads, onWarning: (m) => warnings.push(m) });
  assert.match(warnings.join('\n'), /1 entries after the last signed head \(from line 4\) sign no transaction .* kept, and signed now/);
  assert.equal((await a.get(2))?.state, 'prepared', 'the acknowledged prepare is kept');
  await a.close();
  assert.deepEqual(kinds(dir), ['prepared', 'confirmed', 'head', 'prepared', 'head']);

  // A confirmed entry someone appended without the key (chained: the chain needs no secret),
  // and an entry after it: both cut and moved aside, never served.
  const last = lines(dir).filter((l) => !('head' in l)).at(-1)!;
  const forged = JSON.stringify({ seq: Number(last.seq) + 1, prev: lineHash(Buffer.from(JSON.stringify(last))), ...confirmed(2) });
  const after = JSON.stringify({ seq: Number(last.seq) + 2, prev: lineHash(Buffer.from(forged)), type: 'delivered', transactionId: 2, proof: 'AAAAAAAAAAA=', at: 'now' });
  appendFileSync(join(dir, LOG_FILE), `${forged}\n${after}\n`);
  const audit = LogStore.open(dir, { readOnly: true, heads });
  assert.match(audit.findings.problems.join('\n'), /with a receipt at line 6: the server never acknowledged that receipt/);
  await audit.close();
  const warned: string[] = [];
  const b = LogStore.open(dir, { heads, onWarning: (m) => warned.push(m) });
  assert.match(warned.join('\n'), /a receipt after the last signed head \(from line 6\) was never acknowledged/);
  assert.equal((await b.get(2))?.state, 'prepared', 'the forged receipt is not served');
  await b.close();
  assert.ok(readdirSync(dir).some((f) => f.startsWith(`${LOG_FILE}.unsigned-`)), 'moved aside for the record');
});

test('an audit beside the running server notes entries waiting for their head; without a live server they are a problem', async (t) => {
  const dir = tempDir(t);
  const s = LogStore.open(dir, { heads, headIntervalMs: 60_000 });
  await s.append(prepared(1));
  await s.append(confirmed(1));
  await s.append({ type: 'delivered', transactionId: 1, proof: 'AAAAAAAAAAA=', at: 'now' }); // acknowledged, head to come
  const beside = LogStore.open(dir, { readOnly: true, heads });
  assert.deepEqual(beside.findings.problems, [], 'the server holds the lock and will sign them: not a finding');
  assert.match(beside.findings.notes.join('\n'), new RegExp(`1 entries after the last signed head .*none a receipt: the running server \\(process ${process.pid}\\) signs them within`));
  await beside.close();
  // The same file with no live writer (a crash, or an editor appending without the key).
  const copy = tempDir(t);
  writeFileSync(join(copy, LOG_FILE), readFileSync(join(dir, LOG_FILE)));
  await s.close();
  const alone = LogStore.open(copy, { readOnly: true, heads });
  assert.deepEqual(alone.findings.notes, []);
  assert.match(alone.findings.problems.join('\n'), /1 entries after the last signed head .*none a receipt/);
  await alone.close();
});
