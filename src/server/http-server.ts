/**
 * The merchant web server (patent figure 1, item 15) over HTTPS, TLS 1.3 only. The client's card
 * authentication is bound to its TLS connection: the identity is kept per socket, so every
 * later request on that connection acts for that card and no bearer token exists to steal.
 * One structured JSON log line per request goes to the log stream (stderr by default).
 */
import type { Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KeyObject, X509Certificate } from 'node:crypto';
import * as M from '../protocol/messages.js';
import { authenticationData, EXPORTER_LABEL, EXPORTER_LENGTH, verifyCardAuthentication, type ClientIdentity } from './client-auth.js';
import { QtmService } from './qtm-service.js';
import { createJsonHttpsServer, HttpError, readJson, type Routed } from './json-https.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeTilePath, tilePath } from '../tlog/tiles.js';

export interface HttpServerOptions {
  readonly service: QtmService;
  readonly tls: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly trustAnchors: readonly X509Certificate[];
  readonly log?: (line: Record<string, unknown>) => void;
  readonly maxBodyBytes?: number;
  /** The transparency log's www/ directory, served under /log/ (C2SP tlog-tiles), no authentication. */
  readonly logWww?: string;
}

/** A verifiable escrow is ~168 KB, ~224 KB in base64: the one request larger than the default limit. */
const ESCROW_BODY_BYTES = 700 * 1024;

export function createQtmServer(o: HttpServerOptions): Server {
  const identities = new WeakMap<TLSSocket, ClientIdentity>();
  const nonces = new WeakMap<TLSSocket, Buffer>();
  const max = o.maxBodyBytes ?? 256 * 1024;
  const log = o.log ?? ((line) => process.stderr.write(JSON.stringify(line) + '\n'));
  const service = o.service;

  const identity = (socket: TLSSocket): ClientIdentity => {
    const id = identities.get(socket);
    if (!id) throw new HttpError(401, 'E_NOT_AUTHENTICATED', 'authenticate with the card on this connection first (POST /auth/challenge, /auth/response)');
    return id;
  };

  async function route(req: IncomingMessage, socket: TLSSocket): Promise<Routed & { tx?: number }> {
    const url = new URL(req.url ?? '/', 'https://qtm');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    let m: RegExpExecArray | null;
    if (method === 'GET' && o.logWww && path.startsWith('/log/')) return logFile(o.logWww, path.slice('/log/'.length));
    if (method === 'GET' && path === '/health') return { body: { ok: true, serverId: service.serverId.toString('hex') } };
    if (method === 'POST' && path === '/orders') {
      const r = M.decodeOrderRequest(await readJson(req, max));
      return { status: 201, body: M.encodeConceptOrder(service.composeOrder(r.items)) };
    }
    if (method === 'GET' && (m = /^\/orders\/([\w-]{1,64})$/.exec(path))) {
      return { body: M.encodeConceptOrder({ orderId: m[1]!, content: service.getOrder(m[1]!) }) };
    }
    if (method === 'POST' && path === '/auth/challenge') {
      const nonce = QtmService.newNonce();
      nonces.set(socket, nonce);
      return { body: M.encodeAuthChallenge({ nonce }) };
    }
    if (method === 'POST' && path === '/auth/response') {
      const r = M.decodeAuthResponse(await readJson(req, max));
      const nonce = nonces.get(socket);
      nonces.delete(socket); // one nonce, one try
      if (!nonce || !nonce.equals(r.nonce)) throw new HttpError(401, 'E_NONCE', 'unknown or used nonce: ask /auth/challenge on this connection');
      const exporter = socket.exportKeyingMaterial(EXPORTER_LENGTH, EXPORTER_LABEL, nonce);
      const id = verifyCardAuthentication({ certificates: r.certificates, nonce: r.nonce, signature: r.signature, exporter, trustAnchors: o.trustAnchors, now: new Date() });
      identities.set(socket, id);
      return { body: { cardSerial: id.cardSerial, subject: id.subject } };
    }
    if (method === 'GET' && path === '/transactions/pending') {
      return { body: { transactions: service.pending(identity(socket)) } };
    }
    if (method === 'GET' && (m = /^\/transactions\/(\d{1,10})$/.exec(path))) {
      return { body: M.encodePrepared(service.prepared(identity(socket), Number(m[1]))), tx: Number(m[1]) };
    }
    if (method === 'POST' && path === '/transactions') {
      const r = M.decodePrepareRequest(await readJson(req, max));
      const prepared = await service.prepare(identity(socket), r.orderId, r.fair ?? false);
      return { status: 201, body: M.encodePrepared(prepared), tx: prepared.transactionId };
    }
    if (method === 'POST' && (m = /^\/transactions\/(\d{1,10})\/escrow$/.exec(path))) {
      const tx = Number(m[1]);
      const escrow = M.decodeEscrowMessage(await readJson(req, ESCROW_BODY_BYTES));
      return { body: M.encodeEscrowReply({ x: await service.escrow(identity(socket), tx, escrow.escrowY) }), tx };
    }
    if (method === 'POST' && (m = /^\/transactions\/(\d{1,10})\/(confirm|ack|redeliver)$/.exec(path))) {
      const tx = Number(m[1]);
      const id = identity(socket);
      const body = await readJson(req, max);
      if (m[2] === 'confirm') return { body: M.encodeSecondMessage(await service.confirm(id, tx, M.decodeFirstMessage(body))), tx };
      if (m[2] === 'redeliver') {
        const r = M.decodeRedeliverRequest(body);
        return { body: M.encodeSecondMessage(await service.redeliver(id, tx, r.challenge, r.slot)), tx };
      }
      const third = M.decodeThirdMessage(body);
      if (third.transactionId !== tx) throw new HttpError(400, 'E_TX_MISMATCH', 'the third message names another transaction');
      return { body: await service.acknowledge(id, third), tx };
    }
    throw new HttpError(404, 'E_NOT_FOUND', `no route ${method} ${path}`);
  }

  return createJsonHttpsServer({
    tls: o.tls,
    log,
    logContext: (socket) => ({ client: identities.get(socket)?.cardSerial }),
    route: async (req, socket) => {
      const r = await route(req, socket);
      return r.tx ? { ...r, log: { tx: r.tx } } : r;
    },
  });
}


/** C2SP tlog-tiles static paths: only the checkpoint and canonical tile paths, so no other file is reachable. */
function logFile(www: string, rel: string): Routed {
  let file: string;
  let contentType = 'application/octet-stream';
  let cacheControl = 'public, max-age=31536000, immutable';
  if (rel === 'checkpoint') {
    file = 'checkpoint';
    contentType = 'text/plain; charset=utf-8';
    cacheControl = 'no-cache, max-age=2';
  } else {
    try {
      file = tilePath(decodeTilePath(rel));
    } catch {
      throw new HttpError(404, 'E_NOT_FOUND', `no log resource ${rel}`);
    }
  }
  let data: Buffer;
  try {
    data = readFileSync(join(www, file));
  } catch {
    throw new HttpError(404, 'E_NOT_FOUND', `no log resource ${rel}`);
  }
  return { body: undefined, raw: { contentType, data, cacheControl } };
}
