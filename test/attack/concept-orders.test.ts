/**
 * Issue 18, section 5: anyone could evict other customers' unsigned orders. `POST /orders` needs
 * no login and the server kept one table of 10,000 concept orders for everyone. Mounted against a
 * real `qtm server start` process over real HTTPS: 10,001 anonymous orders, then the customer
 * prepares hers; forged and altered order IDs at prepare.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { QtmApi, ServerError } from '../../src/client/api.js';
import * as M from '../../src/protocol/messages.js';
import { authenticationData } from '../../src/protocol/card-authentication.js';
import { orderIdFor } from '../../src/server/concept-orders.js';
import { qtm } from '../helpers.js';
import { startServerProcess, type ServerProcess } from '../e2e/server-process.js';

const PASS = 'order attack passphrase';
const PIN = '123456';
const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS, QTM_PIN: PIN, QTM_PUK: '12345678' };
let dir: string;
let server: ServerProcess;
const path = (...p: string[]) => join(dir, ...p);
const trust = () => readFileSync(path('ca', 'ca.pem'), 'utf8');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function login(): Promise<QtmApi> {
  const card = new CardClient(InProcessTransport.forFile(path('alice.card.json')));
  await card.select();
  await card.verifyPin(PIN);
  const api = new QtmApi(server.url, trust());
  const cert = await card.readCertificate();
  const { nonce } = await api.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
  const signature = await card.internalAuthenticate(authenticationData(api.exporter(nonce), nonce));
  await api.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert.toString()], nonce, signature }));
  return api;
}

const prepare = (api: QtmApi, orderId: string, content: Buffer) =>
  api.call('POST', '/transactions', { orderId, content: content.toString('base64') }, M.decodePrepared);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-orders-'));
  const ca = initCa(path('ca'), { profile: 'v2', subject: 'CN=Orders Test CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Orders Shop receipts' });
  writeIdentity(path('tls'), [tls.certificate], tls.privateKey, PASS);
  writeIdentity(path('receipts'), [signer.certificate], signer.privateKey, PASS);
  initSam(path('shop.sam'), PASS);
  const issue = qtm(['card', 'issue', '--ca', path('ca'), '--sam', path('shop.sam'), '--holder', 'CN=Alice Orders', '--card', path('alice.card.json')], { env });
  assert.equal(issue.status, 0, issue.stderr);
  server = await startServerProcess(['--tls', path('tls'), '--signer', path('receipts'), '--sam', path('shop.sam'), '--trust', path('ca', 'ca.pem'), '--store', path('store')], env);
});

after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('10,001 anonymous order requests do not make a customer\'s order vanish; the flood is rate-limited (429 E_RATE_LIMITED)', { timeout: 600_000 }, async () => {
  const shopper = new QtmApi(server.url, trust());
  const mine = await shopper.call('POST', '/orders', { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, M.decodeConceptOrder);
  shopper.close();
  assert.match(mine.orderId, /^[\w-]{48}$/, '16 random bytes, the expiry and a 16-byte MAC');

  const counts = { composed: 0, limited: 0 };
  const ids = new Set<string>();
  let sent = 0;
  const flood = async () => {
    // The flood does not wait out its 429s (a client would: test/e2e/rate-limit-retry.test.ts).
    const api = new QtmApi(server.url, trust(), { retry: { maxRetries: 0 } });
    try {
      while (sent < 10_001) {
        sent++;
        try {
          ids.add((await api.call('POST', '/orders', { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }, M.decodeConceptOrder)).orderId);
          counts.composed++;
        } catch (err) {
          assert.ok(err instanceof ServerError && err.status === 429 && err.serverCode === 'E_RATE_LIMITED', String(err));
          counts.limited++;
        }
      }
    } finally {
      api.close();
    }
  };
  await Promise.all(Array.from({ length: 16 }, flood));
  assert.equal(counts.composed + counts.limited, 10_001);
  assert.ok(counts.limited > 0, 'the flood from one address is limited');
  assert.equal(ids.size, counts.composed, 'every order ID is new');

  await sleep(1000); // the address's bucket refills (20 a second): Alice shares it with the flood here
  const api = await login();
  try {
    const prepared = await prepare(api, mine.orderId, mine.content);
    assert.ok(prepared.content.equals(mine.content), 'her order is still there, exactly as she saw it');
    // A retried prepare gets the same transaction; the order cannot become a second one.
    assert.equal((await prepare(api, mine.orderId, mine.content)).transactionId, prepared.transactionId);
  } finally {
    api.close();
  }
});

test('order IDs forged, with the content changed, with the expiry moved, or expired are refused at prepare; nothing is stored', async () => {
  const shopper = new QtmApi(server.url, trust());
  const order = await shopper.call('POST', '/orders', { items: [{ sku: 'NOTEBOOK', quantity: 2 }] }, M.decodeConceptOrder);
  shopper.close();
  await sleep(200);
  const api = await login();
  const refused = (status: number, code: string) => (e: unknown) => e instanceof ServerError && e.status === status && e.serverCode === code;
  try {
    const before = qtm(['server', 'audit', '--store', path('store'), '--signer-cert', path('receipts.pem'), '--trust', path('ca', 'ca.pem'), '--json']);
    const stored = JSON.parse(before.stdout).total;
    // Made up: 48 characters of the right alphabet, no MAC under this server's key.
    await assert.rejects(prepare(api, randomBytes(36).toString('base64url'), order.content), refused(403, 'E_BAD_ORDER'));
    // Not an order ID at all (the old 32-bit form).
    await assert.rejects(prepare(api, '20261202-1a2b3c4d', order.content), refused(404, 'E_NO_ORDER'));
    // The genuine ID with one notebook instead of two.
    const cheaper = Buffer.from(order.content.toString('utf8').replace('  2 x ', '  1 x '), 'utf8');
    assert.ok(!cheaper.equals(order.content));
    await assert.rejects(prepare(api, order.orderId, cheaper), refused(403, 'E_BAD_ORDER'));
    // The genuine ID with its expiry pushed a year on.
    const raw = Buffer.from(order.orderId, 'base64url');
    raw.writeUInt32BE(raw.readUInt32BE(16) + 365 * 86400, 16);
    await assert.rejects(prepare(api, raw.toString('base64url'), order.content), refused(403, 'E_BAD_ORDER'));
    // A well-made order under the server's own key whose expiry has passed (the key read from the store, as an insider).
    const key = Buffer.from(readFileSync(path('store', 'order-key'), 'utf8').trim(), 'hex');
    const expired = orderIdFor(key, randomBytes(16), Math.floor(Date.now() / 1000) - 1, order.content);
    await assert.rejects(prepare(api, expired, order.content), refused(404, 'E_NO_ORDER'));
    // Another server's order key.
    await assert.rejects(prepare(api, orderIdFor(randomBytes(32), randomBytes(16), Math.floor(Date.now() / 1000) + 600, order.content), order.content), refused(403, 'E_BAD_ORDER'));
    const after = qtm(['server', 'audit', '--store', path('store'), '--signer-cert', path('receipts.pem'), '--trust', path('ca', 'ca.pem'), '--json']);
    assert.equal(JSON.parse(after.stdout).total, stored, 'no refused prepare stored anything');
    assert.ok((await prepare(api, order.orderId, order.content)).content.equals(order.content), 'the genuine order still prepares');
  } finally {
    api.close();
  }
});

test('qtm sign --order FILE: an order handed over whole is signed; the same file with its content changed is refused at prepare (exit 1), nothing is written to the card', async () => {
  const shopper = new QtmApi(server.url, trust());
  const order = await shopper.call('POST', '/orders', { items: [{ sku: 'NOTEBOOK', quantity: 2 }] });
  shopper.close();
  const genuine = order as { orderId: string; content: string };
  const changed = { ...genuine, content: Buffer.from(Buffer.from(genuine.content, 'base64').toString('utf8').replace('  2 x ', '  1 x '), 'utf8').toString('base64') };
  assert.notEqual(changed.content, genuine.content);
  writeFileSync(path('changed.order.json'), JSON.stringify(changed));
  writeFileSync(path('genuine.order.json'), JSON.stringify(genuine));
  await sleep(500);
  const client = ['--server', server.url, '--trust', path('ca', 'ca.pem'), '--card', path('alice.card.json'), '--archive', path('archive'), '--yes', '--json'];
  const slotsBefore = qtm(['receipts', 'list', '--card', path('alice.card.json'), '--json']).stdout;
  const bad = qtm(['sign', ...client, '--order', path('changed.order.json')], { env });
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /E_BAD_ORDER|does not match its content/);
  assert.equal(qtm(['receipts', 'list', '--card', path('alice.card.json'), '--json']).stdout, slotsBefore, 'nothing was written to the card');
  const good = qtm(['sign', ...client, '--order', path('genuine.order.json')], { env });
  assert.equal(good.status, 0, good.stderr);
  assert.ok(JSON.parse(good.stdout).transactionId > 0);
});
