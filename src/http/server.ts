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
import { DecodeError, QtmError, type ErrorCode } from '../errors.js';
import { HTTP_STATUS } from './status.js';
import { parseStrictJson } from '../protocol/strict-json.js';

/** A refusal of the HTTP layer itself (no route, body too large, not JSON, not logged in). */
export class HttpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  get status(): number {
    return statusOf(this.code);
  }
}

/** The status a code answers with (./status.ts); a code not listed is a refusal, 403. */
export function statusOf(code: ErrorCode): number {
  return HTTP_STATUS[code] ?? 403;
}

export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new HttpError('E_TOO_LARGE', `request body over ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8') || 'null';
  try {
    // Strict: duplicate keys and over-deep nesting are refused like any malformed body.
    return parseStrictJson(text, 'request body');
  } catch (err) {
    throw new HttpError('E_JSON', err instanceof DecodeError ? err.message : 'request body is not JSON');
  }
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

/** A connection with no request in flight for this long is closed (TLS handshake included). */
export const IDLE_TIMEOUT_MS = 10_000;

export interface JsonHttpsOptions {
  readonly tls: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly log: (line: Record<string, unknown>) => void;
  readonly route: (req: IncomingMessage, socket: TLSSocket) => Promise<Routed>;
  /** Fields for every log line of a connection (who is on it). */
  readonly logContext?: (socket: TLSSocket) => Record<string, unknown>;
  /** Most open connections (default `connectionCap()`, from the file-descriptor limit). */
  readonly maxConnections?: number;
  /** Idle time after which a connection is closed (default IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number;
}

interface Connection {
  readonly raw: Socket;
  tls?: TLSSocket;
  /** Requests in flight. */
  busy: number;
  /** Whether it ever carried a request. */
  used: boolean;
  /** When it last became idle (opened, or finished a request). */
  idleSince: number;
}

/**
 * Keeps the open connections under the cap with room for real clients. When a new connection
 * would pass the cap, the connection idle the longest is closed to make room, preferring ones
 * that never sent a request (what a flood of idle connections is made of); only if every
 * connection has a request in flight is the new one closed. Connections idle longer than the
 * idle timeout are closed in any case, so idle ones cannot pile up.
 */
function guardConnections(server: Server, cap: number, idleMs: number, log: (line: Record<string, unknown>) => void): void {
  const open = new Map<Socket, Connection>();
  // The TLS socket wraps the raw one; both show the client's address and port, which name one
  // live TCP connection to this server. Requests arrive on the TLS socket.
  const byPeer = new Map<string, Connection>();
  const onTls = new WeakMap<TLSSocket, Connection>();
  const peer = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  let lastLog = 0;
  const close = (c: Connection) => (c.tls ?? c.raw).destroy();
  server.on('connection', (raw: Socket) => {
    const c: Connection = { raw, busy: 0, used: false, idleSince: Date.now() };
    const key = peer(raw);
    open.set(raw, c);
    byPeer.set(key, c);
    raw.once('close', () => {
      open.delete(raw);
      if (byPeer.get(key) === c) byPeer.delete(key);
    });
    if (open.size <= cap) return;
    let victim: Connection | undefined;
    for (const x of open.values()) {
      if (x === c || x.busy > 0) continue;
      if (!victim || (victim.used && !x.used) || (victim.used === x.used && x.idleSince < victim.idleSince)) victim = x;
    }
    close(victim ?? c);
    const now = Date.now();
    if (now - lastLog > 1000) {
      lastLog = now;
      log({ time: new Date(now).toISOString(), event: 'connection-cap', open: open.size, cap, closed: victim ? (victim.used ? 'longest idle' : 'idle, never used') : 'the new one: every connection is busy' });
    }
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
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of open.values()) if (c.busy === 0 && now - c.idleSince > idleMs) close(c);
  }, Math.min(1000, idleMs));
  sweep.unref();
  server.once('close', () => clearInterval(sweep));
}

export function createJsonHttpsServer(o: JsonHttpsOptions): Server {
  const server = createServer({
    key: o.tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert: o.tls.certificates.map((c) => c.toString()).join(''),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    handshakeTimeout: o.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
  });
  guardConnections(server, o.maxConnections ?? connectionCap(), o.idleTimeoutMs ?? IDLE_TIMEOUT_MS, o.log);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const socket = req.socket as TLSSocket;
    const send = (status: number, body: unknown, extra: Record<string, unknown> = {}) => {
      const data = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store' });
      res.end(data);
      o.log({ time: new Date().toISOString(), method: req.method, path: req.url, status, ms: Number((performance.now() - started).toFixed(2)), ...o.logContext?.(socket), ...extra });
    };
    const fail = (status: number, code: string, message: string) => send(status, { error: { code, message } }, { error: code });
    // A request target that is no URL (GET //[) is the client's error, not the server's.
    if (!URL.canParse(req.url ?? '/', 'https://qtm')) return fail(400, 'E_BAD_URL', 'the request target is not a valid URL path');
    o.route(req, socket).then(
      (r) => {
        if (!r.raw) return send(r.status ?? 200, r.body, r.log);
        res.writeHead(r.status ?? 200, { 'content-type': r.raw.contentType, 'content-length': r.raw.data.length, 'cache-control': r.raw.cacheControl });
        res.end(r.raw.data);
        o.log({ time: new Date().toISOString(), method: req.method, path: req.url, status: r.status ?? 200, ms: Number((performance.now() - started).toFixed(2)), ...o.logContext?.(socket), ...r.log });
      },
      (err: unknown) => {
        if (err instanceof HttpError || err instanceof QtmError) return fail(statusOf(err.code), err.code, err.message);
        send(500, { error: { code: 'E_INTERNAL', message: 'internal server error' } }, { error: 'E_INTERNAL', detail: (err as Error).message });
      },
    );
  });
  return server;
}
