import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
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
  mkdirSync(join(dir, 'w'));
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

test('cosignatures are kept per checkpoint size (cosigned/<size>, cosigned/latest), also for a checkpoint the log has moved past; two witnesses cosign the same size', async (t) => {
  const dir = tempDir(t);
  const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 31) }));
  const servers = [32, 33].map((seed, i) => {
    const wkey = decodeSkey(encodeSkey({ name: `witness.example/w${i + 1}`, type: 4, seed: Buffer.alloc(32, seed) }), [4]);
    mkdirSync(join(dir, `w${i}`), { recursive: true });
    return { wkey, server: createWitnessServer({ logs: [decodeVkey(encodeVkey(skey))], cosigner: cosigner(wkey), stateDir: join(dir, `w${i}`) }) };
  });
  const urls: string[] = [];
  for (const s of servers) {
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', () => r()));
    t.after(() => s.server.close());
    urls.push(`http://127.0.0.1:${(s.server.address() as AddressInfo).port}/`);
  }
  const log = LogDir.open(join(dir, 'log'), ed25519NoteSigner(skey));
  const pusher = new WitnessPusher(log, urls, () => {});
  const verifiers = servers.map((s) => cosignatureVerifier(decodeVkey(encodeVkey(s.wkey), [4])));
  const sizes: number[] = [];
  for (const n of [2, 5]) {
    await Promise.all(Array.from({ length: n - log.size }, (_, i) => log.append({ transactionId: log.size + i + 1, package: Buffer.from(`p${log.size + i}`) })));
    await pusher.settle();
    sizes.push(n);
  }
  for (const n of sizes) {
    const kept = readFileSync(join(dir, 'log', 'www', 'cosigned', String(n)), 'utf8');
    assert.equal(openCheckpoint(kept, ed25519NoteVerifier(decodeVkey(encodeVkey(skey)))).checkpoint.size, n);
    assert.deepEqual(verifyNote(decodeNote(kept), verifiers), verifiers, `both witnesses cosigned size ${n}`);
  }
  assert.equal(readFileSync(join(dir, 'log', 'www', 'cosigned', 'latest'), 'utf8'), readFileSync(join(dir, 'log', 'www', 'cosigned', '5'), 'utf8'));
  // A cosignature arriving after the log moved on: kept for its size, not served with the new checkpoint.
  pusher.stop();
  const old = log.signedCheckpoint;
  await log.append({ transactionId: 99, package: Buffer.from('later') });
  const line = '— witness.example/w9 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
  assert.equal(log.addCosignatures(old, line), false);
  assert.ok(readFileSync(join(dir, 'log', 'www', 'cosigned', '5'), 'utf8').endsWith(`${line}\n`));
  assert.ok(!readFileSync(join(dir, 'log', 'www', 'checkpoint'), 'utf8').includes('w9'));
  // Cosignatures for a checkpoint this log never signed are refused.
  const forged = old.replace(/\n[A-Za-z0-9+/=]{44}\n/, `\n${Buffer.alloc(32).toString('base64')}\n`);
  assert.throws(() => log.addCosignatures(forged, line), /a checkpoint this log did not sign/);
  await log.close();
});
