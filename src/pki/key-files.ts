/**
 * An issued identity on disk: PREFIX.pem (certificate) and PREFIX-key.pem (PKCS#8 private key
 * encrypted with QTM_KEY_PASSPHRASE). Existing files are never overwritten.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { decryptPrivateKey, encryptPrivateKey } from '../crypto/keys.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { InputError, RefusedError } from '../errors.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';

export function identityPaths(prefix: string) {
  return { cert: `${prefix}.pem`, key: `${prefix}-key.pem` };
}

export function writeIdentity(prefix: string, certificates: X509Certificate[], privateKey: KeyObject, passphrase: string) {
  const paths = identityPaths(prefix);
  for (const p of [paths.cert, paths.key]) {
    if (existsSync(p)) throw new RefusedError(`${p} already exists`, 'choose another --out prefix; qtm never overwrites keys');
  }
  ensureParentDir(paths.key);
  writeFileAtomic(paths.key, encryptPrivateKey(privateKey, passphrase), 0o600);
  try {
    writeFileAtomic(paths.cert, certificates.map((c) => c.toString()).join(''));
  } catch (err) {
    rmSync(paths.key, { force: true }); // no key without its certificate
    throw err;
  }
  return paths;
}

export interface Identity {
  readonly certificates: X509Certificate[];
  readonly privateKey: KeyObject;
}

export function readIdentity(prefix: string, passphrase: string): Identity {
  const paths = identityPaths(prefix);
  if (!existsSync(paths.cert) || !existsSync(paths.key)) {
    throw new InputError(`no identity at ${prefix} (expected ${paths.cert} and ${paths.key})`, 'issue one with `qtm ca issue`');
  }
  const certificates = certificatesFromPemBundle(readFileSync(paths.cert, 'utf8'), paths.cert);
  let privateKey: KeyObject;
  try {
    privateKey = decryptPrivateKey(readFileSync(paths.key, 'utf8'), passphrase);
  } catch {
    throw new RefusedError(`wrong passphrase for ${paths.key}`, 'check QTM_KEY_PASSPHRASE, or the passphrase file given');
  }
  return { certificates, privateKey };
}
