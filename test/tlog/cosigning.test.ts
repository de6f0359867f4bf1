import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/tlog/checkpoint.js';
import { cosignatureVerifier, cosigner } from '../../src/tlog/cosignature.js';
import { WitnessPusher } from '../../src/tlog/cosigning.js';
import { LogDir } from '../../src/tlog/log-dir.js';
import { decodeNote, decodeSkey, decodeVkey, ed25519NoteSigner, ed25519NoteVerifier, encodeSkey, encodeVkey, verifyNote } from '../../src/tlog/note.js';
import { createWitnessServer } from '../../src/tlog/witness-server.js';
import { tempDir } from '../helpers.js';

test('the log pushes each checkpoint to its witnesses and serves their cosignatures with it', async (t) => {
  const dir = tempDir(t);
  const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 21) }));
  const wkey = decodeSkey(encodeSkey({ name: 'witness.example/w1', type: 4, seed: Buffer.alloc(32, 22) }), [4]);
  const server = createWitnessServer({ logs: [decodeVkey(encodeVkey(skey))], cosigner: cosigner(wkey), stateDir: join(dir, 'w') });
  (await import('node:fs')).mkdirSync(join(dir, 'w'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const log = LogDir.open(join(dir, 'log'), ed25519NoteSigner(skey));
  const events: Record<string, unknown>[] = [];
  const pusher = new WitnessPusher(log, [url], (e) => events.push(e));
  const wv = cosignatureVerifier(decodeVkey(encodeVkey(wkey), [4]));
  const lv = ed25519NoteVerifier(decodeVkey(encodeVkey(skey)));
  for (const n of [3, 300]) {
    await Promise.all(Array.from({ length: n - log.size }, (_, i) => log.append({ transactionId: log.size + i + 1, package: Buffer.from(`p${log.size + i}`) })));
    await pusher.settle();
    const text = readFileSync(join(dir, 'log', 'www', 'checkpoint'), 'utf8');
    assert.equal(openCheckpoint(text, lv).checkpoint.size, n);
    assert.deepEqual(verifyNote(decodeNote(text), [wv]), [wv], `cosigned at ${n}: ${JSON.stringify(events)}`);
  }
  assert.ok(events.every((e) => e.event === 'log-cosigned'), JSON.stringify(events));
  pusher.stop();
  await log.close();
});
