/**
 * JSON over HTTPS, the client side, for the qtm server's API and the TTP alike: TLS 1.3 only, the
 * server authenticated against the configured CA (claim 1: server authentication), and one
 * kept-alive connection for the whole transaction, because the card's authentication is bound to
 * that TLS session (its exporter value, RFC 8446 7.5).
 */
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { QtmError, ExitCode, type ErrorCode } from '../errors.js';
import { parseStrictJson } from '../protocol/strict-json.js';
import { EXPORTER_LABEL, EXPORTER_LENGTH } from '../protocol/card-authentication.js';

export class ServerError extends QtmError {
  constructor(
    readonly status: number,
    readonly serverCode: string,
    message: string,
    code: ErrorCode = 'E_SERVER',
    hint?: string,
  ) {
    super(`server refused (${status} ${serverCode}): ${message}`, code, status >= 500 ? ExitCode.usage : ExitCode.invalid, hint);
  }
}

/**
 * A 429 the client did not (or no longer) wait out: the server's refusal, with the wait it asked
 * for and why the client gave up. Code E_RATE_LIMITED, exit 1 like any other refusal.
 */
export class RateLimitedError extends ServerError {
  constructor(
    serverMessage: string,
    /** The wait the server asked for (Retry-After), if it named one. */
    readonly retryAfterSeconds: number | undefined,
    why: string,
  ) {
    super(429, 'E_RATE_LIMITED', `${serverMessage}; ${why}`, 'E_RATE_LIMITED',
      retryAfterSeconds === undefined ? 'try again later' : `try again in ${retryAfterSeconds} s or later`);
  }
}

/**
 * Retry-After (RFC 9110 10.2.3): delay-seconds (digits, at most 10) or an HTTP-date in GMT. The
 * seconds to wait (0 for a date already past), or undefined for anything else (the obsolete
 * asctime form, which names no zone, included): a wait not named is not waited.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v);
  if (!/^[A-Za-z]{3,9}, [^,]+ GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * Whether a request the server refused with 429 may be sent again, and where: never; on any
 * connection; or only on the connection it was refused on, because something the request needs
 * lives there (the card's login, an authentication nonce), so a connection closed during the
 * wait ends the retries.
 */
export type RetryRule = 'never' | 'any-connection' | 'same-connection';

/** What the client does with a 429 (../http/server.ts sends Retry-After with each). */
export interface RateLimitRetry {
  /** Most times one request is sent again (default 3). */
  readonly maxRetries?: number;
  /** Most seconds waited in all for one request (default 30): a Retry-After that would pass it is not waited for. */
  readonly maxWaitSeconds?: number;
  /** Which requests may be sent again (default: GET on any connection, nothing else). */
  readonly rule?: (method: string, path: string) => RetryRule;
  /** Told before each wait: the CLI says so on stderr. */
  readonly onWait?: (wait: RateLimitWait) => void;
}

export interface RateLimitWait {
  readonly method: string;
  readonly path: string;
  /** Seconds about to be waited. */
  readonly seconds: number;
  /** Which retry this wait is for (1 for the first). */
  readonly retry: number;
  readonly maxRetries: number;
  /** The server's refusal. */
  readonly message: string;
}

export const DEFAULT_RETRY = { maxRetries: 3, maxWaitSeconds: 30 } as const;

const defaultRule = (method: string): RetryRule => (method === 'GET' ? 'any-connection' : 'never');

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

export interface ClientOptions extends TlsResumption {
  /** Waiting out a 429 (default DEFAULT_RETRY, GET requests only). */
  readonly retry?: RateLimitRetry;
}

export class JsonHttpsClient {
  private readonly agent: Agent;
  private socket: TLSSocket | undefined;
  private readonly base: URL;
  private readonly resumption: TlsResumption;
  private readonly retry: RateLimitRetry;

  constructor(baseUrl: string, trustPem: string, options: ClientOptions = {}) {
    this.resumption = options;
    this.retry = options.retry ?? {};
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

  /**
   * Sends a request and decodes its answer. A 429 is waited out and the request sent again, as
   * its Retry-After says, when the request may be repeated (`retry.rule`), the wait is named and
   * the waits stay within `retry.maxWaitSeconds` in all, at most `retry.maxRetries` times;
   * otherwise it fails at once with RateLimitedError naming the wait.
   */
  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, decode?: (j: unknown) => T): Promise<T> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const maxRetries = this.retry.maxRetries ?? DEFAULT_RETRY.maxRetries;
    const maxWait = this.retry.maxWaitSeconds ?? DEFAULT_RETRY.maxWaitSeconds;
    const rule = (this.retry.rule ?? defaultRule)(method, path);
    let waited = 0;
    for (let retry = 1; ; retry++) {
      let limited: { message: string; seconds: number | undefined; closing: boolean };
      try {
        return await this.send(method, path, data, decode);
      } catch (err) {
        if (!(err instanceof RateLimited)) throw err;
        limited = err;
      }
      const { message, seconds } = limited;
      const give = (why: string) => new RateLimitedError(message, seconds, why);
      if (seconds === undefined) throw give('the server named no wait (Retry-After)');
      if (rule === 'never') throw give(`${method} ${path} is not sent again on its own (repeating it is not known to be harmless)`);
      if (retry > maxRetries) throw give(`still refused after ${maxRetries} retr${maxRetries === 1 ? 'y' : 'ies'} (${waited} s waited)`);
      if (waited + seconds > maxWait) {
        throw give(waited ? `another ${seconds} s would make ${waited + seconds} s, over the ${maxWait} s this client waits for one request` : `the server asks for a wait of ${seconds} s, over the ${maxWait} s this client waits for one request`);
      }
      const socket = this.socket;
      if (rule === 'same-connection' && limited.closing) throw give(`the server closed the connection with its answer, and ${method} ${path} needs that connection (its card login)`);
      this.retry.onWait?.({ method, path, seconds, retry, maxRetries, message });
      await sleep(seconds * 1000);
      waited += seconds;
      if (rule === 'same-connection' && (!socket || socket.destroyed || socket !== this.socket)) {
        throw give(`the server closed the connection during the ${waited} s wait, and ${method} ${path} needs that connection (its card login)`);
      }
    }
  }

  private send<T>(method: 'GET' | 'POST', path: string, data: string | undefined, decode?: (j: unknown) => T): Promise<T> {
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
          const status = res.statusCode ?? 0;
          const rateLimited = (message: string) => {
            const retryAfter = res.headers['retry-after'];
            return new RateLimited(message, parseRetryAfter(Array.isArray(retryAfter) ? undefined : retryAfter), res.headers.connection === 'close');
          };
          let json: unknown;
          try {
            json = parseStrictJson(Buffer.concat(chunks).toString('utf8'), 'server answer');
          } catch (err) {
            // A refusal whose body is not JSON is still a refusal; an answer that is not strict
            // JSON (a repeated key: which value would be meant?) is malformed like any other.
            if (status === 429) return reject(rateLimited('too many requests (the answer is not JSON)'));
            if (status >= 400) return reject(new ServerError(status, 'E_JSON', 'the server answered something that is not JSON'));
            return reject(err);
          }
          if (status >= 400) {
            const e = (json as { error?: { code?: string; message?: string } } | null)?.error;
            if (status === 429) return reject(rateLimited(typeof e?.message === 'string' ? printable(e.message) : 'too many requests'));
            // The server's words reach a terminal: one printable line, and a code of the known shape.
            const code = typeof e?.code === 'string' && /^E_[A-Z0-9_]{1,40}$/.test(e.code) ? e.code : 'E_UNKNOWN';
            return reject(new ServerError(status, code, typeof e?.message === 'string' ? printable(e.message) : 'no reason given'));
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

/**
 * The server's words as one line of text for a terminal (a refusal's reason is printed): control
 * characters (escape sequences, line breaks) become "?", and at most MAX_REASON characters are
 * kept: qtm's own reasons name certificates and dates and run to several hundred characters.
 */
function printable(text: string): string {
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return line.length > MAX_REASON ? `${line.slice(0, MAX_REASON)}…` : line;
}

/** The longest reason from a server the client prints. */
const MAX_REASON = 2000;

/** A 429 on its way from send() to call(), which decides whether to wait. */
class RateLimited extends Error {
  constructor(
    override readonly message: string,
    readonly seconds: number | undefined,
    /** The answer said Connection: close. */
    readonly closing: boolean,
  ) {
    super(message);
  }
}
