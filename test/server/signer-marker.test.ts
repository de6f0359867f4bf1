/**
 * The receipt key's "signed before" marker (PREFIX.signed.json, or a data object in its token;
 * src/server/signer-marker.ts) on
 * its own. What it is for, an empty store refused to a key that signed before, is mounted through
 * the real CLI in test/e2e/server-refusals.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { signerMarker, storeName } from '../../src/server/signer-marker.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';
import { generateTokenKeyPair } from '../../src/pkcs11/keys.js';
import { writeTokenRecord } from '../../src/pkcs11/records.js';
import { attribute, ck, findObjects, openSession, tokenRef } from '../../src/pkcs11/token.js';
import { requireSoftHsm, softHsmToken } from '../pkcs11/softhsm-helper.js';

test('signer marker: none until written; written beside the key (0600) with the store resolved; never lowered for the same store', (t) => {
  const dir = tempDir(t);
  const m = signerMarker(join(dir, 'receipts'));
  assert.equal(m.where, join(dir, 'receipts.signed.json'));
  assert.equal(m.read(), undefined);
  m.write(join(dir, 'store'), 5);
  assert.deepEqual(m.read(), { store: resolve(dir, 'store'), lastTransactionId: 5 });
  assert.equal(statSync(m.where).mode & 0o777, 0o600);
  const raw = JSON.parse(readFileSync(m.where, 'utf8'));
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

test('signer marker: a key in a PKCS#11 token keeps its marker in the token, beside the key (a data object), never lowered', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t);
  const dir = tempDir(t);
  process.env['QTM_PKCS11_MODULE'] = tok.module;
  t.after(() => { delete process.env['QTM_PKCS11_MODULE']; });
  generateTokenKeyPair(tok.uri('receipts'), 'rsa2048', tok.module);
  const m = signerMarker(tok.uri('receipts'));
  assert.match(m.where, /the data object "receipts.signed" in pkcs11:token=qtm-test;object=receipts/);
  assert.equal(m.read(), undefined);
  m.write(join(dir, 'store'), 5);
  m.write(join(dir, 'store'), 3);
  assert.deepEqual(m.read(), { store: resolve(dir, 'store'), lastTransactionId: 5 });
  // In the token, public (anyone holding it sees which store the key signed in), labelled by the key.
  const s = openSession(tokenRef(tok.uri('receipts'), tok.module));
  const [obj, ...more] = findObjects(s, 'data', { label: 'receipts.signed' });
  assert.equal(more.length, 0);
  assert.equal(attribute(s, obj!, 'CKA_PRIVATE')[0], 0);
  assert.equal(attribute(s, obj!, 'CKA_APPLICATION').toString(), 'qtm');
  assert.equal(JSON.parse(attribute(s, obj!, 'CKA_VALUE').toString()).lastTransactionId, 5);
  // Another key in the same token has its own marker.
  generateTokenKeyPair(tok.uri('receipts-2'), 'rsa2048', tok.module);
  assert.equal(signerMarker(tok.uri('receipts-2')).read(), undefined);
  // A write cut short between its two steps leaves two copies: the later one stands, the next write leaves one.
  writeTokenRecord(tok.uri('receipts-2'), 'signed', Buffer.from(JSON.stringify({ store: '/old', lastTransactionId: 9, updated: '2026-01-01T00:00:00.000Z' })));
  s.p11.C_CreateObject(s.handle, [
    { type: ck('CKA_CLASS'), value: ck('CKO_DATA') }, { type: ck('CKA_TOKEN'), value: true }, { type: ck('CKA_PRIVATE'), value: false },
    { type: ck('CKA_LABEL'), value: 'receipts-2.signed' }, { type: ck('CKA_VALUE'), value: Buffer.from(JSON.stringify({ store: '/new', lastTransactionId: 2, updated: '2026-06-01T00:00:00.000Z' })) },
  ]);
  assert.deepEqual(signerMarker(tok.uri('receipts-2')).read(), { store: '/new', lastTransactionId: 2 });
  signerMarker(tok.uri('receipts-2')).write('/new', 3);
  assert.equal(findObjects(s, 'data', { label: 'receipts-2.signed' }).length, 1);
  // Damaged in the token: refused naming the data object, as a damaged file is.
  writeTokenRecord(tok.uri('receipts'), 'signed', Buffer.from('not json'));
  assert.throws(() => m.read(), (e) => e instanceof InputError && /the data object "receipts.signed" .* is not a qtm signer marker/.test(e.message));
});

test('signer marker: a PostgreSQL store is named without its password', () => {
  assert.equal(storeName('postgres://qtm:secret@db.example/qtm'), 'postgres://qtm:***@db.example/qtm');
  assert.equal(storeName('relative/store'), resolve('relative/store'));
});

test('signer marker: a damaged marker is refused with one line naming it and what to do, whatever it holds (property)', (t) => {
  const dir = tempDir(t);
  const m = signerMarker(join(dir, 'receipts'));
  const damaged = (text: string) => {
    writeFileSync(m.where, text);
    assert.throws(() => m.read(), (e) => e instanceof InputError && e.exitCode === 2
      && e.message === `${m.where} is not a qtm signer marker (store, lastTransactionId)` && /restore it, or remove it/.test(e.hint ?? ''));
    // Writing over a damaged marker is refused too: it might be hiding a higher count.
    assert.throws(() => m.write(join(dir, 'store'), 1), InputError);
  };
  for (const text of ['', 'not json', '{}', '{"store":"/s"}', '{"store":7,"lastTransactionId":1}', '{"store":"/s","lastTransactionId":1.5}', '{"store":"/s","lastTransactionId":"7"}', 'null', '[]']) damaged(text);
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
    writeFileSync(m.where, text);
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
