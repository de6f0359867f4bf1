/**
 * The verifiable escrow on the wire (docs/FAIR-EXCHANGE.md). Big-endian:
 *   "QVE" 0x01 | pairs u16 | n u16 (card modulus bytes) | c u16 (TTP ciphertext bytes)
 *   then per pair:  u (n) | c_r (c) | c_s (c) | opened value (n) | opened OAEP seed (32)
 * Which half of a pair is opened is not stored: the verifier derives it from the challenge.
 */
import { DecodeError } from '../errors.js';
import { OAEP_SEED_LENGTH } from './oaep.js';

export const ESCROW_MAGIC = Buffer.from('QVE\x01', 'binary');
export const MAX_PAIRS = 256; // one SHA-256 challenge supplies 256 bits
const FORMAT = 'verifiable escrow';

export interface EscrowPair {
  /** u = r^e mod N: what the opened half is checked against. */
  readonly u: Buffer;
  readonly cR: Buffer;
  readonly cS: Buffer;
  /** r or s, whichever the challenge bit asks for. */
  readonly opened: Buffer;
  readonly seed: Buffer;
}

export interface VerifiableEscrow {
  readonly modulusLength: number;
  readonly ciphertextLength: number;
  readonly pairs: readonly EscrowPair[];
}

export function encodeEscrow(e: VerifiableEscrow): Buffer {
  const head = Buffer.alloc(10);
  ESCROW_MAGIC.copy(head, 0);
  head.writeUInt16BE(e.pairs.length, 4);
  head.writeUInt16BE(e.modulusLength, 6);
  head.writeUInt16BE(e.ciphertextLength, 8);
  const parts: Buffer[] = [head];
  for (const p of e.pairs) {
    if (p.u.length !== e.modulusLength || p.opened.length !== e.modulusLength || p.cR.length !== e.ciphertextLength || p.cS.length !== e.ciphertextLength || p.seed.length !== OAEP_SEED_LENGTH) {
      throw new RangeError('escrow pair fields have the wrong lengths');
    }
    parts.push(p.u, p.cR, p.cS, p.opened, p.seed);
  }
  return Buffer.concat(parts);
}

export function decodeEscrow(bytes: Uint8Array): VerifiableEscrow {
  const b = Buffer.from(bytes);
  if (b.length < 10) throw new DecodeError(FORMAT, `truncated: ${b.length} bytes`);
  if (!b.subarray(0, 4).equals(ESCROW_MAGIC)) throw new DecodeError(FORMAT, 'not a qtm verifiable escrow (magic "QVE" version 1)');
  const count = b.readUInt16BE(4);
  const n = b.readUInt16BE(6);
  const c = b.readUInt16BE(8);
  if (count === 0 || count > MAX_PAIRS) throw new DecodeError(FORMAT, `${count} pairs (1..${MAX_PAIRS})`);
  if (n < 64 || n > 1024 || c < 64 || c > 1024) throw new DecodeError(FORMAT, `unusable modulus lengths ${n}/${c}`);
  const pairLength = 2 * n + 2 * c + OAEP_SEED_LENGTH;
  const expected = 10 + count * pairLength;
  if (b.length !== expected) throw new DecodeError(FORMAT, `${b.length} bytes, expected ${expected} for ${count} pairs`);
  const pairs: EscrowPair[] = [];
  for (let i = 0, at = 10; i < count; i++) {
    const take = (len: number) => {
      const v = Buffer.from(b.subarray(at, at + len));
      at += len;
      return v;
    };
    pairs.push({ u: take(n), cR: take(c), cS: take(c), opened: take(n), seed: take(OAEP_SEED_LENGTH) });
  }
  return { modulusLength: n, ciphertextLength: c, pairs };
}
