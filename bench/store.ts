/**
 * Issues 4 and 10's store figures: what one transaction costs the embedded store (three fsync'd
 * appends: prepared, confirmed, delivered) when it already holds 1k, 100k and 1M transactions,
 * how long opening takes (the first open builds the index from the whole log; later opens read
 * the index snapshot and the log after it: flat) and how much memory it needs; and, for
 * contrast, lowdb's whole-file rewrite per write at the sizes where it is still bearable.
 * The logs are generated directly in the store's format (chained lines), ~3.5 KB a transaction:
 * 1M transactions is ~3.5 GB on disk for the length of the run.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JSONFile } from 'lowdb/node';
import { Low } from 'lowdb';
import { LogStore, LOG_FILE } from '../src/store/log-store.js';
import type { ConfirmedEntry, DeliveredEntry, PreparedEntry, StoreEntry } from '../src/store/types.js';
import { median } from './stats.js';

/** QTM_BENCH_SIZES=1000,10000 for a quicker run. */
const SIZES = (process.env.QTM_BENCH_SIZES ?? '1000,100000,1000000').split(',').map(Number);
const LOWDB_SIZES = [1_000, 10_000];
const APPENDED = 300;

// Sizes of a real v2 transaction: ~600 B order text, RSA-2048 certificate, 3 signatures.
const b64 = (n: number) => randomBytes(n).toString('base64');
const CONTENT = b64(600);
const HEADER = b64(140);
const CERT = `-----BEGIN CERTIFICATE-----\n${b64(950).replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
const PACKAGE = b64(900);
const SIG = b64(256);
/** Entries carry their card key's SHA-256 (issue 18), as the server writes them. */
const CARD_KEYS = Array.from({ length: 5000 }, () => randomBytes(32).toString('hex'));

function transaction(id: number): StoreEntry[] {
  const prepared: PreparedEntry = { type: 'prepared', transactionId: id, orderId: `order-${id}`, time: 1_790_000_000 + id, content: CONTENT, header: HEADER, clientCertificate: CERT, cardSerial: (id % 5000).toString(16).padStart(16, '0'), cardKey: CARD_KEYS[id % 5000]! };
  const confirmed: ConfirmedEntry = { type: 'confirmed', transactionId: id, firstMessage: { signatureB: SIG, challenge: b64(8), slot: 1 + (id % 16), priority: 0 }, package: PACKAGE, cardRecord: b64(40), envelope: b64(80) };
  const delivered: DeliveredEntry = { type: 'delivered', transactionId: id, proof: b64(8), at: new Date(1_790_000_000_000 + id).toISOString() };
  return [prepared, confirmed, delivered];
}

/** Writes a log of n delivered transactions directly, chained as the store chains them (one fsync at the end: set-up, not measured). */
export function writeLog(dir: string, n: number): void {
  const fd = openSync(join(dir, LOG_FILE), 'w', 0o600);
  let seq = 0;
  let prev = '0'.repeat(64);
  for (let id = 1; id <= n; id += 1000) {
    const lines: string[] = [];
    for (let j = id; j < Math.min(n + 1, id + 1000); j++) {
      for (const e of transaction(j)) {
        const line = JSON.stringify({ seq: ++seq, prev, ...e });
        prev = createHash('sha256').update(line).digest('hex');
        lines.push(line);
      }
    }
    writeSync(fd, lines.join('\n') + '\n');
  }
  fsyncSync(fd); // so the measured appends do not pay for flushing the set-up
  closeSync(fd);
}

function heapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

async function logStoreAt(n: number): Promise<{ perTx: number; openMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-store-'));
  try {
    writeLog(dir, n);
    const fileMb = statSync(join(dir, LOG_FILE)).size / 2 ** 20;
    const b0 = performance.now();
    await LogStore.open(dir).close(); // builds the index from the whole log (linear: once)
    const buildMs = performance.now() - b0;
    const heapBefore = heapMb();
    const t0 = performance.now();
    const store = LogStore.open(dir);
    const openMs = performance.now() - t0;
    const indexMb = heapMb() - heapBefore;
    const perTransaction: number[] = [];
    for (let id = n + 1; id <= n + APPENDED; id++) {
      const s = performance.now();
      for (const e of transaction(id)) await store.append(e);
      perTransaction.push(performance.now() - s);
    }
    const reads: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = performance.now();
      store.get(1 + Math.floor(Math.random() * n));
      reads.push(performance.now() - s);
    }
    await store.close();
    // An audit reads the whole log (linear by design): timed up to 100k, where it takes seconds.
    const t1 = performance.now();
    if (n <= 100_000) await LogStore.open(dir, { readOnly: true }).close();
    const auditMs = performance.now() - t1;
    console.log(`log store at ${n.toLocaleString('en')} transactions (${fileMb.toFixed(0)} MB): one transaction ${median(perTransaction).toFixed(2)} ms (3 fsync'd appends), get ${(median(reads) * 1000).toFixed(0)} µs, open ${openMs.toFixed(1)} ms, ~${Math.max(0, indexMb).toFixed(0)} MB heap; first open (index built from the log) ${(buildMs / 1000).toFixed(1)} s${n <= 100_000 ? `, audit's read-only open ${(auditMs / 1000).toFixed(1)} s` : ''}`);
    return { perTx: median(perTransaction), openMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function lowdbAt(n: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-lowdb-'));
  try {
    const db = new Low<{ entries: StoreEntry[] }>(new JSONFile(join(dir, 'db.json')), { entries: [] });
    for (let id = 1; id <= n; id++) db.data.entries.push(...transaction(id));
    await db.write();
    const perTransaction: number[] = [];
    for (let id = n + 1; id <= n + 5; id++) {
      const s = performance.now();
      for (const e of transaction(id)) {
        db.data.entries.push(e);
        await db.write(); // one write per entry, as the log store appends per entry
      }
      perTransaction.push(performance.now() - s);
    }
    return median(perTransaction);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchStore(): Promise<void> {
  const log = new Map<number, number>();
  const opens = new Map<number, number>();
  for (const n of SIZES) {
    const r = await logStoreAt(n);
    log.set(n, r.perTx);
    opens.set(n, r.openMs);
  }
  const [smallest, largest] = [Math.min(...SIZES), Math.max(...SIZES)];
  console.log(`  cost growth ${smallest.toLocaleString('en')} -> ${largest.toLocaleString('en')}: x${(log.get(largest)! / log.get(smallest)!).toFixed(2)} per transaction, x${(opens.get(largest)! / opens.get(smallest)!).toFixed(2)} open (flat is x1; fsync time on this disk varies by ~0.5 ms run to run)`);
  for (const n of LOWDB_SIZES) {
    const ms = await lowdbAt(n);
    const ratio = log.has(n) ? `, x${(ms / log.get(n)!).toFixed(0)} the log store` : '';
    console.log(`lowdb (whole-file rewrite, no fsync) at ${n.toLocaleString('en')} transactions: one transaction ${ms.toFixed(1)} ms${ratio}; not run at 100k (it grows with the file)`);
  }
}
