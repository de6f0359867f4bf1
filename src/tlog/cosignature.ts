/**
 * C2SP tlog-cosignature v1.0.1 (pinned): a witness's timestamped Ed25519 signature on a
 * checkpoint. Key ID type byte 0x04; signed message `cosignature/v1\ntime <T>\n` + checkpoint
 * text; the signature line holds key ID (4) || timestamp (8, big-endian) || signature (64).
 */
import type { KeyObject } from 'node:crypto';
import { DecodeError } from '../errors.js';
import { ed25519Sign, ed25519Verify, privateKeyFromSeed, publicKeyFromRaw } from './ed25519.js';
import { SIG_TYPE_COSIGNATURE_V1, type NoteSigner, type NoteVerifier, type Skey, type Vkey } from './note.js';

const FORMAT = 'cosignature/v1';
export const COSIGNATURE_BYTES = 72;

export function cosignedMessage(checkpointText: string, timestamp: number): Buffer {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new RangeError('cosignature timestamp must be a non-negative integer');
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${checkpointText}`, 'utf8');
}

export interface TimestampedSignature {
  timestamp: number;
  signature: Buffer;
}

export function encodeTimestampedSignature(t: TimestampedSignature): Buffer {
  if (t.signature.length !== 64) throw new RangeError('an Ed25519 signature is 64 bytes');
  const out = Buffer.alloc(COSIGNATURE_BYTES);
  out.writeBigUInt64BE(BigInt(t.timestamp), 0);
  t.signature.copy(out, 8);
  return out;
}

/** Strict: exactly 72 bytes, timestamp below 2^53 (the spec caps it at 2^63-1; later is refused). */
export function decodeTimestampedSignature(b: Uint8Array): TimestampedSignature {
  if (b.length !== COSIGNATURE_BYTES) throw new DecodeError(FORMAT, `signature is ${b.length} bytes, not ${COSIGNATURE_BYTES}`);
  const buf = Buffer.from(b);
  const ts = buf.readBigUInt64BE(0);
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(FORMAT, 'timestamp is beyond 2^53 seconds');
  return { timestamp: Number(ts), signature: buf.subarray(8) };
}

export interface Cosigner extends NoteSigner {
  /** Cosign at a given time (seconds since the epoch). */
  signAt(text: string, timestamp: number): Uint8Array;
}

export function cosigner(skey: Skey, now: () => number = () => Math.floor(Date.now() / 1000)): Cosigner {
  if (skey.type !== SIG_TYPE_COSIGNATURE_V1) throw new RangeError('not a cosignature/v1 key');
  const key: KeyObject = privateKeyFromSeed(skey.seed);
  const signAt = (text: string, timestamp: number) =>
    encodeTimestampedSignature({ timestamp, signature: ed25519Sign(key, cosignedMessage(text, timestamp)) });
  return { name: skey.name, keyId: skey.keyId, signAt, sign: (text) => signAt(text, now()) };
}

export interface CosignatureVerifier extends NoteVerifier {
  /** The timestamp of the last signature this verifier accepted. */
  lastTimestamp?: number;
}

/**
 * A note verifier for a witness key. `maxFuture` (seconds) refuses cosignatures dated in the future
 * beyond that skew.
 */
export function cosignatureVerifier(vkey: Vkey, opts: { now?: () => number; maxFuture?: number } = {}): CosignatureVerifier {
  if (vkey.type !== SIG_TYPE_COSIGNATURE_V1) throw new RangeError('not a cosignature/v1 key');
  const key = publicKeyFromRaw(vkey.publicKey);
  const v: CosignatureVerifier = {
    name: vkey.name,
    keyId: vkey.keyId,
    verify(text, sig) {
      let t: TimestampedSignature;
      try {
        t = decodeTimestampedSignature(sig);
      } catch {
        return false;
      }
      const now = opts.now?.() ?? Math.floor(Date.now() / 1000);
      if (opts.maxFuture !== undefined && t.timestamp > now + opts.maxFuture) return false;
      const ok = ed25519Verify(key, cosignedMessage(text, t.timestamp), t.signature);
      if (ok) v.lastTimestamp = t.timestamp;
      return ok;
    },
  };
  return v;
}
