/**
 * The embedded default store: an append-only log of JSON lines, fsync'd before any reply, with
 * the index in memory. Each transaction costs one append whatever the log's size (lowdb's model,
 * a whole-file rewrite per write, grows with the data and never fsyncs). Appends that arrive
 * while an fsync is running are written and fsync'd together (group commit), so concurrent
 * clients share the cost of durability.
 *
 * Crash safety: a line is complete only with its newline. On open, a torn last line (a write
 * cut by kill -9) is cut off: it was never acknowledged, because acknowledgement waits for the
 * fsync. A bad line anywhere else is damage, and opening refuses with its line number.
 */
import { closeSync, existsSync, fsync, fsyncSync, mkdirSync, openSync, readFileSync, ftruncateSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fsyncDirectory } from '../util/fs.js';
import { InputError } from '../errors.js';
import { fold, type StoreEntry, type TransactionRecord, type TransactionState, type TransactionStore } from './types.js';

export const LOG_FILE = 'transactions.log';

const writeAsync = promisify(write) as (fd: number, data: string) => Promise<unknown>;
const fsyncAsync = promisify(fsync);

export class LogStore implements TransactionStore {
  private readonly records = new Map<number, TransactionRecord>();
  private maxId = 0;
  private pending: { line: string; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly fd: number) {}

  static open(dir: string): LogStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, LOG_FILE);
    const created = !existsSync(path);
    const fd = openSync(path, 'a+', 0o600);
    if (created) fsyncDirectory(dir);
    const store = new LogStore(fd);
    const text = readFileSync(path, 'utf8');
    let end = 0;
    let lineNo = 0;
    while (end < text.length) {
      const nl = text.indexOf('\n', end);
      lineNo++;
      if (nl < 0) {
        // Torn tail: cut it so the next append starts on a clean line.
        ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
        fsyncSync(fd);
        break;
      }
      const line = text.slice(end, nl);
      end = nl + 1;
      if (!line) continue;
      let entry: StoreEntry;
      try {
        entry = JSON.parse(line) as StoreEntry;
      } catch {
        closeSync(fd);
        throw new InputError(`store ${path} is damaged at line ${lineNo}`, 'restore it from backup; `qtm server audit` shows what is intact');
      }
      store.apply(entry);
    }
    return store;
  }

  private apply(entry: StoreEntry): void {
    const next = fold(this.records.get(entry.transactionId), entry);
    if (next) this.records.set(entry.transactionId, next);
    this.maxId = Math.max(this.maxId, entry.transactionId);
  }

  append(entry: StoreEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ line: JSON.stringify(entry) + '\n', resolve: () => {
        this.apply(entry);
        resolve();
      }, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      // Let appends made in the same tick join this batch.
      await new Promise((r) => setImmediate(r));
      const batch = this.pending;
      this.pending = [];
      try {
        await writeAsync(this.fd, batch.map((b) => b.line).join(''));
        await fsyncAsync(this.fd);
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err as Error);
      }
    }
    this.flushing = undefined;
  }

  get(transactionId: number): TransactionRecord | undefined {
    return this.records.get(transactionId);
  }

  lastTransactionId(): number {
    return this.maxId;
  }

  all(): Iterable<TransactionRecord> {
    return [...this.records.values()].sort((a, b) => a.transactionId - b.transactionId);
  }

  countByState(): Record<TransactionState, number> {
    const counts = { prepared: 0, confirmed: 0, delivered: 0 };
    for (const r of this.records.values()) counts[r.state]++;
    return counts;
  }

  async close(): Promise<void> {
    await this.flushing;
    this.closed = true;
    closeSync(this.fd);
  }
}
