/**
 * The CA key, role keys and warrant proxy keys generated in a PKCS#11 token instead of a file:
 * the same certificates and files as the file-key versions (../pki/ca.ts, ../warrant/registry.ts),
 * with the key's URI written where the encrypted key file would be.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { keyFingerprint, type KeySpec } from '../crypto/keys.js';
import { buildCertificate } from '../crypto/x509.js';
import { InputError, RefusedError } from '../errors.js';
import { creatingIn, generateTokenKeyPair, storeTokenCertificate } from '../pkcs11/keys.js';
import { redactPkcs11Uri } from '../pkcs11/uri.js';
import type { ProfileName } from '../protocol/profile.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';
import { caPaths, defaultKeySpec, defaultSubjectAltNames, issueCertificate, type CaInfo, type IssueRequest, type OpenCa } from './ca.js';

const DAY_MS = 86_400_000;
const BACKDATE_MS = 60_000;

/** `qtm ca init --pkcs11 URI`: the root key generated in the token; ca.json names it. */

/** A warrants folder names a proxy key S in a token by a file NAME-key.pkcs11 holding its URI. */
export const TOKEN_KEY_SUFFIX = '-key.pkcs11';

export function initTokenCa(dir: string, opts: { profile: ProfileName; subject: string; uri: string; days?: number; now?: Date }): OpenCa {
  const paths = caPaths(dir);
  if (existsSync(paths.key) || existsSync(paths.info)) {
    throw new RefusedError(`a CA already exists in ${dir}`, 'choose another --out directory; an existing CA is never overwritten');
  }
  return creatingIn(opts.uri, () => initTokenCaIn(dir, opts));
}

function initTokenCaIn(dir: string, opts: { profile: ProfileName; subject: string; uri: string; days?: number; now?: Date }): OpenCa {
  const paths = caPaths(dir);
  const privateKey = generateTokenKeyPair(opts.uri, 'rsa3072');
  const now = opts.now ?? new Date();
  const certificate = buildCertificate(
    {
      subject: opts.subject,
      publicKey: privateKey.publicKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + (opts.days ?? 3650) * DAY_MS),
      isCa: true,
      keyUsage: { keyCertSign: true, cRLSign: true, digitalSignature: true },
    },
    { privateKey },
  );
  storeTokenCertificate(opts.uri, certificate);
  const info: CaInfo = { profile: opts.profile, subject: opts.subject, created: now.toISOString(), key: redactPkcs11Uri(opts.uri) };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(paths.cert, certificate.toString());
  writeFileAtomic(paths.info, JSON.stringify(info, null, 2) + '\n');
  return { dir, info, certificate, privateKey };
}

/**
 * `qtm ca issue --pkcs11 URI`: a key for a role generated in the token, certified by the CA (whose
 * key may itself be a file or in a token); the certificate is stored beside the key in the token
 * and written to PREFIX.pem.
 */
export function issueTokenKeyAndCertificate(
  ca: OpenCa,
  req: Omit<IssueRequest, 'publicKey'> & { uri: string; keySpec?: KeySpec },
): { certificate: X509Certificate; keySpec: KeySpec } {
  const keySpec = req.keySpec ?? defaultKeySpec(ca.info.profile, req.role);
  return creatingIn(req.uri, () => {
    const signer = generateTokenKeyPair(req.uri, keySpec);
    const subjectAltNames = req.subjectAltNames ?? defaultSubjectAltNames(req.role, req.subject);
    const certificate = issueCertificate(ca, { ...req, publicKey: signer.publicKey, ...(subjectAltNames ? { subjectAltNames } : {}) });
    storeTokenCertificate(req.uri, certificate);
    return { certificate, keySpec };
  });
}

/** `qtm warrant request --pkcs11 URI`: S generated in the token; NAME-key.pkcs11 holds its URI. */
export function createTokenRequest(dir: string, name: string, uri: string, keySpec: KeySpec = 'rsa2048'): { requestFile: string; keyFile: string; fingerprint: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new InputError(`"${name}" is not a usable name`, 'use letters, digits, dot, dash and underscore');
  const keyFile = join(dir, `${name}${TOKEN_KEY_SUFFIX}`);
  const requestFile = join(dir, `${name}.request.pem`);
  if (existsSync(keyFile) || existsSync(join(dir, `${name}-key.pem`)) || existsSync(requestFile)) throw new RefusedError(`a key named ${name} already exists in ${dir}`, 'choose another --name; keys are never overwritten');
  const signer = creatingIn(uri, () => generateTokenKeyPair(uri, keySpec));
  ensureParentDir(keyFile);
  writeFileAtomic(keyFile, redactPkcs11Uri(uri) + '\n', 0o600);
  writeFileAtomic(requestFile, signer.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  return { requestFile, keyFile, fingerprint: keyFingerprint(signer.publicKey) };
}
