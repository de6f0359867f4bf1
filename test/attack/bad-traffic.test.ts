/**
 * The server under bad traffic (issue 14): a real `qtm server start` and a real `qtm ttp start`,
 * each its own process, over real HTTPS, with short timeouts set by their flags
 * (docs/OPERATIONS.md has the limits and their defaults).
 *
 * - 500 idle connections (250 that never start TLS, 250 that finish the handshake and say
 *   nothing) and 500 slow ones (250 sending headers a byte at a time, 250 a body a byte at a
 *   time) are open while `qtm sign` makes a whole transaction; then each is closed, no sooner
 *   than its timeout, the TLS ones with a 408 JSON answer.
 * - A 50 MB body is refused (413) before it is read, and the connection closed.
 * - Malformed JSON, wrong types, unknown paths, wrong methods (405 with Allow), malformed HTTP,
 *   oversized headers: a 4xx JSON answer with a code, no stack trace, file path or secret.
 * - The per-client rate trips with 429 and Retry-After, and recovers after that time; the
 *   per-client connection cap closes the connection over it at once.
 * - The TTP shares the limits; the server still serves a whole transaction at the end.
 *
 * The flood needs about 1,100 file descriptors in this process and 4,096 in the server's (given
 * by `ulimit -n` through startListeningProcess). node raises its own soft limit to the hard limit
 * when it starts, so only a hard limit under that (`ulimit -Hn`) stops it: the test then fails,
 * naming the limit; it is not skipped.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { Agent, request } from 'node:https';
import { connect, type ConnectionOptions } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam } from '../../src/sam/sam.js';
import { softFileLimit } from '../../src/http/server.js';
import { qtm, qtmAsync } from '../helpers.js';
import { startListeningProcess, type ServerProcess } from '../e2e/server-process.js';

const PASS = 'bad traffic passphrase';
const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS, QTM_PIN: '123456', QTM_PUK: '12345678' };
let dir: string;
let caPem: string;
let server: ServerProcess;
let ttp: ServerProcess;

/** The server's limits in this test: long enough that the flood is open while qtm sign runs. */
const S = { handshake: 15, headers: 15, request: 20, idle: 15, perClient: 50, rate: 5 };
/** The TTP's: short, so its tests are quick. */
const T = { handshake: 3, headers: 3, request: 4, idle: 3, perClient: 5, rate: 2, total: 20 };
const flags = (l: typeof S) => ['--handshake-timeout', String(l.handshake), '--headers-timeout', String(l.headers), '--request-timeout', String(l.request),
  '--idle-timeout', String(l.idle), '--max-connections-per-client', String(l.perClient), '--rate', String(l.rate)];
/** Slack for a timer that fires a little early against this process's clock (they are not the same clock). */
const EARLY_MS = 300;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-bad-traffic-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Traffic CA', passphrase: PASS });
  caPem = ca.certificate.toString();
  for (const [name, role, subject] of [['tls', 'server', 'CN=localhost'], ['receipts', 'signer', 'CN=Traffic Shop receipts'], ['ttp', 'ttp', 'CN=Traffic TTP'], ['ttp-tls', 'server', 'CN=localhost']] as const) {
    const i = issueKeyAndCertificate(ca, { role, subject });
    writeIdentity(join(dir, name), [i.certificate], i.privateKey, PASS);
  }
  initSam(join(dir, 'shop.sam'), PASS);
  const issue = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice Traffic', '--card', join(dir, 'alice.card.json')], { env });
  assert.equal(issue.status, 0, issue.stderr);
  server = await startListeningProcess(['server', 'start', '--port', '0', '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'),
    '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store'), ...flags(S)], env, { fdLimit: 4096 });
  ttp = await startListeningProcess(['ttp', 'start', '--port', '0', '--identity', join(dir, 'ttp'), '--tls', join(dir, 'ttp-tls'), '--trust', join(dir, 'ca', 'ca.pem'),
    '--store', join(dir, 'ttp-store'), ...flags(T), '--max-connections', String(T.total)], env, { fdLimit: 256 });
});

after(async () => {
  await server?.stop();
  await ttp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const portOf = (p: ServerProcess) => Number(new URL(p.url).port);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connection from `from` (a 127.0.0.0/8 address: each is its own client to the server), and what it saw. */
interface Probe {
  readonly socket: Socket;
  readonly opened: number;
  secured?: number;
  closedAt?: number;
  data: string;
}

function probe(port: number, from: string, tls: boolean): Promise<Probe> {
  return new Promise((resolve) => {
    const opts = { host: '127.0.0.1', port, localAddress: from };
    const socket: Socket = tls ? connect({ ...opts, servername: 'localhost', ca: caPem, minVersion: 'TLSv1.3' } as ConnectionOptions) : tcpConnect(opts);
    const p: Probe = { socket, opened: Date.now(), data: '' };
    socket.on('data', (d: Buffer) => (p.data += d.toString('latin1')));
    socket.on('error', () => {});
    socket.once('close', () => {
      p.closedAt = Date.now();
      resolve(p);
    });
    if (tls) socket.once('secureConnect', () => {
      p.secured = Date.now();
      resolve(p);
    });
    else socket.once('connect', () => resolve(p));
  });
}

/** Waits until every probe is closed, or `ms` passes; returns those still open. */
async function closedWithin(probes: Probe[], ms: number): Promise<Probe[]> {
  const deadline = Date.now() + ms;
  while (probes.some((p) => p.closedAt === undefined) && Date.now() < deadline) await sleep(200);
  return probes.filter((p) => p.closedAt === undefined);
}

/** Sends one byte of `text` every `everyMs` until the connection closes or the text is sent. */
function dribble(p: Probe, text: string, everyMs: number): void {
  let i = 0;
  const tick = setInterval(() => {
    if (p.closedAt !== undefined || p.socket.destroyed || i >= text.length) return clearInterval(tick);
    p.socket.write(text[i++]!);
  }, everyMs);
}

/** The JSON error in a raw HTTP answer. */
function answer(raw: string): { status: number; headers: string; json: { error?: { code?: string; message?: string } } } {
  const m = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(raw);
  assert.ok(m, `not an HTTP answer: ${JSON.stringify(raw.slice(0, 200))}`);
  return { status: Number(m[1]), headers: m[2]!.toLowerCase(), json: JSON.parse(m[3]!) };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: { error?: { code?: string; message?: string } } & Record<string, unknown>;
}

/** Requests on one kept-alive connection from `from`. */
function client(p: ServerProcess, from: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem, minVersion: 'TLSv1.3' });
  const send = (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> => new Promise((resolve, reject) => {
    const req = request({ host: 'localhost', port: portOf(p), localAddress: from, method, path, agent,
      headers: body === undefined ? headers : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, text, json: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
  return { send, close: () => agent.destroy() };
}

function runSign() {
  return qtmAsync(['sign', '--server', server.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'),
    '--archive', join(dir, 'archive'), '--items', 'PAPER-A4:1', '--yes', '--json'], { env: { HOME: dir, QTM_PIN: '123456' } });
}

test('attack: 500 idle and 500 slow connections are open while qtm sign makes a whole transaction; each is closed after its timeout', { timeout: 180_000 }, async () => {
  const need = 1200;
  assert.ok(softFileLimit() >= need, `this test opens 1,000 connections: it needs a file-descriptor limit of at least ${need} (it is ${softFileLimit()}; node raises the soft limit to the hard one, so raise \`ulimit -Hn\`)`);
  const port = portOf(server);
  // 20 client addresses, 50 connections each: at the per-client cap, not over it.
  const from = (i: number) => `127.0.0.${10 + Math.floor(i / 50)}`;
  const kinds = ['tcp idle', 'tls idle', 'slow headers', 'slow body'] as const;
  const groups: Record<(typeof kinds)[number], Probe[]> = { 'tcp idle': [], 'tls idle': [], 'slow headers': [], 'slow body': [] };
  const opening: Promise<void>[] = [];
  for (let i = 0; i < 1000; i++) {
    const kind = kinds[i % 4]!;
    opening.push(probe(port, from(i), kind !== 'tcp idle').then((p) => {
      groups[kind].push(p);
      // Headers that never end; a body of 1,000 bytes that comes a byte every 500 ms.
      if (kind === 'slow headers') dribble(p, 'POST /orders HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' + 'a'.repeat(1000), 500);
      if (kind === 'slow body') {
        p.socket.write('POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
        dribble(p, '{"items":' + ' '.repeat(990), 500);
      }
    }));
  }
  await Promise.all(opening);
  const all = Object.values(groups).flat();
  const openBefore = all.filter((p) => p.closedAt === undefined).length;
  assert.equal(openBefore, 1000, `only ${openBefore} of the 1,000 connections opened (the server closed some before their timeout)`);

  const r = await runSign();
  assert.equal(r.status, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).transactionId >= 1);

  // Then every one of them is closed by the server, each no sooner than its timeout.
  const left = await closedWithin(all, (S.request + 30) * 1000);
  for (const p of left) p.socket.destroy();
  assert.equal(left.length, 0, `${left.length} flood connections were still open ${S.request + 30} s later`);
  const soonest = (ps: Probe[], from: (p: Probe) => number) => Math.min(...ps.map((p) => p.closedAt! - from(p)));
  // Never started TLS: dropped by the handshake timeout, with nothing said.
  assert.ok(soonest(groups['tcp idle'], (p) => p.opened) >= S.handshake * 1000 - EARLY_MS, 'a connection that never started TLS was closed before the handshake timeout');
  assert.ok(groups['tcp idle'].every((p) => p.data === ''));
  // Handshake done, then silence or headers a byte at a time: the headers timeout, with a 408.
  for (const kind of ['tls idle', 'slow headers'] as const) {
    assert.ok(soonest(groups[kind], (p) => p.secured!) >= S.headers * 1000 - EARLY_MS, `a ${kind} connection was closed before the headers timeout`);
  }
  // Headers done, body a byte at a time: the whole-request timeout, with a 408.
  assert.ok(soonest(groups['slow body'], (p) => p.secured!) >= S.request * 1000 - EARLY_MS, 'a slow body was cut before the request timeout');
  for (const kind of ['tls idle', 'slow headers', 'slow body'] as const) {
    for (const p of groups[kind]) {
      const a = answer(p.data);
      assert.equal(a.status, 408, kind);
      assert.equal(a.json.error?.code, 'E_TIMEOUT', kind);
      assert.match(a.headers, /connection: close/);
    }
  }
  assert.doesNotMatch(server.log(), /E_INTERNAL/);
});

test('attack: a 50 MB body is refused with 413 before it is read, and the connection closed (declared length and chunked)', async (t) => {
  const total = 50 * 1024 * 1024;
  for (const [name, p] of [['server', server], ['TTP', ttp]] as const) {
    for (const chunked of [false, true]) {
      const c = await probe(portOf(p), '127.0.0.40', true);
      c.socket.write(`POST ${p === server ? '/orders' : '/v1/abort'} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let handed = 0;
      await new Promise<void>((resolve) => {
        c.socket.once('close', () => resolve());
        const pump = () => {
          while (handed < total && !c.socket.destroyed) {
            handed += chunk.length;
            const ok = c.socket.write(chunked ? Buffer.concat([Buffer.from('10000\r\n'), chunk, Buffer.from('\r\n')]) : chunk);
            if (!ok) return void c.socket.once('drain', pump);
          }
        };
        pump();
      });
      const a = answer(c.data);
      assert.equal(a.status, 413, `${name}${chunked ? ', chunked' : ''}`);
      assert.equal(a.json.error?.code, 'E_TOO_LARGE');
      assert.match(a.headers, /connection: close/);
      // The client could hand over what the kernel buffers hold (a few MB), never the 50 MB.
      assert.ok(handed < total / 4, `${name}: the client sent ${handed} bytes before the server closed`);
      t.diagnostic(`${name}${chunked ? ', chunked' : ''}: the client handed ${handed} bytes to its socket before the close`);
    }
    // And the server's own count of what it read from each connection, its lingering close
    // included (after the 413 it waits up to 1 s for the client to read it and hang up).
    const closes = () => [...p.log().matchAll(/"event":"lingering-close","client":"127\.0\.0\.40"/g)].length;
    for (const deadline = Date.now() + 5000; closes() < 2 && Date.now() < deadline;) await sleep(50); // the log line comes after the close
    const read = [...p.log().matchAll(/"event":"lingering-close","client":"127\.0\.0\.40","bytesRead":(\d+)/g)].map((m) => Number(m[1]));
    assert.equal(read.length, 2, p.log());
    // What the client got into the kernel's buffers before it read the answer (a few MB on
    // loopback, bounded by the socket buffers: tcp_wmem and tcp_rmem) is read; never the 50 MB.
    for (const n of read) assert.ok(n < 12 * 1024 * 1024, `${name} read ${n} bytes of a 50 MB body`);
    t.diagnostic(`${name}: read ${read.join(' and ')} bytes of the two 50 MB bodies (declared, chunked)`);
  }
});

/** What no answer to a hostile client may hold. */
function assertNothingLeaks(text: string, what: string): void {
  assert.doesNotMatch(text, /\n\s+at |node:internal|\.[jt]s:\d+|\/work\/|\/home\/|\/tmp\/|qtm-bad-traffic/, `${what}: a stack trace or path in ${text}`);
  assert.ok(!text.includes(PASS), `${what}: the passphrase in the answer`);
  assert.doesNotMatch(text, /BEGIN [A-Z ]*PRIVATE KEY/, what);
}

test('attack: malformed JSON, wrong types, unknown paths and wrong methods get a 4xx JSON answer with a code, no stack trace, path or secret', async () => {
  const cases: [ServerProcess, string, string, string | Buffer | undefined, number, string][] = [
    [server, 'POST', '/orders', 'not json', 400, 'E_JSON'],
    [server, 'POST', '/orders', '{"items":', 400, 'E_JSON'],
    [server, 'POST', '/orders', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 400, 'E_JSON'],
    [server, 'POST', '/orders', '['.repeat(10_000) + ']'.repeat(10_000), 400, 'E_JSON'],
    [server, 'POST', '/orders', '{"items":"PAPER-A4"}', 400, 'E_DECODE'],
    [server, 'POST', '/orders', '{"items":[{"sku":1,"quantity":"1"}]}', 400, 'E_DECODE'],
    [server, 'POST', '/orders', 'null', 400, 'E_DECODE'],
    [server, 'POST', '/transactions', '{"orderId":7,"content":[]}', 401, 'E_NOT_AUTHENTICATED'],
    [server, 'GET', '/etc/passwd', undefined, 404, 'E_NOT_FOUND'],
    [server, 'GET', '/../../store/log.jsonl', undefined, 404, 'E_NOT_FOUND'],
    [server, 'DELETE', '/orders', undefined, 405, 'E_METHOD_NOT_ALLOWED'],
    [server, 'PUT', '/health', '{}', 405, 'E_METHOD_NOT_ALLOWED'],
    [server, 'GET', '/orders', undefined, 405, 'E_METHOD_NOT_ALLOWED'],
    [ttp, 'POST', '/v1/abort', 'not json', 400, 'E_JSON'],
    [ttp, 'POST', '/v1/abort', '{"header":7}', 400, 'E_DECODE'],
    [ttp, 'GET', '/v1/abort', undefined, 405, 'E_METHOD_NOT_ALLOWED'],
    [ttp, 'DELETE', '/health', undefined, 405, 'E_METHOD_NOT_ALLOWED'],
    [ttp, 'GET', '/admin', undefined, 404, 'E_NOT_FOUND'],
    [ttp, 'DELETE', '/admin', undefined, 404, 'E_NOT_FOUND'],
  ];
  for (const [p, method, path, body, status, code] of cases) {
    const c = client(p, '127.0.0.41');
    try {
      const a = await c.send(method, path, body);
      const what = `${p === server ? 'server' : 'TTP'} ${method} ${path} ${String(body).slice(0, 40)}`;
      assert.equal(a.status, status, `${what}: ${a.text}`);
      assert.equal(a.json.error?.code, code, what);
      assert.ok((a.json.error?.message ?? '').length > 10, `${what}: says what was wrong`);
      assert.match(String(a.headers['content-type']), /^application\/json/);
      // A wrong method on a known path names the methods it takes (RFC 9110 15.5.6).
      if (status === 405) assert.equal(a.headers.allow, path === '/health' ? 'GET' : 'POST', what);
      else assert.equal(a.headers.allow, undefined, what);
      assertNothingLeaks(a.text, what);
    } finally {
      c.close();
    }
  }
  // What node's HTTP parser refuses is answered in JSON too.
  for (const p of [server, ttp]) {
    for (const [raw, status, code] of [
      ['GARBAGE\r\n\r\n', 400, 'E_BAD_REQUEST'],
      ['GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'E_BAD_REQUEST'],
      [`GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'E_TOO_LARGE'],
    ] as const) {
      const c = await probe(portOf(p), '127.0.0.41', true);
      c.socket.write(raw);
      await closedWithin([c], 5000);
      c.socket.destroy();
      const a = answer(c.data);
      assert.equal(a.status, status, raw.slice(0, 30));
      assert.equal(a.json.error?.code, code);
      assertNothingLeaks(c.data, raw.slice(0, 30));
    }
  }
  assert.doesNotMatch(server.log() + ttp.log(), /E_INTERNAL/);
});

for (const [name, limits, proc] of [['server', S, () => server], ['TTP', T, () => ttp]] as const) {
  test(`attack: the ${name}'s per-client rate trips with 429 and Retry-After, other clients are served, and it recovers after Retry-After`, async () => {
    const p = proc();
    const burst = 10 * limits.rate;
    const c = client(p, '127.0.0.42');
    const other = client(p, '127.0.0.43');
    try {
      // The bucket starts full: the whole burst passes; then (the bucket refilling at the rate
      // meanwhile) a request is refused well before twice the burst.
      let served = 0;
      let limited: Answer | undefined;
      while (served < 2 * burst) {
        const a = await c.send('GET', '/health');
        if (a.status !== 200) {
          limited = a;
          break;
        }
        served++;
      }
      assert.ok(served >= burst, `only ${served} of the burst of ${burst} were served`);
      assert.ok(limited, `${served} requests in a row were served`);
      assert.equal(limited.status, 429);
      assert.equal(limited.json.error?.code, 'E_RATE_LIMITED');
      assert.match(limited.json.error?.message ?? '', new RegExp(`at most ${limits.rate} a second, bursts of ${burst}`));
      const retry = Number(limited.headers['retry-after']);
      assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After: ${limited.headers['retry-after']}`);
      assert.equal((await other.send('GET', '/health')).status, 200, 'another client is served meanwhile');
      await sleep(retry * 1000);
      assert.equal((await c.send('GET', '/health')).status, 200, 'served again after Retry-After');
    } finally {
      c.close();
      other.close();
    }
  });

  test(`attack: the ${name} closes a client's connection over its per-client cap at once, and serves it again below the cap`, async () => {
    const p = proc();
    const port = portOf(p);
    const held = await Promise.all(Array.from({ length: limits.perClient }, () => probe(port, '127.0.0.44', true)));
    assert.ok(held.every((h) => h.secured !== undefined && h.closedAt === undefined));
    const over = await probe(port, '127.0.0.44', true);
    assert.equal(over.secured, undefined, 'the connection over the cap got no TLS handshake');
    assert.ok(over.closedAt !== undefined);
    // Another client is not affected; and once one of the first is closed, this one is let in.
    const another = await probe(port, '127.0.0.45', true);
    assert.ok(another.secured !== undefined);
    another.socket.destroy();
    held[0]!.socket.destroy();
    await sleep(200);
    const again = await probe(port, '127.0.0.44', true);
    assert.ok(again.secured !== undefined, 'below the cap again, the client is served');
    for (const h of [...held, again]) h.socket.destroy();
    assert.match(p.log(), new RegExp(`"event":"client-connection-cap","client":"127\\.0\\.0\\.44","cap":${limits.perClient}`));
  });
}

test('attack: the TTP has the same timeouts: no TLS, silence, slow headers, a slow body and an idle kept-alive connection are each closed after theirs', async () => {
  const port = portOf(ttp);
  const [tcpIdle, tlsIdle, slowHeaders, slowBody] = await Promise.all([probe(port, '127.0.0.50', false), probe(port, '127.0.0.51', true), probe(port, '127.0.0.52', true), probe(port, '127.0.0.53', true)]);
  dribble(slowHeaders!, 'POST /v1/abort HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' + 'a'.repeat(100), 200);
  slowBody!.socket.write('POST /v1/abort HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n');
  dribble(slowBody!, '{' + ' '.repeat(98), 200);
  // One request, then silence on the kept-alive connection.
  const kept = await probe(port, '127.0.0.54', true);
  kept.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
  while (!kept.data.includes('"ok":true')) await sleep(20);
  const answeredAt = Date.now();
  const all = [tcpIdle!, tlsIdle!, slowHeaders!, slowBody!, kept];
  const left = await closedWithin(all, (T.request + 10) * 1000);
  for (const p of left) p.socket.destroy();
  assert.equal(left.length, 0);
  assert.ok(tcpIdle!.closedAt! - tcpIdle!.opened >= T.handshake * 1000 - EARLY_MS);
  assert.equal(tcpIdle!.data, '');
  for (const p of [tlsIdle!, slowHeaders!]) {
    assert.ok(p.closedAt! - p.secured! >= T.headers * 1000 - EARLY_MS);
    assert.equal(answer(p.data).json.error?.code, 'E_TIMEOUT');
  }
  assert.ok(slowBody!.closedAt! - slowBody!.secured! >= T.request * 1000 - EARLY_MS);
  assert.equal(answer(slowBody!.data).status, 408);
  // The kept-alive connection is closed with nothing more said.
  assert.ok(kept.closedAt! - answeredAt >= T.idle * 1000 - EARLY_MS);
  assert.equal((kept.data.match(/HTTP\/1\.1/g) ?? []).length, 1);
});

test('attack: the TTP keeps at most --max-connections open: of 25 idle ones from 5 clients, the longest idle make room, and a new client is served', async () => {
  const port = portOf(ttp);
  const idle: Probe[] = [];
  for (let i = 0; i < 25; i++) idle.push(await probe(port, `127.0.0.${60 + Math.floor(i / 5)}`, true));
  await sleep(200); // the server's closes arrive
  const open = idle.filter((p) => p.closedAt === undefined);
  assert.ok(open.length <= T.total, `${open.length} of 25 still open at a cap of ${T.total}`);
  assert.ok(idle.slice(0, 5).every((p) => p.closedAt !== undefined), 'the first (longest idle) were closed to make room');
  const c = client(ttp, '127.0.0.65');
  try {
    assert.equal((await c.send('GET', '/health')).json.ok, true, 'a new client is served at the cap');
  } finally {
    c.close();
    for (const p of idle) p.socket.destroy();
  }
  assert.match(ttp.log(), new RegExp(`"event":"connection-cap","open":\\d+,"cap":${T.total},"closed":"idle, never used"`));
});

test('after all of it: the server makes a whole transaction and both services answer /health', async () => {
  const r = await runSign();
  assert.equal(r.status, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).transactionId >= 2);
  for (const p of [server, ttp]) {
    const c = client(p, '127.0.0.1');
    try {
      assert.equal((await c.send('GET', '/health')).json.ok, true);
    } finally {
      c.close();
    }
  }
  assert.doesNotMatch(server.log() + ttp.log(), /E_INTERNAL/);
});
