/**
 * The comparison servers of the load bench (bench/load.ts), run as their own processes so that
 * /proc/PID/stat gives each one's CPU, measured in the same window as qtm's:
 *
 * - the bound (issue 10's): node:https, TLS 1.3 only, the qtm server's TLS key and certificate,
 *   answering each request with a body of the size asked, and making the two receipt signatures
 *   (signature A and the server signature, RSA with the receipt key) at the confirm request.
 * - the floor: the same, plus what qtm's guarantees (issue 10: "same guarantees as the log
 *   store") cost at the least, done as cheaply as node allows: the card's two signatures verified
 *   (login and record), and the store's three appends (prepare, confirm, acknowledge) each written
 *   and fsync'd before its reply, with group commit as the log store has it: appends that arrive
 *   during an fsync are written and fsync'd together, and a commit that holds a receipt carries
 *   one store-head signature. No JSON checks, no key derivation, no chain, no index.
 *
 *   node dist/bench/floor-server.js DIR WORK-JSON
 *
 * WORK-JSON lists the work of each request of a transaction, by its index in the URL (`/x/N`):
 * `verify`, `sign`, `append:BYTES`, `append-head:BYTES` (an append whose commit signs the head).
 * Prints its port on stdout.
 */
import { createServer } from 'node:https';
import { closeSync, fsync, openSync, readFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { sign, verify } from 'node:crypto';
import { readIdentity } from '../src/pki/key-files.js';

export type FloorWork = 'verify' | 'sign' | `append:${number}` | `append-head:${number}`;

const [dir, workJson] = process.argv.slice(2);
const passphrase = process.env.P ?? '';
const work = JSON.parse(workJson ?? '[]') as FloorWork[][];
const receipts = readIdentity(join(dir!, 'receipts'), passphrase);
const publicKey = receipts.certificates[0]!.publicKey;
const signed = Buffer.alloc(400, 7);
const signature = sign('sha256', signed, receipts.privateKey);
const fsyncAsync = promisify(fsync);

/** Group commit, as src/store/log-store.ts does it: one write and one fsync per batch. */
class GroupLog {
  private readonly fd = openSync(join(dir!, `floor-${process.pid}.log`), 'a');
  private queue: { line: Buffer; head: boolean; done: () => void }[] = [];
  private running = false;

  append(bytes: number, head: boolean): Promise<void> {
    const line = Buffer.alloc(bytes, 0x61);
    line[bytes - 1] = 0x0a;
    return new Promise((done) => {
      this.queue.push({ line, head, done });
      if (!this.running) void this.commit();
    });
  }

  private async commit(): Promise<void> {
    this.running = true;
    while (this.queue.length) {
      const batch = this.queue.splice(0);
      const lines = batch.map((b) => b.line);
      // The head signed once per commit that holds a receipt, its line written with the batch.
      if (batch.some((b) => b.head)) lines.push(Buffer.from(JSON.stringify({ head: { seq: 1, hash: '0'.repeat(64), sig: sign('sha256', signed, receipts.privateKey).toString('base64') } }) + '\n'));
      writeSync(this.fd, Buffer.concat(lines));
      await fsyncAsync(this.fd);
      for (const b of batch) b.done();
    }
    this.running = false;
  }

  close(): void {
    closeSync(this.fd);
  }
}

const log = work.flat().some((w) => w.startsWith('append')) ? new GroupLog() : undefined;

async function doWork(index: number): Promise<void> {
  for (const w of work[index] ?? []) {
    if (w === 'verify') {
      if (!verify('sha256', signed, publicKey, signature)) throw new Error('verify failed');
    } else if (w === 'sign') {
      sign('sha256', signed, receipts.privateKey);
    } else {
      const [kind, bytes] = w.split(':') as [string, string];
      await log!.append(Number(bytes), kind === 'append-head');
    }
  }
}

const server = createServer({ key: readFileSync(join(dir!, 'tls-key.pem')), passphrase, cert: readFileSync(join(dir!, 'tls.pem')), minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  req.on('end', () => {
    const n = (JSON.parse(Buffer.concat(chunks).toString()) as { reply: number }).reply;
    const index = Number(/^\/x\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1);
    void doWork(index).then(() => {
      const data = JSON.stringify({ pad: 'x'.repeat(Math.max(0, n - 10)) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store' });
      res.end(data);
    });
  });
});
server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
process.on('SIGTERM', () => {
  log?.close();
  process.exit(0);
});
