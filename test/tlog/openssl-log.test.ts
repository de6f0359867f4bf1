/** docs/verify-with-openssl.sh checks a bundle's log proof with openssl alone (issue 12). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { signCheckpoint, decodeSignedCheckpoint } from '../../src/tlog/checkpoint.js';
import { proveInclusion } from '../../src/tlog/client-ops.js';
import { LogDir } from '../../src/tlog/log-dir.js';
import { decodePackage } from '../../src/protocol/qtm-package.js';
import { decodeSkey, decodeVkey, ed25519NoteSigner, encodeSkey, encodeVkey } from '../../src/tlog/note.js';
import { dirSource } from '../../src/tlog/tile-source.js';
import { fixture, fixtureText, requireTool, ROOT, tempDir } from '../helpers.js';

const script = join(ROOT, 'docs', 'verify-with-openssl.sh');
const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 5) }));
const vkey = encodeVkey(skey);

test('the openssl-only recipe checks the checkpoint signature and the inclusion proof, and refuses forgeries', async (t) => {
  if (!requireTool(t, 'openssl', 'apt install openssl') || !requireTool(t, 'jq', 'apt install jq')) return;
  const dir = tempDir(t);
  const bundle = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  const pkg = decodePackage(bundle.package);
  const log = LogDir.open(join(dir, 'log'), ed25519NoteSigner(skey));
  // 13 leaves with the bundle's at index 6: a proof with a left and a right sibling and an odd edge.
  for (let i = 0; i < 13; i++) {
    await log.append(i === 6 ? { transactionId: pkg.transactionId, package: bundle.package } : { transactionId: 1000 + i, package: Buffer.from(`other ${i}`) });
  }
  await log.close();
  const tproof = await proveInclusion(dirSource(join(dir, 'log', 'www')), decodeVkey(vkey), { transactionId: pkg.transactionId, package: bundle.package });
  assert.equal(tproof.index, 6);
  const run = (b: typeof bundle, name: string, key = vkey) => {
    writeFileSync(join(dir, name), encodeBundle(b));
    return spawnSync('sh', [script, join(dir, name), fixture('ca', 'ca.pem'), key], { encoding: 'utf8' });
  };
  let r = run({ ...bundle, transparency: tproof }, 'ok.json');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /log: checkpoint of shop.example\/log at size 13 signed by shop.example\/log\+[0-9a-f]{8}: OK/);
  assert.match(r.stdout, new RegExp(`log: transaction ${pkg.transactionId} is leaf 6 of the tree of size 13 \\(4-hash proof\\): OK`));
  assert.match(r.stdout, /ALL CHECKS PASSED/);
  // The vkey can be given as a file too.
  writeFileSync(join(dir, 'log.vkey'), `${vkey}\n`);
  assert.equal(run({ ...bundle, transparency: tproof }, 'ok2.json', join(dir, 'log.vkey')).status, 0);

  const tampered = tproof.proof.map((p) => Buffer.from(p));
  tampered[2]![31]! ^= 1;
  r = run({ ...bundle, transparency: { ...tproof, proof: tampered } }, 'tampered.json');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /log: the inclusion proof does not lead to the checkpoint's root/);

  r = run({ ...bundle, transparency: { ...tproof, index: 7 } }, 'moved.json');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /does not lead to the checkpoint's root/);

  const impostor = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 6) })));
  const forgedCp = signCheckpoint(decodeSignedCheckpoint(tproof.checkpoint).checkpoint, impostor);
  r = run({ ...bundle, transparency: { ...tproof, checkpoint: forgedCp } }, 'impostor.json');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /log: the signature line names another key ID/);
  // An impostor that copies the key ID: the signature itself fails.
  const copied = forgedCp.replace(/(\u2014 shop.example\/log )(\S+)/, (_m, head: string, b64: string) => {
    const raw = Buffer.from(b64, 'base64');
    raw.writeUInt32BE(skey.keyId, 0);
    return head + raw.toString('base64');
  });
  r = run({ ...bundle, transparency: { ...tproof, checkpoint: copied } }, 'copied-id.json');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /log: the checkpoint signature does not verify/);

  r = run(bundle, 'none.json');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /log: the bundle carries no inclusion proof/);
});

test('the openssl-only recipe checks a card-tagged leaf (bundle version 3), and refuses a changed tag', async (t) => {
  if (!requireTool(t, 'openssl', 'apt install openssl') || !requireTool(t, 'jq', 'apt install jq')) return;
  const dir = tempDir(t);
  const bundle = decodeBundle(fixtureText('bundles', 'sample-v2.json'));
  const pkg = decodePackage(bundle.package);
  const log = LogDir.open(join(dir, 'log'), ed25519NoteSigner(skey), undefined, { tagCards: true });
  const cardKey = 'ab'.repeat(32);
  let logged;
  for (let i = 0; i < 6; i++) {
    const p = await log.append(i === 4 ? { transactionId: pkg.transactionId, package: bundle.package, cardKey } : { transactionId: 1000 + i, package: Buffer.from(`other ${i}`), cardKey: 'cd'.repeat(32) });
    if (i === 4) logged = p;
  }
  await log.close();
  const tproof = await proveInclusion(dirSource(join(dir, 'log', 'www')), decodeVkey(vkey), { transactionId: pkg.transactionId, package: bundle.package });
  assert.deepEqual(tproof.tag, logged!.tag);
  writeFileSync(join(dir, 'tagged.json'), encodeBundle({ ...bundle, transparency: tproof }));
  let r = spawnSync('sh', [script, join(dir, 'tagged.json'), fixture('ca', 'ca.pem'), vkey], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`log: transaction ${pkg.transactionId} is leaf 4 of the tree of size 6 \\(2-hash proof\\): OK`));
  const tag = Buffer.from(tproof.tag!);
  tag[0]! ^= 1;
  writeFileSync(join(dir, 'tag.json'), encodeBundle({ ...bundle, transparency: { ...tproof, tag } }));
  r = spawnSync('sh', [script, join(dir, 'tag.json'), fixture('ca', 'ca.pem'), vkey], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /does not lead to the checkpoint's root/);
  // The receipt's proof as the server sent it (the checkpoint of its commit) verifies the same way.
  writeFileSync(join(dir, 'as-sent.json'), encodeBundle({ ...bundle, transparency: logged! }));
  r = spawnSync('sh', [script, join(dir, 'as-sent.json'), fixture('ca', 'ca.pem'), vkey], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /leaf 4 of the tree of size 5/);
});
