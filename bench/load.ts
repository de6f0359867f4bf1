/**
 * Issue 10, "The hot path": the server's CPU per transaction under load, against its bound.
 *
 * A real `qtm server start` process serves clients that run in worker threads of this bench
 * (never in the server's process): each client loop has its own pre-issued in-memory card, whose
 * PIN check (a deliberate scrypt) and signatures happen in the client. The bench reports tx/s with
 * 1 and 2 client workers, latency p50/p99, and the server process's CPU (user + system, from
 * /proc/PID/stat) per transaction in a window after a warm-up.
 *
 * The bound is what a transaction cannot avoid: a bare node:https server (same TLS key type,
 * same handshake: full or resumed as the qtm run) answering one TLS 1.3 session per transaction
 * with the same requests (same count, same body sizes, measured from a real transaction in this
 * run) and making the two receipt signatures (signature A and the server signature, with the
 * receipt key) at the confirm, its CPU measured in the same window as qtm's (bench/floor-server.ts).
 * Goal: server CPU <= 1.3x the bound.
 *
 * The floor is the same server also keeping qtm's guarantees (issue 10: "same guarantees as the
 * log store") at the least and doing nothing else: the card's two signatures verified, the three
 * store appends fsync'd before their replies with group commit, and the store head signed once per
 * commit that holds a receipt. The comparison servers' sessions run at qtm's concurrency (workers x
 * loops), so the floor groups commits as qtm's store can. floor / bound says how much of the 1.3
 * those guarantees take by themselves; qtm / floor, what qtm's own code adds.
 *
 *   npm run bench -- load [--store DIR|postgres://...|postgres] [--tls-key rsa2048|p256] [--resume]
 *                         [--seconds N] [--warm N] [--loops N]
 *
 * `--store postgres` starts a throwaway PostgreSQL cluster (test/pg-cluster.ts; skipped without
 * PostgreSQL); with PostgreSQL the bench also reports the cluster's CPU per transaction (its
 * postmaster and backends, from /proc: beside qtm's, not in the ratio) and the database's
 * committed transactions per qtm transaction (pg_stat_database.xact_commit, reads included).
 *
 * Figures are noisy on a shared machine: the clients and the servers share its cores, so read the
 * ratios of one window rather than figures across runs. The window starts after --warm seconds
 * (default 10) of load: V8 is still compiling the server's code in its first minute (5-15% of its
 * CPU then); a longer --warm or --seconds shows less of it.
 *
 * Profiling the server (issue 10, the hot path), through the environment:
 *   QTM_BENCH_PROFILE_SERVER=DIR  the server runs with --cpu-prof, its profile written to DIR
 *                                 when the bench stops it (load it in Chrome DevTools);
 *   QTM_BENCH_SERVER_ARGS='...'   more node flags for the server, e.g. --perf-basic-prof to
 *                                 sample it with `perf record -g -p PID` (the PID is printed);
 *   QTM_BENCH_QTM=FILE            another build's dist/bin/qtm.js as the server, to compare two
 *                                 versions under the same bench.
 * The V8 profile counts time blocked in a system call (fsync, a pipe write) as the function's; perf
 * samples CPU only, OpenSSL and the kernel included.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../src/pki/ca.js';
import { writeIdentity } from '../src/pki/key-files.js';
import { initSam, type Sam } from '../src/sam/sam.js';
import { CardClient } from '../src/card/client.js';
import { issueCard } from '../src/card/issue.js';
import { InProcessTransport } from '../src/card/transports/in-process.js';
import { blankImage, MemoryStorage, type CardImage } from '../src/card/virtual/storage.js';
import { IssuanceRegister } from '../src/card/issuance-register.js';
import type { KeySpec } from '../src/crypto/keys.js';
import { median, percentile } from './stats.js';
import type { WorkerInput, WorkerOutput } from './load-worker.js';
import pg from 'pg';
import { startPgCluster, type PgCluster } from '../test/pg-cluster.js';
import { listeningUrl } from './listening.js';
import type { FloorWork } from './floor-server.js';

const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');
/** QTM_BENCH_QTM: another build's dist/bin/qtm.js, to compare two versions in one sitting. */
const QTM = process.env.QTM_BENCH_QTM ?? join(ROOT, 'dist/bin/qtm.js');
const WORKER = new URL('./load-worker.js', import.meta.url);
const PASS = 'bench passphrase';
const PIN = '123456';

export interface LoadOptions {
  /** Passed to `qtm server start --store` (a directory, or a postgres:// URL); default a fresh temporary directory. */
  readonly store?: string;
  readonly tlsKey: KeySpec;
  readonly resume: boolean;
  readonly seconds: number;
  readonly warmSeconds: number;
  /** Transaction loops (cards) per client worker. */
  readonly loops: number;
  readonly workers: readonly number[];
}

export function loadOptions(argv: readonly string[]): LoadOptions {
  const o: { -readonly [K in keyof LoadOptions]: LoadOptions[K] } = { tlsKey: 'rsa2048', resume: false, seconds: 15, warmSeconds: 10, loops: 3, workers: [1, 2] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => argv[++i] ?? '';
    if (a === '--store') o.store = v();
    else if (a === '--tls-key') o.tlsKey = v() as KeySpec;
    else if (a === '--resume') o.resume = true;
    else if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--warm') o.warmSeconds = Number(v());
    else if (a === '--loops') o.loops = Number(v());
    else if (a === '--workers') o.workers = v().split(',').map(Number);
  }
  return o;
}

interface Setup {
  readonly dir: string;
  readonly ca: OpenCa;
  readonly sam: Sam;
}

function setUp(o: LoadOptions): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-load-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Bench CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost', keySpec: o.tlsKey });
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Bench Shop receipts' });
  writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
  writeIdentity(join(dir, 'receipts'), [signer.certificate], signer.privateKey, PASS);
  const sam = initSam(join(dir, 'shop.sam'), PASS);
  return { dir, ca, sam };
}

async function startQtm(s: Setup, store: string, extra: string[] = []): Promise<{ server: ChildProcess; url: string }> {
  const prof = process.env.QTM_BENCH_PROFILE_SERVER;
  // QTM_BENCH_SERVER_ARGS: more node flags for the server (e.g. --perf-basic-prof, to profile it with perf -p PID).
  const nodeArgs = process.env.QTM_BENCH_SERVER_ARGS?.split(' ').filter(Boolean) ?? [];
  const server = spawn(process.execPath, [...nodeArgs, ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), QTM, 'server', 'start', '--tls', join(s.dir, 'tls'), '--signer', join(s.dir, 'receipts'),
    '--sam', join(s.dir, 'shop.sam'), '--trust', join(s.dir, 'ca', 'ca.pem'), '--store', store, '--port', '0',
    // Every bench client comes from 127.0.0.1: the per-address limits are not what is measured.
    '--anonymous-rate', '1000000', '--rate', '1000000', ...extra],
  { env: { ...process.env, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS }, stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await listeningUrl(server);
  return { server, url };
}

/**
 * The work of each of a transaction's six requests (order, login challenge, login, prepare,
 * confirm, acknowledge: qtm's order) on the comparison servers (bench/floor-server.ts). The bound:
 * the two receipt signatures at the confirm. The floor: those, the card's two signatures verified
 * (login, record) and the store's three appends fsync'd before their replies, the confirm's commit
 * signing the store head; entry sizes as qtm's log store writes them (measured: prepared ~2,400
 * bytes, confirmed ~2,000, delivered ~180; the cost hardly depends on them).
 */
const BOUND_WORK: FloorWork[][] = [[], [], [], [], ['sign', 'sign'], []];
const FLOOR_WORK: FloorWork[][] = [[], [], ['verify'], ['append:2400'], ['verify', 'sign', 'sign', 'append-head:2000'], ['append:180']];

const COMPARISON = new URL('./floor-server.js', import.meta.url);

async function startComparison(s: Setup, work: FloorWork[][]): Promise<{ server: ChildProcess; url: string }> {
  const server = spawn(process.execPath, [COMPARISON.pathname, s.dir, JSON.stringify(work)], { env: { ...process.env, P: PASS }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((ok) => server.stdout!.once('data', (d: Buffer) => ok(Number(d.toString().trim()))));
  return { server, url: `https://localhost:${port}` };
}

async function stop(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  await exited;
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid: number): { user: number; sys: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return { user: Number(fields[11]) / CLOCK_TICKS, sys: Number(fields[12]) / CLOCK_TICKS };
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

async function issueImages(s: Setup, n: number, tag: string): Promise<CardImage[]> {
  const register = IssuanceRegister.open(join(s.ca.dir, 'register'), s.sam.kcv);
  const images: CardImage[] = [];
  for (let i = 0; i < n; i++) {
    const storage = new MemoryStorage(blankImage(16));
    await issueCard(new CardClient(new InProcessTransport(storage)), { ca: s.ca, sam: s.sam, register, holder: `CN=Bench ${tag} ${i}`, pin: PIN, puk: '12345678', slots: 16, profile: 'v2' });
    images.push(storage.load());
  }
  return images;
}

interface RunResult {
  readonly done: number;
  readonly seconds: number;
  readonly cpuMsPer: number;
  /** Of which in the kernel (system time). */
  readonly sysMsPer: number;
  readonly latencies: number[];
  readonly out: WorkerOutput[];
}

interface Load {
  readonly server: ChildProcess;
  /** One input per client worker (url, cards, ...), `until` filled in. */
  readonly inputs: Omit<WorkerInput, 'until'>[];
}

/**
 * Runs every load at once (qtm's clients and the bare sessions side by side, so both servers
 * see the same machine) and measures each server's CPU in one window after a warm-up.
 */
async function run(o: LoadOptions, loads: Load[]): Promise<RunResult[]> {
  const start = Date.now();
  const t0 = start + o.warmSeconds * 1000;
  const t1 = t0 + o.seconds * 1000;
  const outs = loads.map((l) => Promise.all(l.inputs.map((input) => new Promise<WorkerOutput>((ok, fail) => {
    const worker = new Worker(WORKER, { workerData: { ...input, until: t1 } satisfies WorkerInput });
    worker.once('message', ok);
    worker.once('error', fail);
  }))));
  await new Promise((r) => setTimeout(r, t0 - Date.now()));
  const cpu0 = loads.map((l) => cpuSeconds(l.server.pid!));
  const w0 = Date.now();
  await new Promise((r) => setTimeout(r, t1 - Date.now()));
  const cpu1 = loads.map((l) => cpuSeconds(l.server.pid!));
  const w1 = Date.now();
  const results: RunResult[] = [];
  for (const [i, done] of outs.entries()) {
    const out = await done;
    const inWindow = out.flatMap((x) => x.done).filter(([end]) => end >= w0 && end < w1);
    const errors = out.flatMap((x) => x.errors);
    if (errors.length) console.log(`  ${errors.length} failed: ${[...new Set(errors)].slice(0, 3).join(' | ')}`);
    const per = (x: number) => (x * 1000) / Math.max(1, inWindow.length);
    const [a, b] = [cpu0[i]!, cpu1[i]!];
    results.push({ done: inWindow.length, seconds: (w1 - w0) / 1000, cpuMsPer: per(b.user + b.sys - a.user - a.sys), sysMsPer: per(b.sys - a.sys), latencies: inWindow.map(([, ms]) => ms), out });
  }
  return results;
}

export async function benchLoad(argv: readonly string[] = []): Promise<void> {
  const o = loadOptions(argv);
  const s = setUp(o);
  let qtm: { server: ChildProcess; url: string } | undefined;
  let bare: { server: ChildProcess; url: string } | undefined;
  let floor: { server: ChildProcess; url: string } | undefined;
  let cluster: PgCluster | undefined;
  try {
    let store = o.store ?? join(s.dir, 'store');
    if (store === 'postgres') {
      cluster = await startPgCluster({ skip: (msg) => console.log(`skipped: ${msg}`) });
      if (!cluster) return;
      store = await cluster.database();
    }
    const pgStore = store.startsWith('postgres://') ? new PgProbe(store) : undefined;
    const maxWorkers = Math.max(...o.workers);
    const cards = await Promise.all(Array.from({ length: maxWorkers + 1 }, (_, w) => issueImages(s, o.loops, `w${w}`)));
    qtm = await startQtm(s, store, pgStore ? ['--migrate'] : []);
    const mode = `TLS key ${o.tlsKey}, ${o.resume ? 'sessions resumed (tickets)' : 'full handshakes'}`;
    console.log(`qtm server ${qtm.url}, pid ${qtm.server.pid} (store ${o.store ?? 'a fresh log store'}; ${mode}); ${o.loops} transaction loops per client worker; a bare TLS server and the floor (bench/floor-server.ts) beside it serve one session per qtm transaction each, interleaved, in the same window; ${availableParallelism()} cores shared by servers and clients; noisy on a shared machine`);
    const caPem = s.ca.certificate.toString();
    const common = { pin: PIN, loops: o.loops, archiveDir: s.dir, resume: o.resume, caPem };
    // Sizes of a real transaction's requests (and a warm-up for the server).
    const [probe] = await run({ ...o, warmSeconds: 0, seconds: 2 }, [{ server: qtm.server, inputs: [{ ...common, mode: 'qtm', url: qtm.url, cards: cards[maxWorkers]!.slice(0, 1) }] }]);
    const sizes = probe!.out.find((x) => x.sizes)?.sizes;
    if (!sizes) throw new Error('no transaction finished: no sizes for the bound');
    const qtmWire = Math.max(...probe!.out.map((x) => x.wireBytes ?? 0));
    bare = await startComparison(s, BOUND_WORK);
    floor = await startComparison(s, FLOOR_WORK);
    // Their warm-up (V8 compiling their code), as the probe was qtm's: unpaced, outside any window.
    await run({ ...o, warmSeconds: 0, seconds: 2 }, [bare, floor].map((c) => ({ server: c.server, inputs: [{ ...common, mode: 'bare' as const, url: c.url, cards: [], loops: 1, sizes }] })));
    const rows: { workers: number; cpu: number; bound: number; floor: number }[] = [];
    for (const workers of o.workers) {
      const pg0 = pgStore ? sleep(o.warmSeconds * 1000).then(() => pgStore.sample()) : undefined;
      const paced = new SharedArrayBuffer(4);
      const [r, b, f] = await run(o, [
        { server: qtm.server, inputs: Array.from({ length: workers }, (_, w) => ({ ...common, mode: 'qtm' as const, url: qtm!.url, cards: cards[w]!, paced })) },
        // As many sessions at once as qtm has transactions (so the floor can group commits as qtm does).
        { server: bare.server, inputs: [{ ...common, mode: 'bare' as const, url: bare.url, cards: [], loops: workers * o.loops, sizes, paced }] },
        { server: floor.server, inputs: [{ ...common, mode: 'bare' as const, url: floor.url, cards: [], loops: workers * o.loops, sizes, paced }] },
      ]);
      const pgWindow = pg0 ? await pgStore!.since(await pg0, r!.done) : '';
      const bound = b!.cpuMsPer;
      const resumed = r!.out.reduce((a, x) => a + x.resumed, 0), conns = r!.out.reduce((a, x) => a + x.connections, 0);
      rows.push({ workers, cpu: r!.cpuMsPer, bound, floor: f!.cpuMsPer });
      console.log(`${workers} client worker${workers > 1 ? 's' : ''}: ${(r!.done / r!.seconds).toFixed(1)} tx/s over ${r!.seconds.toFixed(0)} s (${r!.done} transactions), latency p50 ${median(r!.latencies).toFixed(0)} ms p99 ${percentile(r!.latencies, 99).toFixed(0)} ms; server CPU ${r!.cpuMsPer.toFixed(2)} ms/tx (${r!.sysMsPer.toFixed(2)} in the kernel); ${resumed}/${conns} connections resumed${pgWindow}`);
      console.log(`  bound: bare TLS 1.3 session with the same ${sizes.length} requests and the 2 receipt signatures (RSA-2048) ${bound.toFixed(2)} ms (${b!.sysMsPer.toFixed(2)} in the kernel; ${b!.done} sessions) -> ratio ${(r!.cpuMsPer / bound).toFixed(2)} (goal <= 1.3)`);
      console.log(`  floor: the same sessions also keeping qtm's guarantees at the least (2 card signatures verified; 3 store appends fsync'd before their replies, group-committed, the head signed per commit holding a receipt) ${f!.cpuMsPer.toFixed(2)} ms (${f!.sysMsPer.toFixed(2)} in the kernel; ${f!.done} sessions) = bound + ${(f!.cpuMsPer - bound).toFixed(2)} ms = ${(f!.cpuMsPer / bound).toFixed(2)} x the bound; qtm = floor + ${(r!.cpuMsPer - f!.cpuMsPer).toFixed(2)} ms = ${(r!.cpuMsPer / f!.cpuMsPer).toFixed(2)} x the floor`);
    }
    console.log(`  request/response bodies ${sizes.map(([q, a]) => `${q}/${a}`).join(', ')} bytes; ${qtmWire} bytes on the wire per qtm transaction`);
    const best = rows.reduce((a, x) => (x.cpu / x.bound < a.cpu / a.bound ? x : a));
    console.log(`server CPU / bound: ${rows.map((x) => (x.cpu / x.bound).toFixed(2)).join(', ')} (${rows.map((x) => x.workers).join(', ')} workers); best ${best.cpu.toFixed(2)} ms/tx = ${(1000 / best.cpu).toFixed(0)} tx/s per server core; floor / bound ${rows.map((x) => (x.floor / x.bound).toFixed(2)).join(', ')}: the least qtm's guarantees cost, against the 1.3 asked`);
    await pgStore?.close();
  } finally {
    if (qtm) await stop(qtm.server);
    if (bare) await stop(bare.server);
    if (floor) await stop(floor.server);
    await cluster?.stop();
    rmSync(s.dir, { recursive: true, force: true });
  }
}

/**
 * PostgreSQL's side of a window: CPU of the cluster's processes (the postmaster named by
 * postmaster.pid in the socket directory of the URL, and its children; else every process named
 * postgres) and committed transactions of the database.
 */
class PgProbe {
  private readonly client: pg.Client;
  private connected: Promise<void>;

  constructor(url: string) {
    this.client = new pg.Client({ connectionString: url });
    this.connected = this.client.connect().then(() => undefined);
    const host = new URL(url).searchParams.get('host');
    this.postmaster = host ? Number(readFileSync(join(host, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]) : undefined;
  }

  private readonly postmaster: number | undefined;

  private cpu(): number {
    let total = 0;
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = stat.replace(/^.*\) /, '').split(' ');
        const ours = this.postmaster ? Number(pid) === this.postmaster || Number(f[1]) === this.postmaster : /\(postgres\)/.test(stat);
        if (ours) total += (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
      } catch {
        // exited meanwhile
      }
    }
    return total;
  }

  async sample(): Promise<{ cpu: number; commits: number }> {
    await this.connected;
    const r = await this.client.query<{ n: string }>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()');
    return { cpu: this.cpu(), commits: Number(r.rows[0]!.n) };
  }

  /** Per qtm transaction since `before` (statistics are flushed within a second: approximate). */
  async since(before: { cpu: number; commits: number }, transactions: number): Promise<string> {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await this.sample();
    const n = Math.max(1, transactions);
    return `; PostgreSQL CPU ${(((now.cpu - before.cpu) * 1000) / n).toFixed(2)} ms/tx (beside qtm's, not in the ratio), ${((now.commits - before.commits - 2) / n).toFixed(1)} committed database transactions/tx (reads included)`;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}
