/**
 * The receipt key's "signed before" marker (PREFIX.signed.json, src/server/signer-marker.ts) on
 * its own. What it is for, an empty store refused to a key that signed before, is mounted through
 * the real CLI in test/e2e/server-refusals.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { signerMarker, storeName } from '../../src/server/signer-marker.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';

test('signer marker: none until written; written beside the key (0600) with the store resolved; never lowered for the same store', (t) => {
  const dir = tempDir(t);
  const m = signerMarker(join(dir, 'receipts'));
  assert.equal(m.path, join(dir, 'receipts.signed.json'));
  assert.equal(m.read(), undefined);
  m.write(join(dir, 'store'), 5);
  assert.deepEqual(m.read(), { store: resolve(dir, 'store'), lastTransactionId: 5 });
  assert.equal(statSync(m.path!).mode & 0o777, 0o600);
  const raw = JSON.parse(readFileSync(m.path!, 'utf8'));
  assert.deepEqual(Object.keys(raw), ['store', 'lastTransactionId', 'updated']);
  assert.ok(!Number.isNaN(Date.parse(raw.updated)));
  // A server closing with a lower count (a store restored from backup) does not lower the mark.
  m.write(join(dir, 'store'), 3);
  assert.equal(m.read()!.lastTransactionId, 5);
  m.write(join(dir, 'store'), 9);
  assert.equal(m.read()!.lastTransactionId, 9);
  // Another store: its own count, the marker names the store the key signs in now.
  m.write(join(dir, 'other-store'), 2);
  assert.deepEqual(m.read(), { store: resolve(dir, 'other-store'), lastTransactionId: 2 });
});

test('signer marker: a key without files (a PKCS#11 token) has none, and writing it does nothing', (t) => {
  const dir = tempDir(t);
  const m = signerMarker(undefined);
  assert.equal(m.path, undefined);
  assert.equal(m.read(), undefined);
  m.write(join(dir, 'store'), 4);
  assert.equal(m.read(), undefined);
  assert.ok(!existsSync(join(dir, 'undefined.signed.json')));
});

test('signer marker: a PostgreSQL store is named without its password', () => {
  assert.equal(storeName('postgres://qtm:secret@db.example/qtm'), 'postgres://qtm:***@db.example/qtm');
  assert.equal(storeName('relative/store'), resolve('relative/store'));
});

test('signer marker: a damaged marker is refused with one line naming it and what to do, whatever it holds (property)', (t) => {
  const dir = tempDir(t);
  const m = signerMarker(join(dir, 'receipts'));
  const damaged = (text: string) => {
    writeFileSync(m.path!, text);
    assert.throws(() => m.read(), (e) => e instanceof InputError && e.exitCode === 2
      && e.message === `${m.path} is not a qtm signer marker (store, lastTransactionId)` && /restore it, or remove it/.test(e.hint ?? ''));
    // Writing over a damaged marker is refused too: it might be hiding a higher count.
    assert.throws(() => m.write(join(dir, 'store'), 1), InputError);
  };
  for (const text of ['', 'not json', '{}', '{"store":"/s"}', '{"store":7,"lastTransactionId":1}', '{"store":"/s","lastTransactionId":1.5}', '{"store":"/s","lastTransactionId":"7"}', 'null', '[]']) damaged(text);
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
    writeFileSync(m.path!, text);
    let v;
    try {
      v = m.read();
    } catch (e) {
      assert.ok(e instanceof InputError, String(e));
      return;
    }
    // Whatever it accepts has exactly the two fields' types.
    assert.ok(v && typeof v.store === 'string' && Number.isSafeInteger(v.lastTransactionId));
  }), { numRuns: 300 });
});
