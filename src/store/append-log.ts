/**
 * The two mechanisms an append-only log of lines needs, for any store that keeps one (the TTP's
 * store uses them; the transaction store may later): reading the complete lines of a region of
 * the file in chunks, and appending lines with group commit.
 *
 * A line is complete only with its newline. Appends write a line and its newline in one call,
 * and the caller answers only after the fsync, so bytes after the last newline (a torn line) were
 * never acknowledged: `scanLines` reports where they start and the owner cuts them.
 *
 * Group commit: lines appended while a write and fsync are running are written together in the
 * next one, so concurrent callers share one fsync. A failed write or fsync breaks the log for
 * good (the file's tail is then unknown, and a retried fsync can report success for pages the
 * kernel already dropped): every later append is refused until the owner reopens it.
 */
import { fsync, readSync, write } from 'node:fs';
import { promisify } from 'node:util';

const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);
const CHUNK = 1 << 20;
const NEWLINE = 0x0a;

/** Where a line lies in the file, its newline excluded. */
export interface LineSpan {
  readonly offset: number;
  readonly length: number;
}

/**
 * Calls `onLine` for each complete line in [from, to) of `fd`, in order, with its bytes (a view
 * valid only during the call) and its span; empty lines are skipped. Returns the offset just after
 * the last newline: bytes from there to `to` are a torn line.
 */
export function scanLines(fd: number, from: number, to: number, onLine: (line: Buffer, span: LineSpan) => void): number {
  const buf = Buffer.alloc(CHUNK);
  let carry = Buffer.alloc(0);
  let carryOffset = from; // file offset of carry[0]
  let position = from;
  while (position < to) {
    const n = readSync(fd, buf, 0, Math.min(CHUNK, to - position), position);
    if (n === 0) break;
    const data = carry.length ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
    position += n;
    let start = 0;
    for (let nl = data.indexOf(NEWLINE, start); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
      if (nl > start) onLine(data.subarray(start, nl), { offset: carryOffset + start, length: nl - start });
      start = nl + 1;
    }
    carryOffset += start;
    carry = Buffer.from(data.subarray(start));
  }
  return carryOffset;
}

interface Waiting<T> {
  readonly line: Buffer;
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** One committed line: what the caller appended, and where it now lies. */
export interface Committed<T> {
  readonly item: T;
  readonly span: LineSpan;
}

/**
 * Appends lines to a file opened for appending (`a` or `a+`), durable when each promise resolves.
 * `onDurable` sees each batch, in file order, after its fsync and before any of its promises
 * resolve: an owner indexes the whole batch at once there, so no reader sees half of one.
 */
export class GroupCommit<T> {
  private queue: Waiting<T>[] = [];
  private running: Promise<void> | undefined;
  private broken: Error | undefined;
  private closed = false;

  /** `size`: the file's length now, which must end on a newline (or be 0). */
  constructor(
    private readonly fd: number,
    private size: number,
    private readonly onDurable: (batch: readonly Committed<T>[], durableSize: number) => void,
  ) {}

  /** Bytes of the file known to be durable and complete. */
  get durableSize(): number {
    return this.size;
  }

  /** Appends `line` (no newline in it) and its newline; resolves once both are on disk. */
  append(line: Buffer, item: T): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('the log is closed'));
    if (line.includes(NEWLINE)) return Promise.reject(new Error('a log line cannot hold a newline'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, item, resolve, reject });
      // drain() always awaits before it can finish (append refuses when broken), so `running` is
      // set here before drain() clears it.
      this.running ??= this.drain();
    });
  }

  /** Waits for what is queued, then refuses further appends. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      if (this.broken) {
        for (const w of batch) w.reject(this.broken);
        continue;
      }
      const parts: Buffer[] = [];
      const committed: Committed<T>[] = [];
      let offset = this.size;
      for (const w of batch) {
        parts.push(w.line, NEWLINE_BYTE);
        committed.push({ item: w.item, span: { offset, length: w.line.length } });
        offset += w.line.length + 1;
      }
      const data = Buffer.concat(parts);
      try {
        for (let done = 0; done < data.length;) done += (await writeAsync(this.fd, data, done, data.length - done, null)).bytesWritten;
        await fsyncAsync(this.fd);
      } catch (err) {
        this.broken = new Error(`the log could not be written (${(err as Error).message}); it takes no more appends until it is reopened`);
        for (const w of batch) w.reject(this.broken);
        continue;
      }
      this.size = offset;
      try {
        this.onDurable(committed, offset);
      } catch (err) {
        // The lines are durable; an owner that cannot index them must not answer as if it had.
        this.broken = err as Error;
        for (const w of batch) w.reject(err as Error);
        continue;
      }
      for (const w of batch) w.resolve();
    }
    this.running = undefined;
  }
}

const NEWLINE_BYTE = Buffer.from('\n');
