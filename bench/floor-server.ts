/**
 * The comparison servers of the load bench (bench/load.ts), run as their own processes so that
 * /proc/PID/stat gives each one's CPU:
 *
 * - `bare`: node:https, TLS 1.3 only, the qtm server's TLS key and certificate; it answers each
 *   request with a body of the size asked. One session with the requests of a qtm transaction is
 *   the bound (with two receipt signatures added by the bench).
 * - `floor`: the same, plus what the issue itself requires of every transaction beyond that bound,
 *   done as cheaply as node allows: the RSA signatures with the receipt key (signature A, the
 *   server signature and the store head of the commit that holds the receipt), the verifications
 *   of the card's two signatures (login and record), and the store's appends, each written and
 *   fsync'd before its reply ("reply only after commit"), fsync in the thread pool as the log store
 *   does. No JSON checks, no key derivation, no chain: what no implementation can skip.
 *
 *   node dist/bench/floor-server.js MODE PREFIX-DIR WORK-JSON
 *
 * WORK-JSON lists the work of each request of a transaction, by index in the URL (`/x/N`):
 * `verify`, `sign`, `append:BYTES`. Prints its port on stdout.
 */
import { createServer } from 'node:https';
import { closeSync, fsync, openSync, readFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { sign, verify } from 'node:crypto';
import { readIdentity } from '../src/pki/key-files.js';

export type FloorWork = 'verify' | 'sign' | `append:${number}`;

const [mode, dir, workJson] = process.argv.slice(2);
const passphrase = process.env.P ?? '';
const work = (mode === 'floor' ? JSON.parse(workJson ?? '[]') : []) as FloorWork[][];
const receipts = readIdentity(join(dir!, 'receipts'), passphrase);
const publicKey = receipts.certificates[0]!.publicKey;
const signed = Buffer.alloc(400, 7);
const signature = sign('sha256', signed, receipts.privateKey);
const log = mode === 'floor' ? openSync(join(dir!, 'floor-store.log'), 'a') : -1;
const fsyncAsync = promisify(fsync);

async function doWork(index: number): Promise<void> {
  for (const w of work[index] ?? []) {
    if (w === 'verify') {
      if (!verify('sha256', signed, publicKey, signature)) throw new Error('verify failed');
    } else if (w === 'sign') {
      sign('sha256', signed, receipts.privateKey);
    } else {
      const line = Buffer.alloc(Number(w.slice('append:'.length)), 0x61);
      line[line.length - 1] = 0x0a;
      writeSync(log, line);
      await fsyncAsync(log);
    }
  }
}

const tls = readFileSync(join(dir!, 'tls.pem'));
const server = createServer({ key: readFileSync(join(dir!, 'tls-key.pem')), passphrase, cert: tls, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, (req, res) => {
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
  if (log >= 0) closeSync(log);
  process.exit(0);
});
