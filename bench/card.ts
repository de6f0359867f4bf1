/**
 * Issue 3's figures: APDU round trip in-process and through pcscd (median, p99), and the time
 * to issue 100 virtual cards. The pcscd figure depends on TCP quickack on loopback (see .ci/run).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CardClient } from '../src/card/client.js';
import { encodeCommand } from '../src/card/apdu.js';
import { INS, QTM_AID } from '../src/card/app-spec.js';
import { InProcessTransport } from '../src/card/transports/in-process.js';
import { PcscTransport } from '../src/card/transports/pcsc.js';
import type { CardTransport } from '../src/card/transport.js';
import { blankImage, MemoryStorage } from '../src/card/virtual/storage.js';
import { issueBatch } from '../src/card/batch.js';
import { memoryCa } from '../src/proof/sample.js';
import { initSam } from '../src/sam/sam.js';
import { median, percentile } from './stats.js';
import { IssuanceRegister } from '../src/card/issuance-register.js';

const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');
const READER = 'Virtual PCD 00 00';

async function roundTrips(transport: CardTransport, n: number): Promise<number[]> {
  const select = encodeCommand({ cla: 0, ins: INS.SELECT, p1: 4, p2: 0, data: QTM_AID });
  const status = encodeCommand({ cla: 0, ins: INS.GET_DATA, p1: 1, p2: 0, data: new Uint8Array(0), le: 256 });
  await transport.transmit(select);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await transport.transmit(status);
    times.push(performance.now() - t0);
  }
  return times;
}

function report(label: string, times: number[]): void {
  console.log(`${label}: median ${median(times).toFixed(3)} ms, p99 ${percentile(times, 99).toFixed(3)} ms over ${times.length} APDUs`);
}

export async function benchCard(): Promise<void> {
  report('APDU round trip, in-process', await roundTrips(new InProcessTransport(new MemoryStorage(blankImage(16))), 2000));

  const quickack = /quickack 1/.test(spawnSync('ip', ['route', 'show', 'table', 'local'], { encoding: 'utf8' }).stdout ?? '');
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-card-'));
  const emulator = spawn(process.execPath, [join(ROOT, 'dist/bin/qtm.js'), 'card', 'emulate', '--card', join(dir, 'bench.card.json'), '--create'], { stdio: 'ignore' });
  try {
    const transport = await PcscTransport.connectWhenReady(READER).catch(() => undefined);
    if (!transport) {
      console.log('APDU round trip through pcscd: skipped (no pcscd with vpcd; see README "Set-up")');
    } else {
      report(`APDU round trip through pcscd + vpcd (loopback quickack ${quickack ? 'on' : 'OFF'})`, await roundTrips(transport, 300));
      await transport.close();
    }
  } finally {
    const exited = new Promise((r) => emulator.once('exit', r));
    emulator.kill('SIGTERM');
    await exited;
  }

  const ca = memoryCa();
  const sam = initSam(join(dir, 'bench.sam'), 'bench passphrase');
  const rows = Array.from({ length: 100 }, (_, i) => ({ line: i + 2, holder: `CN=Bench Holder ${i}` }));
  const t0 = performance.now();
  const results = await issueBatch(rows, dir, { ca, sam, register: IssuanceRegister.open(join(dir, 'register'), sam.kcv), pin: '1234', puk: '12345678', slots: 16, profile: 'v2' }, () => {});
  const ms = performance.now() - t0;
  const failed = results.filter((r) => r.status !== 'issued').length;
  console.log(`issue 100 virtual cards (RSA-2048 on card, in-process, written to disk): ${(ms / 1000).toFixed(1)} s, ${(ms / 100).toFixed(0)} ms/card${failed ? `, ${failed} FAILED` : ''}`);

  const client = new CardClient(new InProcessTransport(new MemoryStorage(blankImage(16))));
  const { issueCard } = await import('../src/card/issue.js');
  await issueCard(client, { ca, sam, register: IssuanceRegister.open(join(dir, 'register'), sam.kcv), holder: 'CN=Count', pin: '1234', puk: '12345678', slots: 16, profile: 'v2' });
  console.log(`APDUs to issue one card (including the post-LOCK self-test): ${client.apduCount}`);
  rmSync(dir, { recursive: true, force: true });
}
