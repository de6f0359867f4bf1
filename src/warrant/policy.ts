/**
 * The qtm warrant policy: the `policy` OCTET STRING of a warrant's RFC 3820 ProxyPolicy, in the
 * policy language OID.warrantPolicy. OpenSSL checks the proxy chain and leaves the policy to the
 * application; qtm enforces it in the server and in every verifier.
 *
 * Encoding: UTF-8 JSON with keys in this fixed order and no white space, so the bytes are
 * canonical and an auditor can read them with `openssl x509 -text` or `openssl asn1parse`:
 *   {"version":1,"customers":[{"fingerprint":"<sha256 hex>"},
 *                             {"subject":["CN=Alice"],"issuer":"<sha256 hex>"}]}
 * A customer is named either by the SHA-256 fingerprint of its certificate's key (one card), or
 * by subject and issuing CA: any card issued by the CA whose key has that fingerprint, to a
 * subject whose attributes (apart from the card's serialNumber) are exactly those listed.
 */
import { DecodeError } from '../errors.js';

export type CustomerRef =
  | { readonly fingerprint: string }
  | { readonly subject: readonly string[]; readonly issuer: string };

export interface WarrantPolicy {
  readonly version: 1;
  readonly customers: readonly CustomerRef[];
}

const FORMAT = 'warrant policy';
const HEX64 = /^[0-9a-f]{64}$/;
const ATTRIBUTE = /^[A-Za-z][A-Za-z0-9.]*=[^\n]+$/;
const MAX_CUSTOMERS = 10_000;

function canonical(p: WarrantPolicy): unknown {
  return {
    version: p.version,
    customers: p.customers.map((c) => ('fingerprint' in c ? { fingerprint: c.fingerprint } : { subject: [...c.subject], issuer: c.issuer })),
  };
}

export function encodePolicy(p: WarrantPolicy): Buffer {
  return Buffer.from(JSON.stringify(canonical(p)), 'utf8');
}

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

function customer(v: unknown, i: number): CustomerRef {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`customers[${i}] must be an object`);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys === 'fingerprint') {
    if (typeof o.fingerprint !== 'string' || !HEX64.test(o.fingerprint)) fail(`customers[${i}].fingerprint must be 64 lower-case hex digits`);
    return { fingerprint: o.fingerprint };
  }
  if (keys === 'issuer,subject') {
    if (!Array.isArray(o.subject) || o.subject.length === 0 || !o.subject.every((a) => typeof a === 'string' && ATTRIBUTE.test(a))) {
      fail(`customers[${i}].subject must be a non-empty list of "TYPE=value" attributes`);
    }
    if (typeof o.issuer !== 'string' || !HEX64.test(o.issuer)) fail(`customers[${i}].issuer must be 64 lower-case hex digits`);
    return { subject: o.subject as string[], issuer: o.issuer };
  }
  fail(`customers[${i}] must have either "fingerprint" or "subject" and "issuer"`);
}

/** Strict: only the canonical encoding of a valid policy decodes (so equal policies are equal bytes). */
export function decodePolicy(bytes: Uint8Array): WarrantPolicy {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    fail('not UTF-8 JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('must be a JSON object');
  const o = json as Record<string, unknown>;
  if (Object.keys(o).join(',') !== 'version,customers') fail('must have exactly "version" and "customers", in that order');
  if (o.version !== 1) fail(`unknown version ${JSON.stringify(o.version)}`);
  if (!Array.isArray(o.customers) || o.customers.length === 0) fail('customers must be a non-empty list');
  if (o.customers.length > MAX_CUSTOMERS) fail(`more than ${MAX_CUSTOMERS} customers`);
  const policy: WarrantPolicy = { version: 1, customers: o.customers.map(customer) };
  if (!encodePolicy(policy).equals(Buffer.from(bytes))) fail('not in canonical form (key order, white space)');
  return policy;
}
