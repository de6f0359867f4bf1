/**
 * The verifiable escrow on the wire (docs/FAIR-EXCHANGE.md). Big-endian:
 *   "QVE" 0x01 | pairs u16 | n u16 (card modulus bytes) | c u16 (TTP ciphertext bytes)
 *   then per pair:  u (n) | c_r (c) | c_s (c) | opened value (n) | opened OAEP seed (32)
 * Which half of a pair is opened is not stored: the verifier derives it from the challenge.
 */
import { DecodeError } from '../errors.js';
import { ByteReader, ByteWriter } from '../protocol/bytes.js';
import { OAEP_SEED_LENGTH } from './oaep.js';

export const ESCROW_MAGIC = Buffer.from('QVE\x01', 'binary');
export const MAX_PAIRS = 256; // one SHA-256 challenge supplies 256 bits
const FORMAT = 'verifiable escrow';
const HEAD_LENGTH = 10; // magic, pair count, n, c

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
  const w = new ByteWriter().bytes(ESCROW_MAGIC).u16(e.pairs.length).u16(e.modulusLength).u16(e.ciphertextLength);
  for (const p of e.pairs) {
    if (p.u.length !== e.modulusLength || p.opened.length !== e.modulusLength || p.cR.length !== e.ciphertextLength || p.cS.length !== e.ciphertextLength || p.seed.length !== OAEP_SEED_LENGTH) {
      throw new RangeError('escrow pair fields have the wrong lengths');
    }
    w.bytes(p.u).bytes(p.cR).bytes(p.cS).bytes(p.opened).bytes(p.seed);
  }
  return w.finish();
}

export function decodeEscrow(bytes: Uint8Array): VerifiableEscrow {
  if (bytes.length < HEAD_LENGTH) throw new DecodeError(FORMAT, `truncated: ${bytes.length} bytes`);
  const r = new ByteReader(bytes, FORMAT);
  if (!Buffer.from(r.take(ESCROW_MAGIC.length, 'magic')).equals(ESCROW_MAGIC)) throw new DecodeError(FORMAT, 'not a qtm verifiable escrow (magic "QVE" version 1)');
  const count = r.u16('pair count');
  const n = r.u16('modulus length');
  const c = r.u16('ciphertext length');
  if (count === 0 || count > MAX_PAIRS) throw new DecodeError(FORMAT, `${count} pairs (1..${MAX_PAIRS})`);
  if (n < 64 || n > 1024 || c < 64 || c > 1024) throw new DecodeError(FORMAT, `unusable modulus lengths ${n}/${c}`);
  // The whole length is checked before any pair is read: a wrong one costs nothing.
  const expected = HEAD_LENGTH + count * (2 * n + 2 * c + OAEP_SEED_LENGTH);
  if (bytes.length !== expected) throw new DecodeError(FORMAT, `${bytes.length} bytes, expected ${expected} for ${count} pairs`);
  const pairs: EscrowPair[] = [];
  const take = (len: number, field: string) => Buffer.from(r.take(len, field));
  for (let i = 0; i < count; i++) {
    pairs.push({ u: take(n, `pair ${i} u`), cR: take(c, `pair ${i} c_r`), cS: take(c, `pair ${i} c_s`), opened: take(n, `pair ${i} opened value`), seed: take(OAEP_SEED_LENGTH, `pair ${i} seed`) });
  }
  r.end();
  return { modulusLength: n, ciphertextLength: c, pairs };
}
