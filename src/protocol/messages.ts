/**
 * The JSON messages between `qtm sign` and `qtm server` (SPEC 7). Binary fields are standard
 * base64. Each message has one encoder (a typed object serialised with JSON.stringify) and one
 * strict decoder here: unknown or missing fields, wrong types, bad base64 or wrong lengths are
 * a DecodeError, which the server answers with 400 and the client reports as a protocol error.
 */
import { DecodeError } from '../errors.js';
import { decodeCanonicalBase64, isPemCertificate } from './base64.js';
import { checkFields, own } from './strict-json.js';
import { MAX_CONTENT_BYTES } from './plain-text.js';

type Kind = 'string' | 'b64' | 'int' | 'pems' | 'items' | 'bool';
export type Spec = Record<string, { kind: Kind; length?: number; min?: number; max?: number; optional?: boolean }>;

/** Longest PEM certificate accepted in a message or bundle (an RSA-4096 one is about 2 KB). */
export const MAX_PEM_CHARS = 8192;
/** Most certificates in one list: a leaf and its intermediates (chains are at most 8 deep). */
export const MAX_PEMS = 8;

/**
 * Strict decoding of a JSON object against a field spec; shared by every JSON message. The spec
 * is read through its own properties only and the object's keys are checked with
 * `checkFields` (strict-json.ts), so "constructor" or "__proto__" is an unknown field like any
 * other. `path` names the object inside its message ("items[0]"), for errors.
 */
export function decode<T>(format: string, input: unknown, spec: Spec, path = ''): T {
  const fail = (m: string): never => {
    throw new DecodeError(format, m);
  };
  const obj = checkFields(format, input, Object.keys(spec), path);
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(spec)) {
    const name = path ? `${path}.${key}` : key;
    const v = own(obj, key);
    if (v === undefined) {
      if (!f.optional) fail(`missing field "${name}"`);
      continue;
    }
    switch (f.kind) {
      case 'string':
        if (typeof v !== 'string' || v.length === 0 || v.length > (f.max ?? 200)) fail(`"${name}" must be a string of 1..${f.max ?? 200} characters`);
        out[key] = v;
        break;
      case 'b64': {
        const maxBytes = f.length ?? f.max;
        // The length cap comes before any decoding, so an oversized field costs nothing.
        if (typeof v !== 'string' || (maxBytes !== undefined && v.length > 4 * Math.ceil(maxBytes / 3))) {
          fail(`"${name}" must be base64 of ${f.length !== undefined ? `${f.length}` : `at most ${f.max}`} bytes`);
        }
        const b = decodeCanonicalBase64(v as string) ?? fail(`"${name}" must be base64`);
        if (f.length !== undefined && b.length !== f.length) fail(`"${name}" must be ${f.length} bytes, got ${b.length}`);
        if (f.max !== undefined && b.length > f.max) fail(`"${name}" longer than ${f.max} bytes`);
        out[key] = b;
        break;
      }
      case 'int':
        if (!Number.isInteger(v) || (v as number) < (f.min ?? 0) || (v as number) > (f.max ?? 0xffffffff)) fail(`"${name}" must be a whole number in ${f.min ?? 0}..${f.max ?? 0xffffffff}`);
        out[key] = v;
        break;
      case 'pems':
        if (!Array.isArray(v) || v.length === 0 || v.length > MAX_PEMS
          || v.some((p) => typeof p !== 'string' || p.length > MAX_PEM_CHARS || !isPemCertificate(p))) {
          fail(`"${name}" must be a list of 1..${MAX_PEMS} PEM certificates`);
        }
        out[key] = v;
        break;
      case 'bool':
        if (typeof v !== 'boolean') fail(`"${name}" must be true or false`);
        out[key] = v;
        break;
      case 'items':
        if (!Array.isArray(v) || v.length === 0 || v.length > 50) fail(`"${name}" must be a list of 1..50 items`);
        out[key] = (v as unknown[]).map((it, i) => decode<OrderItem>(format, it, { sku: { kind: 'string', max: 40 }, quantity: { kind: 'int', min: 1, max: 999 } }, `${name}[${i}]`));
        break;
    }
  }
  return out as T;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

export interface OrderItem {
  readonly sku: string;
  readonly quantity: number;
}

export interface OrderRequest {
  readonly items: OrderItem[];
}
export const decodeOrderRequest = (j: unknown) => decode<OrderRequest>('order request', j, { items: { kind: 'items' } });

export interface ConceptOrder {
  readonly orderId: string;
  readonly content: Buffer;
}
export const encodeConceptOrder = (m: ConceptOrder) => ({ orderId: m.orderId, content: b64(m.content) });
export const decodeConceptOrder = (j: unknown) => decode<ConceptOrder>('concept order', j, { orderId: { kind: 'string', max: 64 }, content: { kind: 'b64', max: MAX_CONTENT_BYTES } });

export interface AuthChallenge {
  readonly nonce: Buffer;
}
export const encodeAuthChallenge = (m: AuthChallenge) => ({ nonce: b64(m.nonce) });
export const decodeAuthChallenge = (j: unknown) => decode<AuthChallenge>('auth challenge', j, { nonce: { kind: 'b64', length: 16 } });

export interface AuthResponse {
  readonly certificates: string[];
  readonly nonce: Buffer;
  readonly signature: Buffer;
}
export const encodeAuthResponse = (m: AuthResponse) => ({ certificates: m.certificates, nonce: b64(m.nonce), signature: b64(m.signature) });
export const decodeAuthResponse = (j: unknown) => decode<AuthResponse>('auth response', j, { certificates: { kind: 'pems' }, nonce: { kind: 'b64', length: 16 }, signature: { kind: 'b64', max: 1024 } });

export interface PrepareRequest {
  readonly orderId: string;
  /** Ask for the fair exchange of signatures through the server's TTP (claims 12-14). */
  readonly fair?: boolean;
}
export const decodePrepareRequest = (j: unknown) => decode<PrepareRequest>('prepare request', j, { orderId: { kind: 'string', max: 64 }, fair: { kind: 'bool', optional: true } });

/** The record to sign: the pre-QTM package, the content it names, and who the server is. */
export interface PreparedTransaction {
  readonly transactionId: number;
  readonly header: Buffer;
  readonly content: Buffer;
  readonly serverCertificates: string[];
  /** Party A's chain: the server's receipt certificate, or manager X's when signing by proxy. */
  readonly partyACertificates: string[];
  /** When A signs by proxy: the warrant X issued to the server's key S (claims 10-11). */
  readonly warrants?: string[];
  /** Fair exchange (claims 12-14, block 303): the TTP, the deadline, and the escrow of X. */
  readonly ttpUrl?: string;
  readonly ttpCertificates?: string[];
  readonly deadline?: number;
  readonly escrowX?: Buffer;
  /** The server's receipt-key signature over the label and SHA-256 of escrowX (issue 17). */
  readonly escrowXSignature?: Buffer;
}
export const encodePrepared = (m: PreparedTransaction) => ({
  transactionId: m.transactionId, header: b64(m.header), content: b64(m.content), serverCertificates: m.serverCertificates, partyACertificates: m.partyACertificates,
  ...(m.warrants ? { warrants: m.warrants } : {}),
  ...(m.escrowX ? { ttpUrl: m.ttpUrl, ttpCertificates: m.ttpCertificates, deadline: m.deadline, escrowX: b64(m.escrowX), ...(m.escrowXSignature ? { escrowXSignature: b64(m.escrowXSignature) } : {}) } : {}),
});
export const decodePrepared = (j: unknown) => decode<PreparedTransaction>('prepared transaction', j, {
  transactionId: { kind: 'int', min: 1 }, header: { kind: 'b64', max: 200 }, content: { kind: 'b64', max: MAX_CONTENT_BYTES }, serverCertificates: { kind: 'pems' }, partyACertificates: { kind: 'pems' },
  warrants: { kind: 'pems', optional: true },
  ttpUrl: { kind: 'string', max: 200, optional: true }, ttpCertificates: { kind: 'pems', optional: true }, deadline: { kind: 'int', optional: true }, escrowX: { kind: 'b64', max: 1024, optional: true }, escrowXSignature: { kind: 'b64', max: 1024, optional: true },
});

/** Block 305: the client's verifiable escrow of Y; block 308: the server's answer, X. */
export interface EscrowMessage {
  readonly escrowY: Buffer;
}
export const encodeEscrowMessage = (m: EscrowMessage) => ({ escrowY: b64(m.escrowY) });
export const decodeEscrowMessage = (j: unknown) => decode<EscrowMessage>('escrow message', j, { escrowY: { kind: 'b64', max: 600_000 } });
export interface EscrowReply {
  readonly x: Buffer;
}
export const encodeEscrowReply = (m: EscrowReply) => ({ x: b64(m.x) });
export const decodeEscrowReply = (j: unknown) => decode<EscrowReply>('escrow reply', j, { x: { kind: 'b64', max: 1024 } });

/** Claim 1's first message: the card's signature, plus the challenge R and slot (claims 3, 6). */
export interface FirstMessage {
  readonly signature: Buffer;
  readonly challenge: Buffer;
  readonly slot: number;
  readonly priority: number;
}
export const encodeFirstMessage = (m: FirstMessage) => ({ signature: b64(m.signature), challenge: b64(m.challenge), slot: m.slot, priority: m.priority });
export const decodeFirstMessage = (j: unknown) => decode<FirstMessage>('first message', j, {
  signature: { kind: 'b64', max: 1024 }, challenge: { kind: 'b64', length: 16 }, slot: { kind: 'int', min: 1, max: 255 }, priority: { kind: 'int', min: 0, max: 255 },
});

/** Claim 1's second message: the signed package, and the secure-write envelope (claims 2, 3, 7). */
export interface SecondMessage {
  readonly transactionId: number;
  readonly package: Buffer;
  readonly envelope: Buffer;
  readonly slot: number;
}
export const encodeSecondMessage = (m: SecondMessage) => ({ transactionId: m.transactionId, package: b64(m.package), envelope: b64(m.envelope), slot: m.slot });
export const decodeSecondMessage = (j: unknown) => decode<SecondMessage>('second message', j, {
  transactionId: { kind: 'int', min: 1 }, package: { kind: 'b64', max: 4096 }, envelope: { kind: 'b64', max: 256 }, slot: { kind: 'int', min: 1, max: 255 },
});

/** Claim 7's third message: the record number and the card's storage proof W. */
export interface ThirdMessage {
  readonly transactionId: number;
  readonly proof: Buffer;
}
export const encodeThirdMessage = (m: ThirdMessage) => ({ transactionId: m.transactionId, proof: b64(m.proof) });
export const decodeThirdMessage = (j: unknown) => decode<ThirdMessage>('third message', j, { transactionId: { kind: 'int', min: 1 }, proof: { kind: 'b64', length: 8 } });

export interface RedeliverRequest {
  readonly challenge: Buffer;
  readonly slot: number;
}
export const encodeRedeliverRequest = (m: RedeliverRequest) => ({ challenge: b64(m.challenge), slot: m.slot });
export const decodeRedeliverRequest = (j: unknown) => decode<RedeliverRequest>('redeliver request', j, { challenge: { kind: 'b64', length: 16 }, slot: { kind: 'int', min: 1, max: 255 } });
