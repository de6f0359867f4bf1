/**
 * The software SAM (SPEC 1): holds the AES-128 master key from which every card's K_enc and
 * K_mac are diversified. The key is sealed at rest with AES-256-GCM under scrypt(passphrase);
 * it is never printed, and no API returns it: callers get derived card keys only.
 * File: { format, version, created, kcv, kdf: {salt, N, r, p}, nonce, data }.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { checkFieldTypes, DamagedFileError, readJsonObject } from '../util/local-file.js';
import { deriveCardKeys, type CardKeys } from '../crypto/diversify.js';
import { QTM_AID } from '../protocol/card-application.js';
import { InputError, RefusedError } from '../errors.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';

const FORMAT = 'qtm-sam';
const KDF = { N: 1 << 15, r: 8, p: 1 };

interface SamFile {
  format: typeof FORMAT;
  version: 1;
  created: string;
  kcv: string;
  kdf: { salt: string; N: number; r: number; p: number };
  nonce: string;
  data: string;
}

export interface Sam {
  /** Key check value: first 3 bytes of AES(K, 0^16); identifies the key without revealing it. */
  readonly kcv: string;
  cardKeys(cardSerial: Uint8Array): CardKeys;
}

/**
 * Diversifies one card's keys, lets `use` have them, then overwrites them with zeros, whether
 * `use` returns, resolves or throws: a card's K_enc and K_mac live only for one operation.
 */
export function withCardKeys<T>(sam: Sam, cardSerial: Uint8Array, use: (keys: CardKeys) => T): T {
  const keys = sam.cardKeys(cardSerial);
  const zero = () => {
    keys.kEnc.fill(0);
    keys.kMac.fill(0);
  };
  let result: T;
  try {
    result = use(keys);
  } catch (err) {
    zero();
    throw err;
  }
  if (result instanceof Promise) return result.finally(zero) as T;
  zero();
  return result;
}

function keyCheckValue(key: Buffer): string {
  const c = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  return Buffer.concat([c.update(Buffer.alloc(16)), c.final()]).subarray(0, 3).toString('hex').toUpperCase();
}

function kek(passphrase: string, kdf: SamFile['kdf']): Buffer {
  return scryptSync(passphrase, Buffer.from(kdf.salt, 'base64'), 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 << 20 });
}

function samOf(masterKey: Buffer): Sam {
  const kcv = keyCheckValue(masterKey);
  return { kcv, cardKeys: (serial) => deriveCardKeys(masterKey, serial, QTM_AID) };
}

export function initSam(path: string, passphrase: string, now = new Date()): Sam {
  if (existsSync(path)) throw new RefusedError(`${path} already exists`, 'a SAM is never overwritten: choose another --out file');
  const masterKey = randomBytes(16);
  const kdf = { salt: randomBytes(16).toString('base64'), ...KDF };
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek(passphrase, kdf), nonce).setAAD(Buffer.from(FORMAT));
  const data = Buffer.concat([c.update(masterKey), c.final(), c.getAuthTag()]);
  const file: SamFile = { format: FORMAT, version: 1, created: now.toISOString(), kcv: keyCheckValue(masterKey), kdf, nonce: nonce.toString('base64'), data: data.toString('base64') };
  ensureParentDir(path);
  writeFileAtomic(path, JSON.stringify(file, null, 2) + '\n', 0o600);
  return samOf(masterKey);
}

/** The SAM file, every field of the type it must have: exit 2 naming the file and field otherwise. */
function readSamFile(path: string): SamFile {
  const hint = 'restore the SAM from its backup (a new one derives other card keys)';
  const o = readJsonObject(path, 'SAM keystore', hint);
  if (o.format !== FORMAT || o.version !== 1) throw new DamagedFileError(path, 'SAM keystore', `is not a qtm SAM keystore (format "${FORMAT}", version 1)`, hint);
  checkFieldTypes(path, 'SAM keystore', o, { created: 'string', kcv: 'hex', kdf: 'object', nonce: 'base64', data: 'base64' }, '', hint);
  checkFieldTypes(path, 'SAM keystore', o.kdf as Record<string, unknown>, { salt: 'base64', N: 'number', r: 'number', p: 'number' }, 'kdf.', hint);
  const kdf = o.kdf as SamFile['kdf'];
  if (!Number.isInteger(Math.log2(kdf.N)) || kdf.N < 2 || kdf.N > 1 << 20 || !Number.isInteger(kdf.r) || kdf.r < 1 || kdf.r > 32 || !Number.isInteger(kdf.p) || kdf.p < 1 || kdf.p > 16) {
    throw new DamagedFileError(path, 'SAM keystore', 'field "kdf" holds scrypt parameters out of range', hint);
  }
  if (Buffer.from(o.nonce as string, 'base64').length !== 12) throw new DamagedFileError(path, 'SAM keystore', 'field "nonce" must be 12 bytes', hint);
  if (Buffer.from(o.data as string, 'base64').length !== 32) throw new DamagedFileError(path, 'SAM keystore', 'field "data" must be 32 bytes (the sealed master key and its tag)', hint);
  return o as unknown as SamFile;
}

export function openSam(path: string, passphrase: string): Sam {
  const file = readSamFile(path);
  const data = Buffer.from(file.data, 'base64');
  let masterKey: Buffer;
  try {
    const d = createDecipheriv('aes-256-gcm', kek(passphrase, file.kdf), Buffer.from(file.nonce, 'base64')).setAAD(Buffer.from(FORMAT));
    d.setAuthTag(data.subarray(data.length - 16));
    masterKey = Buffer.concat([d.update(data.subarray(0, data.length - 16)), d.final()]);
  } catch {
    throw new RefusedError(`wrong SAM passphrase for ${path}`, 'check QTM_SAM_PASSPHRASE');
  }
  if (keyCheckValue(masterKey) !== file.kcv) throw new RefusedError(`the SAM ${path} is damaged: key check value mismatch`);
  return samOf(masterKey);
}

export function samInfo(path: string): { kcv: string; created: string } {
  const file = readSamFile(path);
  return { kcv: file.kcv, created: file.created };
}
