/**
 * Attacks on the HTTP bodies and connections of `qtm server start` and `qtm ttp start`, each a
 * real process, over real HTTPS (issue 17, sections 3 and 4): duplicate keys, prototype names,
 * malformed request targets and PEMs must be a 400 with a named error code (never a 500), and a
 * flood of idle TLS connections against a server at `ulimit -n 256` must not stop `qtm sign`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { Agent, createServer as createHttpsServer, request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam } from '../../src/sam/sam.js';
import { QTM_BIN, qtm, qtmAsync } from '../helpers.js';
import { startListeningProcess, type ServerProcess } from '../e2e/server-process.js';

const PASS = 'hostile http passphrase';
const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS, QTM_PIN: '123456', QTM_PUK: '12345678' };
let dir: string;
let caPem: string;
let server: ServerProcess;
let ttp: ServerProcess;
let tlsIdentity: ReturnType<typeof issueKeyAndCertificate>;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-hostile-http-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Hostile CA', passphrase: PASS });
  caPem = ca.certificate.toString();
  const identity = (name: string, role: 'server' | 'signer' | 'ttp', subject: string) => {
    const i = issueKeyAndCertificate(ca, { role, subject });
    writeIdentity(join(dir, name), [i.certificate], i.privateKey, PASS);
    return i;
  };
  tlsIdentity = identity('tls', 'server', 'CN=localhost');
  identity('receipts', 'signer', 'CN=Hostile Shop receipts');
  identity('ttp', 'ttp', 'CN=Hostile TTP');
  identity('ttp-tls', 'server', 'CN=localhost');
  initSam(join(dir, 'shop.sam'), PASS);
  const issue = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice Hostile', '--card', join(dir, 'alice.card.json')], { env });
  assert.equal(issue.status, 0, issue.stderr);
  server = await startListeningProcess(['server', 'start', '--port', '0', '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'),
    '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store')], env, { fdLimit: 256 });
  ttp = await startListeningProcess(['ttp', 'start', '--port', '0', '--identity', join(dir, 'ttp'), '--tls', join(dir, 'ttp-tls'), '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'ttp-store')], env);
});

after(async () => {
  await server?.stop();
  await ttp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/** One connection for a sequence of raw requests (the card authentication is bound to it). */
function connection(base: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem, minVersion: 'TLSv1.3' });
  const send = (method: string, path: string, body?: string): Promise<Answer> => new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, method, path, agent, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(body);
  });
  return { send, close: () => agent.destroy() };
}

async function once(base: string, method: string, path: string, body?: string): Promise<Answer> {
  const c = connection(base);
  try {
    return await c.send(method, path, body);
  } finally {
    c.close();
  }
}

const ITEMS = '[{"sku":"PAPER-A4","quantity":1}]';

test('attack: a request target that is no URL (GET //[) is 400 E_BAD_URL at the server and at the TTP, not 500', async () => {
  for (const p of [server, ttp]) {
    const a = await once(p.url, 'GET', '//[');
    assert.equal(a.status, 400);
    assert.equal(a.json.error?.code, 'E_BAD_URL');
    assert.doesNotMatch(JSON.stringify(a.json), /at .*\.js|stack/i);
  }
  assert.doesNotMatch(server.log() + ttp.log(), /E_INTERNAL/);
});

test('attack: an unparseable PEM in /auth/response is 400 E_DECODE naming the certificate, not 500', async () => {
  const c = connection(server.url);
  try {
    const { json } = await c.send('POST', '/auth/challenge', '{}');
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from('not DER at all').toString('base64')}\n-----END CERTIFICATE-----\n`;
    const a = await c.send('POST', '/auth/response', JSON.stringify({ certificates: [pem], nonce: json.nonce, signature: 'AAAA' }));
    assert.equal(a.status, 400, JSON.stringify(a.json));
    assert.equal(a.json.error?.code, 'E_DECODE');
    assert.match(a.json.error!.message, /auth response: certificates\[0\] is not an X\.509 certificate/);
  } finally {
    c.close();
  }
  const t = await once(ttp.url, 'POST', '/v1/abort', JSON.stringify({ header: 'AAAA', deadline: 1, serverCertificates: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], cardCertificates: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], proof: 'AAAA' }));
  assert.equal(t.status, 400);
  assert.match(t.json.error!.message, /serverCertificates holds a certificate that does not parse/);
  assert.doesNotMatch(server.log() + ttp.log(), /E_INTERNAL/);
});

test('attack: a duplicated key in an HTTP body is 400 E_JSON naming it, at the server and at the TTP', async () => {
  const dup = await once(server.url, 'POST', '/orders', `{"items":[{"sku":"CAVIAR","quantity":1}],"items":${ITEMS}}`);
  assert.equal(dup.status, 400);
  assert.equal(dup.json.error?.code, 'E_JSON');
  assert.match(dup.json.error!.message, /duplicate key "items" in the top-level object/);
  const nested = await once(server.url, 'POST', '/orders', '{"items":[{"sku":"PAPER-A4","quantity":1,"quantity":999}]}');
  assert.equal(nested.status, 400);
  assert.match(nested.json.error!.message, /duplicate key "quantity" in "items\[0\]"/);
  const t = await once(ttp.url, 'POST', '/v1/abort', '{"header":"AAAA","\\u0068eader":"AAAA"}');
  assert.equal(t.status, 400);
  assert.equal(t.json.error?.code, 'E_JSON');
  assert.match(t.json.error!.message, /duplicate key "header"/);
  const ok = await once(server.url, 'POST', '/orders', `{"items":${ITEMS}}`);
  assert.equal(ok.status, 201, 'the same body without the duplicate is served');
});

test('attack: prototype names and unknown nested fields get past no decoder: 400 E_DECODE naming the field', async () => {
  for (const [body, field] of [
    [`{"items":${ITEMS},"constructor":1}`, 'constructor'],
    [`{"items":${ITEMS},"__proto__":{}}`, '__proto__'],
    [`{"items":${ITEMS},"toString":"x"}`, 'toString'],
    ['{"items":[{"sku":"PAPER-A4","quantity":1,"constructor":{}}]}', 'items[0].constructor'],
  ] as const) {
    const a = await once(server.url, 'POST', '/orders', body);
    assert.equal(a.status, 400, `${body}: ${JSON.stringify(a.json)}`);
    assert.equal(a.json.error?.code, 'E_DECODE');
    assert.equal(a.json.error?.message, `order request: unknown field "${field}"`);
  }
  const c = connection(server.url);
  try {
    const { json } = await c.send('POST', '/auth/challenge', '{}');
    const a = await c.send('POST', '/auth/response', JSON.stringify({ certificates: ['x'], nonce: json.nonce, signature: 'AAAA', hasOwnProperty: 1 }));
    assert.equal(a.status, 400);
    assert.equal(a.json.error?.message, 'auth response: unknown field "hasOwnProperty"');
  } finally {
    c.close();
  }
  const t = await once(ttp.url, 'POST', '/v1/abort', '{"constructor":{}}');
  assert.equal(t.status, 400);
  assert.match(t.json.error!.message, /unknown field "constructor"/);
});

/**
 * Opens `n` TLS connections that complete their handshake and then say nothing, from 127.0.0.2,
 * .3, ... (60 from each: under the per-client cap of 64, so that the total cap is what trips).
 */
async function idleConnections(url: string, n: number): Promise<TLSSocket[]> {
  const u = new URL(url);
  const sockets: TLSSocket[] = [];
  await Promise.all(Array.from({ length: n }, (_, i) => new Promise<void>((resolve) => {
    const from = { localAddress: `127.0.0.${2 + Math.floor(i / 60)}` }; // a socket.connect() option tls.connect passes on
    const s = connect({ host: '127.0.0.1', port: Number(u.port), ...from, servername: 'localhost', ca: caPem, minVersion: 'TLSv1.3' });
    sockets.push(s);
    s.resume(); // reads what the server says (a 408 when it times out), so its close is seen
    s.once('secureConnect', () => resolve());
    s.once('error', () => resolve());
    s.once('close', () => resolve());
  })));
  return sockets;
}

test('attack: 300 idle TLS connections against a server at ulimit -n 256: qtm sign still works, idle ones are closed', async () => {
  const sockets = await idleConnections(server.url, 300);
  await new Promise((res) => setTimeout(res, 500)); // let the server's closes arrive
  const openNow = sockets.filter((s) => !s.destroyed).length;
  const t0 = Date.now();
  const r = await qtmAsync(['sign', '--server', server.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'),
    '--archive', join(dir, 'archive'), '--items', 'PAPER-A4:1', '--yes', '--json'], { env: { HOME: dir, QTM_PIN: '123456' } });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).transactionId >= 1);
  assert.ok(openNow <= 192, `the server kept ${openNow} of 300 idle connections open (cap 192 at ulimit -n 256)`);
  assert.match(server.log(), /"event":"connection-cap","open":\d+,"cap":192,"closed":"idle, never used"/);
  // The headers timeout (10 s from the handshake: no request came) closes the rest.
  const deadline = Date.now() + 15_000;
  while (sockets.some((s) => !s.destroyed && !s.closed) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
  const left = sockets.filter((s) => !s.closed).length;
  for (const s of sockets) s.destroy();
  assert.equal(left, 0, `${left} idle connections still open ${Date.now() - t0} ms later`);
});

for (const [how, hangUp] of [
  // What a server out of file descriptors does: libuv accepts and closes at once.
  ['closes', (s: Socket) => s.destroy()],
  ['resets', (s: Socket) => s.resetAndDestroy()],
] as const) {
test(`attack: a server that ${how} every connection during the TLS handshake is reported as unreachable (exit 2), not as a trust failure`, async () => {
  const resetter = createTcpServer(hangUp);
  await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
  const port = (resetter.address() as AddressInfo).port;
  try {
    const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [QTM_BIN, 'sign', '--server', `https://localhost:${port}`, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'),
        '--archive', join(dir, 'archive'), '--items', 'PAPER-A4:1', '--yes'], { env: { PATH: process.env.PATH ?? '', HOME: dir, QTM_PIN: '123456' } });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.once('exit', (status) => resolve({ status, stderr }));
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /cannot reach https:\/\/localhost:\d+: ECONNRESET/);
    assert.doesNotMatch(r.stderr, /certificate|trust|authentication failed/i);
  } finally {
    resetter.close();
  }
});
}

test('attack: a server answer with a repeated key is refused by qtm sign before anything is shown or signed (exit 2)', async () => {
  // The server's own TLS identity: what a compromised server (or its proxy) could send.
  const shown = Buffer.from('PAPER-A4 x1 ... 1000.00 EUR\n').toString('base64');
  const genuine = Buffer.from('PAPER-A4 x1 ... 4.20 EUR\n').toString('base64');
  const hostile = createHttpsServer({ key: tlsIdentity.privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: tlsIdentity.certificate.toString(), minVersion: 'TLSv1.3' }, (req, res) => {
    req.resume();
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(`{"orderId":"o-1","content":"${shown}","content":"${genuine}"}`);
  });
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
  try {
    const port = (hostile.address() as AddressInfo).port;
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [QTM_BIN, 'sign', '--server', `https://localhost:${port}`, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'),
        '--archive', join(dir, 'archive'), '--items', 'PAPER-A4:1', '--yes', '--json'], { env: { PATH: process.env.PATH ?? '', HOME: dir, QTM_PIN: '123456' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.once('exit', (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^qtm: error: fetch the concept order: server answer: duplicate key "content" in the top-level object/);
    // --json: the failure is also on stdout, as one JSON error object (issue 14), and nothing else.
    assert.equal(JSON.parse(r.stdout).error.code, 'E_DECODE');
  } finally {
    hostile.close();
  }
});

test('attack: a server refusal carrying terminal escape sequences and line breaks reaches qtm sign\'s stderr as one printable line', async () => {
  // A hostile (or compromised) server tries to rewrite the user's terminal or forge more lines.
  const hostile = createHttpsServer({ key: tlsIdentity.privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: tlsIdentity.certificate.toString(), minVersion: 'TLSv1.3' }, (req, res) => {
    req.resume();
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'E_\u001b[2J', message: `refused\u001b]0;owned\u0007\nqtm: VALID receipt ${'x'.repeat(5000)}` } }));
  });
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
  try {
    const port = (hostile.address() as AddressInfo).port;
    const r = await qtmAsync(['sign', '--server', `https://localhost:${port}`, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'),
      '--archive', join(dir, 'archive'), '--items', 'PAPER-A4:1', '--yes'], { env: { QTM_PIN: '123456' } });
    assert.notEqual(r.status, 0);
    assert.doesNotMatch(r.stderr, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control character from the server reaches the terminal');
    const line = r.stderr.split('\n').find((l) => l.includes('refused'));
    assert.ok(line, r.stderr);
    assert.match(line, /refused\?\]0;owned\?\?qtm: VALID receipt x+…/);
    assert.ok(line.length < 2100, 'the reason is cut at 2,000 characters');
    assert.doesNotMatch(r.stderr, /^qtm: VALID/m, 'no forged line of its own');
  } finally {
    hostile.close();
  }
});
