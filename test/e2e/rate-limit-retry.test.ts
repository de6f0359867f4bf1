/**
 * The client and HTTP 429 (src/http/client.ts, src/client/api.ts): the server's Retry-After is
 * waited out, a bounded number of times and seconds, only for requests that may be repeated, and
 * only on the connection a card login needs; otherwise E_RATE_LIMITED at once, naming the wait.
 * `qtm sign` through the real CLI against a real server with a tiny anonymous rate; the rules
 * against the real HTTPS layer (createJsonHttpsServer) answering 429 as told.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { createJsonHttpsServer, HttpError, type Routed, type TrafficLimits } from '../../src/http/server.js';
import { JsonHttpsClient, parseRetryAfter, type ClientOptions } from '../../src/http/client.js';
import { QtmApi, RateLimitedError, retryRule, type RateLimitWait } from '../../src/client/api.js';
import { PATHS } from '../../src/protocol/routes.js';
import { qtmAsync } from '../helpers.js';
import { makeWorld, newCard, PIN, type World } from './env.js';

let world: World;
const caPem = () => world.ca.certificate.toString();

before(async () => {
  // One request every 2 s before a card login, no burst: every transaction trips it.
  world = await makeWorld({ anonymousRate: { perSecond: 0.5, burst: 1 } });
});

after(async () => {
  await world?.close();
});

function sign(w: World, card: string, extra: string[] = []) {
  return qtmAsync(['sign', '--server', w.url, '--trust', join(w.dir, 'ca', 'ca.pem'), '--card', card, '--archive', join(w.dir, 'archive'),
    '--items', 'PAPER-A4:1', '--yes', ...extra], { env: { HOME: w.dir, QTM_PIN: PIN } });
}

/** Spends the address's anonymous token, so the next anonymous request is refused. */
async function spendToken(w: World): Promise<void> {
  const api = new QtmApi(w.url, w.ca.certificate.toString(), { retry: { maxRetries: 0 } });
  try {
    await api.call('POST', PATHS.orders, { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }).catch(() => undefined);
  } finally {
    api.close();
  }
}

test('qtm sign waits out the server\'s 429 and Retry-After (a tiny anonymous rate), says so on stderr, and signs', async () => {
  const card = await newCard(world);
  await spendToken(world);
  const r = await sign(world, card.file, ['--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).transactionId >= 1);
  // Each wait is one line on stderr, with the server's words and what is sent again.
  const waits = r.stderr.split('\n').filter((l) => l.includes('server busy'));
  assert.ok(waits.length >= 1, r.stderr);
  for (const w of waits) {
    assert.match(w, /^ {2}server busy \(429 E_RATE_LIMITED: too many requests from 127\.0\.0\.1 without a card login \(at most 0\.5 a second, bursts of 1\): retry in ([12]) s\): waiting \1 s, then POST \/(orders|auth\/challenge|auth\/response) again \(retry [1-3] of 3\)$/);
  }
  // The server saw the 429s, and the requests that came after them.
  const limited = world.logs.filter((l) => l.status === 429);
  assert.ok(limited.length >= 1 && limited.length === waits.length, `${limited.length} 429s, ${waits.length} waits`);
  assert.ok(world.logs.some((l) => l.path === '/orders' && l.status === 201));
});

test('attack: a Retry-After over the cap (30 s) is not waited: qtm sign fails at once, E_RATE_LIMITED naming the wait, exit 1, nothing signed', async () => {
  // A server that lets one anonymous request through every 100 s.
  const slow = await makeWorld({ anonymousRate: { perSecond: 0.01, burst: 1 } });
  try {
    const card = await newCard(slow);
    await spendToken(slow);
    const started = Date.now();
    const r = await sign(slow, card.file);
    const took = Date.now() - started;
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^qtm: error: fetch the concept order: server refused \(429 E_RATE_LIMITED\): too many requests from 127\.0\.0\.1 without a card login \(at most 0\.01 a second, bursts of 1\): retry in (\d+) s; the server asks for a wait of \1 s, over the 30 s this client waits for one request \(try again in \1 s or later\)\n$/);
    assert.ok(Number(/retry in (\d+) s/.exec(r.stderr)![1]) > 30);
    assert.doesNotMatch(r.stderr, /waiting/, 'no wait was started');
    // Well under the 30 s it would have been allowed to wait, let alone the 100 s asked for.
    assert.ok(took < 25_000, `qtm sign took ${took} ms`);
    assert.ok(!slow.logs.some((l) => typeof l.path === 'string' && l.path.startsWith('/transactions')), 'nothing was prepared');
    // --json: the same error for scripts, with its code.
    const j = await sign(slow, card.file, ['--json']);
    assert.equal(j.status, 1);
    const e = JSON.parse(j.stdout).error;
    assert.equal(e.code, 'E_RATE_LIMITED');
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /the server asks for a wait of \d+ s, over the 30 s/);
  } finally {
    await slow.close();
  }
});

/** The real HTTPS layer with a route that answers as `answer` says; the requests it saw. */
async function stubServer(t: { after(fn: () => Promise<void>): void }, answer: (req: IncomingMessage, n: number) => Routed, limits: Partial<TrafficLimits> = {}) {
  const seen: string[] = [];
  const server = createJsonHttpsServer({
    tls: { privateKey: world.tls.privateKey, certificates: [world.tls.certificate] },
    log: () => undefined,
    limits,
    route: async (req) => {
      seen.push(`${req.method} ${req.url}`);
      for await (const chunk of req) void chunk; // read the body, so the connection is kept
      return answer(req, seen.length);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `https://localhost:${(server.address() as AddressInfo).port}`, seen };
}

const busy = (headers: Record<string, string | number>) => { throw new HttpError('E_RATE_LIMITED', 'busy', headers); };

async function refusal(p: Promise<unknown>): Promise<RateLimitedError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof RateLimitedError, String(err));
  assert.equal(err.code, 'E_RATE_LIMITED');
  assert.equal(err.exitCode, 1);
  assert.equal(err.status, 429);
  return err;
}

function client(url: string, kind: 'qtm' | 'plain', retry: ClientOptions['retry'] = {}) {
  const waits: RateLimitWait[] = [];
  const options = { retry: { ...retry, onWait: (w: RateLimitWait) => waits.push(w) } };
  const c = kind === 'qtm' ? new QtmApi(url, caPem(), options) : new JsonHttpsClient(url, caPem(), options);
  return { c, waits };
}

test('retries are bounded: 3 by default, then E_RATE_LIMITED saying so; a past HTTP-date is a wait of 0 and the retry succeeds', async (t) => {
  const always = await stubServer(t, () => busy({ 'retry-after': 0 }));
  const a = client(always.url, 'qtm');
  const err = await refusal(a.c.call('GET', PATHS.health));
  a.c.close();
  assert.match(err.message, /^server refused \(429 E_RATE_LIMITED\): busy; still refused after 3 retries \(0 s waited\)$/);
  assert.equal(always.seen.length, 4, 'the request and 3 retries');
  assert.deepEqual(a.waits.map((w) => [w.retry, w.seconds, w.maxRetries, w.path, w.message]), [[1, 0, 3, '/health', 'busy'], [2, 0, 3, '/health', 'busy'], [3, 0, 3, '/health', 'busy']]);

  const once = await stubServer(t, (_req, n) => (n === 1 ? busy({ 'retry-after': new Date(0).toUTCString() }) : { body: { ok: true } }));
  const b = client(once.url, 'qtm');
  assert.deepEqual(await b.c.call('POST', PATHS.orders, { items: [] }), { ok: true });
  b.c.close();
  assert.deepEqual(once.seen, ['POST /orders', 'POST /orders']);
  assert.equal(b.waits.length, 1);
});

test('attack: a 429 naming no wait, or garbage, is not waited; a request not known to be repeatable (any POST of a plain client, an unknown path) is not repeated', async (t) => {
  for (const headers of [{}, { 'retry-after': 'soon' }, { 'retry-after': '-1' }, { 'retry-after': '1e3' }, { 'retry-after': '99999999999' }] as Record<string, string>[]) {
    const s = await stubServer(t, () => busy(headers));
    const c = client(s.url, 'qtm');
    const err = await refusal(c.c.call('GET', PATHS.health));
    c.c.close();
    assert.match(err.message, /busy; the server named no wait \(Retry-After\)$/, JSON.stringify(headers));
    assert.equal(err.retryAfterSeconds, undefined);
    assert.equal(s.seen.length, 1);
  }
  const s = await stubServer(t, () => busy({ 'retry-after': 1 }));
  const plain = client(s.url, 'plain');
  const err = await refusal(plain.c.call('POST', '/v1/abort', {}));
  plain.c.close();
  assert.match(err.message, /busy; POST \/v1\/abort is not sent again on its own \(repeating it is not known to be harmless\)$/);
  assert.equal(err.hint, 'try again in 1 s or later');
  const qtm = client(s.url, 'qtm');
  await refusal(qtm.c.call('POST', '/admin', {}));
  qtm.c.close();
  assert.equal(s.seen.length, 2, 'each was sent once');
  assert.equal(plain.waits.length + qtm.waits.length, 0);
});

test('attack: a 429 whose message carries terminal escapes or line breaks is printed as one plain line', async (t) => {
  const s = await stubServer(t, () => { throw new HttpError('E_RATE_LIMITED', `busy\x1b]0;pwned\x07\n\rqtm: signed ${'x'.repeat(2400)}`, { 'retry-after': 0 }); });
  const c = client(s.url, 'qtm', { maxRetries: 1 });
  const err = await refusal(c.c.call('GET', PATHS.health));
  c.c.close();
  for (const text of [err.message, c.waits[0]!.message]) {
    assert.doesNotMatch(text, /[\x00-\x1f\x7f]/);
    assert.match(text, /busy\?\]0;pwned\?\?\?qtm: signed x+…/);
  }
});

test('attack: the total wait is capped (a server asking for 1 s again and again); a request that needs the card login is not repeated on a new connection', async (t) => {
  const again = await stubServer(t, () => busy({ 'retry-after': 1 }));
  const a = client(again.url, 'qtm', { maxWaitSeconds: 1 });
  const err = await refusal(a.c.call('GET', PATHS.health));
  a.c.close();
  assert.match(err.message, /busy; another 1 s would make 2 s, over the 1 s this client waits for one request$/);
  assert.equal(again.seen.length, 2);

  // The answer closes the connection: the card's login went with it.
  const closing = await stubServer(t, () => busy({ 'retry-after': 1, connection: 'close' }));
  const b = client(closing.url, 'qtm');
  const closed = await refusal(b.c.call('POST', PATHS.confirm(7), {}));
  b.c.close();
  assert.match(closed.message, /busy; the server closed the connection with its answer, and POST \/transactions\/7\/confirm needs that connection \(its card login\)$/);
  assert.equal(closing.seen.length, 1);
  assert.equal(b.waits.length, 0);

  // The connection idles out during the wait: a login-bound request stops; an anonymous one goes on a new connection.
  const idle = await stubServer(t, (_req, n) => (n <= 2 ? busy({ 'retry-after': 1 }) : { body: { ok: true } }), { idleTimeoutMs: 200 });
  const c = client(idle.url, 'qtm');
  const gone = await refusal(c.c.call('POST', PATHS.ack(7), {}));
  assert.match(gone.message, /busy; the server closed the connection during the 1 s wait, and POST \/transactions\/7\/ack needs that connection \(its card login\)$/);
  assert.deepEqual(await c.c.call('POST', PATHS.orders, {}), { ok: true });
  c.c.close();
  assert.deepEqual(idle.seen, ['POST /transactions/7/ack', 'POST /orders', 'POST /orders']);
});

test('retry rules: every route of the API has one; GETs and anonymous requests on any connection, logged-in ones on theirs; anything else never', () => {
  assert.equal(retryRule('GET', PATHS.health), 'any-connection');
  assert.equal(retryRule('POST', PATHS.orders), 'any-connection');
  assert.equal(retryRule('POST', PATHS.authChallenge), 'any-connection');
  assert.equal(retryRule('POST', PATHS.authResponse), 'same-connection');
  for (const p of [PATHS.transactions, PATHS.escrow(1), PATHS.confirm(1), PATHS.redeliver(1), PATHS.ack(1)]) assert.equal(retryRule('POST', p), 'same-connection', p);
  for (const p of [PATHS.pending, PATHS.transaction(1)]) assert.equal(retryRule('GET', p), 'same-connection', p);
  assert.equal(retryRule('GET', `${PATHS.transaction(1)}?x=1`), 'same-connection', 'the query is not the path');
  for (const [m, p] of [['POST', '/v1/abort'], ['GET', '/orders'], ['POST', '/health'], ['DELETE', '/orders']] as const) assert.equal(retryRule(m, p), 'never', `${m} ${p}`);
});

test('Retry-After decoding (property): delay-seconds or an HTTP-date, anything else undefined, never a negative or fractional wait, never a throw', () => {
  const now = Date.UTC(2026, 0, 15, 12, 0, 0);
  assert.equal(parseRetryAfter('120', now), 120);
  assert.equal(parseRetryAfter(' 7 ', now), 7);
  assert.equal(parseRetryAfter('Thu, 15 Jan 2026 12:00:30 GMT', now), 30);
  assert.equal(parseRetryAfter('Wed, 14 Jan 2026 12:00:00 GMT', now), 0, 'a date past is no wait');
  for (const bad of [undefined, '', '1.5', '-3', '+3', '0x10', '1e3', 'soon', 'Infinity', 'NaN', '12345678901', '2026-01-15T12:00:30Z', 'Thu, 99 Foo 2026 GMT', 'Thu Jan 15 12:00:30 2026']) {
    assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  }
  fc.assert(fc.property(fc.string(), (s) => {
    const v = parseRetryAfter(s, now);
    assert.ok(v === undefined || (Number.isSafeInteger(v) && v >= 0), `${JSON.stringify(s)} -> ${v}`);
  }), { numRuns: 2000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: 9_999_999_999 }), (n) => parseRetryAfter(String(n), now) === n));
  fc.assert(fc.property(fc.integer({ min: -86_400, max: 86_400 * 365 }), (d) => parseRetryAfter(new Date(now + d * 1000).toUTCString(), now) === Math.max(0, d)));
});
