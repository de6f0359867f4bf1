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
