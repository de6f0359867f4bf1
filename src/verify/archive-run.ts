/**
 * An archive run of `qtm verify`: the walk (./walk.ts) streams bundle paths in a deterministic
 * order, batches of them go to N worker threads (./verify-worker.ts), and the results come back
 * out of order and are reported in walk order through a reorder window. At most
 * `jobs * MAX_BATCHES_PER_WORKER * BATCH` bundles are in flight or waiting, whatever the size of
 * the tree: memory stays flat.
 *
 * With a state file (./run-state.ts) the position reached (the count of bundles verified and
 * reported contiguously from the start of the walk order) and the running counts are saved at
 * most every SAVE_INTERVAL_MS and when the run stops; a run that finds a state for the same
 * verification goes on after that position, and its summary covers the whole run.
 */
import { Worker } from 'node:worker_threads';
import { InputError } from '../errors.js';
import { emptyCounts, writeState, type RunCounts, type RunState } from './run-state.js';
import { walkBundles, type WalkEntry, type WalkRoot } from './walk.js';
import type { BatchResult, WorkerSetup, WorkItem } from './worker-setup.js';

/** Bundles per message to a worker: enough that postMessage costs little per bundle. */
export const BATCH = 32;
/** Batches a worker may hold at once: one being verified, one waiting, so it never idles. */
export const MAX_BATCHES_PER_WORKER = 3;
export const SAVE_INTERVAL_MS = 1000;

export interface ArchiveRunOptions {
  readonly roots: readonly WalkRoot[];
  readonly jobs: number;
  readonly setup: WorkerSetup;
  /** Reads standard input, for a `-` among the roots. */
  readonly readStdin?: () => string | { error: string };
  /** Absolute paths the walk leaves out (the state file, if it is in the tree). */
  readonly exclude?: ReadonlySet<string>;
  readonly state?: { readonly file: string; readonly run: string; readonly previous?: RunState };
  /** Results in walk order, a batch at a time (one write per batch, not per bundle). */
  readonly onResults: (batch: BatchResult) => void;
  /** After each batch of results: for a progress line. */
  readonly onProgress?: (p: RunProgress) => void;
  /** Stops the run after the bundles in flight: they are reported, the state saved. */
  readonly signal?: AbortSignal;
  /**
   * Test hook (QTM_TEST_VERIFY_HOLD_AFTER): after this many bundles of this run, report and save
   * the state, then wait for the signal, as a run interrupted at that point would be.
   */
  readonly holdAfter?: number;
}

export interface RunProgress {
  /** Bundles reported, this run and the runs it resumes. */
  readonly done: number;
  readonly counts: Readonly<RunCounts>;
  /** Bundles reported by this run. */
  readonly thisRun: number;
  readonly seconds: number;
}

export interface RunOutcome {
  readonly counts: RunCounts;
  readonly done: number;
  readonly thisRun: number;
  /** Entries of the tree that are not bundles by their name (walked by this run). */
  readonly skipped: number;
  /** Wall time of this run, and of every run it continues. */
  readonly seconds: number;
  readonly totalSeconds: number;
  readonly runs: number;
  readonly interrupted: boolean;
}

const WORKER_URL = new URL('./verify-worker.js', import.meta.url);

function addCounts(into: RunCounts, c: RunCounts): void {
  into.valid += c.valid;
  into.invalid += c.invalid;
  into.unusable += c.unusable;
  into.legacy += c.legacy;
  into.internal += c.internal;
}

/** An entry of the walk that is reported without a worker: an unreadable or empty directory. */
function directResult(index: number, e: Exclude<WalkEntry, { kind: 'bundle' }>, detail: WorkerSetup['detail']): BatchResult {
  const error = e.kind === 'unreadable-directory'
    ? `cannot read the directory: ${e.error} (the bundles in it were not verified)`
    : 'holds no *.json bundle: nothing verified there';
  const result = { file: e.path, status: 'unusable' as const, error };
  return {
    first: index, count: 1, last: e.path, counts: { ...emptyCounts(), unusable: 1 },
    ...(detail === 'json' ? { text: Buffer.from(`${JSON.stringify(result)}\n`) } : { results: [result] }),
  };
}

interface Slot {
  readonly worker: Worker;
  outstanding: number;
}

export class ArchiveRun {
  private readonly counts: RunCounts;
  private readonly skipTo: number;
  private emitted: number;
  private last: string | null;
  private readonly started = performance.now();
  private lastSave = 0;
  /** Batches verified but not yet reported, by their first index: at most the bundles in flight. */
  private readonly pending = new Map<number, BatchResult>();
  private wakers: (() => void)[] = [];
  private fatal: unknown;
  private readonly slots: Slot[] = [];
  private closing = false;

  constructor(private readonly o: ArchiveRunOptions) {
    const prev = o.state?.previous;
    this.counts = prev ? { ...prev.counts } : emptyCounts();
    this.skipTo = prev?.done ?? 0;
    this.emitted = this.skipTo;
    this.last = prev?.last ?? null;
  }

  /** Bundles reported so far, in this run and those it resumes. */
  get done(): number {
    return this.emitted;
  }

  private seconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** Saves the position reached now (also from a signal handler: it is synchronous). */
  saveNow(): void {
    const s = this.o.state;
    if (!s) return;
    const prev = s.previous;
    try {
      writeState(s.file, {
        run: s.run, done: this.emitted, last: this.last, counts: this.counts,
        seconds: (prev?.seconds ?? 0) + this.seconds(), runs: (prev?.runs ?? 0) + 1, updated: new Date().toISOString(),
      });
    } catch (err) {
      throw new InputError(`${s.file}: cannot save the verify state (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'give --state a path in a folder you can write');
    }
    this.lastSave = performance.now();
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  private flush(): void {
    let any = false;
    for (let b = this.pending.get(this.emitted); b; b = this.pending.get(this.emitted)) {
      this.pending.delete(this.emitted);
      addCounts(this.counts, b.counts);
      this.o.onResults(b);
      this.last = b.last;
      this.emitted += b.count;
      any = true;
    }
    if (!any) return;
    if (this.o.state && performance.now() - this.lastSave >= SAVE_INTERVAL_MS) this.saveNow();
    this.o.onProgress?.({ done: this.emitted, counts: this.counts, thisRun: this.emitted - this.skipTo, seconds: this.seconds() });
  }

  private startWorkers(): void {
    for (let i = 0; i < this.o.jobs; i++) {
      const worker = new Worker(WORKER_URL, { workerData: this.o.setup });
      const slot: Slot = { worker, outstanding: 0 };
      worker.on('message', (b: BatchResult) => {
        slot.outstanding--;
        this.pending.set(b.first, b);
        try {
          this.flush();
        } catch (err) {
          this.fatal ??= err; // the state could not be saved: the run stops, and says why
        }
        this.wake();
      });
      worker.on('error', (err) => {
        this.fatal ??= err;
        this.wake();
      });
      worker.on('exit', (code) => {
        if (!this.closing) this.fatal ??= new Error(`a verification worker stopped (exit code ${code})`);
        this.wake();
      });
      this.slots.push(slot);
    }
  }

  private async dispatch(items: WorkItem[]): Promise<void> {
    for (;;) {
      if (this.fatal) throw this.fatal;
      let best = this.slots[0]!;
      for (const s of this.slots) if (s.outstanding < best.outstanding) best = s;
      if (best.outstanding < MAX_BATCHES_PER_WORKER) {
        best.outstanding++;
        best.worker.postMessage({ items });
        return;
      }
      await this.sleep();
    }
  }

  private async drain(): Promise<void> {
    while (this.slots.some((s) => s.outstanding > 0)) {
      if (this.fatal) throw this.fatal;
      await this.sleep();
    }
  }

  private treeChanged(what: string): InputError {
    return new InputError(`${this.o.state!.file}: ${what} since the state was saved, so the run cannot go on where it stopped`, 'remove the state file to verify from the start', 'E_VERIFY_STATE');
  }

  async run(): Promise<RunOutcome> {
    const o = this.o;
    const aborted = () => o.signal?.aborted === true;
    o.signal?.addEventListener('abort', () => this.wake());
    const walk = { skipped: 0 };
    // Saved once before anything is verified: a --state that cannot be written is said at once.
    if (o.state) this.saveNow();
    this.startWorkers();
    try {
      let ordinal = 0;
      let batch: WorkItem[] = [];
      for await (const e of walkBundles(o.roots, walk, o.exclude)) {
        if (aborted()) break;
        const index = ordinal++;
        if (index < this.skipTo) {
          if (index === this.skipTo - 1 && e.path !== this.last) throw this.treeChanged(`bundle ${this.skipTo} of the walk order is now ${e.path}, not ${this.last}: the tree changed`);
          continue;
        }
        if (e.kind !== 'bundle') {
          // Batches stay runs of consecutive bundles: send what came before this entry first.
          if (batch.length) await this.dispatch(batch);
          batch = [];
          this.pending.set(index, directResult(index, e, o.setup.detail));
        } else {
          batch.push({ index, path: e.path, ...(e.path === '-' && o.readStdin ? { text: o.readStdin() } : {}) });
          if (batch.length >= BATCH) {
            await this.dispatch(batch);
            batch = [];
          }
        }
        if (o.holdAfter !== undefined && ordinal - this.skipTo === o.holdAfter) {
          if (batch.length) await this.dispatch(batch);
          batch = [];
          await this.drain();
          this.flush();
          this.saveNow();
          while (!aborted()) await this.sleep();
        }
        // A directory entry only: report it when everything before it is.
        if (e.kind !== 'bundle') this.flush();
      }
      if (!aborted() && ordinal < this.skipTo) throw this.treeChanged(`the tree holds ${ordinal} bundles, fewer than the ${this.skipTo} already verified`);
      // Interrupted: what was not sent to a worker is not verified, and the position stays before it.
      if (batch.length && !aborted()) await this.dispatch(batch);
      await this.drain();
      this.flush();
    } finally {
      this.closing = true;
      await Promise.all(this.slots.map((s) => s.worker.terminate()));
    }
    const interrupted = aborted();
    if (interrupted) this.saveNow();
    const seconds = this.seconds();
    const prev = o.state?.previous;
    return {
      counts: this.counts, done: this.emitted, thisRun: this.emitted - this.skipTo, skipped: walk.skipped,
      seconds, totalSeconds: (prev?.seconds ?? 0) + seconds, runs: (prev?.runs ?? 0) + 1, interrupted,
    };
  }
}
