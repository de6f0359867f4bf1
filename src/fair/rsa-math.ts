/**
 * The arithmetic the verifiable escrow needs on an RSA public key (N, e). Exponentiations with
 * e go to OpenSSL as raw RSA (no padding); only the cheap modular multiplications and inverses
 * are done here with BigInt. No private-key operation happens here.
 */
import { constants, createHash, publicEncrypt, type KeyObject } from 'node:crypto';
import { toBigInt, toBytes } from '../crypto/integers.js';

export interface RsaPublic {
  readonly key: KeyObject;
  readonly n: bigint;
  /** Modulus length in bytes. */
  readonly k: number;
}

export function rsaPublic(key: KeyObject): RsaPublic {
  if (key.asymmetricKeyType !== 'rsa') throw new TypeError('an RSA public key is needed');
  const jwk = key.export({ format: 'jwk' });
  const n = Buffer.from(jwk.n!, 'base64url');
  return { key, n: toBigInt(n), k: n.length };
}

/** x^e mod N through OpenSSL (raw RSA public operation); x must be below N. */
export function powE(pub: RsaPublic, x: bigint): bigint {
  return toBigInt(publicEncrypt({ key: pub.key, padding: constants.RSA_NO_PADDING }, toBytes(x, pub.k)));
}

export function mulMod(a: bigint, b: bigint, n: bigint): bigint {
  return (a * b) % n;
}

/** The inverse of a modulo n, or undefined when gcd(a, n) != 1. */
export function invMod(a: bigint, n: bigint): bigint | undefined {
  let [r0, r1] = [((a % n) + n) % n, n];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return r0 === 1n ? ((s0 % n) + n) % n : undefined;
}

/** DER DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * EMSA-PKCS1-v1_5 encoding of SHA-256(message) for a k-byte modulus (RFC 8017 9.2): the value
 * Y^e mod N equals when Y is the card's signature. A test checks it against OpenSSL's own.
 */
export function emsaPkcs1v15Sha256(message: Uint8Array, k: number): Buffer {
  const t = Buffer.concat([SHA256_DIGEST_INFO, createHash('sha256').update(message).digest()]);
  if (k < t.length + 11) throw new RangeError('modulus too short for SHA-256 PKCS#1 v1.5');
  return Buffer.concat([Buffer.of(0, 1), Buffer.alloc(k - t.length - 3, 0xff), Buffer.of(0), t]);
}
