/**
 * The log entry of one signed QTM transaction. Both versions start with the commitment
 *
 *   C = SHA-256("qtm/tlog-leaf/v1" || 0x00 || u64 transaction ID || package bytes)
 *
 * which names neither the order text nor the parties; whoever holds the proof bundle recomputes it.
 *
 *   version 1 (33 bytes): 0x01 || C
 *   version 2 (65 bytes): 0x02 || C || T, T = the card's tag (card-tag.ts): an HMAC of C under a
 *                         per-card monitoring key only the server and the card holder have
 *
 * The Merkle leaf hash is RFC 6962's SHA-256(0x00 || entry). A log writes one version for all its
 * entries (log-dir.ts); a verifier reads both.
 */
import { createHash } from 'node:crypto';
import { DecodeError } from '../errors.js';

export const LEAF_VERSION = 0x01;
export const LEAF_VERSION_TAGGED = 0x02;
export const ENTRY_BYTES = 33;
export const TAGGED_ENTRY_BYTES = 65;
export const TAG_BYTES = 32;
const DOMAIN = Buffer.from('qtm/tlog-leaf/v1\0', 'latin1');
const FORMAT = 'qtm log entry';

export interface LeafInput {
  readonly transactionId: number;
  /** The full signed QTM package, exactly as in the proof bundle. */
  readonly package: Uint8Array;
  /** The card's tag (version 2 entries); absent for version 1. */
  readonly tag?: Uint8Array;
}

export function commitment(leaf: LeafInput): Buffer {
  if (!Number.isSafeInteger(leaf.transactionId) || leaf.transactionId < 0) throw new RangeError('transaction ID must be a non-negative integer');
  const id = Buffer.alloc(8);
  id.writeBigUInt64BE(BigInt(leaf.transactionId));
  return createHash('sha256').update(DOMAIN).update(id).update(leaf.package).digest();
}

/** Version 2 when the leaf carries a tag, else version 1. */
export function encodeEntry(leaf: LeafInput): Buffer {
  if (leaf.tag === undefined) return Buffer.concat([Buffer.from([LEAF_VERSION]), commitment(leaf)]);
  if (leaf.tag.length !== TAG_BYTES) throw new RangeError(`a card tag is ${TAG_BYTES} bytes`);
  return Buffer.concat([Buffer.from([LEAF_VERSION_TAGGED]), commitment(leaf), leaf.tag]);
}

export interface DecodedEntry {
  readonly version: 1 | 2;
  readonly commitment: Buffer;
  readonly tag?: Buffer;
}

/** Strict: 33 bytes of version 1 or 65 bytes of version 2. */
export function decodeEntry(entry: Uint8Array): DecodedEntry {
  const b = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
  if (b.length === 0) throw new DecodeError(FORMAT, 'empty entry');
  if (b[0] === LEAF_VERSION) {
    if (b.length !== ENTRY_BYTES) throw new DecodeError(FORMAT, `version 1 entry of ${b.length} bytes, expected ${ENTRY_BYTES}`);
    return { version: 1, commitment: Buffer.from(b.subarray(1)) };
  }
  if (b[0] === LEAF_VERSION_TAGGED) {
    if (b.length !== TAGGED_ENTRY_BYTES) throw new DecodeError(FORMAT, `version 2 entry of ${b.length} bytes, expected ${TAGGED_ENTRY_BYTES}`);
    return { version: 2, commitment: Buffer.from(b.subarray(1, 33)), tag: Buffer.from(b.subarray(33)) };
  }
  throw new DecodeError(FORMAT, `unknown version ${b[0]}`);
}

/** The entry's size for a version byte (the first byte of a log's entries file). */
export function entryBytesFor(version: number): number {
  if (version === LEAF_VERSION) return ENTRY_BYTES;
  if (version === LEAF_VERSION_TAGGED) return TAGGED_ENTRY_BYTES;
  throw new DecodeError(FORMAT, `unknown version ${version}`);
}
