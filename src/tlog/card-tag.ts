/**
 * Monitoring by card (issue 12): a per-card tag in each version 2 log entry that only the server
 * and the card holder can compute, so a card holder finds every leaf of their card while anyone
 * else learns nothing (a card's key fingerprint is public: a plain hash of it would let anyone
 * count a card's transactions).
 *
 *   monitoring key K = HKDF-SHA256(ikm = the log's tag secret (32 random bytes, never the SAM's),
 *                                  salt = "qtm/tlog-monitor-key/v1",
 *                                  info = SHA-256 of party B's public key (the card key fingerprint), 32 bytes)
 *   tag T            = HMAC-SHA256(K, "qtm/tlog-card-tag/v1" || 0x00 || C)
 *
 * C (leaf.ts) is the SHA-256 commitment to the transaction ID and the package, so T binds both;
 * it is computed over C rather than the ID and package themselves because a monitor sees only
 * the entry. K is keyed by the card's key, not its serial: a second card made with a known serial
 * and another key gets another K, and its leaves are not listed under the real card's.
 *
 * The monitoring key file the client keeps (one line, LF-terminated):
 *   qtm/tlog-monitor-key/v1 <log origin> <card key fingerprint, 64 hex> <K, base64>
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { DecodeError } from '../errors.js';
import { TAG_BYTES } from './leaf.js';
import { strictBase64 } from './note.js';

export const MONITOR_KEY_BYTES = 32;
const KDF_SALT = Buffer.from('qtm/tlog-monitor-key/v1', 'latin1');
const TAG_DOMAIN = Buffer.from('qtm/tlog-card-tag/v1\0', 'latin1');
const FILE_LABEL = 'qtm/tlog-monitor-key/v1';
const FORMAT = 'monitor key file';

const isFingerprint = (s: string) => /^[0-9a-f]{64}$/.test(s);

/** The card's monitoring key, from the log's tag secret and the card key fingerprint (hex SHA-256). */
export function monitorKey(secret: Uint8Array, cardKey: string): Buffer {
  if (secret.length < 32) throw new RangeError('the tag secret must be at least 32 bytes');
  if (!isFingerprint(cardKey)) throw new RangeError('a card key fingerprint is 64 lowercase hex digits');
  return Buffer.from(hkdfSync('sha256', secret, KDF_SALT, Buffer.from(cardKey, 'hex'), MONITOR_KEY_BYTES));
}

export function cardTag(key: Uint8Array, commitment: Uint8Array): Buffer {
  if (key.length !== MONITOR_KEY_BYTES) throw new RangeError(`a monitoring key is ${MONITOR_KEY_BYTES} bytes`);
  return createHmac('sha256', key).update(TAG_DOMAIN).update(commitment).digest();
}

/** Constant-time: is `tag` this key's tag of `commitment`? */
export function isCardTag(key: Uint8Array, commitment: Uint8Array, tag: Uint8Array): boolean {
  return tag.length === TAG_BYTES && timingSafeEqual(cardTag(key, commitment), tag);
}

export interface MonitorKeyFile {
  /** The log's origin (its checkpoints' first line). */
  readonly origin: string;
  /** SHA-256 of the card's public key, hex. */
  readonly cardKey: string;
  readonly key: Buffer;
}

export function encodeMonitorKeyFile(m: MonitorKeyFile): string {
  if (m.origin.length === 0 || /[\s+]/.test(m.origin)) throw new RangeError('a log origin is one word without "+"');
  if (!isFingerprint(m.cardKey)) throw new RangeError('a card key fingerprint is 64 lowercase hex digits');
  if (m.key.length !== MONITOR_KEY_BYTES) throw new RangeError(`a monitoring key is ${MONITOR_KEY_BYTES} bytes`);
  return `${FILE_LABEL} ${m.origin} ${m.cardKey} ${m.key.toString('base64')}\n`;
}

/** Strict: exactly one line of four fields, as encodeMonitorKeyFile writes it. */
export function decodeMonitorKeyFile(text: string): MonitorKeyFile {
  if (text.length > 1024) throw new DecodeError(FORMAT, 'longer than 1024 characters');
  if (!text.endsWith('\n') || text.indexOf('\n') !== text.length - 1) throw new DecodeError(FORMAT, 'must be one line ending in a newline');
  const f = text.slice(0, -1).split(' ');
  if (f.length !== 4 || f[0] !== FILE_LABEL) throw new DecodeError(FORMAT, `must be "${FILE_LABEL} <log origin> <card key fingerprint> <key>"`);
  const [, origin, cardKey, b64] = f as [string, string, string, string];
  if (origin.length === 0 || /[\s+]/.test(origin)) throw new DecodeError(FORMAT, 'the log origin is empty or holds "+"');
  if (!isFingerprint(cardKey)) throw new DecodeError(FORMAT, 'the card key fingerprint must be 64 lowercase hex digits');
  const key = strictBase64(FORMAT, 'key', b64);
  if (key.length !== MONITOR_KEY_BYTES) throw new DecodeError(FORMAT, `the key is ${key.length} bytes, not ${MONITOR_KEY_BYTES}`);
  return { origin, cardKey, key };
}
