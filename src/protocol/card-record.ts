/**
 * The receipt record written into one slot of the card's QTM file (SPEC 4, the patent's
 * "secure write file").
 *
 * v1 (patent, 29 bytes):  version u8 | transaction ID u32 | time u32 | SHA-1 content ID (20)
 * v2 (50 bytes):          version u8 | transaction ID u32 | time u32 | SHA-256 content ID (32)
 *                         | server ID prefix (first 8 bytes of the server ID) | priority u8
 *
 * v2 adds the server ID prefix because transaction IDs are unique only per server, and a
 * priority so the host can pick the slot to replace when the card is full (0 = lowest).
 * An all-zero slot (version byte 0) is free; it is not a record and does not decode.
 */
import { ByteReader, ByteWriter } from './bytes.js';
import { DecodeError } from '../errors.js';
import { profileOfCard } from './profile.js';

export interface CardRecord {
  readonly version: 1 | 2;
  readonly transactionId: number;
  readonly time: number;
  readonly contentId: Uint8Array;
  /** v2 only: first 8 bytes of the server ID. */
  readonly serverIdPrefix?: Uint8Array;
  /** v2 only: replacement priority, 0 (replace first) to 255. */
  readonly priority?: number;
}

export const SERVER_ID_PREFIX_LENGTH = 8;
export const CARD_RECORD_LENGTH = { 1: 29, 2: 50 } as const;

export function encodeCardRecord(rec: CardRecord): Buffer {
  const profile = profileOfCard(rec.version);
  if (!profile) throw new RangeError(`unknown card record version ${rec.version}`);
  if (rec.contentId.length !== profile.digestLength) {
    throw new RangeError(`content ID must be ${profile.digestLength} bytes for version ${rec.version}`);
  }
  const w = new ByteWriter().u8(rec.version).u32(rec.transactionId).u32(rec.time).bytes(rec.contentId);
  if (rec.version === 2) {
    if (!rec.serverIdPrefix || rec.serverIdPrefix.length !== SERVER_ID_PREFIX_LENGTH) {
      throw new RangeError(`v2 card record needs an ${SERVER_ID_PREFIX_LENGTH}-byte server ID prefix`);
    }
    w.bytes(rec.serverIdPrefix).u8(rec.priority ?? 0);
  }
  return w.finish();
}

export function decodeCardRecord(bytes: Uint8Array): CardRecord {
  const format = 'card record';
  const r = new ByteReader(bytes, format);
  const version = r.u8('version');
  const profile = profileOfCard(version);
  if (!profile) {
    throw new DecodeError(format, version === 0 ? 'empty slot (version 0)' : `unknown version ${version}`);
  }
  const transactionId = r.u32('transaction ID');
  const time = r.u32('time');
  const contentId = r.take(profile.digestLength, 'content ID');
  if (version === 1) {
    r.end();
    return { version: 1, transactionId, time, contentId };
  }
  const serverIdPrefix = r.take(SERVER_ID_PREFIX_LENGTH, 'server ID prefix');
  const priority = r.u8('priority');
  r.end();
  return { version: 2, transactionId, time, contentId, serverIdPrefix, priority };
}
