/**
 * One client process of the load generator (bench/load.ts): a worker thread of the bench, never
 * the server's process. It runs `cards.length` transaction loops side by side, each with its own
 * pre-issued in-memory card, as `qtm sign --yes` would (the card's PIN check and signature happen
 * here), until the deadline. Or, in 'bare' mode, sessions against a comparison server (bare TLS, or
 * the floor: bench/floor-server.ts) that carry the same number of requests of the same sizes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { CardClient } from '../src/card/client.js';
import { InProcessTransport } from '../src/card/transports/in-process.js';
import { MemoryStorage, type CardImage } from '../src/card/virtual/storage.js';
import { JsonHttpsClient } from '../src/http/client.js';
import { Archive } from '../src/client/archive.js';
import { runTransaction } from '../src/client/transaction.js';

export interface WorkerInput {
  readonly mode: 'qtm' | 'bare';
  readonly url: string;
  readonly caPem: string;
  readonly pin: string;
  readonly cards: CardImage[];
  /** Loops side by side in this worker (qtm: one per card). */
  readonly loops: number;
  /** Wall clock (Date.now()) after which no new transaction starts. */
  readonly until: number;
  readonly archiveDir: string;
  /** Resume TLS sessions (tickets) across this loop's connections. */
  readonly resume: boolean;
  /** bare mode: [request bytes, response bytes] of each request of a qtm transaction. */
  readonly sizes?: [number, number][];
  /**
   * Transactions finished by the qtm workers (Int32Array over a SharedArrayBuffer, index 0):
   * qtm workers count here, the bare worker runs one session per transaction counted, so both
   * servers work at the same rate, interleaved.
   */
  readonly paced?: SharedArrayBuffer;
}

export interface WorkerOutput {
  /** Per finished transaction (or session): when it ended (Date.now()) and how long it took (ms). */
  readonly done: [number, number][];
  /** Request and response body sizes of one qtm transaction, in order. */
  readonly sizes?: [number, number][];
  /** Bytes on the wire (TLS records, both directions) of one connection. */
  readonly wireBytes?: number;
  readonly resumed: number;
  readonly connections: number;
  readonly errors: string[];
}

const input = workerData as WorkerInput;

/** A TLS session per loop, kept between its connections when resuming. */
class Loop {
  session: Buffer | undefined;
  resumed = 0;
  connections = 0;
  wireBytes = 0;

  client(): JsonHttpsClient {
    const c = new JsonHttpsClient(input.url, input.caPem, input.resume ? { session: this.session, onSession: (s) => { this.session = s; } } : {});
    return c;
  }

  done(c: JsonHttpsClient): void {
    const s = c.lastSocket;
    this.connections++;
    if (s?.isSessionReused()) this.resumed++;
    if (s) this.wireBytes = s.bytesRead + s.bytesWritten;
    c.close();
  }
}

async function qtmLoop(image: CardImage, i: number, out: WorkerOutput): Promise<void> {
  const card = new CardClient(new InProcessTransport(new MemoryStorage(image)));
  const archive = await Archive.open(join(input.archiveDir, `archive-${process.pid}-${i}-${Math.random().toString(36).slice(2)}`));
  const trust = [new X509Certificate(input.caPem)];
  const loop = new Loop();
  let sizes: [number, number][] | undefined;
  while (Date.now() < input.until) {
    const api = loop.client();
    const record: [number, number][] | undefined = !out.sizes && !sizes ? (sizes = []) : undefined;
    if (record) {
      const call = api.call.bind(api);
      api.call = (<T>(method: 'GET' | 'POST', path: string, body?: unknown, decode?: (j: unknown) => T) => call(method, path, body, (j) => {
        record.push([body === undefined ? 0 : Buffer.byteLength(JSON.stringify(body)), Buffer.byteLength(JSON.stringify(j))]);
        return decode ? decode(j) : (j as T);
      })) as typeof api.call;
    }
    const t0 = performance.now();
    try {
      await runTransaction({ api, card, trustAnchors: trust, archive, order: { items: [{ sku: 'PAPER-A4', quantity: 2 }] }, hooks: { accept: async () => true, pin: async () => input.pin } });
      out.done.push([Date.now(), performance.now() - t0]);
      if (input.paced) Atomics.add(new Int32Array(input.paced), 0, 1);
      if (record) Object.assign(out, { sizes: record });
    } catch (err) {
      out.errors.push((err as Error).message);
      if (out.errors.length > 20) throw err;
    } finally {
      loop.done(api);
    }
  }
  Object.assign(out, { wireBytes: loop.wireBytes, resumed: out.resumed + loop.resumed, connections: out.connections + loop.connections });
}

/** Sessions started by this worker's loops (all of them: they run at qtm's concurrency, paced by its count). */
let sessions = 0;

async function bareLoop(out: WorkerOutput): Promise<void> {
  const loop = new Loop();
  const paced = input.paced ? new Int32Array(input.paced) : undefined;
  while (Date.now() < input.until) {
    if (paced && Atomics.load(paced, 0) <= sessions) {
      await new Promise((r) => setTimeout(r, 2));
      continue;
    }
    sessions++;
    const api = loop.client();
    const t0 = performance.now();
    try {
      // /x/N: the floor server does request N's share of a transaction's work (bench/floor-server.ts).
      for (const [i, [req, res]] of input.sizes!.entries()) await api.call('POST', `/x/${i}`, { pad: 'x'.repeat(Math.max(0, req - 22)), reply: res });
      out.done.push([Date.now(), performance.now() - t0]);
    } finally {
      loop.done(api);
    }
  }
  Object.assign(out, { wireBytes: loop.wireBytes, resumed: out.resumed + loop.resumed, connections: out.connections + loop.connections });
}

const out: WorkerOutput = { done: [], resumed: 0, connections: 0, errors: [] };
if (input.mode === 'qtm') await Promise.all(input.cards.map((c, i) => qtmLoop(c, i, out)));
else await Promise.all(Array.from({ length: input.loops }, () => bareLoop(out)));
parentPort!.postMessage(out);
