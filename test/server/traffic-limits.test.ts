/**
 * The pieces of the limits under bad traffic on their own (the attacks themselves, through real
 * processes, are test/attack/bad-traffic.test.ts): who a client is, the token bucket and the
 * bound on its table, and the flags and config keys that set them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { clientKey, RateLimiter } from '../../src/http/rate-limit.js';
import { DEFAULT_LIMITS, trafficLimits } from '../../src/http/server.js';
import { trafficLimitsFrom } from '../../src/cli/traffic-options.js';
import { InputError } from '../../src/errors.js';
import { qtm, tempDir } from '../helpers.js';

const group = fc.integer({ min: 0, max: 0xffff });
const full = (g: number[]) => g.map((x) => x.toString(16)).join(':');
/** The address as a client shows it: node's canonical (compressed) form. */
const canonical = (g: number[]) => new URL(`http://[${full(g)}]/`).hostname.slice(1, -1);

test('clientKey: an IPv4 address is itself, an IPv4-mapped one its IPv4 address, an IPv6 one its /64, in any spelling', () => {
  assert.equal(clientKey('203.0.113.7'), '203.0.113.7');
  assert.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:0DB8:0001:0002:0:0:0:9'), '2001:db8:1:2::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey(undefined), 'unknown');
  assert.equal(clientKey('not an address'), 'unknown');
  fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.array(group, { minLength: 4, maxLength: 4 }), (g, host) => {
    // Same /64, any host part, full or compressed spelling: one client.
    const other = [...g.slice(0, 4), ...host];
    assert.equal(clientKey(canonical(g)), clientKey(full(other)));
    assert.equal(clientKey(full(g)), `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`);
  }));
  fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.array(group, { minLength: 8, maxLength: 8 }), (a, b) => {
    // Another /64: another client.
    fc.pre(a.slice(0, 4).join() !== b.slice(0, 4).join());
    assert.notEqual(clientKey(canonical(a)), clientKey(canonical(b)));
  }));
});

test('RateLimiter: a full burst, then the seconds to wait (at least 1), then served again once they pass', () => {
  let now = 0;
  const r = new RateLimiter({ perSecond: 2, burst: 5 }, () => now);
  for (let i = 0; i < 5; i++) assert.equal(r.take('a'), 0);
  assert.equal(r.take('a'), 1);
  assert.equal(r.take('b'), 0, 'another client has its own bucket');
  now += 400;
  assert.equal(r.take('a'), 1, '0.4 s at 2 a second is 0.8 of a token: not yet');
  now += 100;
  assert.equal(r.take('a'), 0, 'a refusal costs nothing: at 0.5 s the token is there');
  assert.equal(r.take('a'), 1);
  const slow = new RateLimiter({ perSecond: 0.1, burst: 1 }, () => now);
  assert.equal(slow.take('c'), 0);
  assert.equal(slow.take('c'), 10, 'Retry-After is rounded up to whole seconds');
});

test('RateLimiter: the table never holds more than its bound, however many clients come, and a client kept busy stays limited', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 50 })), { maxLength: 3000 }), (ops) => {
    let now = 0;
    const r = new RateLimiter({ perSecond: 1, burst: 3 }, () => now, 100);
    for (const [key, dt] of ops) {
      now += dt;
      const wait = r.take(String(key));
      assert.ok(wait === 0 || (Number.isInteger(wait) && wait >= 1));
      assert.ok(r.size <= 100, `${r.size} buckets`);
    }
  }));
  let now = 0;
  const r = new RateLimiter({ perSecond: 1, burst: 3 }, () => now, 100);
  for (let i = 0; i < 3; i++) r.take('flooder');
  for (let i = 0; i < 10_000; i++) {
    now += 0.01;
    r.take(`passer-by ${i}`);
    if (i % 50 === 0) assert.ok(r.take('flooder') > 0, `the flooder was forgotten after ${i} other clients`);
  }
  assert.ok(r.size <= 100);
});

test('trafficLimits: the defaults, and a headers timeout over the request timeout is refused', () => {
  const l = trafficLimits();
  assert.deepEqual({ ...l, maxConnections: undefined }, { ...DEFAULT_LIMITS, maxConnections: undefined });
  assert.ok(l.maxConnections >= 16 && l.maxConnections <= 4096);
  assert.throws(() => trafficLimits({ headersTimeoutMs: 40_000 }), /headers timeout \(40 s\) is longer than the whole-request timeout \(30 s\)/);
  assert.throws(() => trafficLimits({ maxConnectionsPerClient: 0 }), InputError);
});

test('flags and config keys: seconds become milliseconds, --rate N is bursts of 10 N, a bad config value is named', () => {
  assert.deepEqual(trafficLimitsFrom({ headersTimeout: 2.5, rate: 7 }), { headersTimeoutMs: 2500, rate: { perSecond: 7, burst: 70 } });
  assert.deepEqual(trafficLimitsFrom({ idleTimeout: 3 }, { idleTimeout: 9, maxConnectionsPerClient: 8 }), { idleTimeoutMs: 3000, maxConnectionsPerClient: 8 }, 'a flag wins over the config file');
  assert.throws(() => trafficLimitsFrom({}, { rate: 'fast' }, 'server.json'), /server\.json: "rate" \(--rate\): expected a whole number/);
  assert.throws(() => trafficLimitsFrom({}, { requestTimeout: '30' }, 'server.json'), /server\.json: "requestTimeout" \(--request-timeout\): expected a number/);
  assert.throws(() => trafficLimitsFrom({}, { handshakeTimeout: -1 }, 'server.json'), /"handshakeTimeout"/);
});

test('qtm server start and qtm ttp start refuse a bad limit with exit 2 and one line naming it, before opening anything', (t) => {
  const dir = tempDir(t);
  const config = join(dir, 'server.json');
  writeFileSync(config, JSON.stringify({ tls: 'keys/tls', signer: 'keys/receipts', sam: 'shop.sam', trust: 'ca.pem', store: join(dir, 'store'), maxConnectionsPerClient: 0 }));
  const a = qtm(['server', 'start', '--config', config]);
  assert.equal(a.status, 2, a.stderr);
  assert.match(a.stderr, /^qtm: error: the config file .*server\.json: "maxConnectionsPerClient" \(--max-connections-per-client\): expected a whole number from 1 to 1000000/);
  const b = qtm(['server', 'start', '--config', config, '--max-connections-per-client', '4', '--headers-timeout', '31']);
  assert.equal(b.status, 2, b.stderr);
  assert.match(b.stderr, /headers timeout \(31 s\) is longer than the whole-request timeout \(30 s\).*--request-timeout/);
  const c = qtm(['ttp', 'start', '--identity', 'x', '--tls', 'x', '--trust', 'x', '--store', join(dir, 'ttp'), '--idle-timeout', '0']);
  assert.equal(c.status, 2, c.stderr);
  assert.match(c.stderr, /--idle-timeout.*expected seconds/);
  assert.equal(qtm(['ttp', 'start', '--help']).stdout.includes('--max-connections-per-client'), true);
});
