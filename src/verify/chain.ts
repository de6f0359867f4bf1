/**
 * Certificate path validation for offline verification, on node's X509Certificate: each link's
 * signature, issuer name, CA flag, and validity at the time that matters (the transaction
 * time, not today: a proof stays valid after its certificates expire).
 */
import type { X509Certificate } from 'node:crypto';
import { issuedBy, parsedCertificate } from './cert-cache.js';

export interface ChainResult {
  readonly ok: boolean;
  readonly reason?: string;
  /** Leaf first, anchor last, when ok. */
  readonly path: X509Certificate[];
}

const MAX_DEPTH = 8;

export function validAt(cert: X509Certificate, at: Date): boolean {
  const p = parsedCertificate(cert);
  const t = at.getTime();
  return p.notBefore <= t && t <= p.notAfter;
}

function describe(cert: X509Certificate): string {
  return cert.subject.replace(/\n/g, ', ');
}

export function validateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  at: Date,
): ChainResult {
  const path: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (!validAt(current, at)) {
      return {
        ok: false,
        path,
        reason: `certificate "${describe(current)}" not valid at ${at.toISOString()} (valid ${new Date(parsedCertificate(current).notBefore).toISOString()} to ${new Date(parsedCertificate(current).notAfter).toISOString()})`,
      };
    }
    const anchor = anchors.find((a) => a.raw.equals(current.raw) || issuedBy(current, a));
    if (anchor) {
      if (!anchor.raw.equals(current.raw)) {
        if (!validAt(anchor, at)) {
          return { ok: false, path, reason: `trust anchor "${describe(anchor)}" not valid at ${at.toISOString()}` };
        }
        path.push(anchor);
      }
      return { ok: true, path };
    }
    const parent = intermediates.find((c) => !path.includes(c) && issuedBy(current, c));
    if (!parent) {
      return { ok: false, path, reason: `"${describe(current)}" does not chain to a trusted CA (issuer "${current.issuer.replace(/\n/g, ', ')}")` };
    }
    path.push(parent);
    current = parent;
  }
  return { ok: false, path, reason: `chain longer than ${MAX_DEPTH} certificates` };
}
