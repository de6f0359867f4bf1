import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { fixture, fixtureText, qtm, tempDir } from '../helpers.js';

test('qtm inspect: the order text exactly as signed, parties, time, server, warrant; says it did not verify', () => {
  const r = qtm(['inspect', fixture('bundles', 'sample-v3-proxy.json')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^NOT VERIFIED .*sample-v3-proxy\.json: transaction 43 at 2026-11-24T12:00:00\.000Z \(run qtm verify to check it\)\n/);
  assert.match(r.stdout, /\n  server   CN=Example Shop receipts v2, O=Example Shop B\.V\. \(id b78bba24[0-9a-f]{56}\)\n/);
  assert.match(r.stdout, /\n  party A  CN=Xavier Manager, O=Example Shop B\.V\.\n  party B  CN=Alice Example, serialNumber=0102030405060708\n/);
  assert.match(r.stdout, /\n  warrant  [0-9A-F]+ issued by CN=Xavier Manager, O=Example Shop B\.V\., valid 2026-01-01T00:00:00\.000Z to /);
  assert.match(r.stdout, /\n  fair     no fair-exchange outcome recorded\n/);
  const content = decodeBundle(fixtureText('bundles', 'sample-v3-proxy.json')).content!.toString('utf8');
  for (const line of content.trimEnd().split('\n')) assert.ok(r.stdout.includes(`│ ${line}\n`), `line shown as signed: ${line}`);
  assert.match(r.stdout, /Order as signed: 282 bytes, SHA-256 d583d850/);
});

test('qtm inspect --json, from stdin, from a client archive (slot, fair exchange), and of a tampered bundle', (t) => {
  const dir = tempDir(t);
  const text = fixtureText('bundles', 'sample-v2.json');
  const j = JSON.parse(qtm(['inspect', '-', '--json'], { input: text }).stdout);
  assert.equal(j.file, '-');
  assert.equal(j.verified, false);
  assert.equal(j.transactionId, 42);
  assert.equal(j.content.text, decodeBundle(text).content!.toString('utf8'));
  assert.deepEqual(j.warrants, []);
  assert.equal(j.slot, null);

  mkdirSync(join(dir, 'archive', 'bundles'), { recursive: true });
  const file = join(dir, 'archive', 'bundles', 'x-42.json');
  writeFileSync(file, text);
  writeFileSync(join(dir, 'archive', 'index.json'), JSON.stringify({
    proofs: [{ serverId: j.server.id, transactionId: 42, cardSerial: '0102030405060708', slot: 3, state: 'delivered', file, savedAt: '2026-11-24T12:00:01.000Z' }],
    replaced: [], fair: [{ serverId: j.server.id, transactionId: 42, outcome: 'x', value: 'AA==', via: 'ttp', keptAt: '2026-11-24T12:00:02.000Z' }] }));
  const archived = qtm(['inspect', file]);
  assert.match(archived.stdout, /\n  slot     3 on card 0102030405060708, delivered/);
  assert.match(archived.stdout, /\n  fair     X received via ttp \(2026-11-24T12:00:02\.000Z\)\n/);

  const b = decodeBundle(text);
  const pkg = Buffer.from(b.package);
  pkg[pkg.length - 1]! ^= 1;
  writeFileSync(join(dir, 'bad.json'), encodeBundle({ ...b, package: pkg }));
  assert.equal(qtm(['inspect', join(dir, 'bad.json')]).status, 0, 'inspect shows, it does not verify');
  assert.equal(qtm(['verify', join(dir, 'bad.json'), '--trust', fixture('ca', 'ca.pem')]).status, 1);

  writeFileSync(join(dir, 'junk.json'), '{"x":1}');
  const junk = qtm(['inspect', join(dir, 'junk.json')]);
  assert.equal(junk.status, 2);
  assert.match(junk.stderr, /^qtm: error: proof bundle: /);
  const missing = qtm(['inspect', join(dir, 'none.json'), '--json']);
  assert.equal(missing.status, 2);
  assert.equal(JSON.parse(missing.stdout).error.code, 'E_INPUT');
});
