/** Issue 6's figures: escrow size, time to make and to verify one, TTP extraction, TTP requests/s. */
import { createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { writeFileAtomic } from '../src/util/fs.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signBytes, spkiDer } from '../src/crypto/keys.js';
import { memoryCa } from '../src/proof/sample.js';
import { issueKeyAndCertificate } from '../src/pki/ca.js';
import { headerFor } from '../src/proof/make-proof.js';
import { encodeHeader } from '../src/protocol/qtm-package.js';
import { PROFILES } from '../src/protocol/profile.js';
import { abortRequestStatement, resolveRequestStatement, Ttp } from '../src/fair/ttp.js';
import { encodeTtpLine, LogTtpStore, TTP_INDEX, TTP_LOG, type TtpRecord } from '../src/fair/ttp-store.js';
import { startTtp } from '../src/fair/ttp-server.js';
import { TtpClient } from '../src/fair/ttp-client.js';
import { transactionLabel } from '../src/fair/label.js';
import { escrowProblems, extractSignature, makeVerifiableEscrow } from '../src/fair/verifiable-escrow.js';
import { median } from './stats.js';

export async function benchFair(): Promise<void> {
  const card = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ttp = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const header = Buffer.alloc(169, 7);
  const signature = sign('sha256', header, card.privateKey);
  const label = transactionLabel({ header, ttpFingerprint: createHash('sha256').update(spkiDer(ttp.publicKey)).digest(), deadline: 1_800_000_000 });
  const ctx = { cardKey: card.publicKey, ttpKey: ttp.publicKey, label, message: header };
  const make: number[] = [];
  const check: number[] = [];
  const extract: number[] = [];
  let size = 0;
  for (let i = 0; i < 10; i++) {
    let t = performance.now();
    const e = makeVerifiableEscrow({ ...ctx, signature });
    make.push(performance.now() - t);
    size = e.length;
    t = performance.now();
    if (escrowProblems(e, ctx).length) throw new Error('an honest escrow failed to verify');
    check.push(performance.now() - t);
    t = performance.now();
    if (!extractSignature(e, { ...ctx, ttpPrivateKey: ttp.privateKey })) throw new Error('extraction failed');
    extract.push(performance.now() - t);
  }
  console.log(`verifiable escrow of an RSA-2048 card signature to an RSA-3072 TTP, 128 pairs: ${size.toLocaleString('en')} bytes`);
  console.log(`  make ${median(make).toFixed(0)} ms, verify ${median(check).toFixed(1)} ms, TTP extraction ${median(extract).toFixed(1)} ms (medians of 10)`);
}

/** TTP requests/s over HTTPS: aborts of distinct transactions from 20 concurrent callers. */
export async function benchTtp(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-ttp-'));
  const ca = memoryCa();
  const id = (role: 'signer' | 'card' | 'ttp' | 'server', subject: string) => {
    const i = issueKeyAndCertificate(ca, { role, subject });
    return { ...i, certificates: [i.certificate] };
  };
  const server = id('signer', 'CN=Bench Shop');
  const card = id('card', 'CN=Bench Card,serialNumber=0101010101010101');
  const running = await startTtp({ identity: id('ttp', 'CN=Bench TTP'), tls: id('server', 'CN=localhost'), trustAnchors: [ca.certificate], storeDir: join(dir, 'ttp'), host: '127.0.0.1', port: 0, log: () => {},
    // All 20 callers are 127.0.0.1: the per-client request rate is not what is measured.
    limits: { rate: { perSecond: 1_000_000, burst: 10_000_000 } } });
  const profile = PROFILES.v2;
  const requests = Array.from({ length: 400 }, (_, i) => {
    const header = encodeHeader(headerFor({ profile, transactionId: i + 1, time: 1_790_000_000, content: Buffer.from('x'), server, partyA: server, partyB: card }));
    const exchange = { header, deadline: 1_900_000_000, serverCertificates: [server.certificate], cardCertificates: [card.certificate] };
    return { exchange, request: { kind: 'abort' as const, proof: signBytes(profile, server.privateKey, abortRequestStatement(running.ttp.label(exchange))) } };
  });
  const clients = Array.from({ length: 20 }, () => new TtpClient(running.url.replace('127.0.0.1', 'localhost'), ca.certificate.toString()));
  const t0 = performance.now();
  let next = 0;
  await Promise.all(clients.map(async (c) => {
    while (next < requests.length) {
      const r = requests[next++]!;
      if ((await c.request(r.exchange, r.request)).outcome !== 'aborted') throw new Error('abort failed');
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();
  await running.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`TTP over HTTPS, 20 concurrent callers, ${requests.length} aborts of distinct transactions (each verified, signed, fsync'd): ${(requests.length / seconds).toFixed(0)} requests/s`);
  console.log('  (the TTP is consulted only when an exchange fails; each decision is one appended line and one fsync, shared by the decisions that arrive together)');
}

/**
 * Issue 17: what a TTP request costs its event loop. A request not signed by a server stops at
 * the one signature check (roles and fields cost no signature); a server-signed resolve costs
 * the public escrow check, then a decryption in the worker thread.
 */
export async function benchTtpRequestCost(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-ttp-cost-'));
  const ca = memoryCa();
  const id = (role: 'signer' | 'card' | 'ttp', subject: string) => {
    const i = issueKeyAndCertificate(ca, { role, subject });
    return { ...i, certificates: [i.certificate] };
  };
  const server = id('signer', 'CN=Bench Shop');
  const card = id('card', 'CN=Bench Card,serialNumber=0101010101010101');
  const ttpId = id('ttp', 'CN=Bench TTP');
  const store = await LogTtpStore.open(dir);
  const ttp = new Ttp({ store, privateKey: ttpId.privateKey, publicKey: ttpId.certificate.publicKey, trustAnchors: [ca.certificate] });
  const profile = PROFILES.v2;
  const time = (n: number, f: () => Promise<unknown> | unknown) => async () => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await f();
      ms.push(performance.now() - t);
    }
    return median(ms);
  };
  let txId = 1;
  const fresh = () => {
    const header = encodeHeader(headerFor({ profile, transactionId: txId++, time: 1_790_000_000, content: Buffer.from('x'), server, partyA: server, partyB: card }));
    const exchange = { header, deadline: 1_900_000_000, serverCertificates: [server.certificate], cardCertificates: [card.certificate] };
    const y = signBytes(profile, card.privateKey, header);
    const escrowY = makeVerifiableEscrow({ cardKey: card.certificate.publicKey, ttpKey: ttpId.certificate.publicKey, label: ttp.label(exchange), message: header, signature: y });
    return { exchange, x: signBytes(profile, server.privateKey, header), escrowY };
  };
  const one = fresh();
  const statement = randomBytes(100);
  const sig = signBytes(profile, server.privateKey, statement);
  const oneVerify = await time(200, () => verify('sha256', statement, server.certificate.publicKey, sig))();
  const unsigned = await time(50, async () => {
    const a = await ttp.handle(one.exchange, { kind: 'resolve-server', x: one.x, escrowY: one.escrowY, proof: randomBytes(256) });
    if (a.outcome !== 'refused') throw new Error('an unsigned resolve was not refused');
  })();
  const signed: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = fresh();
    const request = { kind: 'resolve-server' as const, x: t.x, escrowY: t.escrowY, proof: signBytes(profile, server.privateKey, resolveRequestStatement(ttp.label(t.exchange), t.escrowY)) };
    const t0 = performance.now();
    if ((await ttp.handle(t.exchange, request)).outcome !== 'y') throw new Error('a signed resolve failed');
    signed.push(performance.now() - t0);
  }
  await ttp.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`one RSA-2048 signature verification: ${oneVerify.toFixed(3)} ms (median of 200)`);
  console.log(`a resolve-server request with X and a ${one.escrowY.length.toLocaleString('en')}-byte escrow but no server signature: refused in ${unsigned.toFixed(3)} ms (median of 50; bound: one verification plus decoding)`);
  console.log(`a server-signed resolve-server request: ${median(signed).toFixed(1)} ms (median of 10: the chains, X, the public escrow check, one pair decrypted in the worker, one fsync)`);
}

/**
 * Issue 10: what one TTP decision costs the store (one appended line and its fsync) when it
 * already holds 1k, 10k and 100k decisions, written directly in the store's format; opening
 * time with the index snapshot and without (a full scan); and, for contrast, the lowdb document
 * it replaced (the whole document stringified, written and fsync'd per decision), at sizes where
 * that is still quick to measure. QTM_BENCH_TTP_SIZES=1000,10000 for a quicker run.
 */
export async function benchTtpStore(): Promise<void> {
  const sizes = (process.env.QTM_BENCH_TTP_SIZES ?? '1000,10000,100000').split(',').map(Number);
  const decisions = 200;
  const b64 = (n: number) => randomBytes(n).toString('base64');
  // Real sizes: an RSA-2048 X and Y (resolved), or an RSA-3072 abort token.
  const record = (i: number): TtpRecord => {
    const key = createHash('sha256').update(`bench ${i}`).digest('hex');
    const base = { key, label: key, headerHash: createHash('sha256').update(`header ${i}`).digest('hex'), at: new Date(1_790_000_000_000 + i).toISOString() };
    return i % 2 ? { ...base, state: 'aborted', token: b64(384) } : { ...base, state: 'resolved', x: b64(256), y: b64(256) };
  };
  const perDecision = new Map<number, number>();
  const oldPerDecision = new Map<number, number>();
  // Each size: its log generated, opened once scanning it (no snapshot yet; one is saved), then
  // opened again with the snapshot. The decisions are then made round-robin over the open stores,
  // in a fresh order each round, after a warm-up: the disk's and the machine's noise fall on every
  // size alike.
  const open: { n: number; dir: string; bytes: number; scanMs: number; openMs: number; store: LogTtpStore; puts: number[] }[] = [];
  for (const n of sizes) {
    const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-ttp-store-'));
    const fd = openSync(join(dir, TTP_LOG), 'w', 0o600);
    let bytes = 0;
    for (let i = 0; i < n; i += 1000) {
      const chunk = Array.from({ length: Math.min(1000, n - i) }, (_, j) => `${encodeTtpLine(record(i + j))}\n`).join('');
      bytes += writeSync(fd, chunk);
    }
    fsyncSync(fd);
    closeSync(fd);
    let t = performance.now();
    const scanning = await LogTtpStore.open(dir);
    const scanMs = performance.now() - t;
    await scanning.close();
    t = performance.now();
    const store = await LogTtpStore.open(dir);
    open.push({ n, dir, bytes, scanMs, openMs: performance.now() - t, store, puts: [] });
  }
  const warmUp = 50;
  for (let i = 0; i < warmUp + decisions; i++) {
    for (const s of [...open].sort(() => Math.random() - 0.5)) {
      const r = record(s.n + i);
      const t = performance.now();
      await s.store.put(r);
      if (i >= warmUp) s.puts.push(performance.now() - t);
    }
  }
  for (const s of open) {
    const gets: number[] = [];
    for (let i = 0; i < 200; i++) {
      const key = record(Math.floor(Math.random() * s.n)).key;
      const t = performance.now();
      if (!(await s.store.get(key))) throw new Error('a generated record is missing');
      gets.push(performance.now() - t);
    }
    const t = performance.now();
    await s.store.close(); // saves the snapshot: what one costs at this size, every snapshotEvery (4096) decisions
    const snapshotMs = performance.now() - t;
    const indexBytes = statSync(join(s.dir, TTP_INDEX)).size;
    rmSync(s.dir, { recursive: true, force: true });
    perDecision.set(s.n, median(s.puts));
    const mean = s.puts.reduce((a, b) => a + b, 0) / s.puts.length;
    console.log(`${s.n.toLocaleString('en')} decisions (${(s.bytes / 1e6).toFixed(1)} MB log, ${(indexBytes / 1e6).toFixed(2)} MB index snapshot): `
      + `a decision ${median(s.puts).toFixed(2)} ms (median of ${decisions}, mean ${mean.toFixed(2)}: one append and its fsync), a look-up ${median(gets).toFixed(3)} ms; `
      + `a snapshot ${snapshotMs.toFixed(0)} ms (every 4096 decisions: ${(snapshotMs / 4096).toFixed(3)} ms each); `
      + `open ${s.openMs.toFixed(1)} ms with the snapshot, ${s.scanMs.toFixed(0)} ms scanning the whole log`);
  }
  const ratio = (m: Map<number, number>) => {
    const lo = m.get(Math.min(...m.keys()));
    const hi = m.get(Math.max(...m.keys()));
    return lo && hi ? (hi / lo).toFixed(2) : 'n/a';
  };
  console.log(`  cost per decision, ${Math.max(...sizes).toLocaleString('en')} / ${Math.min(...sizes).toLocaleString('en')} records: ${ratio(perDecision)} (goal ~1.0: flat)`);

  // The lowdb document this store replaced: every decision stringified, wrote and fsync'd it whole.
  for (const n of sizes) {
    const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-ttp-lowdb-'));
    const records: Record<string, TtpRecord> = {};
    for (let i = 0; i < n; i++) {
      const r = record(i);
      records[r.key] = r;
    }
    const rounds = n >= 100_000 ? 3 : n >= 10_000 ? 10 : 30;
    const ms: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const r = record(n + i);
      const t = performance.now();
      records[r.key] = r;
      writeFileAtomic(join(dir, 'ttp.json'), JSON.stringify({ version: 1, records }) + '\n', 0o600);
      ms.push(performance.now() - t);
    }
    oldPerDecision.set(n, median(ms));
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`  the lowdb document it replaced, a decision: ${[...oldPerDecision].map(([n, m]) => `${m.toFixed(1)} ms at ${n.toLocaleString('en')}`).join(', ')} (ratio ${ratio(oldPerDecision)})`);
}
