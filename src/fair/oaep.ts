/**
 * RSA-OAEP (SHA-256, MGF1-SHA-256) encryption to the TTP with a seed the caller chooses, so that
 * a verifier given the plaintext and the seed can re-encrypt and compare byte for byte. node has
 * no seeded OAEP; node-forge's OAEP encoder takes a seed, and OpenSSL then applies the raw RSA
 * public operation to that encoding, which makes a standard OAEP ciphertext that OpenSSL (and
 * node's privateDecrypt) decrypts.
 */
import { constants, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

export const OAEP_SEED_LENGTH = 32;

// forge.pkcs1 is part of node-forge but missing from its type definitions.
const pkcs1 = (forge as unknown as {
  pkcs1: { encode_rsa_oaep(key: forge.pki.rsa.PublicKey, message: string, options: { label: string; seed: string; md: forge.md.MessageDigest; mgf1: { md: forge.md.MessageDigest } }): string };
}).pkcs1;

export interface OaepKey {
  readonly key: KeyObject;
  readonly forgeKey: forge.pki.rsa.PublicKey;
}

export function oaepKey(key: KeyObject): OaepKey {
  const pem = key.export({ type: 'spki', format: 'pem' }) as string;
  return { key, forgeKey: forge.pki.publicKeyFromPem(pem) as forge.pki.rsa.PublicKey };
}

export function oaepEncryptWithSeed(to: OaepKey, message: Uint8Array, label: Uint8Array, seed: Uint8Array): Buffer {
  if (seed.length !== OAEP_SEED_LENGTH) throw new RangeError(`an OAEP seed is ${OAEP_SEED_LENGTH} bytes`);
  const em = pkcs1.encode_rsa_oaep(to.forgeKey, Buffer.from(message).toString('binary'), {
    label: Buffer.from(label).toString('binary'),
    seed: Buffer.from(seed).toString('binary'),
    md: forge.md.sha256.create(),
    mgf1: { md: forge.md.sha256.create() },
  });
  return publicEncrypt({ key: to.key, padding: constants.RSA_NO_PADDING }, Buffer.from(em, 'binary'));
}

/** Standard OAEP decryption by the TTP; undefined for a ciphertext that is not valid under this label. */
export function oaepDecrypt(privateKey: KeyObject, ciphertext: Uint8Array, label: Uint8Array): Buffer | undefined {
  try {
    return privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(label) }, ciphertext);
  } catch {
    return undefined;
  }
}

/** The server's ordinary (non-verifiable) escrow of its signature X: OAEP to the TTP under the label. */
export function oaepEncrypt(to: KeyObject, message: Uint8Array, label: Uint8Array): Buffer {
  return publicEncrypt({ key: to, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(label) }, message);
}
