/**
 * JSON over HTTPS, the client side, for the qtm server's API and the TTP alike: TLS 1.3 only, the
 * server authenticated against the configured CA (claim 1: server authentication), and one
 * kept-alive connection for the whole transaction, because the card's authentication is bound to
 * that TLS session (its exporter value, RFC 8446 7.5).
 */
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { QtmError, ExitCode } from '../errors.js';
import { parseStrictJson } from '../protocol/strict-json.js';
import { EXPORTER_LABEL, EXPORTER_LENGTH } from '../protocol/card-authentication.js';

export class ServerError extends QtmError {
  constructor(
    readonly status: number,
    readonly serverCode: string,
    message: string,
  ) {
    super(`server refused (${status} ${serverCode}): ${message}`, 'E_SERVER', status >= 500 ? ExitCode.usage : ExitCode.invalid);
  }
}

export class ServerUnreachableError extends QtmError {
  constructor(message: string) {
    super(message, 'E_UNREACHABLE', ExitCode.usage, 'check --server and that `qtm server start` is running');
  }
}

/**
 * Connection failures that say nothing about the server's certificate: the connection was
 * refused, reset or dropped (a server at its connection cap or file-descriptor limit closes the
 * socket during the TLS handshake, which node words as "socket disconnected before secure TLS
 * connection was established"). These are "unreachable", never a trust failure.
 */
const TRANSPORT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'ERR_SOCKET_CLOSED']);

/** A failure of the server's authentication: its certificate chain, name or TLS parameters. */
export function isServerAuthenticationFailure(err: NodeJS.ErrnoException): boolean {
  if (err.code && TRANSPORT_CODES.has(err.code)) return false;
  return /certificate|self.signed|CERT|altnames|SSL|TLS/i.test(`${err.code} ${err.message}`);
}

/**
 * TLS session resumption across clients (RFC 8446 2.2): a ticket the server sent on an earlier
 * connection, offered when this client connects, and where a new one goes. Resuming spares the
 * server its handshake signature; it carries no login: the card authenticates every connection
 * again, bound to that connection's own exporter value.
 */
export interface TlsResumption {
  readonly session?: Buffer | undefined;
  readonly onSession?: (session: Buffer) => void;
}

export class JsonHttpsClient {
  private readonly agent: Agent;
  private socket: TLSSocket | undefined;
  private readonly base: URL;

  constructor(baseUrl: string, trustPem: string, private readonly resumption: TlsResumption = {}) {
    try {
      this.base = new URL(baseUrl);
    } catch {
      throw new QtmError(`--server ${baseUrl} is not a URL`, 'E_INPUT', ExitCode.usage, 'e.g. https://127.0.0.1:8443');
    }
    if (this.base.protocol !== 'https:') throw new QtmError('the server URL must be https://', 'E_INPUT', ExitCode.usage);
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, ca: trustPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
  }

  /** Whether the connection the card authenticated is still open (the server closes idle ones). */
  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  /** The connection of the last answer (for figures: bytes, whether the session was resumed). */
  get lastSocket(): TLSSocket | undefined {
    return this.socket;
  }

  /** The TLS keying-material exporter value of the current connection (RFC 8446 7.5). */
  exporter(context: Buffer): Buffer {
    if (!this.socket || this.socket.destroyed) throw new ServerUnreachableError('the TLS connection to the server closed');
    return this.socket.exportKeyingMaterial(EXPORTER_LENGTH, EXPORTER_LABEL, context);
  }

  call<T>(method: 'GET' | 'POST', path: string, body?: unknown, decode?: (j: unknown) => T): Promise<T> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, this.base), {
        method,
        agent: this.agent,
        headers: { accept: 'application/json', ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
        timeout: 30_000,
        ...(this.resumption.session && !this.socket ? { session: this.resumption.session } : {}),
      }, (res) => {
        this.socket = res.socket as TLSSocket;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = parseStrictJson(Buffer.concat(chunks).toString('utf8'), 'server answer');
          } catch (err) {
            // A refusal whose body is not JSON is still a refusal; an answer that is not strict
            // JSON (a repeated key: which value would be meant?) is malformed like any other.
            if ((res.statusCode ?? 0) >= 400) return reject(new ServerError(res.statusCode ?? 0, 'E_JSON', 'the server answered something that is not JSON'));
            return reject(err);
          }
          const status = res.statusCode ?? 0;
          if (status >= 400) {
            const e = (json as { error?: { code?: string; message?: string } }).error;
            return reject(new ServerError(status, e?.code ?? 'E_UNKNOWN', e?.message ?? 'no reason given'));
          }
          try {
            resolve(decode ? decode(json) : (json as T));
          } catch (err) {
            reject(err);
          }
        });
      });
      const onSession = this.resumption.onSession;
      if (onSession) req.once('socket', (s: TLSSocket) => { if (!this.socket) s.on('session', onSession); });
      req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(isServerAuthenticationFailure(err)
          ? new QtmError(`server authentication failed: ${err.message}`, 'E_SERVER_AUTH', ExitCode.invalid, 'the server certificate must chain to --trust and name the host')
          : new ServerUnreachableError(`cannot reach ${this.base.origin}: ${err.code ?? err.message}`));
      });
      if (data) req.write(data);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
