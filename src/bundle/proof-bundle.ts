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
 * }
 * Each certificate list starts with the signer's own certificate, then any intermediates; the
 * root is never included (the auditor brings it as a trust anchor).
 */
import { DecodeError } from '../errors.js';

export const BUNDLE_MEDIA_TYPE = 'application/vnd.qtm.proof+json';
export const BUNDLE_VERSION = 1;
export const CONTENT_MEDIA_TYPE = 'text/plain; charset=utf-8';

export interface ProofBundle {
  readonly package: Buffer;
  /** Absent when the content travels as a separate file (`qtm verify --content`). */
  readonly content?: Buffer;
  readonly certificates: { readonly server: string[]; readonly partyA: string[]; readonly partyB: string[] };
  readonly cardRecord?: Buffer;
  readonly warrants?: string[];
  readonly attestation?: Buffer;
}

const FORMAT = 'proof bundle';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;
const KNOWN_KEYS = new Set(['mediaType', 'version', 'package', 'content', 'certificates', 'cardRecord', 'warrants', 'attestation']);

export function encodeBundle(b: ProofBundle): string {
  const json: Record<string, unknown> = {
    mediaType: BUNDLE_MEDIA_TYPE,
    version: BUNDLE_VERSION,
    package: b.package.toString('base64'),
  };
  if (b.content) json.content = { mediaType: CONTENT_MEDIA_TYPE, base64: b.content.toString('base64') };
  json.certificates = { server: b.certificates.server, partyA: b.certificates.partyA, partyB: b.certificates.partyB };
  if (b.cardRecord) json.cardRecord = b.cardRecord.toString('base64');
  if (b.warrants?.length) json.warrants = b.warrants;
  if (b.attestation) json.attestation = b.attestation.toString('base64');
  return JSON.stringify(json, null, 2) + '\n';
}

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function base64Field(v: unknown, field: string): Buffer {
  if (typeof v !== 'string' || !BASE64.test(v)) fail(`${field} must be a base64 string`);
  return Buffer.from(v, 'base64');
}

function pemList(v: unknown, field: string, required: boolean): string[] {
  if (!Array.isArray(v) || (required && v.length === 0)) fail(`${field} must be a non-empty list of PEM certificates`);
  return v.map((pem, i) => {
    if (typeof pem !== 'string' || !PEM_CERT.test(pem)) fail(`${field}[${i}] is not a PEM certificate`);
    return pem;
  });
}

export function decodeBundle(text: string): ProofBundle {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail('not JSON');
  }
  if (!isObject(json)) fail('top level must be a JSON object');
  if (json.mediaType !== BUNDLE_MEDIA_TYPE) fail(`mediaType must be "${BUNDLE_MEDIA_TYPE}"`);
  if (json.version !== BUNDLE_VERSION) fail(`unsupported version ${JSON.stringify(json.version)} (this qtm reads ${BUNDLE_VERSION})`);
  for (const key of Object.keys(json)) if (!KNOWN_KEYS.has(key)) fail(`unknown field "${key}"`);

  const pkg = base64Field(json.package, 'package');
  let content: Buffer | undefined;
  if (json.content !== undefined) {
    if (!isObject(json.content) || json.content.mediaType !== CONTENT_MEDIA_TYPE) {
      fail(`content.mediaType must be "${CONTENT_MEDIA_TYPE}"`);
    }
    content = base64Field(json.content.base64, 'content.base64');
  }
  const certs = json.certificates;
  if (!isObject(certs)) fail('certificates must be an object with server, partyA and partyB');
  const bundle: ProofBundle = {
    package: pkg,
    ...(content ? { content } : {}),
    certificates: {
      server: pemList(certs.server, 'certificates.server', true),
      partyA: pemList(certs.partyA, 'certificates.partyA', true),
      partyB: pemList(certs.partyB, 'certificates.partyB', true),
    },
    ...(json.cardRecord !== undefined ? { cardRecord: base64Field(json.cardRecord, 'cardRecord') } : {}),
    ...(json.warrants !== undefined ? { warrants: pemList(json.warrants, 'warrants', false) } : {}),
    ...(json.attestation !== undefined ? { attestation: base64Field(json.attestation, 'attestation') } : {}),
  };
  return bundle;
}
