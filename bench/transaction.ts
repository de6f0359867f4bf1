/**
 * Issue 4's figures: end-to-end latency of one transaction (in-process card and through pcscd),
 * and transactions per second with 20 concurrent clients against the bound set by the signatures
 * the server must make per transaction.
 *
 * The server runs as `qtm server start` in its own process, as in production; the clients and
 * their virtual cards run in this process. Each transaction opens a fresh TLS session (the card
 * authentication is bound to it), so the server signs three times per transaction: the TLS 1.3
 * CertificateVerify, signature A on the header (as party A, the merchant) and the server
 * signature over the package (claim 4).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../src/pki/ca.js';
import { writeIdentity } from '../src/pki/key-files.js';
import { initSam, type Sam } from '../src/sam/sam.js';
import { CardClient } from '../src/card/client.js';
import { issueCard } from '../src/card/issue.js';
import { InProcessTransport } from '../src/card/transports/in-process.js';
import { PcscTransport } from '../src/card/transports/pcsc.js';
import { blankImage, FileStorage, MemoryStorage } from '../src/card/virtual/storage.js';
import { QtmApi } from '../src/client/api.js';
import { Archive } from '../src/client/archive.js';
import { runTransaction, type Step, type TransactionResult } from '../src/client/transaction.js';
import { signBytes } from '../src/crypto/keys.js';
import { PROFILES } from '../src/protocol/profile.js';
import { median, opsPerSecond, percentile } from './stats.js';
import { IssuanceRegister } from '../src/card/issuance-register.js';
import { listeningUrl } from './listening.js';

const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');
const QTM = join(ROOT, 'dist/bin/qtm.js');
const PASS = 'bench passphrase';
const PIN = '123456';
const READER = 'Virtual PCD 00 00';
const SERVER_SIGNATURES_PER_TRANSACTION = 3;
const CONCURRENT_CLIENTS = 20;
const CONCURRENT_SECONDS = 10;
/** order, auth challenge, auth response, prepare, confirm, acknowledge. */
const REQUESTS_PER_TRANSACTION = 6;

interface Bench {
  dir: string;
  ca: OpenCa;
  sam: Sam;
  url: string;
  server: ChildProcess;
}

async function startServerProcess(dir: string, extra: string[] = []): Promise<{ server: ChildProcess; url: string }> {
  const server = spawn(process.execPath, [...(process.env.QTM_BENCH_PROFILE_SERVER ? ['--cpu-prof', '--cpu-prof-dir', process.env.QTM_BENCH_PROFILE_SERVER] : []), QTM, 'server', 'start', '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'),
    '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store'), '--port', '0',
    // Every bench client logs in from 127.0.0.1: the per-address limits (before login, and on
    // every request) are not what is measured.
    '--anonymous-rate', '1000000', '--rate', '1000000', ...extra],
  { env: { ...process.env, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS }, stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await listeningUrl(server);
  return { server, url };
}

async function setUp(): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-tx-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Bench CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Bench Shop receipts' });
  writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
  writeIdentity(join(dir, 'receipts'), [signer.certificate], signer.privateKey, PASS);
  const sam = initSam(join(dir, 'shop.sam'), PASS);
  return { dir, ca, sam, ...(await startServerProcess(dir)) };
}

async function issueMemoryCard(b: Bench, holder: string): Promise<CardClient> {
  const transport = new InProcessTransport(new MemoryStorage(blankImage(16)));
  await issueCard(new CardClient(transport), { ca: b.ca, sam: b.sam, register: IssuanceRegister.open(join(b.ca.dir, 'register'), b.sam.kcv), holder, pin: PIN, puk: '12345678', slots: 16, profile: 'v2' });
  return new CardClient(transport);
}

/** One transaction as `qtm sign --yes` runs it: a fresh API client (fresh TLS session) each time. */
async function transact(b: Bench, card: CardClient, archive: Archive): Promise<TransactionResult> {
  const api = new QtmApi(b.url, b.ca.certificate.toString());
  try {
    return await runTransaction({
      api, card, trustAnchors: [b.ca.certificate], archive,
      order: { items: [{ sku: 'PAPER-A4', quantity: 2 }] },
      hooks: { accept: async () => true, pin: async () => PIN },
    });
  } finally {
    api.close();
  }
}

async function latency(b: Bench, card: CardClient, archive: Archive, n: number): Promise<{ times: number[]; steps: Partial<Record<Step, number[]>>; apdus: number }> {
  await transact(b, card, archive); // warm-up: JIT, first connection
  const times: number[] = [];
  const steps: Partial<Record<Step, number[]>> = {};
  let apdus = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await transact(b, card, archive);
    times.push(performance.now() - t0);
    apdus = r.apdus;
    for (const [s, ms] of Object.entries(r.timings) as [Step, number][]) (steps[s] ??= []).push(ms);
  }
  return { times, steps, apdus };
}

function line(label: string, times: number[]): string {
  return `${label}: median ${median(times).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms over ${times.length} transactions`;
}

async function pcscLatency(b: Bench): Promise<void> {
  const cardFile = join(b.dir, 'pcsc.card.json');
  await issueCard(new CardClient(new InProcessTransport(FileStorage.create(cardFile, 16))), { ca: b.ca, sam: b.sam, register: IssuanceRegister.open(join(b.ca.dir, 'register'), b.sam.kcv), holder: 'CN=Bench PC/SC', pin: PIN, puk: '12345678', slots: 16, profile: 'v2' });
  const emulator = spawn(process.execPath, [QTM, 'card', 'emulate', '--card', cardFile], { stdio: 'ignore' });
  try {
    const transport = await PcscTransport.connectWhenReady(READER).catch(() => undefined);
    if (!transport) {
      console.log('one transaction through pcscd: skipped (no pcscd with vpcd; see README "Set-up")');
      return;
    }
    const r = await latency(b, new CardClient(transport), await Archive.open(join(b.dir, 'archive-pcsc')), 15);
    console.log(line('one transaction, card through pcscd + vpcd (emulator in its own process)', r.times));
    await transport.close();
  } finally {
    const exited = new Promise((r) => emulator.once('exit', r));
    emulator.kill('SIGTERM');
    await exited;
  }
}

/**
 * What the transport alone costs a server: a bare node:https server (same TLS 1.3 key and
 * certificate) answering a fresh TLS session with as many small JSON requests as a transaction
 * makes. The gap between this and the qtm server's CPU per transaction is qtm's own work.
 */
async function bareHttpsCpuPerSession(b: Bench, requests: number, sessions: number): Promise<number | undefined> {
  const script = `
    const { createServer } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const s = createServer({ key: readFileSync(process.argv[1] + '-key.pem'), passphrase: process.env.P, cert: readFileSync(process.argv[1] + '.pem'), minVersion: 'TLSv1.3' },
      (req, res) => { req.resume(); req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ ok: true, pad: 'x'.repeat(1500) })); }); });
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));
  `;
  const server = spawn(process.execPath, ['--input-type=module', '-e', script, join(b.dir, 'tls')], { env: { ...process.env, P: PASS }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((ok) => server.stdout!.once('data', (d: Buffer) => ok(Number(d.toString().trim()))));
    const session = async () => {
      const api = new QtmApi(`https://localhost:${port}`, b.ca.certificate.toString());
      try {
        for (let i = 0; i < requests; i++) await api.call('POST', '/x', { n: i }, (x) => x);
      } finally {
        api.close();
      }
    };
    await session();
    const cpu0 = cpuSeconds(server.pid!);
    for (let i = 0; i < sessions; i += 10) await Promise.all(Array.from({ length: 10 }, session));
    const cpu1 = cpuSeconds(server.pid!);
    return cpu0 === undefined || cpu1 === undefined ? undefined : ((cpu1 - cpu0) * 1000) / sessions;
  } finally {
    server.kill('SIGTERM');
  }
}

/** CPU seconds (user + system) a process has used, from /proc; undefined off Linux. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    // After the command name: field 14 (utime) and 15 (stime) of proc(5) are indexes 11 and 12.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

async function concurrent(b: Bench): Promise<{ done: number; seconds: number; times: number[]; serverCpu?: number }> {
  const clients = await Promise.all(Array.from({ length: CONCURRENT_CLIENTS }, async (_, i) => ({
    card: await issueMemoryCard(b, `CN=Bench Client ${i}`),
    archive: await Archive.open(join(b.dir, `archive-${i}`)),
  })));
  const times: number[] = [];
  const cpu0 = cpuSeconds(b.server.pid!);
  const t0 = performance.now();
  const until = t0 + CONCURRENT_SECONDS * 1000;
  await Promise.all(clients.map(async (c) => {
    while (performance.now() < until) {
      const s = performance.now();
      await transact(b, c.card, c.archive);
      times.push(performance.now() - s);
    }
  }));
  const cpu1 = cpuSeconds(b.server.pid!);
  return { done: times.length, seconds: (performance.now() - t0) / 1000, times, ...(cpu0 !== undefined && cpu1 !== undefined ? { serverCpu: cpu1 - cpu0 } : {}) };
}

export async function benchTransaction(): Promise<void> {
  const b = await setUp();
  try {
    const signer = issueKeyAndCertificate(b.ca, { role: 'signer', subject: 'CN=Rate probe' });
    const data = Buffer.alloc(400, 1);
    const signRate = opsPerSecond(() => signBytes(PROFILES.v2, signer.privateKey, data));
    const bound = signRate / SERVER_SIGNATURES_PER_TRANSACTION;
    console.log(`node:crypto RSA-2048 sign: ${signRate.toFixed(0)}/s per core; the server signs ${SERVER_SIGNATURES_PER_TRANSACTION}x per transaction (TLS handshake, signature A, server signature) -> bound ${bound.toFixed(0)} transactions/s per core`);

    const card = await issueMemoryCard(b, 'CN=Bench Latency');
    const single = await latency(b, card, await Archive.open(join(b.dir, 'archive-latency')), 40);
    console.log(line('one transaction, in-process card (server in its own process, HTTPS on loopback)', single.times));
    const parts = (Object.entries(single.steps) as [Step, number[]][]).map(([s, xs]) => `${s} ${median(xs).toFixed(1)}`).join(', ');
    console.log(`  median per step (ms): ${parts}; ${single.apdus} APDUs`);

    await pcscLatency(b);

    const c = await concurrent(b);
    const rate = c.done / c.seconds;
    console.log(`${CONCURRENT_CLIENTS} concurrent clients for ${c.seconds.toFixed(1)} s: ${c.done} transactions, ${rate.toFixed(1)} transactions/s end to end (median ${median(c.times).toFixed(0)} ms, p99 ${percentile(c.times, 99).toFixed(0)} ms each)`);
    const cardMs = median(single.steps.card ?? [0]);
    console.log(`  the clients limit this figure: their ${CONCURRENT_CLIENTS} virtual cards share this process, and each PIN check is a deliberate scrypt (~${cardMs.toFixed(0)} ms in the 'card' step) on ${availableParallelism()} cores shared with the server`);
    if (c.serverCpu !== undefined) {
      const cpuMs = (c.serverCpu * 1000) / c.done;
      const capacity = 1000 / cpuMs;
      console.log(`  server CPU per transaction: ${cpuMs.toFixed(2)} ms -> ${capacity.toFixed(0)} transactions/s per server core, ratio ${(capacity / bound).toFixed(2)} to the signature bound of ${bound.toFixed(0)}/s`);
      const bare = await bareHttpsCpuPerSession(b, REQUESTS_PER_TRANSACTION, 200);
      if (bare !== undefined) console.log(`  of which transport: a bare node:https server spends ${bare.toFixed(2)} ms CPU on one fresh TLS 1.3 session with ${REQUESTS_PER_TRANSACTION} requests (${((bare / cpuMs) * 100).toFixed(0)}%); qtm's own work is the rest`);
    }
  } finally {
    const exited = new Promise((r) => b.server.once('exit', r));
    b.server.kill('SIGTERM');
    await exited;
    rmSync(b.dir, { recursive: true, force: true });
  }
}

/**
 * Issue 12: the latency the transparency log adds to a transaction. The same transactions against
 * a server without and with --log (the confirm awaits the leaf's fsync and the signed checkpoint,
 * and answers with the leaf's inclusion proof and the card's monitoring key; the client checks the
 * proof and keeps the key); the 'confirm' step is where it shows.
 */
export async function benchTransactionLog(): Promise<void> {
  const b = await setUp();
  try {
    const { writeNewNoteKey } = await import('../src/tlog/log-key.js');
    writeNewNoteKey(join(b.dir, 'log'), 'bench.example/log', 1, PASS);
    const card = await issueMemoryCard(b, 'CN=Bench Log');
    const rows: [string, Awaited<ReturnType<typeof latency>>][] = [];
    for (const withLog of [false, true, false, true]) {
      b.server.kill('SIGTERM');
      await new Promise((r) => b.server.once('exit', r));
      Object.assign(b, await startServerProcess(b.dir, withLog ? ['--log', join(b.dir, 'tlog'), '--log-key', join(b.dir, 'log')] : []));
      rows.push([withLog ? 'with --log' : 'without a log', await latency(b, card, await Archive.open(join(b.dir, `archive-log-${rows.length}`)), 15)]);
    }
    for (const label of ['without a log', 'with --log']) {
      const rs = rows.filter(([l]) => l === label).map(([, r]) => r);
      const times = rs.flatMap((r) => r.times);
      const confirm = rs.flatMap((r) => r.steps.confirm ?? []);
      console.log(`${line(`one transaction ${label}`, times)}; confirm step median ${median(confirm).toFixed(2)} ms`);
    }
  } finally {
    b.server.kill('SIGTERM');
    await new Promise((r) => b.server.once('exit', r));
    rmSync(b.dir, { recursive: true, force: true });
  }
}
