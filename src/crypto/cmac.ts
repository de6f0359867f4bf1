/**
 * AES-CMAC (RFC 4493, NIST SP 800-38B). node:crypto exposes no CMAC, so this is
 * @noble/ciphers' audited implementation; tests check it against RFC 4493's vectors.
 */
import { cmac } from '@noble/ciphers/aes.js';
import { timingSafeEqual } from 'node:crypto';

export function aesCmac(key: Uint8Array, message: Uint8Array): Buffer {
  if (key.length !== 16) throw new RangeError(`AES-128-CMAC key must be 16 bytes, got ${key.length}`);
  return Buffer.from(cmac(message, key));
}

/** CMAC truncated to its first `length` bytes (SP 800-38B allows truncation; qtm uses 8). */
export function aesCmacTruncated(key: Uint8Array, message: Uint8Array, length = 8): Buffer {
  return aesCmac(key, message).subarray(0, length);
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
