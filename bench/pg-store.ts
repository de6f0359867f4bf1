/**
 * The PostgreSQL store's cost per transaction (issue 10), on a throwaway cluster: what one
 * transaction's store work (prepare, read, sign, head, read, deliver) costs PostgreSQL's
 * processes and this process in CPU, and how many write commits it takes, one transaction at a
 * time and 8 at once (group commit). The cluster runs with fsync=off: commit latency is not
 * measured here, only CPU (docs/SCALING.md says what limits commits). Skipped without PostgreSQL.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { PgStore } from '../src/store/pg-store.js';
import { headSigner } from '../src/store/head.js';
import { startPgCluster } from '../test/pg-cluster.js';
import { PgLog } from '../src/store/pg-tlog.js';
import { LeafTree } from '../src/tlog/leaf-tree.js';
import { signCheckpoint } from '../src/tlog/checkpoint.js';
import { decodeSkey, ed25519NoteSigner, encodeSkey } from '../src/tlog/note.js';
import pg from 'pg';

/** CPU seconds of every live PostgreSQL process (utime + stime, 100 ticks a second). */
function postgresCpu(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres')) continue;
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      total += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

export async function benchPgStore(): Promise<void> {
  const cluster = await startPgCluster({ skip: (msg) => console.log(`skipped: ${msg}`) });
  if (!cluster) return;
  try {
    const url = await cluster.database();
    await PgStore.migrate(url);
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const s = await PgStore.open(url, { heads: headSigner(publicKey, privateKey) });
    const content = Buffer.alloc(300, 65).toString('base64');
    const header = Buffer.alloc(150, 1).toString('base64');
    const cert = `-----BEGIN CERTIFICATE-----\n${Buffer.alloc(900, 7).toString('base64')}\n-----END CERTIFICATE-----\n`;
    const one = async (order: string) => {
      const { transactionId: id } = await s.appendPrepared((tx) => ({ type: 'prepared', transactionId: tx, orderId: order, time: 1, content, header, clientCertificate: cert, cardSerial: '00000000000000AA', cardKey: 'k' }), { orderId: order });
      await s.get(id);
      await s.appendSigned({ type: 'confirmed', transactionId: id, firstMessage: { signatureB: header, challenge: 'AA==', slot: 1, priority: 0 }, package: Buffer.alloc(600, 3).toString('base64'), cardRecord: 'AA==', envelope: Buffer.alloc(100).toString('base64') });
      await s.head();
      await s.get(id);
      await s.append({ type: 'delivered', transactionId: id, proof: 'AAAAAAAAAAA=', at: 'now' });
    };
    for (let i = 0; i < 50; i++) await one(`warm-${i}`);
    for (const concurrency of [1, 8]) {
      const n = 400;
      const [pg0, node0, t0, c0] = [postgresCpu(), process.cpuUsage(), performance.now(), s.stats.commits];
      for (let i = 0; i < n; i += concurrency) await Promise.all(Array.from({ length: concurrency }, (_, j) => one(`${concurrency}-${i + j}`)));
      const node = process.cpuUsage(node0);
      const [pg1, t1] = [postgresCpu(), performance.now()];
      console.log(`${concurrency} at once: PostgreSQL CPU ${((pg1 - pg0) * 1000 / n).toFixed(2)} ms/tx, qtm CPU ${((node.user + node.system) / 1000 / n).toFixed(2)} ms/tx, ` +
        `${((s.stats.commits - c0) / n).toFixed(2)} write commits/tx, ${(n * 1000 / (t1 - t0)).toFixed(0)} tx/s`);
    }
    await s.close();
  } finally {
    await cluster.stop();
  }
}

/**
 * The transparency log in the PostgreSQL store: what one append costs in latency (the reply
 * waits for it), one at a time and 8 at once (one commit for the batch), and what opening an
 * instance costs with a large log (entries written directly in the table's format, then read in
 * pages and checked against the signed root, as a starting instance does).
 */
export async function benchPgLog(): Promise<void> {
  const cluster = await startPgCluster({ skip: (msg) => console.log(`skipped: ${msg}`) });
  if (!cluster) return;
  const signer = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'bench.example/log', type: 1, seed: Buffer.alloc(32, 3) })));
  try {
    const url = await cluster.database();
    await PgStore.migrate(url);
    const log = await PgLog.open(url, signer);
    const leaf = (i: number) => ({ transactionId: i + 1, package: Buffer.alloc(600, i % 251), cardKey: 'c'.repeat(64) });
    let next = 0;
    for (let i = 0; i < 50; i++) await log.append(leaf(next++));
    for (const concurrency of [1, 8]) {
      const n = 800;
      const lat: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i += concurrency) {
        await Promise.all(Array.from({ length: concurrency }, async () => {
          const s0 = performance.now();
          await log.append(leaf(next++));
          lat.push(performance.now() - s0);
        }));
      }
      lat.sort((a, b) => a - b);
      console.log(`append, ${concurrency} at once: p50 ${lat[Math.floor(n / 2)]!.toFixed(2)} ms, p99 ${lat[Math.floor(n * 0.99)]!.toFixed(2)} ms, ${(n * 1000 / (performance.now() - t0)).toFixed(0)} leaves/s`);
    }
    await log.close();
    // A large log, written directly: what a starting instance reads and checks.
    const size = Number(process.env.QTM_BENCH_PG_LOG_SIZE ?? 200_000);
    const big = await cluster.database();
    await PgStore.migrate(big);
    const tree = new LeafTree(65);
    const client = new pg.Client({ connectionString: big });
    await client.connect();
    for (let start = 0; start < size; start += 20_000) {
      const rows = Array.from({ length: Math.min(20_000, size - start) }, (_, k) => {
        const e = Buffer.alloc(65, (start + k) % 253);
        e[0] = 2;
        e.writeUInt32BE(start + k, 1);
        tree.add(e);
        return e;
      });
      await client.query('INSERT INTO tlog_entries (idx, transaction_id, commitment, entry) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])',
        [rows.map((_, k) => start + k), rows.map((_, k) => start + k + 1), rows.map((e) => e.subarray(1, 33)), rows]);
    }
    const cp = signCheckpoint({ origin: signer.name, size, root: tree.root(), extensions: [] }, signer);
    await client.query('INSERT INTO tlog_meta (origin, size, signed, served) VALUES ($1, $2, $3, $3)', [signer.name, size, cp]);
    await client.end();
    const o0 = performance.now();
    const opened = await PgLog.open(big, signer);
    const openMs = performance.now() - o0;
    const p = await opened.append(leaf(size));
    console.log(`opening an instance on a log of ${size.toLocaleString('en')} entries: ${(openMs / 1000).toFixed(2)} s (read in pages, root checked); the next leaf's proof ${p.proof.length} hashes (${p.proof.length * 32} bytes)`);
    await opened.close();
  } finally {
    await cluster.stop();
  }
}
