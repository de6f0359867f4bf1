/**
 * The log entry of one signed QTM transaction: version byte 0x01 followed by the commitment
 * SHA-256("qtm/tlog-leaf/v1" || 0x00 || u64 transaction ID || package bytes). It names neither
 * the order text nor the parties; whoever holds the proof bundle recomputes it. The Merkle leaf
 * hash is RFC 6962's SHA-256(0x00 || entry).
 */
import { createHash } from 'node:crypto';
import { DecodeError } from '../errors.js';

export const LEAF_VERSION = 0x01;
export const ENTRY_BYTES = 33;
const DOMAIN = Buffer.from('qtm/tlog-leaf/v1\0', 'latin1');
const FORMAT = 'qtm log entry';

export interface LeafInput {
  readonly transactionId: number;
  /** The full signed QTM package, exactly as in the proof bundle. */
  readonly package: Uint8Array;
}

export function commitment(leaf: LeafInput): Buffer {
  if (!Number.isSafeInteger(leaf.transactionId) || leaf.transactionId < 0) throw new RangeError('transaction ID must be a non-negative integer');
  const id = Buffer.alloc(8);
  id.writeBigUInt64BE(BigInt(leaf.transactionId));
  return createHash('sha256').update(DOMAIN).update(id).update(leaf.package).digest();
}

export function encodeEntry(leaf: LeafInput): Buffer {
  return Buffer.concat([Buffer.from([LEAF_VERSION]), commitment(leaf)]);
}

/** Strict: 33 bytes, version 1. Returns the commitment. */
export function decodeEntry(entry: Uint8Array): Buffer {
  if (entry.length !== ENTRY_BYTES) throw new DecodeError(FORMAT, `${entry.length} bytes, expected ${ENTRY_BYTES}`);
  if (entry[0] !== LEAF_VERSION) throw new DecodeError(FORMAT, `unknown version ${entry[0]}`);
  return Buffer.from(entry.subarray(1));
}
