/**
 * The TTP's private-key work off its event loop (issue 17): opening the escrow of X and
 * extracting Y from a verifiable escrow run in one worker thread, so a request that costs
 * decryptions never stalls the answers to the others. Only requests that passed every cheap
 * check (roles, the server's signature, chains, the deposits, the public escrow check) get here.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { oaepDecrypt } from './oaep.js';
import { extractSignature } from './verifiable-escrow.js';

type Job =
  | { readonly kind: 'decrypt'; readonly ciphertext: Uint8Array; readonly label: Uint8Array }
  | { readonly kind: 'extract'; readonly escrow: Uint8Array; readonly cardKey: Uint8Array; readonly ttpKey: Uint8Array; readonly label: Uint8Array; readonly message: Uint8Array };

interface WorkerInit {
  readonly qtmTtpWorker: true;
  readonly privateKey: Uint8Array; // PKCS#8 DER
}

function run(privateKey: KeyObject, job: Job): Buffer | undefined {
  if (job.kind === 'decrypt') return oaepDecrypt(privateKey, job.ciphertext, job.label);
  const spki = (der: Uint8Array) => createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
  return extractSignature(job.escrow, { cardKey: spki(job.cardKey), ttpKey: spki(job.ttpKey), ttpPrivateKey: privateKey, label: job.label, message: job.message });
}

if (!isMainThread && (workerData as WorkerInit | undefined)?.qtmTtpWorker) {
  const key = createPrivateKey({ key: Buffer.from((workerData as WorkerInit).privateKey), format: 'der', type: 'pkcs8' });
  parentPort!.on('message', (m: { id: number; job: Job }) => {
    let result: Buffer | undefined;
    let error: string | undefined;
    try {
      result = run(key, m.job);
    } catch (err) {
      error = (err as Error).message;
    }
    parentPort!.postMessage({ id: m.id, result, error });
  });
}

/** One worker thread holding the TTP's escrow key; jobs are answered in order. */
export class TtpWorker {
  private worker: Worker | undefined;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (b: Buffer | undefined) => void; reject: (e: Error) => void }>();

  constructor(private readonly privateKey: KeyObject) {}

  private start(): Worker {
    if (this.worker) return this.worker;
    const init: WorkerInit = { qtmTtpWorker: true, privateKey: this.privateKey.export({ format: 'der', type: 'pkcs8' }) };
    const w = new Worker(new URL(import.meta.url), { workerData: init });
    w.on('message', (m: { id: number; result?: Uint8Array; error?: string }) => {
      const p = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) w.unref();
      if (m.error) p?.reject(new Error(`TTP worker: ${m.error}`));
      else p?.resolve(m.result ? Buffer.from(m.result) : undefined);
    });
    w.on('error', (err) => {
      for (const p of this.waiting.values()) p.reject(err);
      this.waiting.clear();
      this.worker = undefined;
    });
    w.unref();
    this.worker = w;
    return w;
  }

  private submit(job: Job): Promise<Buffer | undefined> {
    const w = this.start();
    const id = this.next++;
    w.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ id, job });
    });
  }

  /** RSA-OAEP decryption under the label (the escrow of X), or undefined. */
  decrypt(ciphertext: Uint8Array, label: Uint8Array): Promise<Buffer | undefined> {
    return this.submit({ kind: 'decrypt', ciphertext, label });
  }

  /** Y from a verifiable escrow that passed the public check, decrypting pair by pair until one gives it. */
  extract(escrow: Uint8Array, ctx: { cardKey: KeyObject; ttpKey: KeyObject; label: Uint8Array; message: Uint8Array }): Promise<Buffer | undefined> {
    const der = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
    return this.submit({ kind: 'extract', escrow, cardKey: der(ctx.cardKey), ttpKey: der(ctx.ttpKey), label: ctx.label, message: ctx.message });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
