/**
 * Key pairs, fingerprints and the raw signature operations of the QTM package, all on
 * node:crypto (OpenSSL). Keys are parsed once into KeyObjects and reused: re-parsing PEM for
 * every signature costs several times the signature itself.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import type { Profile } from '../protocol/profile.js';

export type KeySpec = 'rsa1024' | 'rsa2048' | 'rsa3072' | 'p256';

export function generateKeyPair(spec: KeySpec): { privateKey: KeyObject; publicKey: KeyObject } {
  if (spec === 'p256') return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const modulusLength = { rsa1024: 1024, rsa2048: 2048, rsa3072: 3072 }[spec];
  return generateKeyPairSync('rsa', { modulusLength, publicExponent: 0x10001 });
}

export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

/** SPEC 2: a fingerprint is the digest of the key's DER SubjectPublicKeyInfo. */
export function fingerprint(key: KeyObject, profile: Profile): Buffer {
  return createHash(profile.hash).update(spkiDer(key)).digest();
}

/**
 * SHA-256 of a key's DER SubjectPublicKeyInfo, whatever the profile: how warrants name keys and
 * how the fair exchange names its TTP.
 */
export function keyFingerprint(key: KeyObject): string {
  return createHash('sha256').update(spkiDer(key)).digest('hex');
}

/** SPEC 2: a content ID is the digest of the exact content bytes. */
export function contentId(content: Uint8Array, profile: Profile): Buffer {
  return createHash(profile.hash).update(content).digest();
}

/**
 * The signature every party makes over package bytes: RSA PKCS#1 v1.5 or ECDSA (DER), with the
 * profile's hash over the exact bytes. `openssl dgst -sha256 -verify pub.pem -signature s f`
 * checks it.
 */
export function signBytes(profile: Profile, privateKey: KeyObject, data: Uint8Array): Buffer {
  return sign(profile.hash, data, privateKey);
}

export function verifyBytes(profile: Profile, publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(profile.hash, data, publicKey, signature);
  } catch {
    // OpenSSL throws on some malformed signatures (bad DER for ECDSA); that is a failed check.
    return false;
  }
}

export function rsaModulusBytes(key: KeyObject): number | undefined {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  return key.asymmetricKeyType === 'rsa' && bits ? bits / 8 : undefined;
}

/** Private keys at rest are PKCS#8 encrypted with AES-256-CBC (PBES2), readable by openssl. */
export function encryptPrivateKey(key: KeyObject, passphrase: string): string {
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

export function decryptPrivateKey(pem: string, passphrase: string): KeyObject {
  return createPrivateKey({ key: pem, format: 'pem', passphrase });
}
