/**
 * JSON over HTTPS, TLS 1.3 only, for the qtm server and the TTP: body size limits, one
 * structured log line per request, and errors mapped to HTTP statuses with a code and a message.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { DecodeError, InputError, QtmError, type ErrorCode } from '../errors.js';
import { HTTP_STATUS } from './status.js';
import { parseStrictJson } from '../protocol/strict-json.js';
import { clientKey, MAX_BUCKETS, RateLimiter, type RateLimit } from './rate-limit.js';

/** A refusal of the HTTP layer itself (no route, body too large, not JSON, not logged in). */
export class HttpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Headers for the answer (Retry-After on a 429). */
    readonly headers: Record<string, string | number> = {},
  ) {
    super(message);
  }

  get status(): number {
    return statusOf(this.code);
  }
}

/**
 * A known path asked with a method it does not take (RFC 9110 15.5.6): 405 with an Allow header
 * listing the methods it does take, and the usual JSON error. A path nobody serves stays 404.
 */
export function methodNotAllowed(method: string, path: string, allowed: readonly string[]): HttpError {
  return new HttpError('E_METHOD_NOT_ALLOWED', `${path} does not take ${method}: use ${allowed.join(' or ')}`, { allow: allowed.join(', ') });
}

/** The status a code answers with (./status.ts); a code not listed is a refusal, 403. */
export function statusOf(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 403;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads a request body of at most `max` bytes as strict JSON. A Content-Length over `max` is
 * refused before a byte of the body is read; a body without one, as soon as it passes `max`.
 * Either way the answer (413) closes the connection, so the rest is never read.
 */
export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new HttpError('E_TOO_LARGE', `request body of ${declared} bytes is over ${max} bytes`);
  const body = await readBody(req, max);
  let text: string;
  try {
    text = UTF8.decode(body) || 'null';
  } catch {
    throw new HttpError('E_JSON', 'request body is not valid UTF-8');
  }
  try {
    // Strict: duplicate keys and over-deep nesting are refused like any malformed body.
    return parseStrictJson(text, 'request body');
  } catch (err) {
    throw new HttpError('E_JSON', err instanceof DecodeError ? err.message : 'request body is not JSON');
  }
}

/**
 * The body, at most `max` bytes, read with the stream's events: what `for await (const chunk of
 * req)` did (an async iterator and a promise per chunk were 1-2% of the server's CPU per
 * transaction, issue 10), with the same outcomes: past `max` the request (not its socket) is
 * destroyed and E_TOO_LARGE thrown; an error or a close before the end rejects.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        done();
        // What leaving `for await` early did (node's stream destroyer for a server request): the
        // request is destroyed without its socket, which the 413 answer and the close still need.
        (req as { socket: unknown }).socket = null;
        req.destroy();
        reject(new HttpError('E_TOO_LARGE', `request body over ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onClose = () => {
      done();
      const err: NodeJS.ErrnoException = new Error('Premature close');
      err.code = 'ERR_STREAM_PREMATURE_CLOSE';
      reject(err);
    };
    if (req.readableEnded) return onEnd();
    if (req.destroyed) return onClose();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

export interface Routed {
  readonly status?: number;
  readonly body: unknown;
  /** Extra fields for the request's log line. */
  readonly log?: Record<string, unknown>;
  /** A static file instead of JSON (the transparency log's /log/ paths). */
  readonly raw?: { readonly contentType: string; readonly data: Buffer; readonly cacheControl: string };
}

/**
 * Connections a server keeps open at most: each one holds a file descriptor, and a server out of
 * descriptors refuses everyone (and cannot open its own files). With the soft RLIMIT_NOFILE of
 * the process (`ulimit -n`), the cap is that limit minus 64 descriptors kept for the store, the
 * log, key files and the server's own outgoing connections (the TTP), and at most 4096; 192 with
 * `ulimit -n 256`. Where the limit cannot be read (not Linux), 1024 is assumed.
 */
export function connectionCap(softLimit = softFileLimit()): number {
  return Math.max(16, Math.min(4096, softLimit - 64));
}

/** The soft limit on open files, from /proc/self/limits (Node has no getrlimit). */
export function softFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    // not Linux: fall through
  }
  return 1024;
}

/**
 * The timeouts and limits of a server under bad traffic (docs/OPERATIONS.md has the table: each
 * limit, its default, its flag, what a client sees when it trips). Times in milliseconds.
 */
export interface TrafficLimits {
  /** From TCP accept to a finished TLS handshake; then the connection is dropped (no HTTP answer is possible). */
  readonly handshakeTimeoutMs: number;
  /** From the connection's TLS handshake, or the first byte of a later request, to the end of its headers: 408. */
  readonly headersTimeoutMs: number;
  /** From the first byte of a request to the last byte of its body: 408. At least headersTimeoutMs. */
  readonly requestTimeoutMs: number;
  /** Silence between two requests on a kept-alive connection; then it is closed. */
  readonly idleTimeoutMs: number;
  /** Most open connections (default `connectionCap()`, from the file-descriptor limit). */
  readonly maxConnections: number;
  /** Most open connections from one client (`clientKey`: an address, an IPv6 /64); more are closed at once. */
  readonly maxConnectionsPerClient: number;
  /** Requests per client (`clientKey`), every path: beyond, 429 E_RATE_LIMITED with Retry-After. */
  readonly rate: RateLimit;
  /** Clients with a rate bucket at most (bounded memory). */
  readonly rateTableSize: number;
}

/**
 * Defaults: TLS 1.3 takes one round trip, so 10 s is ample on any link; headers are one packet
 * for every qtm client, 10 s; the largest body (a 1 MiB TTP request) needs 30 s only below
 * 300 kbit/s; 10 s idle between requests outlasts the card's work between two requests of a
 * transaction (reading slots, signing, writing the receipt) while freeing descriptors soon;
 * 64 connections per client leaves room for a NAT of customers but not for one host to take
 * the whole cap; 50 requests a second per client, bursts of 500 (a `qtm sign` makes 7), bounds
 * one host's share of the server's RSA work.
 */
export const DEFAULT_LIMITS: Omit<TrafficLimits, 'maxConnections'> = {
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 10_000,
  maxConnectionsPerClient: 64,
  rate: { perSecond: 50, burst: 500 },
  rateTableSize: MAX_BUCKETS,
};

/** The limits in force: the defaults with `given` over them, checked. */
export function trafficLimits(given: Partial<TrafficLimits> = {}): TrafficLimits {
  const l: TrafficLimits = { ...DEFAULT_LIMITS, maxConnections: connectionCap(), ...given };
  for (const k of ['handshakeTimeoutMs', 'headersTimeoutMs', 'requestTimeoutMs', 'idleTimeoutMs', 'maxConnections', 'maxConnectionsPerClient', 'rateTableSize'] as const) {
    if (!(Number.isFinite(l[k]) && l[k] > 0)) throw new InputError(`the server limit ${k} must be a positive number, not ${l[k]}`);
  }
  if (!(l.rate.perSecond > 0 && l.rate.burst >= 1)) throw new InputError('the request rate must be above 0 a second with bursts of at least 1');
  if (l.headersTimeoutMs > l.requestTimeoutMs) {
    throw new InputError(`the headers timeout (${l.headersTimeoutMs / 1000} s) is longer than the whole-request timeout (${l.requestTimeoutMs / 1000} s)`, 'give --request-timeout at least --headers-timeout');
  }
  return l;
}

interface Connection {
  readonly raw: Socket;
  readonly client: string;
  tls?: TLSSocket;
  /** Requests in flight. */
  busy: number;
  /** Whether it ever carried a request. */
  used: boolean;
  /** When it opened. */
  readonly opened: number;
  /** When it last became idle (opened, or finished a request). */
  idleSince: number;
}

/**
 * Keeps the open connections under the caps with room for real clients.
 * - Over the per-client cap, the new connection is closed at once (before its TLS handshake).
 * - Over the total cap, the connection idle the longest is closed to make room, preferring ones
 *   that never sent a request (what a flood of idle connections is made of); only if every
 *   connection has a request in flight is the new one closed.
 * The timeouts themselves are node's (handshakeTimeout, headersTimeout, requestTimeout,
 * keepAliveTimeout); as a backstop, a connection that never carried a request is closed once
 * it has outlived the handshake and headers timeouts together.
 */
function guardConnections(server: Server, limits: TrafficLimits, log: (line: Record<string, unknown>) => void): void {
  const open = new Map<Socket, Connection>();
  const perClient = new Map<string, number>();
  // The TLS socket wraps the raw one; both show the client's address and port, which name one
  // live TCP connection to this server. Requests arrive on the TLS socket.
  const byPeer = new Map<string, Connection>();
  const onTls = new WeakMap<TLSSocket, Connection>();
  const peer = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  const lastLog: Record<string, number> = {};
  /** At most one line a second per kind: a flood must not flood the log too. */
  const report = (event: string, fields: Record<string, unknown>) => {
    const now = Date.now();
    if (now - (lastLog[event] ?? 0) < 1000) return;
    lastLog[event] = now;
    log({ time: new Date(now).toISOString(), event, ...fields });
  };
  const close = (c: Connection) => (c.tls ?? c.raw).destroy();
  server.on('connection', (raw: Socket) => {
    const client = clientKey(raw.remoteAddress);
    const mine = (perClient.get(client) ?? 0) + 1;
    if (mine > limits.maxConnectionsPerClient) {
      raw.destroy();
      report('client-connection-cap', { client, cap: limits.maxConnectionsPerClient });
      return;
    }
    perClient.set(client, mine);
    const c: Connection = { raw, client, busy: 0, used: false, opened: Date.now(), idleSince: Date.now() };
    const key = peer(raw);
    open.set(raw, c);
    byPeer.set(key, c);
    raw.once('close', () => {
      open.delete(raw);
      if (byPeer.get(key) === c) byPeer.delete(key);
      const n = (perClient.get(client) ?? 1) - 1;
      if (n > 0) perClient.set(client, n);
      else perClient.delete(client);
    });
    if (open.size <= limits.maxConnections) return;
    let victim: Connection | undefined;
    for (const x of open.values()) {
      if (x === c || x.busy > 0) continue;
      if (!victim || (victim.used && !x.used) || (victim.used === x.used && x.idleSince < victim.idleSince)) victim = x;
    }
    close(victim ?? c);
    report('connection-cap', { open: open.size, cap: limits.maxConnections, closed: victim ? (victim.used ? 'longest idle' : 'idle, never used') : 'the new one: every connection is busy' });
  });
  server.on('secureConnection', (s: TLSSocket) => {
    const c = byPeer.get(peer(s));
    if (!c) return;
    c.tls = s;
    onTls.set(s, c);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const c = onTls.get(req.socket as TLSSocket);
    if (!c) return;
    c.busy++;
    c.used = true;
    res.once('close', () => {
      c.busy--;
      c.idleSince = Date.now();
    });
  });
  const backstopMs = limits.handshakeTimeoutMs + limits.headersTimeoutMs + 1000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of open.values()) {
      if (!c.used && c.busy === 0 && now - c.opened > backstopMs) {
        close(c);
        report('backstop-close', { client: c.client, openMs: now - c.opened });
      }
    }
  }, 1000);
  sweep.unref();
  server.once('close', () => clearInterval(sweep));
}

/** The answer to a request node's parser refused, or that timed out before it was read. */
function clientErrorAnswer(err: NodeJS.ErrnoException): { status: number; reason: string; code: string; message: string } {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, reason: 'Request Timeout', code: 'E_TIMEOUT', message: 'the request (its headers, or its headers and body) did not arrive in time: send it at once after connecting' };
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, reason: 'Request Header Fields Too Large', code: 'E_TOO_LARGE', message: 'the request headers are over 16 KiB' };
    default:
      return { status: 400, reason: 'Bad Request', code: 'E_BAD_REQUEST', message: 'the request is not well-formed HTTP/1.1' };
  }
}

/**
 * Closing a connection whose client is still sending (a body refused before it was read) with
 * unread bytes makes the kernel reset it at once, and a client busy writing then fails on EPIPE
 * before it reads the answer. So the server sends the answer and its end, stops reading where
 * node lets it, and closes when the client does, or LINGER_MS later, or once LINGER_BYTES more
 * have come in anyway, whichever is first.
 */
const LINGER_MS = 1000;
const LINGER_BYTES = 1024 * 1024;
const lingering = new WeakSet<Socket>();

function lingeringClose(socket: Socket, log: (line: Record<string, unknown>) => void): void {
  if (lingering.has(socket)) return;
  lingering.add(socket);
  socket.end();
  (socket as Socket & { _handle?: { readStop?(): void } })._handle?.readStop?.();
  const from = socket.bytesRead;
  let done = false;
  const stop = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    clearInterval(check);
    socket.destroy();
    // What the connection cost in all: the bytes read from it, the lingering included.
    log({ time: new Date().toISOString(), event: 'lingering-close', client: clientKey(socket.remoteAddress), bytesRead: socket.bytesRead, lingered: socket.bytesRead - from });
  };
  const timer = setTimeout(stop, LINGER_MS);
  const check = setInterval(() => {
    if (socket.bytesRead - from > LINGER_BYTES) stop();
  }, 10);
  socket.once('close', stop);
}

/** A body left unread up to this size is read and dropped to keep the connection; a larger one closes it. */
const DRAIN_BYTES = 64 * 1024;

export interface JsonHttpsOptions {
  readonly tls: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly log: (line: Record<string, unknown>) => void;
  readonly route: (req: IncomingMessage, socket: TLSSocket) => Promise<Routed>;
  /** Fields for every log line of a connection (who is on it). */
  readonly logContext?: (socket: TLSSocket) => Record<string, unknown>;
  /** Timeouts and limits over the defaults (`trafficLimits`). */
  readonly limits?: Partial<TrafficLimits>;
}

export function createJsonHttpsServer(o: JsonHttpsOptions): Server {
  const limits = trafficLimits(o.limits);
  const server = createServer({
    key: o.tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert: o.tls.certificates.map((c) => c.toString()).join(''),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // node checks the headers and request timeouts on this interval (30 s by default, which
    // would let a 10 s timeout run to 40 s).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4))),
  });
  guardConnections(server, limits, o.log);
  const rate = new RateLimiter(limits.rate, undefined, limits.rateTableSize);
  const timedOut = new WeakSet<Socket>();
  // What node's parser refuses or times out: a JSON answer like any other refusal, then the connection closes.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A client that hangs up (a reset, or in the middle of a body after its 413) is no news.
    const fromParser = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code?.startsWith('HPE_');
    if (!fromParser || lingering.has(socket) || !socket.writable) return void socket.destroy();
    const a = clientErrorAnswer(err);
    if (a.code === 'E_TIMEOUT') timedOut.add(socket);
    const pending = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (socket.writable && (!pending || !pending.headersSent)) {
      const body = JSON.stringify({ error: { code: a.code, message: a.message } });
      socket.write(`HTTP/1.1 ${a.status} ${a.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`);
    }
    socket.destroySoon();
    o.log({ time: new Date().toISOString(), event: 'client-error', status: a.status, error: a.code, client: clientKey(socket.remoteAddress), ...(a.code === 'E_BAD_REQUEST' ? { detail: err.code } : {}) });
  });
  // A TLS handshake that fails or times out: node drops the connection; one line a second at most.
  let lastTlsLog = 0;
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const now = Date.now();
    if (now - lastTlsLog < 1000) return;
    lastTlsLog = now;
    o.log({ time: new Date(now).toISOString(), event: 'tls-error', client: clientKey(socket.remoteAddress), detail: err.code ?? err.message });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const socket = req.socket as TLSSocket;
    const line = (status: number, extra: Record<string, unknown>) =>
      o.log({ time: new Date().toISOString(), method: req.method, path: req.url, status, ms: Number((performance.now() - started).toFixed(2)), ...o.logContext?.(socket), ...extra });
    /**
     * An answer given before the request's body was read in full closes the connection after
     * it, unless the body left is small and of a declared length: node would otherwise read
     * (and drop) the rest of the body, however large, to reach the next request.
     */
    const head = (status: number, headers: Record<string, string | number>) => {
      // Without Content-Length, a body is chunked (of any length) or absent.
      const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : req.headers['transfer-encoding'] !== undefined ? Infinity : 0;
      const closing = !req.complete && !(declared <= DRAIN_BYTES);
      if (closing) {
        // node ends such a connection with destroySoon() after the answer; close it gently instead.
        (socket as Socket & { destroySoon(): void }).destroySoon = () => lingeringClose(socket, o.log);
      }
      res.writeHead(status, { ...headers, ...(closing ? { connection: 'close' } : {}) });
    };
    const send = (status: number, body: unknown, extra: Record<string, unknown> = {}, headers: Record<string, string | number> = {}) => {
      const data = JSON.stringify(body);
      head(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store', ...headers });
      res.end(data);
      line(status, extra);
    };
    const fail = (status: number, code: string, message: string, headers: Record<string, string | number> = {}, extra: Record<string, unknown> = {}) =>
      send(status, { error: { code, message } }, { error: code, ...extra }, headers);
    const client = clientKey(socket.remoteAddress);
    const wait = rate.take(client);
    if (wait > 0) {
      const { perSecond, burst } = limits.rate;
      return fail(429, 'E_RATE_LIMITED', `too many requests from ${client} (at most ${perSecond} a second, bursts of ${burst}): retry in ${wait} s`, { 'retry-after': wait });
    }
    // A request target that is no URL (GET //[) is the client's error, not the server's.
    if (!URL.canParse(req.url ?? '/', 'https://qtm')) return fail(400, 'E_BAD_URL', 'the request target is not a valid URL path');
    o.route(req, socket).then(
      (r) => {
        if (timedOut.has(socket) || !socket.writable) return line(timedOut.has(socket) ? 408 : 499, { error: timedOut.has(socket) ? 'E_TIMEOUT' : 'E_CLIENT_GONE' });
        if (!r.raw) return send(r.status ?? 200, r.body, r.log);
        head(r.status ?? 200, { 'content-type': r.raw.contentType, 'content-length': r.raw.data.length, 'cache-control': r.raw.cacheControl });
        res.end(r.raw.data);
        line(r.status ?? 200, r.log ?? {});
      },
      (err: unknown) => {
        // The client went away, or timed out and was answered 408 already: nothing to send.
        if (timedOut.has(socket) || !socket.writable || res.headersSent) return line(timedOut.has(socket) ? 408 : 499, { error: timedOut.has(socket) ? 'E_TIMEOUT' : 'E_CLIENT_GONE', bytesRead: socket.bytesRead });
        if (err instanceof HttpError && err.code === 'E_TOO_LARGE') return fail(413, err.code, err.message, {}, { bytesRead: socket.bytesRead });
        if (err instanceof HttpError || err instanceof QtmError) return fail(statusOf(err.code), err.code, err.message, err instanceof HttpError ? err.headers : {});
        send(500, { error: { code: 'E_INTERNAL', message: 'internal server error' } }, { error: 'E_INTERNAL', detail: (err as Error).message });
      },
    );
  });
  return server;
}
