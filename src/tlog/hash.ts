/**
 * RFC 6962 / RFC 9162 section 2.1.1 hashing with SHA-256: a leaf is SHA-256(0x00 || entry), an
 * interior node SHA-256(0x01 || left || right), and the empty tree SHA-256("").
 */
import { createHash, hash } from 'node:crypto';

export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

// One-shot crypto.hash (OpenSSL, as createHash) costs half as much per call for these short
// inputs: it counts when a log of 1M entries is rebuilt at start (two hashes per leaf).
export function leafHash(entry: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([LEAF_PREFIX, entry]), 'buffer');
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([NODE_PREFIX, left, right]), 'buffer');
}

/** MTH({}) = SHA-256() : the root of the empty tree. */
export function emptyRoot(): Buffer {
  return createHash('sha256').digest();
}
