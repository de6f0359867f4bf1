/** The connection guard of the JSON-HTTPS server (server and TTP), on a real TLS listener. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { memoryCa } from '../../src/proof/sample.js';
import { createJsonHttpsServer, type TrafficLimits } from '../../src/http/server.js';

const ca = memoryCa();
const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
const caPem = ca.certificate.toString();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serve(limits: Partial<TrafficLimits>) {
  const logs: Record<string, unknown>[] = [];
  const server = createJsonHttpsServer({
    tls: { privateKey: tls.privateKey, certificates: [tls.certificate] }, log: (l) => logs.push(l), limits,
    route: async (req) => {
      const ms = Number(new URL(req.url!, 'https://x').searchParams.get('ms') ?? 0);
      await sleep(ms);
      return { body: { slept: ms } };
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { server, port, logs, async close() { server.closeAllConnections(); await new Promise((r) => server.close(r)); } };
}

function idle(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem }, () => resolve(s));
    s.once('error', reject);
  });
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const agent = new Agent({ ca: caPem });
    request({ host: '127.0.0.1', port, path, servername: 'localhost', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    }).on('error', reject).end();
  });
}

test('a request in flight longer than the idle timeout is answered; an idle connection is closed after it', async () => {
  // A connection that never sends a request is closed by the headers timeout (docs/OPERATIONS.md).
  const s = await serve({ maxConnections: 50, idleTimeoutMs: 300, headersTimeoutMs: 300 });
  try {
    const quiet = await idle(s.port);
    quiet.resume(); // read the 408 the server answers with, so its close reaches us
    const closed = new Promise<number>((r) => { const t0 = Date.now(); quiet.once('close', () => r(Date.now() - t0)); });
    assert.equal(await get(s.port, '/?ms=1500'), 200, 'busy for 5 idle timeouts, not cut');
    assert.ok((await closed) < 1500, 'the idle one was closed well before');
  } finally {
    await s.close();
  }
});

test('at the cap a new client gets in: the connection that never sent a request is closed first', async () => {
  const s = await serve({ maxConnections: 3, idleTimeoutMs: 60_000 });
  try {
    const slow = get(s.port, '/?ms=800'); // busy: never a victim
    await sleep(200);
    const a = await idle(s.port);
    const b = await idle(s.port);
    const aClosed = new Promise((r) => a.once('close', r));
    assert.equal(await get(s.port, '/'), 200, 'the new client is served');
    await aClosed; // the oldest idle, never-used connection made room
    assert.equal(b.destroyed, false);
    assert.equal(await slow, 200);
    assert.ok(s.logs.some((l) => l.event === 'connection-cap' && l.cap === 3 && l.closed === 'idle, never used'));
    b.destroy();
  } finally {
    await s.close();
  }
});
