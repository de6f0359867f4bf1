/**
 * The secure write of SPEC 4 (claims 2, 3, 6, 7): only the master-key holder can write a
 * receipt to the card, each write is bound to one fresh card challenge R and one slot, and the
 * card proves it stored the record.
 *
 *   P = record || 80 00..00          (ISO/IEC 9797-1 padding method 2, to a multiple of 16)
 *   X = AES-128-CBC(K_enc, IV = 0, P) XOR (R || R || ...)
 *   T = first 8 bytes of AES-CMAC(K_mac, R || slot || X)
 *   envelope = X || T                 (the card receives it in SECURE WRITE RECORD, P1 = slot)
 *   W = first 8 bytes of AES-CMAC(K_mac, "ACK" || R || record)   (the card's storage proof)
 *
 * The card checks T before it does anything else, so a replayed (R is gone), altered or
 * misaddressed (slot is under the MAC) envelope changes nothing.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { aesCmacTruncated, constantTimeEqual } from './cmac.js';
import type { CardKeys } from './diversify.js';

export const CHALLENGE_LENGTH = 16;
export const MAC_LENGTH = 8;
const ZERO_IV = Buffer.alloc(16);

export function padIso9797M2(data: Uint8Array): Buffer {
  const padded = Buffer.alloc((Math.floor(data.length / 16) + 1) * 16);
  Buffer.from(data).copy(padded);
  padded[data.length] = 0x80;
  return padded;
}

/** Removes ISO 9797-1 method 2 padding; undefined when the padding is malformed. */
export function unpadIso9797M2(padded: Uint8Array): Buffer | undefined {
  let i = padded.length - 1;
  while (i >= 0 && padded[i] === 0) i--;
  if (i < 0 || padded[i] !== 0x80 || padded.length - i > 16) return undefined;
  return Buffer.from(padded.subarray(0, i));
}

function xorWithChallenge(data: Uint8Array, r: Uint8Array): Buffer {
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ r[i % r.length]!;
  return out;
}

function checkChallenge(r: Uint8Array): void {
  if (r.length !== CHALLENGE_LENGTH) throw new RangeError(`card challenge must be ${CHALLENGE_LENGTH} bytes, got ${r.length}`);
}

function macInput(r: Uint8Array, slot: number, x: Uint8Array): Buffer {
  return Buffer.concat([r, Buffer.of(slot), x]);
}

/** Server side: the envelope for one record, one slot, one challenge. */
export function sealRecord(keys: CardKeys, r: Uint8Array, slot: number, record: Uint8Array): Buffer {
  checkChallenge(r);
  if (!Number.isInteger(slot) || slot < 0 || slot > 0xff) throw new RangeError(`slot out of range: ${slot}`);
  const cipher = createCipheriv('aes-128-cbc', keys.kEnc, ZERO_IV).setAutoPadding(false);
  const c = Buffer.concat([cipher.update(padIso9797M2(record)), cipher.final()]);
  const x = xorWithChallenge(c, r);
  return Buffer.concat([x, aesCmacTruncated(keys.kMac, macInput(r, slot, x), MAC_LENGTH)]);
}

export type OpenResult = { ok: true; record: Buffer } | { ok: false; reason: 'length' | 'mac' | 'padding' };

/** Card side: check the MAC first, then undo the XOR, decrypt and unpad. */
export function openRecord(keys: CardKeys, r: Uint8Array, slot: number, envelope: Uint8Array): OpenResult {
  checkChallenge(r);
  if (envelope.length < 16 + MAC_LENGTH || (envelope.length - MAC_LENGTH) % 16 !== 0) return { ok: false, reason: 'length' };
  const x = envelope.subarray(0, envelope.length - MAC_LENGTH);
  const t = envelope.subarray(envelope.length - MAC_LENGTH);
  if (!constantTimeEqual(t, aesCmacTruncated(keys.kMac, macInput(r, slot, x), MAC_LENGTH))) return { ok: false, reason: 'mac' };
  const decipher = createDecipheriv('aes-128-cbc', keys.kEnc, ZERO_IV).setAutoPadding(false);
  const p = Buffer.concat([decipher.update(xorWithChallenge(x, r)), decipher.final()]);
  const record = unpadIso9797M2(p);
  return record ? { ok: true, record } : { ok: false, reason: 'padding' };
}

/** The card's storage proof W. */
export function storageProof(keys: CardKeys, r: Uint8Array, record: Uint8Array): Buffer {
  return aesCmacTruncated(keys.kMac, Buffer.concat([Buffer.from('ACK', 'ascii'), r, record]), MAC_LENGTH);
}

export function checkStorageProof(keys: CardKeys, r: Uint8Array, record: Uint8Array, w: Uint8Array): boolean {
  return constantTimeEqual(w, storageProof(keys, r, record));
}
