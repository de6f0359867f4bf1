import { readFileSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { InputError } from '../errors.js';

/** Reads trust anchors: each file may hold several PEM certificates; every one must be a CA. */
export function loadTrustAnchors(files: readonly string[]): X509Certificate[] {
  if (files.length === 0) throw new InputError('no trust anchor given', 'pass the CA certificate with --trust CA.pem');
  const anchors = files.flatMap((f) => {
    let pem: string;
    try {
      pem = readFileSync(f, 'utf8');
    } catch {
      throw new InputError(`cannot read trust anchor ${f}`);
    }
    return certificatesFromPemBundle(pem, f);
  });
  for (const a of anchors) {
    if (!a.ca) throw new InputError(`trust anchor "${a.subject.replace(/\n/g, ', ')}" is not a CA certificate`, 'pass the root CA (ca.pem), not a leaf');
  }
  return anchors;
}
