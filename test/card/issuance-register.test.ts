import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { IssuanceRegister } from '../../src/card/issuance-register.js';
import { QtmError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';

const KCV = 'a1b2c3';
const SERIAL = '0123456789ABCDEF';
const KEY_A = 'aa'.repeat(32);
const KEY_B = 'bb'.repeat(32);
const code = (c: string) => (e: unknown) => e instanceof QtmError && e.code === c;

test('issuance register: one folder per SAM key check value, one row per serial', (t) => {
  const dir = tempDir(t);
  const r = IssuanceRegister.open(dir, KCV);
  const res = r.reserve({ serial: SERIAL, cardKey: KEY_A, holder: 'CN=Alice' });
  assert.deepEqual(readdirSync(dir), ['A1B2C3']);
  assert.equal(r.row(SERIAL)!.state, 'reserved');
  r.recordCertificate(res, '11'.repeat(16));
  r.markIssued(res);
  const row = r.row(SERIAL)!;
  assert.equal(row.state, 'issued');
  assert.equal(row.cardKey, KEY_A);
  assert.equal(row.certificateSerial, '11'.repeat(16));
  assert.equal(row.holder, 'CN=Alice');
  assert.match(row.station, /:\d+$/);
  assert.deepEqual(readdirSync(join(dir, 'A1B2C3')), [`${SERIAL}.json`]);
});

test('issuance register: another key for an issued serial is refused, with or without retry; the same key is re-certified', (t) => {
  const r = IssuanceRegister.open(tempDir(t), KCV);
  const res = r.reserve({ serial: SERIAL, cardKey: KEY_A, holder: 'CN=Alice' });
  r.recordCertificate(res, '11'.repeat(16));
  r.markIssued(res);
  assert.throws(() => r.reserve({ serial: SERIAL, cardKey: KEY_B, holder: 'CN=Mallory' }), code('E_SERIAL_TAKEN'));
  assert.throws(() => r.reserve({ serial: SERIAL, cardKey: KEY_B, holder: 'CN=Mallory', retry: true }), code('E_SERIAL_TAKEN'));
  assert.equal(r.row(SERIAL)!.cardKey, KEY_A);
  const again = r.reserve({ serial: SERIAL, cardKey: KEY_A, holder: 'CN=Alice' });
  r.recordCertificate(again, '22'.repeat(16));
  r.markIssued(again);
  const row = r.row(SERIAL)!;
  assert.equal(row.certificateSerial, '22'.repeat(16));
  assert.deepEqual(row.previous!.map((p) => [p.certificateSerial, p.status]), [['11'.repeat(16), 'superseded']]);
});

test('issuance register: a reservation left by a failed run is taken over only with retry, its certificate recorded void', (t) => {
  const r = IssuanceRegister.open(tempDir(t), KCV);
  const failed = r.reserve({ serial: SERIAL, cardKey: KEY_A, holder: 'CN=Alice' });
  r.recordCertificate(failed, '33'.repeat(16)); // signed, then the run died before LOCK
  assert.throws(() => r.reserve({ serial: SERIAL, cardKey: KEY_B, holder: 'CN=Alice' }), code('E_SERIAL_RESERVED'));
  assert.throws(() => r.reserve({ serial: SERIAL, cardKey: KEY_A, holder: 'CN=Alice' }), code('E_SERIAL_RESERVED'));
  const retry = r.reserve({ serial: SERIAL, cardKey: KEY_B, holder: 'CN=Alice', retry: true });
  // The failed run cannot mark the row issued any more: it is no longer its row.
  assert.throws(() => r.markIssued(failed), code('E_SERIAL_RESERVED'));
  r.recordCertificate(retry, '44'.repeat(16));
  r.markIssued(retry);
  const row = r.row(SERIAL)!;
  assert.equal(row.cardKey, KEY_B);
  assert.deepEqual(row.previous!.map((p) => [p.certificateSerial, p.cardKey, p.status]), [['33'.repeat(16), KEY_A, 'void']]);
});
