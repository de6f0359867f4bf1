/**
 * Issue 18: the pending index is keyed by card key, so a second card with the same serial and
 * another key is offered none of the first card's receipts; entries stored before the cardKey
 * field existed are indexed by the key of their stored client certificate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { memoryCa } from '../../src/proof/sample.js';
import { LogStore } from '../../src/store/log-store.js';
import type { PreparedEntry } from '../../src/store/types.js';
import { tempDir } from '../helpers.js';

const SERIAL = '0A0B0C0D0E0F1011';

test('pending receipts by card key: same serial, another key sees none; entries without cardKey use their stored certificate', async (t) => {
  const ca = memoryCa();
  const alice = issueKeyAndCertificate(ca, { role: 'card', subject: `CN=Alice,serialNumber=${SERIAL}` });
  const clone = issueKeyAndCertificate(ca, { role: 'card', subject: `CN=Alice,serialNumber=${SERIAL}` });
  const keyOf = (c: typeof alice) => keyFingerprint(c.certificate.publicKey);
  const entry = (transactionId: number, c: typeof alice, withKey: boolean): PreparedEntry => ({
    type: 'prepared', transactionId, orderId: `o${transactionId}`, time: 1, content: 'YQ==', header: 'AA==',
    clientCertificate: c.certificate.toString(), cardSerial: SERIAL, ...(withKey ? { cardKey: keyOf(c) } : {}),
  });
  const confirmed = (transactionId: number) => ({
    type: 'confirmed' as const, transactionId, firstMessage: { signatureB: 'AA==', challenge: 'AA==', slot: 1, priority: 0 }, package: 'AA==', cardRecord: 'AA==', envelope: 'AA==',
  });
  const dir = tempDir(t);
  const s = LogStore.open(dir);
  await s.append(entry(1, alice, false)); // stored before the field existed
  await s.append(confirmed(1));
  await s.append(entry(2, alice, true));
  await s.append(confirmed(2));
  await s.append(entry(3, clone, true));
  await s.append(confirmed(3));
  assert.deepEqual(await s.pendingFor(keyOf(alice)), [1, 2]);
  assert.deepEqual(await s.pendingFor(keyOf(clone)), [3]);
  assert.deepEqual(await s.pendingFor(SERIAL), [], 'the serial alone names no card');
  await s.close();
  const r = LogStore.open(dir, { readOnly: true });
  assert.deepEqual(await r.pendingFor(keyOf(alice)), [1, 2]);
  assert.deepEqual(await r.pendingFor(keyOf(clone)), [3]);
  await r.close();
});
