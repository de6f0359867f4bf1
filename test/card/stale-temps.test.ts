/**
 * kill -9 during an atomic write leaves `<file>.<pid>.<ms>.tmp`, a whole copy of what was being
 * written (the card's full state, a proof bundle). The next open removes it: the card's on its
 * next APDU (under the card lock), the archive's when it is opened.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { Archive } from '../../src/client/archive.js';
import { ROOT, tempDir } from '../helpers.js';

const temps = (dir: string) => readdirSync(dir).filter((n) => /\.\d+\.\d+\.tmp$/.test(n));

/** Runs `loop` (module code writing the file over and over) and kills it with SIGKILL until a temp file is left. */
async function killUntilTempLeft(dir: string, loop: string): Promise<string[]> {
  for (let round = 0; round < 40; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', loop], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((res) => child.stdout!.once('data', res));
    await new Promise((res) => setTimeout(res, Math.random() * 30));
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const left = temps(dir);
    if (left.length) return left;
  }
  assert.fail('no kill -9 landed inside a write in 40 rounds');
}

test('kill -9 during a card write: its temp copy of the card is removed by the next APDU on the card', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'card.json');
  FileStorage.create(path, 16);
  const left = await killUntilTempLeft(dir, `
    import { FileStorage } from ${JSON.stringify(join(ROOT, 'dist/src/card/virtual/storage.js'))};
    const s = new FileStorage(${JSON.stringify(path)});
    for (let i = 0; ; i++) { const img = s.load(); img.slots[i % 16] = 'A'.repeat(200000) + i; /* a large state: most time goes to writing it */ s.save(img); if (i === 0) process.stdout.write('go'); }
  `);
  assert.match(left[0]!, /^card\.json\.\d+\.\d+\.tmp$/);
  const transport = InProcessTransport.forFile(path);
  await transport.transmit(Buffer.from('00A4040007F051544D010001', 'hex'));
  assert.deepEqual(temps(dir), [], 'the killed writer\'s copy of the card is gone');
  assert.ok(readdirSync(dir).includes('card.json'));
});

test('kill -9 during an archive write: its temp copy of the bundle is removed when the archive opens', async (t) => {
  const dir = tempDir(t);
  const bundles = join(dir, 'bundles');
  await Archive.open(dir);
  const left = await killUntilTempLeft(bundles, `
    import { Archive } from ${JSON.stringify(join(ROOT, 'dist/src/client/archive.js'))};
    const a = await Archive.open(${JSON.stringify(dir)});
    for (let i = 1; ; i++) { await a.saveProof({ serverId: 'AB'.repeat(16), transactionId: i, cardSerial: '00', slot: 1, state: 'received' }, JSON.stringify({ padding: 'B'.repeat(2000000) }), Buffer.from('package ' + i)); if (i === 1) process.stdout.write('go'); }
  `);
  assert.match(left[0]!, /\.json\.\d+\.\d+\.tmp$/);
  await Archive.open(dir);
  assert.deepEqual(temps(bundles), []);
});
