/**
 * The TTP's JSON messages (`qtm ttp start`). Every request names the exchange: the pre-QTM
 * package, the deadline and both parties' certificate chains; then what the request deposits.
 *   POST /v1/abort            { ...exchange, proof }      the originator's signed abort request
 *   POST /v1/resolve/client   { ...exchange, y, escrowX, escrowXSignature } the card's signature, the server's signed escrow
 *   POST /v1/resolve/server   { ...exchange, x, escrowY, proof }           the server's signature, the client's escrow, the server's signed request
 * Answer: { outcome: "x" | "y" | "aborted", x | y | token } (base64); a refusal is HTTP 403.
 */
import { X509Certificate } from 'node:crypto';
import { decode, type Decoded, type Spec } from '../protocol/messages.js';
import { DecodeError } from '../errors.js';
import { isJsonObject, own } from '../protocol/strict-json.js';
import type { Exchange, TtpAnswer, TtpRequest } from './ttp.js';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
/** 256 pairs of 2 x 512 + 2 x 512 + 32 bytes is the largest escrow the format allows. */
const MAX_ESCROW = 10 + 256 * (4 * 512 + 32);

const EXCHANGE = {
  header: { kind: 'b64', max: 200 },
  deadline: { kind: 'int', min: 0, max: 0xffffffff },
  serverCertificates: { kind: 'pems' },
  cardCertificates: { kind: 'pems' },
} as const satisfies Spec;

const REQUESTS = {
  abort: { ...EXCHANGE, proof: { kind: 'b64', max: 1024 } },
  'resolve-client': { ...EXCHANGE, y: { kind: 'b64', max: 1024 }, escrowX: { kind: 'b64', max: 1024 }, escrowXSignature: { kind: 'b64', max: 1024 } },
  'resolve-server': { ...EXCHANGE, x: { kind: 'b64', max: 1024 }, escrowY: { kind: 'b64', max: MAX_ESCROW }, proof: { kind: 'b64', max: 1024 } },
} as const satisfies Record<TtpRequest['kind'], Spec>;

export const TTP_PATHS: Record<TtpRequest['kind'], string> = { abort: '/v1/abort', 'resolve-client': '/v1/resolve/client', 'resolve-server': '/v1/resolve/server' };

export function encodeTtpRequest(exchange: Exchange, request: TtpRequest): Record<string, unknown> {
  const body: Record<string, unknown> = {
    header: b64(exchange.header),
    deadline: exchange.deadline,
    serverCertificates: exchange.serverCertificates.map((c) => c.toString()),
    cardCertificates: exchange.cardCertificates.map((c) => c.toString()),
  };
  if (request.kind === 'abort') body.proof = b64(request.proof);
  if (request.kind === 'resolve-client') Object.assign(body, { y: b64(request.y), escrowX: b64(request.escrowX), escrowXSignature: b64(request.escrowXSignature) });
  if (request.kind === 'resolve-server') Object.assign(body, { x: b64(request.x), escrowY: b64(request.escrowY), proof: b64(request.proof) });
  return body;
}

function certificates(pems: string[], field: string): X509Certificate[] {
  try {
    return pems.map((p) => new X509Certificate(p));
  } catch {
    throw new DecodeError('TTP request', `${field} holds a certificate that does not parse`);
  }
}

function exchangeOf(m: Decoded<typeof EXCHANGE>): Exchange {
  return {
    header: m.header,
    deadline: m.deadline,
    serverCertificates: certificates(m.serverCertificates, 'serverCertificates'),
    cardCertificates: certificates(m.cardCertificates, 'cardCertificates'),
  };
}

export function decodeTtpRequest(kind: TtpRequest['kind'], json: unknown): { exchange: Exchange; request: TtpRequest } {
  const format = `TTP ${kind} request`;
  if (kind === 'abort') {
    const m = decode(format, json, REQUESTS.abort);
    return { exchange: exchangeOf(m), request: { kind, proof: m.proof } };
  }
  if (kind === 'resolve-client') {
    const m = decode(format, json, REQUESTS['resolve-client']);
    return { exchange: exchangeOf(m), request: { kind, y: m.y, escrowX: m.escrowX, escrowXSignature: m.escrowXSignature } };
  }
  const m = decode(format, json, REQUESTS['resolve-server']);
  return { exchange: exchangeOf(m), request: { kind, x: m.x, escrowY: m.escrowY, proof: m.proof } };
}

export function encodeTtpAnswer(a: Exclude<TtpAnswer, { outcome: 'refused' }>): Record<string, string> {
  if (a.outcome === 'x') return { outcome: 'x', x: b64(a.x) };
  if (a.outcome === 'y') return { outcome: 'y', y: b64(a.y) };
  return { outcome: 'aborted', token: b64(a.token) };
}

const ANSWERS = {
  x: { outcome: { kind: 'string', max: 10 }, x: { kind: 'b64', max: 1024 } },
  y: { outcome: { kind: 'string', max: 10 }, y: { kind: 'b64', max: 1024 } },
  aborted: { outcome: { kind: 'string', max: 10 }, token: { kind: 'b64', max: 1024 } },
} as const satisfies Record<string, Spec>;

export function decodeTtpAnswer(json: unknown): Exclude<TtpAnswer, { outcome: 'refused' }> {
  const outcome = isJsonObject(json) ? own(json, 'outcome') : undefined;
  // Own properties only: "constructor" or "toString" is no outcome.
  if (outcome === 'x') return { outcome, x: decode('TTP answer', json, ANSWERS.x).x };
  if (outcome === 'y') return { outcome, y: decode('TTP answer', json, ANSWERS.y).y };
  if (outcome === 'aborted') return { outcome, token: decode('TTP answer', json, ANSWERS.aborted).token };
  throw new DecodeError('TTP answer', 'outcome must be "x", "y" or "aborted"');
}
