/**
 * RFC 7512 PKCS#11 URIs: `pkcs11:token=shop;object=master?pin-source=file:/etc/pin`.
 *
 * Strict: a URI that is not exactly the RFC's grammar is refused with an InputError naming the
 * first problem (a character that must be percent-encoded, a bad %XX, a repeated path attribute,
 * a malformed `type`, `slot-id` or `library-version`, both `pin-source` and `pin-value`).
 * Values are percent-decoded; text attributes must decode to UTF-8, `id` is bytes.
 * Attribute names the RFC does not define are vendor attributes (RFC 7512 2.3): they are parsed
 * and kept, and the token layer refuses a URI whose vendor attributes it would have to ignore.
 */
import { InputError } from '../errors.js';

export const PATH_ATTRIBUTES = [
  'token', 'manufacturer', 'serial', 'model', 'library-manufacturer', 'library-description', 'library-version',
  'object', 'type', 'id', 'slot-description', 'slot-manufacturer', 'slot-id',
] as const;
export const QUERY_ATTRIBUTES = ['pin-source', 'pin-value', 'module-name', 'module-path'] as const;
export const OBJECT_TYPES = ['public', 'private', 'cert', 'secret-key', 'data'] as const;

export type PathAttribute = (typeof PATH_ATTRIBUTES)[number];
export type QueryAttribute = (typeof QUERY_ATTRIBUTES)[number];
export type ObjectType = (typeof OBJECT_TYPES)[number];

export interface Pkcs11Uri {
  readonly token?: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly model?: string;
  readonly libraryManufacturer?: string;
  readonly libraryDescription?: string;
  readonly libraryVersion?: { readonly major: number; readonly minor: number };
  readonly object?: string;
  readonly type?: ObjectType;
  /** CKA_ID, raw bytes. */
  readonly id?: Buffer;
  readonly slotDescription?: string;
  readonly slotManufacturer?: string;
  readonly slotId?: number;
  readonly pinSource?: string;
  readonly pinValue?: string;
  readonly moduleName?: string;
  readonly modulePath?: string;
  /** Vendor-specific attributes (names the RFC does not define), path then query, decoded. */
  readonly vendor: readonly { readonly name: string; readonly value: string; readonly in: 'path' | 'query' }[];
}

const UNRESERVED = 'A-Za-z0-9\\-._~';
const RES_AVAIL = ":\\[\\]@!$'()*+,=";
/** pk11-pchar: unreserved / pk11-path-res-avail (res-avail and "&") / pct-encoded. */
const PATH_CHAR = new RegExp(`^[${UNRESERVED}${RES_AVAIL}&]$`);
/** pk11-qchar: unreserved / pk11-query-res-avail (res-avail and "/" "?" "|") / pct-encoded. */
const QUERY_CHAR = new RegExp(`^[${UNRESERVED}${RES_AVAIL}/?|]$`);
const ATTR_NAME = /^[A-Za-z0-9_-]+$/;

function fail(uri: string, problem: string): never {
  throw new InputError(`not a PKCS#11 URI (RFC 7512): ${problem}`, 'write it as pkcs11:token=LABEL;object=LABEL, percent-encoding other characters (%20 for a space)', 'E_PKCS11_URI');
}

function decodeBytes(uri: string, value: string, allowed: RegExp, where: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) fail(uri, `"%${hex}" in ${where} is not a percent-encoded byte (%XX)`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (allowed.test(c)) {
      out.push(c.charCodeAt(0));
    } else {
      fail(uri, `${JSON.stringify(c)} in ${where} must be percent-encoded`);
    }
  }
  return Buffer.from(out);
}

function text(uri: string, bytes: Buffer, where: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail(uri, `${where} is not UTF-8 text once decoded`);
  }
}

const CAMEL: Record<string, string> = {
  'library-manufacturer': 'libraryManufacturer', 'library-description': 'libraryDescription', 'library-version': 'libraryVersion',
  'slot-description': 'slotDescription', 'slot-manufacturer': 'slotManufacturer', 'slot-id': 'slotId',
  'pin-source': 'pinSource', 'pin-value': 'pinValue', 'module-name': 'moduleName', 'module-path': 'modulePath',
};

export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) fail(uri, 'it does not start with "pkcs11:"');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? undefined : rest.slice(q + 1);
  if (path.includes('#') || (query ?? '').includes('#')) fail(uri, '"#" (a fragment) must be percent-encoded as %23');
  const result: Record<string, unknown> = {};
  const vendor: { name: string; value: string; in: 'path' | 'query' }[] = [];
  const seen = new Set<string>();

  const parts = (s: string, sep: string, where: 'path' | 'query') => {
    if (s === '') return [];
    return s.split(sep).map((part) => {
      const eq = part.indexOf('=');
      if (eq <= 0) fail(uri, `${where} attribute "${part}" is not name=value`);
      const name = part.slice(0, eq);
      if (!ATTR_NAME.test(name)) fail(uri, `"${name}" is not an attribute name`);
      return { name, raw: part.slice(eq + 1) };
    });
  };

  for (const { name, raw } of parts(path, ';', 'path')) {
    const key = `path:${name}`;
    if (seen.has(key)) fail(uri, `path attribute "${name}" appears twice`);
    seen.add(key);
    if ((QUERY_ATTRIBUTES as readonly string[]).includes(name)) fail(uri, `"${name}" is a query attribute: put it after "?"`);
    const bytes = decodeBytes(uri, raw, PATH_CHAR, `"${name}"`);
    if (!(PATH_ATTRIBUTES as readonly string[]).includes(name)) {
      vendor.push({ name, value: text(uri, bytes, `"${name}"`), in: 'path' });
      continue;
    }
    const field = CAMEL[name] ?? name;
    if (name === 'id') result[field] = bytes;
    else {
      const value = text(uri, bytes, `"${name}"`);
      if (name === 'type') {
        if (!(OBJECT_TYPES as readonly string[]).includes(value)) fail(uri, `type "${value}" is not one of ${OBJECT_TYPES.join(', ')}`);
        result[field] = value;
      } else if (name === 'slot-id') {
        if (!/^[0-9]{1,19}$/.test(value) || !Number.isSafeInteger(Number(value))) fail(uri, `slot-id "${value}" is not a decimal number`);
        result[field] = Number(value);
      } else if (name === 'library-version') {
        const m = /^([0-9]{1,3})(?:\.([0-9]{1,3}))?$/.exec(value);
        if (!m || Number(m[1]) > 255 || Number(m[2] ?? 0) > 255) fail(uri, `library-version "${value}" is not MAJOR[.MINOR] (0-255 each)`);
        result[field] = { major: Number(m[1]), minor: Number(m[2] ?? 0) };
      } else result[field] = value;
    }
  }

  if (query !== undefined) {
    for (const { name, raw } of parts(query, '&', 'query')) {
      if ((PATH_ATTRIBUTES as readonly string[]).includes(name)) fail(uri, `"${name}" is a path attribute: put it before "?"`);
      const bytes = decodeBytes(uri, raw, QUERY_CHAR, `"${name}"`);
      const value = text(uri, bytes, `"${name}"`);
      if (!(QUERY_ATTRIBUTES as readonly string[]).includes(name)) {
        vendor.push({ name, value, in: 'query' });
        continue;
      }
      const key = `query:${name}`;
      if (seen.has(key)) fail(uri, `query attribute "${name}" appears twice`);
      seen.add(key);
      result[CAMEL[name]!] = value;
    }
  }
  if (result['pinSource'] !== undefined && result['pinValue'] !== undefined) fail(uri, 'it has both pin-source and pin-value');
  return { ...result, vendor } as Pkcs11Uri;
}

/** Whether a key reference is a PKCS#11 URI (anything else is a file path). */
export function isPkcs11Uri(reference: string): boolean {
  return /^pkcs11:/i.test(reference);
}

function encode(value: string | Buffer, allowed: RegExp): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    // "%" is always encoded; so is every byte of an id (RFC 7512 recommends it for binary values).
    out += typeof value === 'string' && b < 0x80 && c !== '%' && allowed.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The URI of a parsed value, in the RFC's attribute order; parsePkcs11Uri(formatPkcs11Uri(u)) equals u. */
export function formatPkcs11Uri(u: Omit<Pkcs11Uri, 'vendor'> & { vendor?: Pkcs11Uri['vendor'] }): string {
  const path: string[] = [];
  for (const name of PATH_ATTRIBUTES) {
    const v = (u as Record<string, unknown>)[CAMEL[name] ?? name];
    if (v === undefined) continue;
    if (name === 'library-version') {
      const lv = v as { major: number; minor: number };
      path.push(`${name}=${lv.major}.${lv.minor}`);
    } else if (name === 'slot-id') path.push(`${name}=${v as number}`);
    else path.push(`${name}=${encode(v as string | Buffer, PATH_CHAR)}`);
  }
  for (const v of u.vendor ?? []) if (v.in === 'path') path.push(`${v.name}=${encode(v.value, PATH_CHAR)}`);
  const query: string[] = [];
  for (const name of QUERY_ATTRIBUTES) {
    const v = (u as Record<string, unknown>)[CAMEL[name]!];
    if (v !== undefined) query.push(`${name}=${encode(v as string, QUERY_CHAR)}`);
  }
  for (const v of u.vendor ?? []) if (v.in === 'query') query.push(`${v.name}=${encode(v.value, QUERY_CHAR)}`);
  return `pkcs11:${path.join(';')}${query.length ? `?${query.join('&')}` : ''}`;
}

/** The URI for messages: pin-value is never shown. */
export function redactPkcs11Uri(uri: string): string {
  return uri.replace(/([?&]pin-value=)[^&]*/i, '$1***');
}
