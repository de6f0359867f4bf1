/**
 * A wrong method on a known path is 405 with an Allow header and the usual JSON error
 * (E_METHOD_NOT_ALLOWED); a path nobody serves stays 404. Over real HTTPS against a real server
 * with a transparency log (its /log/ paths are GET only). The TTP's paths are in
 * test/attack/bad-traffic.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { decodeSkey, ed25519NoteSigner, encodeSkey } from '../../src/tlog/note.js';
import { makeWorld, newCard, transact, type World } from './env.js';

let world: World;
let agent: Agent;

before(async () => {
  const signer = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 5) })));
  world = await makeWorld(({ dir }) => ({ transparency: { dir: join(dir, 'tlog'), signer } }));
  await transact(world, await newCard(world)); // a leaf, so /log/checkpoint and a tile exist
  agent = new Agent({ keepAlive: true, maxSockets: 1, ca: world.ca.certificate.toString(), minVersion: 'TLSv1.3' });
});

after(async () => {
  agent?.destroy();
  await world?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request on the kept-alive connection. */
function send(method: string, path: string, body?: string): Promise<Answer> {
  const url = new URL(path, world.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('attack: a wrong method on a known path is 405 with Allow and a JSON error naming the methods; the connection stays open', async () => {
  const cases: [method: string, path: string, allow: string][] = [
    ['GET', '/transactions', 'POST'],
    ['GET', '/orders', 'POST'],
    ['DELETE', '/orders', 'POST'],
    ['PUT', '/orders', 'POST'],
    ['DELETE', '/health', 'GET'],
    ['POST', '/health', 'GET'],
    ['POST', '/orders/20261202-abc', 'GET'],
    ['POST', '/transactions/pending', 'GET'],
    ['DELETE', '/transactions/7', 'GET'],
    ['POST', '/transactions/7', 'GET'],
    ['GET', '/transactions/7/confirm', 'POST'],
    ['DELETE', '/transactions/7/ack', 'POST'],
    ['PATCH', '/auth/challenge', 'POST'],
    ['OPTIONS', '/auth/response', 'POST'],
    ['POST', '/log/checkpoint', 'GET'],
    ['DELETE', '/log/tile/0/000', 'GET'],
  ];
  for (const [method, path, allow] of cases) {
    const a = await send(method, path, method === 'GET' || method === 'DELETE' ? undefined : '{}');
    const what = `${method} ${path}`;
    assert.equal(a.status, 405, `${what}: ${a.text}`);
    assert.equal(a.headers.allow, allow, what);
    assert.match(String(a.headers['content-type']), /^application\/json/, what);
    assert.deepEqual(JSON.parse(a.text), { error: { code: 'E_METHOD_NOT_ALLOWED', message: `${path} does not take ${method}: use ${allow}` } }, what);
    assert.notEqual(a.headers.connection, 'close', `${what}: the connection is kept`);
  }
  // HEAD has no body, but the same status and Allow.
  const head = await send('HEAD', '/transactions/7/confirm');
  assert.equal(head.status, 405);
  assert.equal(head.headers.allow, 'POST');
  // The right methods still work on the same connection.
  assert.equal((await send('GET', '/health')).status, 200);
  assert.equal((await send('GET', '/log/checkpoint')).status, 200);
  assert.equal((await send('GET', '/transactions/7')).status, 401, 'GET /transactions/7 is a route: it needs the card login');
});

test('a path nobody serves stays 404 E_NOT_FOUND, whatever the method', async () => {
  for (const [method, path] of [['GET', '/nothing'], ['DELETE', '/nothing'], ['POST', '/transactions/abc'], ['DELETE', '/log/../store/LOCK'], ['POST', '/log/entries.bin'], ['GET', '/log/tile/0/0.p/1']]) {
    const a = await send(method!, path!);
    assert.equal(a.status, 404, `${method} ${path}: ${a.text}`);
    assert.equal(a.headers.allow, undefined);
    assert.equal(JSON.parse(a.text).error.code, 'E_NOT_FOUND');
  }
  // No log directory is served without --log: /log/ is then no known path.
  const plain = await makeWorld();
  try {
    const url = new URL('/log/checkpoint', plain.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', ca: plain.ca.certificate.toString() }, (res) => { res.resume(); resolve(res.statusCode!); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 404);
  } finally {
    await plain.close();
  }
});
