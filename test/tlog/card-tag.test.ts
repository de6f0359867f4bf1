import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { cardTag, decodeMonitorKeyFile, encodeMonitorKeyFile, isCardTag, monitorKey } from '../../src/tlog/card-tag.js';

const secret = Buffer.alloc(32, 7);
const cardA = 'a'.repeat(64);
const cardB = 'b'.repeat(64);

test('the monitoring key is HKDF-SHA256(secret, salt "qtm/tlog-monitor-key/v1", info = card key fingerprint), the tag HMAC-SHA256(K, "qtm/tlog-card-tag/v1" 0x00 || C)', () => {
  const k = monitorKey(secret, cardA);
  assert.deepEqual(k, Buffer.from(hkdfSync('sha256', secret, 'qtm/tlog-monitor-key/v1', Buffer.from(cardA, 'hex'), 32)));
  const c = Buffer.alloc(32, 1);
  assert.deepEqual(cardTag(k, c), createHmac('sha256', k).update('qtm/tlog-card-tag/v1\0').update(c).digest());
  assert.ok(isCardTag(k, c, cardTag(k, c)));
  // Another card key (a clone with the same serial and its own key) has another key and other tags.
  const kb = monitorKey(secret, cardB);
  assert.notDeepEqual(kb, k);
  assert.ok(!isCardTag(kb, c, cardTag(k, c)));
  // Another log (another secret) too.
  assert.notDeepEqual(monitorKey(Buffer.alloc(32, 8), cardA), k);
  assert.throws(() => monitorKey(secret, 'AA'), RangeError);
  assert.throws(() => monitorKey(Buffer.alloc(16), cardA), RangeError);
});

test('the monitoring key file, byte for byte', () => {
  const text = encodeMonitorKeyFile({ origin: 'shop.example/log', cardKey: cardA, key: Buffer.alloc(32, 0xff) });
  assert.equal(text, `qtm/tlog-monitor-key/v1 shop.example/log ${cardA} ${Buffer.alloc(32, 0xff).toString('base64')}\n`);
  assert.deepEqual(decodeMonitorKeyFile(text), { origin: 'shop.example/log', cardKey: cardA, key: Buffer.alloc(32, 0xff) });
  for (const bad of [text.trimEnd(), text + '\n', text.replace('v1', 'v2'), text.replace(cardA, cardA.toUpperCase()), text.replace('shop.example/log', 'a+b'), text.replace(/\S+\n$/, 'AAAA\n')]) {
    assert.throws(() => decodeMonitorKeyFile(bad), DecodeError, bad);
  }
});

test('property: monitoring key files round-trip, and any text only ever decodes or gives DecodeError', () => {
  const origin = fc.stringMatching(/^[a-z0-9./-]{1,40}$/);
  fc.assert(fc.property(origin, fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (o, fp, key) => {
    const m = { origin: o, cardKey: Buffer.from(fp).toString('hex'), key: Buffer.from(key) };
    assert.deepEqual(decodeMonitorKeyFile(encodeMonitorKeyFile(m)), m);
  }));
  const good = encodeMonitorKeyFile({ origin: 'shop.example/log', cardKey: cardA, key: Buffer.alloc(32, 3) });
  fc.assert(fc.property(fc.oneof(fc.string(), fc.nat(good.length - 1).chain((i) => fc.string({ maxLength: 3 }).map((s) => good.slice(0, i) + s + good.slice(i + 1)))), (t) => {
    try {
      const m = decodeMonitorKeyFile(t);
      assert.equal(encodeMonitorKeyFile(m), t);
    } catch (e) { assert.ok(e instanceof DecodeError && /^monitor key file: /.test(e.message), String(e)); }
  }), { numRuns: 2000 });
});
