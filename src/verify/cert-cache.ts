/**
 * Parsed certificates and verified issuer links, cached for the life of the process. An archive
 * of thousands of proofs holds a handful of distinct certificates; parsing each one and exporting
 * its key for the fingerprint was 90% of `qtm verify`'s time before this cache. Nothing is cached
 * that depends on the time or the trust anchors: validity is still checked for every proof.
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';

export interface ParsedCertificate {
  readonly certificate: X509Certificate;
  readonly publicKey: KeyObject;
  readonly spki: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  fingerprint(hash: 'sha1' | 'sha256'): Buffer;
}

const MAX_ENTRIES = 10_000;
/**
 * By PEM text, found by its last TAIL characters (the signature's base64: distinct per
 * certificate) and then compared whole. A Map keyed by the whole text hashed all of it, 1-2 KB,
 * for each of a bundle's certificates. A bucket holds at most MAX_BUCKET texts, so PEMs made to
 * share a tail cost a few comparisons each, never a long scan: past that they are parsed uncached.
 */
const TAIL = 96;
const MAX_BUCKET = 8;
const byPem = new Map<string, { pem: string; parsed: ParsedCertificate }[]>();
let entries = 0;

function cachedPem(pem: string): ParsedCertificate | undefined {
  const bucket = byPem.get(pem.slice(-TAIL));
  if (bucket) for (const e of bucket) if (e.pem === pem) return e.parsed;
  return undefined;
}

function cachePem(pem: string, parsed: ParsedCertificate): void {
  const tail = pem.slice(-TAIL);
  let bucket = byPem.get(tail);
  if (bucket && bucket.length >= MAX_BUCKET) return;
  if (!bucket) {
    if (entries >= MAX_ENTRIES) {
      const [oldest, old] = byPem.entries().next().value as [string, unknown[]];
      byPem.delete(oldest);
      entries -= old.length;
    }
    byPem.set(tail, (bucket = []));
  }
  bucket.push({ pem, parsed });
  entries++;
}
/**
 * The same certificate object met again (a chain link, the leaf of a party): found without
 * re-encoding it to PEM, which X509Certificate.toString() does in C++ on every call and which
 * was the largest cost left per bundle in an archive run.
 */
const byObject = new WeakMap<X509Certificate, ParsedCertificate>();
const links = new WeakMap<X509Certificate, WeakMap<X509Certificate, boolean>>();

export function parsedCertificate(input: string | X509Certificate): ParsedCertificate {
  if (typeof input !== 'string') {
    const known = byObject.get(input);
    if (known) return known;
  }
  const key = typeof input === 'string' ? input : input.toString();
  const hit = cachedPem(key);
  if (hit) {
    if (typeof input !== 'string') byObject.set(input, hit);
    return hit;
  }
  const certificate = typeof input === 'string' ? new X509Certificate(input) : input;
  const publicKey = certificate.publicKey;
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const fingerprints = new Map<string, Buffer>();
  const parsed: ParsedCertificate = {
    certificate,
    publicKey,
    spki,
    notBefore: Date.parse(certificate.validFrom),
    notAfter: Date.parse(certificate.validTo),
    fingerprint(hash) {
      let fp = fingerprints.get(hash);
      if (!fp) fingerprints.set(hash, (fp = createHash(hash).update(spki).digest()));
      return fp;
    },
  };
  cachePem(key, parsed);
  byObject.set(certificate, parsed);
  if (typeof input !== 'string') byObject.set(input, parsed);
  return parsed;
}

/** True when `parent` is a CA whose name and key issued `child` (signature checked once). */
export function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  let inner = links.get(child);
  if (!inner) links.set(child, (inner = new WeakMap()));
  let ok = inner.get(parent);
  if (ok === undefined) {
    ok = parent.ca && child.checkIssued(parent) && child.verify(parsedCertificate(parent).publicKey);
    inner.set(parent, ok);
  }
  return ok;
}
