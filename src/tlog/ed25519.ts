/** Raw 32-byte Ed25519 keys (RFC 8032) with node:crypto. */
import { createPrivateKey, createPublicKey, sign, verify, randomBytes, type KeyObject } from 'node:crypto';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new RangeError('an Ed25519 seed is 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export function publicKeyFromRaw(pub: Uint8Array): KeyObject {
  if (pub.length !== 32) throw new RangeError('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
}

export function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

export function rawSeed(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(der.subarray(der.length - 32));
}

export function publicFromSeed(seed: Uint8Array): Buffer {
  return rawPublicKey(createPublicKey(privateKeyFromSeed(seed)));
}

export function newSeed(): Buffer {
  return randomBytes(32);
}

export function ed25519Sign(key: KeyObject, msg: Uint8Array): Buffer {
  return sign(null, msg, key);
}

export function ed25519Verify(key: KeyObject, msg: Uint8Array, sig: Uint8Array): boolean {
  return sig.length === 64 && verify(null, msg, key, sig);
}
