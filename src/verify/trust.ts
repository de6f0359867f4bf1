import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { InputError } from '../errors.js';

/**
 * A directory of anchors (as OpenSSL's -CApath or /etc/ssl/certs) stands for its *.pem, *.crt
 * and *.cer files, in name order; subdirectories are not entered.
 */
function expandDirectories(paths: readonly string[]): string[] {
  return paths.flatMap((p) => {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      return [p]; // reported as unreadable below
    }
    if (!isDir) return [p];
    const files = readdirSync(p, { withFileTypes: true })
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && /\.(pem|crt|cer)$/i.test(e.name))
      .map((e) => join(p, e.name))
      .sort();
    if (files.length === 0) throw new InputError(`trust directory ${p} holds no *.pem, *.crt or *.cer file`);
    return files;
  });
}

/** Reads trust anchors: files or directories of them; each file may hold several PEM certificates; every one must be a CA. */
export function loadTrustAnchors(paths: readonly string[]): X509Certificate[] {
  if (paths.length === 0) throw new InputError('no trust anchor given', 'pass the CA certificate with --trust CA.pem');
  const anchors = expandDirectories(paths).flatMap((f) => {
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
