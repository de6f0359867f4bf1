/**
 * AES-CMAC (RFC 4493, NIST SP 800-38B). node:crypto exposes no CMAC mode, so the mode is put
 * together here on node:crypto's AES block function (OpenSSL's AES-128-ECB, AES-NI), as RFC 4493
 * section 2 gives it:
 *
 *   L = AES-K(0^128); K1 = L << 1 (xor 0x87 if L's top bit was set); K2 = K1 << 1 (likewise)
 *   the last block is M_n xor K1 if it is complete, else (M_n || 10^i) xor K2
 *   T = CBC-MAC: X_0 = 0, X_i = AES-K(X_(i-1) xor block_i), T = X_n
 *
 * No AES is written here: every block goes through OpenSSL, one cipher context per CMAC (ECB is
 * a bare block function, so the chaining above is the only thing done in JavaScript). Tests
 * check it against RFC 4493's vectors and against @noble/ciphers' audited CMAC, which qtm used
 * before: a JavaScript AES whose key schedule and tables cost 2-3% of the server's CPU per
 * transaction (issue 10).
 */
import { createCipheriv, timingSafeEqual } from 'node:crypto';

const BLOCK = 16;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** x << 1 in GF(2^128), RFC 4493 section 2.3, without a branch on the secret top bit. */
function double(x: Buffer): Buffer {
  const out = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK - 1; i++) out[i] = ((x[i]! << 1) | (x[i + 1]! >> 7)) & 0xff;
  out[BLOCK - 1] = ((x[BLOCK - 1]! << 1) & 0xff) ^ (0x87 & -(x[0]! >> 7));
  return out;
}

export function aesCmac(key: Uint8Array, message: Uint8Array): Buffer {
  if (key.length !== 16) throw new RangeError(`AES-128-CMAC key must be 16 bytes, got ${key.length}`);
  const aes = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  const k1 = double(aes.update(ZERO_BLOCK));
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const n = Math.max(1, Math.ceil(message.length / BLOCK));
  const sub = complete ? k1 : double(k1);
  let x = Buffer.alloc(BLOCK);
  for (let b = 0; b < n; b++) {
    const at = b * BLOCK;
    for (let i = 0; i < BLOCK; i++) {
      const j = at + i;
      let m = j < message.length ? message[j]! : j === message.length ? 0x80 : 0;
      if (b === n - 1) m ^= sub[i]!;
      x[i] = x[i]! ^ m;
    }
    x = aes.update(x);
  }
  return x;
}

/** CMAC truncated to its first `length` bytes (SP 800-38B allows truncation; qtm uses 8). */
export function aesCmacTruncated(key: Uint8Array, message: Uint8Array, length = 8): Buffer {
  return aesCmac(key, message).subarray(0, length);
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
