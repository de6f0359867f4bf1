/**
 * The qtm certificate authority on disk:
 *   DIR/ca.pem        root certificate (give this to verifiers as --trust)
 *   DIR/ca-key.pem    root private key, PKCS#8 encrypted with the CA passphrase
 *   DIR/ca.json       { profile, subject, created }
 * Issuing is shared by `qtm ca issue` and card issuing (which passes the card's public key, so
 * the card's private key never leaves the card).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { checkFieldTypes, DamagedFileError, readJsonObject } from '../util/local-file.js';
import { join } from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import { tokenSigner } from '../pkcs11/keys.js';
import { isPkcs11Uri } from '../pkcs11/uri.js';
import { decryptPrivateKey, encryptPrivateKey, generateKeyPair } from '../crypto/keys.js';
import { buildCertificate, certificateFromPem } from '../crypto/x509.js';
import { InputError, RefusedError } from '../errors.js';
import { type ProfileName, PROFILES } from '../protocol/profile.js';
import { ROLES, type Role } from './roles.js';
import { writeFileAtomic } from '../util/fs.js';

export interface CaInfo {
  readonly profile: ProfileName;
  readonly subject: string;
  readonly created: string;
  /** The PKCS#11 URI of the CA key when it is in a token (then there is no ca-key.pem). */
  readonly key?: string;
}

export interface OpenCa {
  readonly dir: string;
  readonly info: CaInfo;
  readonly certificate: X509Certificate;
  /** The CA key: from ca-key.pem, or in a token (see ./ca-token.ts). */
  readonly privateKey: SigningKey;
}

const DAY_MS = 86_400_000;
/** Certificates start a minute in the past so a slightly slow clock elsewhere still accepts them. */
const BACKDATE_MS = 60_000;

export function caPaths(dir: string) {
  return { cert: join(dir, 'ca.pem'), key: join(dir, 'ca-key.pem'), info: join(dir, 'ca.json') };
}

export function initCa(
  dir: string,
  opts: { profile: ProfileName; subject: string; passphrase: string; days?: number; now?: Date },
): OpenCa {
  const paths = caPaths(dir);
  if (existsSync(paths.key) || existsSync(paths.info)) {
    throw new RefusedError(`a CA already exists in ${dir}`, 'choose another --out directory; an existing CA is never overwritten');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = opts.now ?? new Date();
  const { privateKey, publicKey } = generateKeyPair('rsa3072');
  const certificate = buildCertificate(
    {
      subject: opts.subject,
      publicKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + (opts.days ?? 3650) * DAY_MS),
      isCa: true,
      keyUsage: { keyCertSign: true, cRLSign: true, digitalSignature: true },
    },
    { privateKey },
  );
  const info: CaInfo = { profile: opts.profile, subject: opts.subject, created: now.toISOString() };
  writeFileAtomic(paths.key, encryptPrivateKey(privateKey, opts.passphrase), 0o600);
  writeFileAtomic(paths.cert, certificate.toString());
  writeFileAtomic(paths.info, JSON.stringify(info, null, 2) + '\n');
  return { dir, info, certificate, privateKey };
}

export function openCa(dir: string, passphrase: string): OpenCa {
  const paths = caPaths(dir);
  const tokenKey = caKeyInToken(dir);
  if (!existsSync(paths.cert) || (!tokenKey && !existsSync(paths.key)) || !existsSync(paths.info)) {
    throw new InputError(`${dir} is not a qtm CA directory (ca.pem, ca-key.pem, ca.json)`, 'create one with `qtm ca init --out DIR`');
  }
  const o = readJsonObject(paths.info, 'CA description', 'restore ca.json from a backup: {"profile":"v2","subject":"CN=...","created":"<ISO time>"}');
  checkFieldTypes(paths.info, 'CA description', o, { profile: 'string', subject: 'string', created: 'string' });
  if (o.profile !== 'v1' && o.profile !== 'v2') throw new DamagedFileError(paths.info, 'CA description', `field "profile" must be "v1" or "v2", not ${JSON.stringify(o.profile)}`);
  const info = o as unknown as CaInfo;
  const certificate = certificateFromPem(readFileSync(paths.cert, 'utf8'), paths.cert);
  if (tokenKey) {
    const privateKey = tokenSigner(tokenKey);
    if (!privateKey.publicKey.equals(certificate.publicKey)) throw new InputError(`the key ${tokenKey} is not the key of ${paths.cert}`, 'check the URI in ca.json');
    return { dir, info, certificate, privateKey };
  }
  let privateKey: KeyObject;
  try {
    privateKey = decryptPrivateKey(readFileSync(paths.key, 'utf8'), passphrase);
  } catch {
    throw new RefusedError(`wrong CA passphrase for ${dir}`, 'check QTM_CA_PASSPHRASE');
  }
  return { dir, info, certificate, privateKey };
}

/** The PKCS#11 URI of a CA's key when it is in a token (ca.json `key`), else undefined. */
export function caKeyInToken(dir: string): string | undefined {
  try {
    const key = (JSON.parse(readFileSync(caPaths(dir).info, 'utf8')) as CaInfo).key;
    return typeof key === 'string' && isPkcs11Uri(key) ? key : undefined;
  } catch {
    return undefined;
  }
}

export interface IssueRequest {
  readonly role: Role;
  readonly subject: string;
  readonly publicKey: KeyObject;
  readonly days?: number;
  readonly serialHex?: string;
  readonly now?: Date;
  readonly subjectAltNames?: { readonly dns?: readonly string[]; readonly ip?: readonly string[] };
  /** Extended key usages beyond the role's (a customer card that may also issue warrants). */
  readonly extraExtKeyUsage?: readonly string[];
  /** Key usage bits beyond the role's (a --may-delegate card's cRLSign). */
  readonly extraKeyUsage?: Readonly<Record<string, boolean>>;
}

export function issueCertificate(ca: OpenCa, req: IssueRequest): X509Certificate {
  const spec = ROLES[req.role];
  const now = req.now ?? new Date();
  const notAfter = new Date(Math.min(now.getTime() + (req.days ?? 730) * DAY_MS, Date.parse(ca.certificate.validTo)));
  return buildCertificate(
    {
      subject: req.subject,
      publicKey: req.publicKey,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      ...(req.serialHex ? { serialHex: req.serialHex } : {}),
      ...(req.subjectAltNames ? { subjectAltNames: req.subjectAltNames } : {}),
      isCa: false,
      keyUsage: { ...spec.keyUsage, ...(req.extraKeyUsage ?? {}) },
      extKeyUsage: [...spec.extKeyUsage, ...(req.extraExtKeyUsage ?? [])],
    },
    { certificate: ca.certificate, privateKey: ca.privateKey },
  );
}

/** TLS roles get subjectAltNames: the given ones, or DNS:<CN> (plus the loopback IPs for localhost). */
export function defaultSubjectAltNames(role: Role, subject: string, given: readonly string[] = []) {
  if (given.length) {
    const dns = given.filter((g) => g.startsWith('DNS:')).map((g) => g.slice(4));
    const ip = given.filter((g) => g.startsWith('IP:')).map((g) => g.slice(3));
    if (dns.length + ip.length !== given.length) throw new InputError('--san entries are DNS:name or IP:address');
    return { dns, ip };
  }
  if (role !== 'server' && role !== 'ttp') return undefined;
  const cn = /(?:^|,)\s*CN=([^,]+)/.exec(subject)?.[1]?.trim();
  if (!cn || !/^[A-Za-z0-9.-]+$/.test(cn)) return undefined;
  return cn === 'localhost' ? { dns: [cn], ip: ['127.0.0.1', '::1'] } : { dns: [cn] };
}

/** Generates a key for a role in the CA's profile and certifies it. */
export function issueKeyAndCertificate(
  ca: OpenCa,
  req: Omit<IssueRequest, 'publicKey'> & { keySpec?: ReturnType<typeof defaultKeySpec> },
) {
  const keySpec = req.keySpec ?? defaultKeySpec(ca.info.profile, req.role);
  const { privateKey, publicKey } = generateKeyPair(keySpec);
  const subjectAltNames = req.subjectAltNames ?? defaultSubjectAltNames(req.role, req.subject);
  const certificate = issueCertificate(ca, { ...req, publicKey, ...(subjectAltNames ? { subjectAltNames } : {}) });
  return { privateKey, certificate, keySpec };
}

export function defaultKeySpec(profile: ProfileName, role: Role) {
  return ROLES[role].key[PROFILES[profile].name];
}
