/**
 * The store's chain and its signed head (docs/FORMATS.md, "The store's chain and signed head").
 *
 * Every entry line of the log carries `seq` (1, 2, ... in log order) and `prev`, the SHA-256 (hex)
 * of the previous entry line's exact bytes (64 zeros before the first). At each group commit the
 * server signs the head, the last entry's sequence number and hash, with its receipt key, a key
 * the store does not hold: an auditor needs only the certificate to check it, and nobody who can
 * only write the store can make one. The signed statement is
 *
 *   "qtm store head v1" 0x00 (18 bytes) || seq u64 big-endian (8) || SHA-256 of the entry line (32)
 *
 * and the head line that follows the batch in the log is `{"head":{"seq":N,"hash":hex,"sig":base64}}`.
 * The customer gets the head of the commit that stored her receipt (in the second message) and
 * can later prove with it that the store once held this history (`qtm server audit --min-head`).
 */
import { createHash, verify, type KeyObject } from 'node:crypto';
import { asSigner, type SigningKey } from '../crypto/signer.js';
import { DecodeError } from '../errors.js';
import { checkFields } from '../protocol/strict-json.js';

export const HEAD_DOMAIN = Buffer.from('qtm store head v1\0', 'latin1');
export const GENESIS_HASH = '0'.repeat(64);

export interface StoreHead {
  /** The sequence number of the last entry it covers. */
  readonly seq: number;
  /** SHA-256 (hex) of that entry's line. */
  readonly hash: string;
}

export interface SignedHead extends StoreHead {
  /** The receipt key's signature over headStatement(). */
  readonly sig: Buffer;
}

/** Signs and checks heads: the server's receipt key, or only its certificate for audits. */
export interface HeadSigner {
  sign(statement: Buffer): Buffer;
  verify(statement: Buffer, signature: Buffer): boolean;
}

/**
 * Heads are signed with SHA-256 whatever the profile (RSASSA-PKCS1-v1_5, or ECDSA for a P-256
 * key), as `openssl dgst -sha256 -sign` makes them. Without the private key only verify works.
 */
export function headSigner(publicKey: KeyObject, privateKey?: SigningKey): HeadSigner {
  const signer = privateKey ? asSigner(privateKey) : undefined;
  return {
    sign: (statement) => {
      if (!signer) throw new Error('this store head signer can only verify');
      return signer.sign('sha256', statement);
    },
    verify: (statement, signature) => verify('sha256', statement, publicKey, signature),
  };
}

export function headStatement(h: StoreHead): Buffer {
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64BE(BigInt(h.seq));
  return Buffer.concat([HEAD_DOMAIN, seq, Buffer.from(h.hash, 'hex')]);
}

export function lineHash(line: Uint8Array): string {
  return createHash('sha256').update(line).digest('hex');
}

export function encodeSignedHead(h: SignedHead): { seq: number; hash: string; sig: string } {
  return { seq: h.seq, hash: h.hash, sig: h.sig.toString('base64') };
}

/** A signed head as JSON (a head line's value, or a customer's saved head file). */
export function decodeSignedHead(json: unknown, format = 'store head'): SignedHead {
  const o = checkFields(format, json, ['seq', 'hash', 'sig'], '');
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 1) throw new DecodeError(format, '"seq" must be a positive whole number');
  if (typeof o.hash !== 'string' || !/^[0-9a-f]{64}$/.test(o.hash)) throw new DecodeError(format, '"hash" must be 64 lower-case hex digits (SHA-256)');
  if (typeof o.sig !== 'string' || !/^[A-Za-z0-9+/]{1,2048}={0,2}$/.test(o.sig)) throw new DecodeError(format, '"sig" must be base64');
  return { seq: o.seq as number, hash: o.hash, sig: Buffer.from(o.sig, 'base64') };
}
