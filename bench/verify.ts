/**
 * Issue 2's figure: wall time of `qtm verify` on 1,000 bundles (median of runs, including
 * process start), against the raw node:crypto RSA-2048 verify rate. Each bundle costs six RSA
 * verifications (three package signatures, three certificate links), so the bound is raw/6.
 */
import { spawnSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readIdentity } from '../src/pki/key-files.js';
import { keySigner, makeProof } from '../src/proof/make-proof.js';
import { PROFILES } from '../src/protocol/profile.js';
import { median, opsPerSecond } from './stats.js';

const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');
const BUNDLES = 1000;
const RUNS = 5;

export async function benchVerify(): Promise<void> {
  const profile = PROFILES.v2;
  const server = readIdentity(join(ROOT, 'fixtures/keys/server-v2'), 'qtm-fixture-only');
  const customer = readIdentity(join(ROOT, 'fixtures/keys/customer-v2'), 'qtm-fixture-only');
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-'));
  try {
    const s = keySigner(profile, server.privateKey, server.certificates);
    const c = keySigner(profile, customer.privateKey, customer.certificates);
    for (let i = 0; i < BUNDLES; i++) {
      const proof = await makeProof({ profile, transactionId: i + 1, time: 1795521600 + i, content: Buffer.from(`order ${i}\n`), server: s, partyA: s, partyB: c });
      writeFileSync(join(dir, `b${String(i).padStart(4, '0')}.json`), proof.bundleJson);
    }
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      const res = spawnSync(process.execPath, [join(ROOT, 'dist/bin/qtm.js'), 'verify', dir, '--trust', join(ROOT, 'fixtures/ca/ca.pem'), '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
      times.push(performance.now() - t0);
      if (res.status !== 0) throw new Error(`verify failed: ${res.stderr}`);
    }
    const start = performance.now();
    spawnSync(process.execPath, [join(ROOT, 'dist/bin/qtm.js'), '--version']);
    const startup = performance.now() - start;

    const pub = server.certificates[0]!.publicKey;
    const data = Buffer.alloc(137, 7);
    const sig = s.sign(data) as Buffer;
    const rawRate = opsPerSecond(() => verify('sha256', data, pub, sig));
    const med = median(times);
    const perSecond = BUNDLES / (med / 1000);
    const bound = rawRate / 6;
    console.log(`qtm verify, ${BUNDLES} v2 bundles: median ${med.toFixed(0)} ms over ${RUNS} runs (${(med / BUNDLES).toFixed(3)} ms/bundle, ${perSecond.toFixed(0)} bundles/s; process start ${startup.toFixed(0)} ms)`);
    console.log(`node:crypto RSA-2048 verify: ${rawRate.toFixed(0)} /s  -> bound at 6 verifies/bundle: ${bound.toFixed(0)} bundles/s`);
    // With certificate links cached (an archive shares a few certificates) only the three package
    // signatures are verified per bundle; process start is included in the qtm figure.
    const bound3 = rawRate / 3;
    console.log(`ratio qtm verify / bound: ${(perSecond / bound).toFixed(2)} (6 verifies/bundle), ${(perSecond / bound3).toFixed(2)} (3 verifies/bundle, links cached)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
