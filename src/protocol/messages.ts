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

type Kind = 'string' | 'b64' | 'int' | 'pems' | 'items' | 'bool' | 'object';
export interface FieldSpec {
  readonly kind: Kind;
  readonly length?: number;
  readonly min?: number;
  readonly max?: number;
  readonly optional?: boolean;
}
export type Spec = Readonly<Record<string, FieldSpec>>;

/** What each kind of field decodes to. */
interface KindTypes {
  string: string;
  b64: Buffer;
  int: number;
  pems: string[];
  items: OrderItem[];
  bool: boolean;
  /** A JSON object whose fields the layer that owns it decodes (e.g. src/tlog/bundle-proof.ts). */
  object: Readonly<Record<string, unknown>>;
}

/**
 * The decoded type of a spec: each message type below is derived from its spec, so a field
 * renamed, retyped or made optional in the spec and not where it is used fails to compile.
 */
export type Decoded<S extends Spec> = {
  readonly [K in keyof S as S[K]['optional'] extends true ? never : K]: KindTypes[S[K]['kind']];
} & {
  readonly [K in keyof S as S[K]['optional'] extends true ? K : never]?: KindTypes[S[K]['kind']];
};

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
export function decode<const S extends Spec>(format: string, input: unknown, spec: S, path = ''): Decoded<S> {
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
      case 'object':
        if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`"${name}" must be a JSON object`);
        out[key] = v;
        break;
      case 'items':
        if (!Array.isArray(v) || v.length === 0 || v.length > 50) fail(`"${name}" must be a list of 1..50 items`);
        out[key] = (v as unknown[]).map((it, i) => decode(format, it, ORDER_ITEM, `${name}[${i}]`));
        break;
    }
  }
  return out as Decoded<S>;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

const ORDER_ITEM = { sku: { kind: 'string', max: 40 }, quantity: { kind: 'int', min: 1, max: 999 } } as const satisfies Spec;
/** One catalogue article and how many of it. */
export type OrderItem = Decoded<typeof ORDER_ITEM>;

const ORDER_REQUEST = { items: { kind: 'items' } } as const satisfies Spec;
export type OrderRequest = Decoded<typeof ORDER_REQUEST>;
export const decodeOrderRequest = (j: unknown) => decode('order request', j, ORDER_REQUEST);

const CONCEPT_ORDER = { orderId: { kind: 'string', max: 64 }, content: { kind: 'b64', max: MAX_CONTENT_BYTES } } as const satisfies Spec;
/** The order text the server composed, exactly the bytes that will be hashed (claim 8). */
export type ConceptOrder = Decoded<typeof CONCEPT_ORDER>;
export const encodeConceptOrder = (m: ConceptOrder) => ({ orderId: m.orderId, content: b64(m.content) });
export const decodeConceptOrder = (j: unknown) => decode('concept order', j, CONCEPT_ORDER);

const AUTH_CHALLENGE = { nonce: { kind: 'b64', length: 16 } } as const satisfies Spec;
export type AuthChallenge = Decoded<typeof AUTH_CHALLENGE>;
export const encodeAuthChallenge = (m: AuthChallenge) => ({ nonce: b64(m.nonce) });
export const decodeAuthChallenge = (j: unknown) => decode('auth challenge', j, AUTH_CHALLENGE);

const AUTH_RESPONSE = { certificates: { kind: 'pems' }, nonce: { kind: 'b64', length: 16 }, signature: { kind: 'b64', max: 1024 } } as const satisfies Spec;
/** The card's certificate chain and its signature over the TLS exporter value and nonce (claim 9). */
export type AuthResponse = Decoded<typeof AUTH_RESPONSE>;
export const encodeAuthResponse = (m: AuthResponse) => ({ certificates: m.certificates, nonce: b64(m.nonce), signature: b64(m.signature) });
export const decodeAuthResponse = (j: unknown) => decode('auth response', j, AUTH_RESPONSE);

const PREPARE_REQUEST = {
  orderId: { kind: 'string', max: 64 },
  /** The concept order's content as POST /orders gave it: the server keeps no orders (issue 18). */
  content: { kind: 'b64', max: MAX_CONTENT_BYTES },
  /** Ask for the fair exchange of signatures through the server's TTP (claims 12-14). */
  fair: { kind: 'bool', optional: true },
} as const satisfies Spec;
export type PrepareRequest = Decoded<typeof PREPARE_REQUEST>;
export const decodePrepareRequest = (j: unknown) => decode('prepare request', j, PREPARE_REQUEST);

const PREPARED = {
  transactionId: { kind: 'int', min: 1 },
  /** The pre-QTM package (fields 1-7) the card is to sign. */
  header: { kind: 'b64', max: 200 },
  content: { kind: 'b64', max: MAX_CONTENT_BYTES },
  serverCertificates: { kind: 'pems' },
  /** Party A's chain: the server's receipt certificate, or manager X's when signing by proxy. */
  partyACertificates: { kind: 'pems' },
  /** When A signs by proxy: the warrant X issued to the server's key S (claims 10-11). */
  warrants: { kind: 'pems', optional: true },
  /** Fair exchange (claims 12-14, block 303): the TTP, the deadline, and the escrow of X. */
  ttpUrl: { kind: 'string', max: 200, optional: true },
  ttpCertificates: { kind: 'pems', optional: true },
  deadline: { kind: 'int', optional: true },
  escrowX: { kind: 'b64', max: 1024, optional: true },
  /** The server's receipt-key signature over the label and SHA-256 of escrowX (issue 17). */
  escrowXSignature: { kind: 'b64', max: 1024, optional: true },
} as const satisfies Spec;
/** The record to sign: the pre-QTM package, the content it names, and who the server is. */
export type PreparedTransaction = Decoded<typeof PREPARED>;
export const encodePrepared = (m: PreparedTransaction) => ({
  transactionId: m.transactionId, header: b64(m.header), content: b64(m.content), serverCertificates: m.serverCertificates, partyACertificates: m.partyACertificates,
  ...(m.warrants ? { warrants: m.warrants } : {}),
  ...(m.escrowX ? { ttpUrl: m.ttpUrl, ttpCertificates: m.ttpCertificates, deadline: m.deadline, escrowX: b64(m.escrowX), ...(m.escrowXSignature ? { escrowXSignature: b64(m.escrowXSignature) } : {}) } : {}),
});
export const decodePrepared = (j: unknown) => decode('prepared transaction', j, PREPARED);

const ESCROW_MESSAGE = { escrowY: { kind: 'b64', max: 600_000 } } as const satisfies Spec;
/** Block 305: the client's verifiable escrow of Y; block 308: the server's answer, X. */
export type EscrowMessage = Decoded<typeof ESCROW_MESSAGE>;
export const encodeEscrowMessage = (m: EscrowMessage) => ({ escrowY: b64(m.escrowY) });
export const decodeEscrowMessage = (j: unknown) => decode('escrow message', j, ESCROW_MESSAGE);
const ESCROW_REPLY = { x: { kind: 'b64', max: 1024 } } as const satisfies Spec;
export type EscrowReply = Decoded<typeof ESCROW_REPLY>;
export const encodeEscrowReply = (m: EscrowReply) => ({ x: b64(m.x) });
export const decodeEscrowReply = (j: unknown) => decode('escrow reply', j, ESCROW_REPLY);

const FIRST_MESSAGE = {
  signature: { kind: 'b64', max: 1024 }, challenge: { kind: 'b64', length: 16 }, slot: { kind: 'int', min: 1, max: 255 }, priority: { kind: 'int', min: 0, max: 255 },
} as const satisfies Spec;
/** Claim 1's first message: the card's signature, plus the challenge R and slot (claims 3, 6). */
export type FirstMessage = Decoded<typeof FIRST_MESSAGE>;
export const encodeFirstMessage = (m: FirstMessage) => ({ signature: b64(m.signature), challenge: b64(m.challenge), slot: m.slot, priority: m.priority });
export const decodeFirstMessage = (j: unknown) => decode('first message', j, FIRST_MESSAGE);

const SECOND_MESSAGE = {
  transactionId: { kind: 'int', min: 1 }, package: { kind: 'b64', max: 4096 }, envelope: { kind: 'b64', max: 256 }, slot: { kind: 'int', min: 1, max: 255 },
  /** The store's signed head after the commit that stored this receipt (src/store/head.ts): what the customer keeps. */
  headSeq: { kind: 'int', min: 1, max: Number.MAX_SAFE_INTEGER, optional: true },
  headHash: { kind: 'b64', length: 32, optional: true },
  headSignature: { kind: 'b64', max: 1024, optional: true },
  /** Issue 12: the leaf's inclusion proof against the log checkpoint of its commit (the bundle's "transparency", src/tlog/bundle-proof.ts decodes it). */
  transparency: { kind: 'object', optional: true },
  /** Issue 12: the card's monitoring key for the log's card tags (src/tlog/card-tag.ts); kept by the client, never in a bundle. */
  monitorKey: { kind: 'b64', length: 32, optional: true },
} as const satisfies Spec;
/** Claim 1's second message: the signed package, and the secure-write envelope (claims 2, 3, 7). */
export type SecondMessage = Decoded<typeof SECOND_MESSAGE>;
export const encodeSecondMessage = (m: SecondMessage) => ({
  transactionId: m.transactionId, package: b64(m.package), envelope: b64(m.envelope), slot: m.slot,
  ...(m.headSeq !== undefined && m.headHash && m.headSignature ? { headSeq: m.headSeq, headHash: b64(m.headHash), headSignature: b64(m.headSignature) } : {}),
  ...(m.transparency ? { transparency: m.transparency } : {}),
  ...(m.monitorKey ? { monitorKey: b64(m.monitorKey) } : {}),
});
export const decodeSecondMessage = (j: unknown) => decode('second message', j, SECOND_MESSAGE);

const THIRD_MESSAGE = { transactionId: { kind: 'int', min: 1 }, proof: { kind: 'b64', length: 8 } } as const satisfies Spec;
/** Claim 7's third message: the record number and the card's storage proof W. */
export type ThirdMessage = Decoded<typeof THIRD_MESSAGE>;
export const encodeThirdMessage = (m: ThirdMessage) => ({ transactionId: m.transactionId, proof: b64(m.proof) });
export const decodeThirdMessage = (j: unknown) => decode('third message', j, THIRD_MESSAGE);

const REDELIVER_REQUEST = { challenge: { kind: 'b64', length: 16 }, slot: { kind: 'int', min: 1, max: 255 } } as const satisfies Spec;
export type RedeliverRequest = Decoded<typeof REDELIVER_REQUEST>;
export const encodeRedeliverRequest = (m: RedeliverRequest) => ({ challenge: b64(m.challenge), slot: m.slot });
export const decodeRedeliverRequest = (j: unknown) => decode('redeliver request', j, REDELIVER_REQUEST);
