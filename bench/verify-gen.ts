/**
 * A worker thread of bench/verify.ts: signs bundles [from, to) with the fixture keys (node:crypto,
 * through the same makeProof the server uses) and writes them into a tree of folders of 1,000.
 * Each bundle is distinct: its own transaction ID, time and order text, so its own signatures.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { readIdentity } from '../src/pki/key-files.js';
import { keySigner, makeProof } from '../src/proof/make-proof.js';
import { PROFILES } from '../src/protocol/profile.js';

const { root, dir, from, to } = workerData as { root: string; dir: string; from: number; to: number };
const profile = PROFILES.v2;
const server = readIdentity(join(root, 'fixtures/keys/server-v2'), 'qtm-fixture-only');
const customer = readIdentity(join(root, 'fixtures/keys/customer-v2'), 'qtm-fixture-only');
const s = keySigner(profile, server.privateKey, server.certificates);
const c = keySigner(profile, customer.privateKey, customer.certificates);

function bundlePath(dir: string, i: number): string {
  return join(dir, `day-${String(Math.floor(i / 1000)).padStart(4, '0')}`, `receipt-${String(i).padStart(7, '0')}.json`);
}

for (let i = from; i < to; i++) {
  const proof = await makeProof({ profile, transactionId: i + 1, time: 1795521600 + i, content: Buffer.from(`Order ${i}\n1 x NOTEBOOK at 12.50 EUR\n`), server: s, partyA: s, partyB: c });
  const file = bundlePath(dir, i);
  if (i === from || i % 1000 === 0) mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, proof.bundleJson);
}
parentPort!.postMessage('done');
