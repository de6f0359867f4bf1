/**
 * The merchant web server (patent figure 1, item 15) over HTTPS, TLS 1.3 only. The client's card
 * authentication is bound to its TLS connection: the identity is kept per socket, so every
 * later request on that connection acts for that card and no bearer token exists to steal.
 * A resumed TLS session (a ticket from an earlier connection) is a new socket with no identity;
 * its exporter value is its own (RFC 8446 7.5: fresh randoms and key share), so the card must
 * authenticate it again, and an authentication made for the earlier connection fails on it.
 * One structured JSON log line per request goes to the log stream (stderr by default).
 */
import type { Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { allowedMethods, matchRoute } from '../protocol/routes.js';
import * as M from '../protocol/messages.js';
import { verifyCardAuthentication, type ClientIdentity } from './client-auth.js';
import { EXPORTER_LABEL, EXPORTER_LENGTH } from '../protocol/card-authentication.js';
import { QtmService } from './qtm-service.js';
import { createJsonHttpsServer, HttpError, methodNotAllowed, readJson, type Routed, type TrafficLimits } from '../http/server.js';
import { clientKey, RateLimiter, type RateLimit } from '../http/rate-limit.js';

export { RateLimiter, type RateLimit } from '../http/rate-limit.js';
import { decodeTilePath, type TileRef } from '../tlog/tiles.js';
import type { TileSource } from '../tlog/tile-source.js';
import { QtmError } from '../errors.js';

export interface HttpServerOptions {
  readonly service: QtmService;
  readonly tls: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly trustAnchors: readonly X509Certificate[];
  readonly log?: (line: Record<string, unknown>) => void;
  readonly maxBodyBytes?: number;
  /** The transparency log's tiles (its www/ directory, or the database), served under /log/ (C2SP tlog-tiles), no authentication. */
  readonly logSource?: TileSource;
  /** Requests per source address on connections with no card login (default ANONYMOUS_RATE). */
  readonly anonymousRate?: RateLimit;
  /** Timeouts and connection and rate limits of the HTTP layer (defaults: DEFAULT_LIMITS in ../http/server.ts). */
  readonly limits?: Partial<TrafficLimits>;
}

/**
 * Issue 18, section 5: requests on a connection without a card login (composing orders, the
 * login itself) cost the server work and anyone can send them, so each source address gets a
 * token bucket: 20 requests a second, bursts of 200. Beyond that: 429 E_RATE_LIMITED. (Every
 * request, logged in or not, also counts against the HTTP layer's per-client rate, ../http/server.ts.)
 */
export const ANONYMOUS_RATE: RateLimit = { perSecond: 20, burst: 200 };

/** A verifiable escrow is ~168 KB, ~224 KB in base64: the one request larger than the default limit. */
const ESCROW_BODY_BYTES = 700 * 1024;

export function createQtmServer(o: HttpServerOptions): Server {
  const identities = new WeakMap<TLSSocket, ClientIdentity>();
  const nonces = new WeakMap<TLSSocket, Buffer>();
  const max = o.maxBodyBytes ?? 256 * 1024;
  const log = o.log ?? ((line) => process.stderr.write(JSON.stringify(line) + '\n'));
  const service = o.service;
  const anonymous = new RateLimiter(o.anonymousRate ?? ANONYMOUS_RATE);

  const identity = (socket: TLSSocket): ClientIdentity => {
    const id = identities.get(socket);
    if (!id) throw new HttpError('E_NOT_AUTHENTICATED', 'authenticate with the card on this connection first (POST /auth/challenge, /auth/response)');
    return id;
  };

  async function route(req: IncomingMessage, socket: TLSSocket): Promise<Routed & { tx?: number }> {
    const url = new URL(req.url ?? '/', 'https://qtm');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (o.logSource && path.startsWith('/log/')) {
      const rel = path.slice('/log/'.length);
      if (method === 'GET') return logResource(o.logSource, rel);
      if (logPath(rel)) throw methodNotAllowed(method, path, ['GET']);
    }
    const r = matchRoute(method, path);
    if (!r) {
      const allowed = allowedMethods(path);
      if (allowed.length) throw methodNotAllowed(method, path, allowed);
      throw new HttpError('E_NOT_FOUND', `no route ${method} ${path}`);
    }
    const wait = r.name !== 'health' && !identities.has(socket) ? anonymous.take(clientKey(socket.remoteAddress)) : 0;
    if (wait > 0) {
      const { perSecond, burst } = anonymous.limit;
      throw new HttpError('E_RATE_LIMITED', `too many requests from ${clientKey(socket.remoteAddress)} without a card login (at most ${perSecond} a second, bursts of ${burst}): retry in ${wait} s`, { 'retry-after': wait });
    }
    switch (r.name) {
      case 'health':
        return { body: { ok: true, serverId: service.serverId.toString('hex') } };
      case 'compose': {
        const o = M.decodeOrderRequest(await readJson(req, max));
        return { status: 201, body: M.encodeConceptOrder(service.composeOrder(o.items)) };
      }
      case 'order':
        return { body: M.encodeConceptOrder({ orderId: r.orderId, content: service.getOrder(r.orderId) }) };
      case 'auth-challenge': {
        const nonce = QtmService.newNonce();
        nonces.set(socket, nonce);
        return { body: M.encodeAuthChallenge({ nonce }) };
      }
      case 'auth-response': {
        const a = M.decodeAuthResponse(await readJson(req, max));
        const nonce = nonces.get(socket);
        nonces.delete(socket); // one nonce, one try
        if (!nonce || !nonce.equals(a.nonce)) throw new HttpError('E_NONCE', 'unknown or used nonce: ask /auth/challenge on this connection');
        const exporter = socket.exportKeyingMaterial(EXPORTER_LENGTH, EXPORTER_LABEL, nonce);
        const id = verifyCardAuthentication({ certificates: a.certificates, nonce: a.nonce, signature: a.signature, exporter, trustAnchors: o.trustAnchors, now: new Date() });
        await service.login(id); // a serial registered with another card key is refused (card-keys.ts)
        identities.set(socket, id);
        return { body: { cardSerial: id.cardSerial, subject: id.subject } };
      }
      case 'pending':
        return { body: { transactions: await service.pending(identity(socket)) } };
      case 'transaction':
        return { body: M.encodePrepared(await service.prepared(identity(socket), r.transactionId)), tx: r.transactionId };
      case 'prepare': {
        const id = identity(socket);
        const p = M.decodePrepareRequest(await readJson(req, max));
        const prepared = await service.prepare(id, p.orderId, p.content, p.fair ?? false);
        return { status: 201, body: M.encodePrepared(prepared), tx: prepared.transactionId };
      }
      case 'escrow': {
        const escrow = M.decodeEscrowMessage(await readJson(req, ESCROW_BODY_BYTES));
        return { body: M.encodeEscrowReply({ x: await service.escrow(identity(socket), r.transactionId, escrow.escrowY) }), tx: r.transactionId };
      }
      case 'confirm': {
        const id = identity(socket);
        const first = M.decodeFirstMessage(await readJson(req, max));
        return { body: M.encodeSecondMessage(await service.confirm(id, r.transactionId, first)), tx: r.transactionId };
      }
      case 'redeliver': {
        const id = identity(socket);
        const d = M.decodeRedeliverRequest(await readJson(req, max));
        return { body: M.encodeSecondMessage(await service.redeliver(id, r.transactionId, d.challenge, d.slot)), tx: r.transactionId };
      }
      case 'ack': {
        const id = identity(socket);
        const third = M.decodeThirdMessage(await readJson(req, max));
        if (third.transactionId !== r.transactionId) throw new HttpError('E_TX_MISMATCH', 'the third message names another transaction');
        return { body: await service.acknowledge(id, third), tx: r.transactionId };
      }
    }
  }

  return createJsonHttpsServer({
    tls: o.tls,
    log,
    ...(o.limits ? { limits: o.limits } : {}),
    logContext: (socket) => ({ client: identities.get(socket)?.cardSerial }),
    route: async (req, socket) => {
      const r = await route(req, socket);
      return r.tx ? { ...r, log: { tx: r.tx } } : r;
    },
  });
}


/** What a path under /log/ names; undefined: no such resource. */
type LogPath = { readonly kind: 'checkpoint' } | { readonly kind: 'cosigned'; readonly which: number | 'latest' } | { readonly kind: 'tile'; readonly tile: TileRef };

/** C2SP tlog-tiles static paths: only the checkpoint, kept cosignatures and canonical tile paths. */
function logPath(rel: string): LogPath | undefined {
  if (rel === 'checkpoint') return { kind: 'checkpoint' };
  if (rel === 'cosigned/latest') return { kind: 'cosigned', which: 'latest' };
  if (/^cosigned\/(0|[1-9][0-9]{0,15})$/.test(rel)) return { kind: 'cosigned', which: Number(rel.slice('cosigned/'.length)) };
  try {
    return { kind: 'tile', tile: decodeTilePath(rel) };
  } catch {
    return undefined;
  }
}

/** A log resource from the log's TileSource (its www/ directory, or the database). */
async function logResource(src: TileSource, rel: string): Promise<Routed> {
  const path = logPath(rel);
  const text = 'text/plain; charset=utf-8';
  let found: { data: Buffer | undefined; contentType: string; cacheControl: string } | undefined;
  if (path?.kind === 'checkpoint') {
    // A source says "no checkpoint" with a qtm error (404); a database that fails is a 500, not a missing log.
    const data = await src.checkpoint().catch((err: unknown) => {
      if (err instanceof QtmError) return undefined;
      throw err;
    });
    found = { data, contentType: text, cacheControl: 'no-cache, max-age=2' };
  } else if (path?.kind === 'cosigned') {
    // A size's checkpoint with the cosignatures kept for it (src/tlog/log-dir.ts): more may arrive.
    found = { data: await src.cosigned?.(path.which), contentType: text, cacheControl: path.which === 'latest' ? 'no-cache, max-age=2' : 'no-cache, max-age=60' };
  } else if (path?.kind === 'tile') {
    found = { data: await src.tile(path.tile), contentType: 'application/octet-stream', cacheControl: 'public, max-age=31536000, immutable' };
  }
  if (!found?.data) throw new HttpError('E_NOT_FOUND', `no log resource ${rel}`);
  return { body: undefined, raw: { contentType: found.contentType, data: found.data, cacheControl: found.cacheControl } };
}
