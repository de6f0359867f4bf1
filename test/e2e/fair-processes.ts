/**
 * Real `qtm ttp start` and `qtm server start --ttp` processes for the fair-exchange conformance
 * and attack suites, with a CA, in-process virtual cards, and a read-only view of the server's
 * store (what the server holds).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam, type Sam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { Archive } from '../../src/client/archive.js';
import { serverHoldsY } from '../../src/demo/fair-demo.js';
import { LogStore } from '../../src/store/log-store.js';
import type { TransactionRecord } from '../../src/store/types.js';
import { startListeningProcess, startServerProcess, type ServerProcess } from './server-process.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

export const PASS = 'fair processes passphrase';
export const PIN = '123456';
const env = { QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS };
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Identity = ReturnType<typeof issueKeyAndCertificate>;

export class FairProcesses {
  ttp!: ServerProcess;
  server!: ServerProcess;
  ttpPort = 0;
  private cards = 0;
  readonly ids: Record<'tls' | 'receipts' | 'ttp' | 'ttp-tls', Identity>;

  private constructor(readonly dir: string, readonly ca: OpenCa, readonly sam: Sam, readonly deadlineSeconds: number) {
    const ids = {} as Record<'tls' | 'receipts' | 'ttp' | 'ttp-tls', Identity>;
    for (const [name, role, subject] of [['tls', 'server', 'CN=localhost'], ['receipts', 'signer', 'CN=Fair Shop receipts'], ['ttp', 'ttp', 'CN=Fair TTP'], ['ttp-tls', 'server', 'CN=localhost']] as const) {
      ids[name] = issueKeyAndCertificate(ca, { role, subject });
      writeIdentity(join(dir, name), [ids[name].certificate], ids[name].privateKey, PASS);
    }
    this.ids = ids;
  }

  static async start(deadlineSeconds: number): Promise<FairProcesses> {
    const dir = mkdtempSync(join(tmpdir(), 'qtm-fair-processes-'));
    const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Fair Processes CA', passphrase: PASS });
    const p = new FairProcesses(dir, ca, initSam(join(dir, 'shop.sam'), PASS), deadlineSeconds);
    await p.startTtp(0);
    p.server = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem'),
      '--store', join(dir, 'store'), '--ttp', p.ttp.url, '--ttp-cert', join(dir, 'ttp.pem'), '--fair-deadline', String(deadlineSeconds)], env);
    return p;
  }

  get caPem(): string {
    return this.ca.certificate.toString();
  }

  async startTtp(port: number): Promise<void> {
    this.ttp = await startListeningProcess(['ttp', 'start', '--identity', join(this.dir, 'ttp'), '--tls', join(this.dir, 'ttp-tls'), '--trust', join(this.dir, 'ca', 'ca.pem'), '--store', join(this.dir, 'ttp-store'), '--port', String(port)], env);
    this.ttpPort = Number(new URL(this.ttp.url).port);
  }

  async newCard() {
    const n = ++this.cards;
    const file = join(this.dir, `card-${n}.json`);
    const issued = await issueCard(new CardClient(new InProcessTransport(FileStorage.create(file, 4))), { ca: this.ca, sam: this.sam, register: IssuanceRegister.open(join(this.dir, 'ca', 'register'), this.sam.kcv), holder: `CN=Fair customer ${n}`, pin: PIN, puk: '12345678', slots: 4, profile: 'v2' });
    return { issued, client: new CardClient(new InProcessTransport(new FileStorage(file))), archive: await Archive.open(join(this.dir, `archive-${n}`)) };
  }

  /** The server's record as its store holds it now (read-only beside the running server). */
  async record(id: number): Promise<TransactionRecord | undefined> {
    const store = LogStore.open(join(this.dir, 'store'), { readOnly: true });
    try {
      return await store.get(id);
    } finally {
      await store.close();
    }
  }

  /** Whether the server holds a Y that verifies with the card's key. */
  async holdsY(id: number): Promise<boolean> {
    const store = LogStore.open(join(this.dir, 'store'), { readOnly: true });
    try {
      return await serverHoldsY(store, id);
    } finally {
      await store.close();
    }
  }

  /** Waits until the server settled the exchange (signed, resolved or aborted). */
  async settled(id: number, within = (this.deadlineSeconds + 25) * 1000): Promise<TransactionRecord> {
    const until = Date.now() + within;
    for (;;) {
      const rec = (await this.record(id));
      if (rec?.confirmed || rec?.fairAborted) return rec;
      if (Date.now() > until) throw new Error(`transaction ${id} is not settled: ${JSON.stringify({ escrow: rec?.escrowY !== undefined, intent: rec?.fairAbortIntent?.reason })}`);
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    await this.ttp?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A JSON POST built by hand, as an attacker sends it: the status and the parsed body. */
export function postJson(base: string, path: string, body: unknown, caPem: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method: 'POST', ca: caPem, minVersion: 'TLSv1.3', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(data);
  });
}
