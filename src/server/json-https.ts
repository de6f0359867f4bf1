/**
 * JSON over HTTPS, TLS 1.3 only, for the qtm server and the TTP: body size limits, one
 * structured log line per request, and errors mapped to HTTP statuses with a code and a message.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { DecodeError, QtmError } from '../errors.js';
import { PlainTextError } from '../protocol/plain-text.js';
import { parseStrictJson } from '../protocol/strict-json.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new HttpError(413, 'E_TOO_LARGE', `request body over ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8') || 'null';
  try {
    // Strict: duplicate keys and over-deep nesting are refused like any malformed body.
    return parseStrictJson(text, 'request body');
  } catch (err) {
    throw new HttpError(400, 'E_JSON', err instanceof DecodeError ? err.message : 'request body is not JSON');
  }
}

export interface Routed {
  readonly status?: number;
  readonly body: unknown;
  /** Extra fields for the request's log line. */
  readonly log?: Record<string, unknown>;
}

export interface JsonHttpsOptions {
  readonly tls: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly log: (line: Record<string, unknown>) => void;
  readonly route: (req: IncomingMessage, socket: TLSSocket) => Promise<Routed>;
  /** Fields for every log line of a connection (who is on it). */
  readonly logContext?: (socket: TLSSocket) => Record<string, unknown>;
}

/** A refusal that carries its own HTTP status (ServiceError, TTP refusals). */
interface WithStatus {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

function hasStatus(err: unknown): err is WithStatus {
  return err instanceof QtmError && typeof (err as unknown as WithStatus).status === 'number';
}

export function createJsonHttpsServer(o: JsonHttpsOptions): Server {
  const server = createServer({
    key: o.tls.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    cert: o.tls.certificates.map((c) => c.toString()).join(''),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
  });
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
    o.route(req, socket).then(
      (r) => send(r.status ?? 200, r.body, r.log),
      (err: unknown) => {
        if (err instanceof HttpError || hasStatus(err)) return fail(err.status, err.code, err.message);
        if (err instanceof PlainTextError) return fail(422, err.code, err.message);
        if (err instanceof DecodeError) return fail(400, err.code, err.message);
        if (err instanceof QtmError) return fail(403, err.code, err.message);
        send(500, { error: { code: 'E_INTERNAL', message: 'internal server error' } }, { error: 'E_INTERNAL', detail: (err as Error).message });
      },
    );
  });
  return server;
}
