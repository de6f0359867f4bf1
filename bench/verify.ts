/**
 * Issue 14's figure, "verification at archive scale": `qtm verify DIR` over N distinct bundles
 * (default 100,000; QTM_BENCH_VERIFY_COUNT=20000 for a shorter run), with 1 and 2 worker threads,
 * against the bound set by node:crypto: once its certificate links are cached a bundle costs 3
 * RSA-2048 verifications (the package's three signatures), so one core can verify at most
 * rawRate/3 bundles per second.
 *
 * The runs go through ArchiveRun, the library entry the CLI's archive run uses (walk, workers,
 * reorder, JSON Lines), in this process, so that process.cpuUsage() counts the CPU of every
 * thread: the per-core ratio is bundles per CPU-second against rawRate/3 per CPU-second, which a
 * machine shared with other work disturbs less than wall time does. Wall-time figures are printed
 * too, and one run of the real CLI process for the record. Figures on a shared machine are noisy.
 * RSS is sampled at 10k bundles and at the end: memory stays flat.
 */
import { spawnSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { readIdentity } from '../src/pki/key-files.js';
import { keySigner } from '../src/proof/make-proof.js';
import { PROFILES } from '../src/protocol/profile.js';
import { ArchiveRun } from '../src/verify/archive-run.js';
import { loadTrustAnchors } from '../src/verify/trust.js';
import { setupOf, type ReportDetail } from '../src/verify/worker-setup.js';

const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');
const COUNT = Number(process.env.QTM_BENCH_VERIFY_COUNT ?? 100_000);

async function generate(dir: string, n: number): Promise<number> {
  const t0 = performance.now();
  const threads = Math.max(1, Math.min(availableParallelism(), 4));
  const per = Math.ceil(n / threads);
  await Promise.all(Array.from({ length: threads }, (_, k) => new Promise<void>((ok, fail) => {
    const w = new Worker(new URL('./verify-gen.js', import.meta.url), { workerData: { root: ROOT, dir, from: k * per, to: Math.min(n, (k + 1) * per) } });
    w.once('message', () => ok());
    w.once('error', fail);
  })));
  return (performance.now() - t0) / 1000;
}

/** node:crypto's RSA-2048 verify rate on one thread, per CPU-second and per wall-second. */
function rawRsaRate(): { cpu: number; wall: number } {
  const server = readIdentity(join(ROOT, 'fixtures/keys/server-v2'), 'qtm-fixture-only');
  const s = keySigner(PROFILES.v2, server.privateKey, server.certificates);
  const pub = server.certificates[0]!.publicKey;
  const data = Buffer.alloc(137, 7);
  const sig = s.sign(data) as Buffer;
  for (let i = 0; i < 200; i++) verify('sha256', data, pub, sig);
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < 2000) {
    for (let i = 0; i < 50; i++) verify('sha256', data, pub, sig);
    n += 50;
  }
  const cpu = process.cpuUsage(c0);
  return { cpu: n / ((cpu.user + cpu.system) / 1e6), wall: n / ((performance.now() - t0) / 1000) };
}

interface Figures {
  jobs: number;
  detail: ReportDetail;
  wallRate: number;
  cpuRate: number;
  rss10k: number;
  rssEnd: number;
  bytes: number;
}

/** One folder of 1,000 bundles, results dropped: the page cache and the code paths warm, as in a long run. */
async function warmUp(dir: string): Promise<void> {
  const setup = setupOf({ trustAnchors: loadTrustAnchors([join(ROOT, 'fixtures/ca/ca.pem')]) }, 'json', false);
  await new ArchiveRun({ roots: [{ kind: 'directory', path: join(dir, 'day-0000') }], jobs: 2, setup, onResults: () => undefined }).run();
}

async function runOnce(dir: string, jobs: number, detail: ReportDetail): Promise<Figures> {
  const setup = setupOf({ trustAnchors: loadTrustAnchors([join(ROOT, 'fixtures/ca/ca.pem')]) }, detail, false);
  let bytes = 0;
  let rss10k = 0;
  const run = new ArchiveRun({
    roots: [{ kind: 'directory', path: dir }], jobs, setup,
    // The JSON lines are counted, not kept: what a consumer of `qtm verify --json` would get.
    onResults: (b) => (bytes += b.text?.length ?? 0),
    onProgress: (p) => {
      if (!rss10k && p.done >= Math.min(10_000, COUNT)) rss10k = process.memoryUsage().rss;
    },
  });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = await run.run();
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const rssEnd = process.memoryUsage().rss;
  if (out.done !== COUNT || out.counts.valid !== COUNT) throw new Error(`verified ${out.done}, ${out.counts.valid} valid, of ${COUNT}`);
  return { jobs, detail, wallRate: COUNT / wall, cpuRate: COUNT / ((cpu.user + cpu.system) / 1e6), rss10k, rssEnd, bytes };
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
const n0 = (x: number) => Math.round(x).toLocaleString('en-US');

export async function benchVerify(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-verify-'));
  try {
    const genSeconds = await generate(dir, COUNT);
    console.log(`${n0(COUNT)} distinct v2 bundles (3 RSA-2048 signatures each, fixture keys) in ${COUNT / 1000} folders, generated in ${genSeconds.toFixed(1)} s`);
    await warmUp(dir);
    const raw = rawRsaRate();
    const bound = raw.cpu / 3;
    console.log(`node:crypto RSA-2048 verify, one thread: ${n0(raw.cpu)} /CPU-s (${n0(raw.wall)} /s wall) -> bound ${n0(bound)} bundles per core-second at 3 verifies per bundle (links cached)`);
    const figures: Figures[] = [];
    for (const detail of ['json', 'quiet'] as const) {
      for (const jobs of [1, 2]) {
        const f = await runOnce(dir, jobs, detail);
        figures.push(f);
        const perCore = f.cpuRate / bound;
        console.log(`${detail === 'json' ? '--json (JSON Lines)' : '-q (summary only)  '} --jobs ${jobs}: ${n0(f.wallRate)} bundles/s wall, ${n0(f.cpuRate)} per CPU-second`
          + ` -> ratio per core ${perCore.toFixed(2)} (goal >= 0.5; wall per job ${(f.wallRate / jobs / (raw.wall / 3)).toFixed(2)}); RSS ${mib(f.rss10k)} at 10k, ${mib(f.rssEnd)} at ${n0(COUNT)}`
          + `${f.bytes ? `; ${mib(f.bytes)} of JSON Lines` : ''}`);
      }
      const [one, two] = figures.slice(-2) as [Figures, Figures];
      console.log(`  scaling 1 -> 2 workers (${detail}): x${(two.wallRate / one.wallRate).toFixed(2)} wall (ideal x2 on 2 idle cores), CPU per bundle x${(one.cpuRate / two.cpuRate).toFixed(2)}`);
    }
    // The real CLI process once, for the record: process start, walk, workers, summary line.
    const t0 = performance.now();
    const cli = spawnSync(process.execPath, [join(ROOT, 'dist/bin/qtm.js'), 'verify', dir, '--trust', join(ROOT, 'fixtures/ca/ca.pem'), '-q', '--jobs', '2'], { encoding: 'utf8' });
    if (cli.status !== 0) throw new Error(`qtm verify: exit ${cli.status}: ${cli.stderr}`);
    console.log(`qtm verify DIR -q --jobs 2 (CLI process): ${((performance.now() - t0) / 1000).toFixed(1)} s: ${cli.stdout.trim()}`);
    console.log(`(machine: ${availableParallelism()} cores, shared with other work: figures are noisy; the per-CPU-second ratio is the steadier one)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
