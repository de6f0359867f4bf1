import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { qtm, tempDir } from '../helpers.js';

test('qtm demo shows the receipt in a witnessed checkpoint, and --keep leaves that bundle', (t) => {
  const dir = tempDir(t);
  const r = qtm(['demo', '--json', '--keep', dir]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.valid, true);
  assert.deepEqual(j.log, { index: 0, size: 1 });
  assert.match(j.story.join('\n'), /VALID \(log-checkpoint, log-inclusion, log-witnesses\)/);
  assert.equal(j.bundleFile, join(dir, 'receipt-logged.json'));
  const v = qtm(['verify', j.bundleFile, '--trust', join(dir, 'ca', 'ca.pem'), '--log-key', join(dir, 'log.vkey'), '--witness', join(dir, 'witness.vkey')]);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /log-witnesses 1 of 1 witnesses cosigned/);
  assert.ok(existsSync(join(dir, 'tlog', 'www', 'checkpoint')));
});

test('qtm demo --fork: the shop rewrites its log and the witness refuses it', () => {
  const r = qtm(['demo', '--fork', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.valid, true);
  assert.match(j.log.forkRefused, /^LOG FORKED: shop.example\/log signed two roots for size 1/);
  const human = qtm(['demo', '--fork']);
  assert.match(human.stdout, /The rewritten history was caught: the witness refused to cosign it/);
  assert.equal(qtm(['demo', '--fork', '--fair', '--cheat', 'client']).status, 2);
});

test('a fair exchange the TTP resolves (the client\'s Y lost) gets its leaf too: qtm log audit finds store and log equal', (t) => {
  const dir = tempDir(t);
  const r = qtm(['demo', '--fair', '--lose', 'y', '--json', '--keep', dir]);
  assert.equal(r.status, 0, r.stderr);
  const a = qtm(['log', 'audit', '--store', join(dir, 'store'), '--log', join(dir, 'tlog', 'www'), '--log-key', join(dir, 'log.vkey'), '--json']);
  assert.equal(a.status, 0, a.stdout + a.stderr);
  const j = JSON.parse(a.stdout);
  assert.equal(j.storeSigned, 1);
  assert.equal(j.size, 1);
  assert.equal(j.ok, true);
});
