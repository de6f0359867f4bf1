/**
 * The client's check of the log proof in the server's reply (src/client/transaction.ts
 * checkLogProof): a proof that does not lead to the checkpoint's root, a malformed one, or a
 * monitoring key that does not give the leaf's tag makes the reply refused before anything is
 * written; a good one goes into the bundle and the key into a key file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { decodeBundle } from '../../src/bundle/proof-bundle.js';
import { checkLogProof } from '../../src/client/transaction.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { RefusedError } from '../../src/errors.js';
import { decodePackage } from '../../src/protocol/qtm-package.js';
import { encodeTransparency } from '../../src/tlog/bundle-proof.js';
import { decodeMonitorKeyFile } from '../../src/tlog/card-tag.js';
import { LogDir } from '../../src/tlog/log-dir.js';
import { decodeSkey, ed25519NoteSigner, encodeSkey } from '../../src/tlog/note.js';
import { fixtureText, tempDir } from '../helpers.js';

test('the reply\'s proof and monitoring key are checked by the client', async (t) => {
  const bundle = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  const card = new X509Certificate(bundle.certificates.partyB[0]!);
  const cardKey = keyFingerprint(card.publicKey);
  const pkg = decodePackage(bundle.package);
  const log = LogDir.open(join(tempDir(t), 'log'), ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 41) }))), undefined, { tagCards: true });
  for (let i = 0; i < 3; i++) await log.append({ transactionId: 1000 + i, package: Buffer.from(`other ${i}`), cardKey: 'ef'.repeat(32) });
  const logged = await log.append({ transactionId: pkg.transactionId, package: bundle.package, cardKey });
  const monitorKey = log.monitorKeyFor(cardKey)!;
  await log.close();
  const second = { transactionId: pkg.transactionId, package: bundle.package, envelope: Buffer.alloc(8), slot: 1, transparency: encodeTransparency(logged), monitorKey };

  const ok = checkLogProof(second, card);
  assert.deepEqual(ok.transparency, logged);
  assert.equal(ok.monitorKeyFile!.name, `shop.example_log-${cardKey.slice(0, 16)}.key`);
  assert.deepEqual(decodeMonitorKeyFile(ok.monitorKeyFile!.text), { origin: 'shop.example/log', cardKey, key: monitorKey });
  assert.deepEqual(checkLogProof({ ...second, transparency: undefined, monitorKey: undefined }, card), { transparency: undefined });

  const refused = (s: typeof second, pattern: RegExp) => assert.throws(() => checkLogProof(s, card), (e: unknown) => e instanceof RefusedError && e.code === 'E_TLOG_MISBEHAVIOUR' && pattern.test(e.message));
  const badHash = logged.proof.map((p) => Buffer.from(p));
  badHash[0]![0]! ^= 1;
  refused({ ...second, transparency: encodeTransparency({ ...logged, proof: badHash }) }, /does not show transaction \d+ in its checkpoint of size 4/);
  refused({ ...second, transparency: encodeTransparency({ ...logged, index: 2 }) }, /does not show transaction/);
  refused({ ...second, transparency: { ...encodeTransparency(logged), proof: 'x' } }, /the server's log proof is malformed: second message: transparency.proof/);
  refused({ ...second, monitorKey: Buffer.alloc(32, 1) }, /the monitoring key the server sent does not give this leaf's card tag/);
  const { monitorKey: _k, ...noKey } = second;
  refused(noKey as typeof second, /a card-tagged leaf without the monitoring key/);
});
