/**
 * The proof bundle: everything an auditor needs to check one transaction offline, as JSON.
 * docs/FORMATS.md documents every field. Binary values are standard base64 (RFC 4648 §4) so
 * `base64 -d` recovers the exact bytes for openssl.
 *
 * {
 *   "mediaType": "application/vnd.qtm.proof+json",
 *   "version": 1,
 *   "package": base64 of the QTM package,
 *   "content": { "mediaType": "text/plain; charset=utf-8", "base64": ... }  | omitted when detached,
 *   "certificates": { "server": [PEM...], "partyA": [PEM...], "partyB": [PEM...] },
 *   "cardRecord": base64 (optional: the record as read back from the card),
 *   "warrants": [PEM] (optional: the one warrant party A signed under, proxy signing)
 *   "attestation": base64 (optional: the server's signature over a package version 2 proxy
 *                  proof's package and warrant, from its store: src/protocol/proxy-attestation.ts)
 *   "transparency": { "index", "proof": [base64], "checkpoint": signed note, "tag": base64 }
 *                  (versions 2 and 3 only, and then required: the transaction's inclusion in the
 *                  server's transparency log, src/tlog/bundle-proof.ts; "tag" in version 3 only)
 * }
 * A bundle is version 1 unless it carries a transparency proof: then version 2, or 3 when its leaf
 * is a card-tagged (version 2) entry, which an older qtm refuses by its version rather than by an
 * unknown field. Version 1 and 2 bundles are unchanged.
 * Each certificate list starts with the signer's own certificate, then any intermediates; the
 * root is never included (the auditor brings it as a trust anchor).
 */
import { DecodeError } from '../errors.js';
import { decodeCanonicalBase64, isPemCertificate } from '../protocol/base64.js';
import { MAX_PEM_CHARS, MAX_PEMS } from '../protocol/messages.js';
import { checkFields, parseStrictJson, quoteName } from '../protocol/strict-json.js';
import { decodeTransparency, encodeTransparency, type TransparencyProof } from '../tlog/bundle-proof.js';

export const BUNDLE_MEDIA_TYPE = 'application/vnd.qtm.proof+json';
export const BUNDLE_VERSION = 1;
/** A bundle with a transparency-log inclusion proof. */
export const BUNDLE_VERSION_TLOG = 2;
/** A bundle whose inclusion proof is of a card-tagged log entry (transparency.tag). */
export const BUNDLE_VERSION_TLOG_TAGGED = 3;
export const CONTENT_MEDIA_TYPE = 'text/plain; charset=utf-8';

export interface ProofBundle {
  readonly package: Buffer;
  /** Absent when the content travels as a separate file (`qtm verify --content`). */
  readonly content?: Buffer;
  readonly certificates: { readonly server: string[]; readonly partyA: string[]; readonly partyB: string[] };
  readonly cardRecord?: Buffer;
  readonly warrants?: string[];
  readonly attestation?: Buffer;
  /** The transaction's inclusion in the server's transparency log (bundle version 2). */
  readonly transparency?: TransparencyProof;
}

const FORMAT = 'proof bundle';
/**
 * The largest bundle file read at all (docs/FORMATS.md, "Size caps"): the content is at most
 * 64 KiB (88 KiB in base64), the package 4 KiB, the card record 64 bytes, and each of the four
 * certificate lists at most 8 PEM certificates of at most 8 KiB: about 360 KiB with the JSON
 * around them. A larger file is refused before it is parsed.
 */
export const MAX_BUNDLE_BYTES = 512 * 1024;
const MAX_CONTENT_BYTES = 65536;
const MAX_PACKAGE_BYTES = 4096;
const MAX_CARD_RECORD_BYTES = 64;
const KNOWN_KEYS = new Set(['mediaType', 'version', 'package', 'content', 'certificates', 'cardRecord', 'warrants', 'attestation', 'transparency']);
/** An RSA-8192 signature is 1024 bytes; nothing real is longer. */
const MAX_ATTESTATION_BYTES = 1024;

export function encodeBundle(b: ProofBundle): string {
  const json: Record<string, unknown> = {
    mediaType: BUNDLE_MEDIA_TYPE,
    version: b.transparency ? (b.transparency.tag ? BUNDLE_VERSION_TLOG_TAGGED : BUNDLE_VERSION_TLOG) : BUNDLE_VERSION,
    package: b.package.toString('base64'),
  };
  if (b.content) json.content = { mediaType: CONTENT_MEDIA_TYPE, base64: b.content.toString('base64') };
  json.certificates = { server: b.certificates.server, partyA: b.certificates.partyA, partyB: b.certificates.partyB };
  if (b.cardRecord) json.cardRecord = b.cardRecord.toString('base64');
  if (b.warrants?.length) json.warrants = b.warrants;
  if (b.attestation) json.attestation = b.attestation.toString('base64');
  if (b.transparency) json.transparency = encodeTransparency(b.transparency);
  return JSON.stringify(json, null, 2) + '\n';
}

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Base64 of at most `maxBytes`, checked linearly; the length cap before any decoding. */
function base64Field(v: unknown, field: string, maxBytes: number): Buffer {
  if (typeof v !== 'string') fail(`${field} must be a base64 string`);
  if (v.length > 4 * Math.ceil(maxBytes / 3)) fail(`${field} is longer than ${maxBytes} bytes`);
  return decodeCanonicalBase64(v) ?? fail(`${field} must be a base64 string`);
}

function pemList(v: unknown, field: string, required: boolean): string[] {
  if (!Array.isArray(v) || (required && v.length === 0)) fail(`${field} must be a non-empty list of PEM certificates`);
  if (v.length > MAX_PEMS) fail(`${field} holds ${v.length} certificates, at most ${MAX_PEMS} are read`);
  return v.map((pem, i) => {
    if (typeof pem !== 'string' || pem.length > MAX_PEM_CHARS || !isPemCertificate(pem)) fail(`${field}[${i}] is not a PEM certificate of at most ${MAX_PEM_CHARS} characters`);
    return pem;
  });
}

export function decodeBundle(text: string): ProofBundle {
  if (text.length > MAX_BUNDLE_BYTES) fail(`over ${MAX_BUNDLE_BYTES} characters (no genuine bundle is): refused unread`);
  const json = parseStrictJson(text, FORMAT);
  if (!isObject(json)) fail('top level must be a JSON object');
  if (json.mediaType !== BUNDLE_MEDIA_TYPE) fail(`mediaType must be "${BUNDLE_MEDIA_TYPE}"`);
  if (json.version !== BUNDLE_VERSION && json.version !== BUNDLE_VERSION_TLOG && json.version !== BUNDLE_VERSION_TLOG_TAGGED) {
    fail(`unsupported version ${JSON.stringify(json.version)} (this qtm reads ${BUNDLE_VERSION} to ${BUNDLE_VERSION_TLOG_TAGGED})`);
  }
  if ((json.version !== BUNDLE_VERSION) !== (json.transparency !== undefined)) {
    fail(json.version !== BUNDLE_VERSION ? `version ${json.version} requires the transparency field` : 'the transparency field requires version 2 or 3');
  }
  for (const key of Object.keys(json)) if (!KNOWN_KEYS.has(key)) fail(`unknown field ${quoteName(key)}`);

  const pkg = base64Field(json.package, 'package', MAX_PACKAGE_BYTES);
  let content: Buffer | undefined;
  if (json.content !== undefined) {
    if (!isObject(json.content) || json.content.mediaType !== CONTENT_MEDIA_TYPE) {
      fail(`content.mediaType must be "${CONTENT_MEDIA_TYPE}"`);
    }
    checkFields(FORMAT, json.content, ['mediaType', 'base64'], 'content');
    content = base64Field(json.content.base64, 'content.base64', MAX_CONTENT_BYTES);
  }
  const certs = json.certificates;
  if (!isObject(certs)) fail('certificates must be an object with server, partyA and partyB');
  checkFields(FORMAT, certs, ['server', 'partyA', 'partyB'], 'certificates');
  const bundle: ProofBundle = {
    package: pkg,
    ...(content ? { content } : {}),
    certificates: {
      server: pemList(certs.server, 'certificates.server', true),
      partyA: pemList(certs.partyA, 'certificates.partyA', true),
      partyB: pemList(certs.partyB, 'certificates.partyB', true),
    },
    ...(json.cardRecord !== undefined ? { cardRecord: base64Field(json.cardRecord, 'cardRecord', MAX_CARD_RECORD_BYTES) } : {}),
    ...(json.warrants !== undefined ? { warrants: pemList(json.warrants, 'warrants', false) } : {}),
    ...(json.attestation !== undefined ? { attestation: base64Field(json.attestation, 'attestation', MAX_ATTESTATION_BYTES) } : {}),
    ...(json.transparency !== undefined ? { transparency: decodeTransparency(FORMAT, json.transparency) } : {}),
  };
  if (bundle.transparency && (json.version === BUNDLE_VERSION_TLOG_TAGGED) !== (bundle.transparency.tag !== undefined)) {
    fail(json.version === BUNDLE_VERSION_TLOG_TAGGED ? 'version 3 requires transparency.tag' : 'transparency.tag requires version 3');
  }
  return bundle;
}
