/**
 * The qtm card application: identifiers and encodings shared by the host client and the
 * virtual card. docs/CARD.md is the full command table.
 */
import { DecodeError } from '../errors.js';
export { QTM_AID, AUTH_PREFIX } from '../protocol/card-application.js';

export const CLA_ISO = 0x00;
export const CLA_PROPRIETARY = 0x80;

export const INS = {
  SELECT: 0xa4,
  GET_DATA: 0xca,
  PUT_DATA: 0xda,
  VERIFY: 0x20,
  CHANGE_REFERENCE_DATA: 0x24,
  RESET_RETRY_COUNTER: 0x2c,
  GENERATE_ASYMMETRIC_KEY_PAIR: 0x47,
  ACTIVATE_FILE: 0x44, // LOCK: ends personalisation for good (ISO 7816-9 life cycle)
  INTERNAL_AUTHENTICATE: 0x88,
  PSO: 0x2a,
  GET_CHALLENGE: 0x84,
  SECURE_WRITE_RECORD: 0xd2, // proprietary class 80
  READ_RECORD: 0xb2,
  READ_BINARY: 0xb0,
  GET_RESPONSE: 0xc0,
} as const;

export const TAG = {
  STATUS: 0x0100,
  CERTIFICATE: 0x0201,
  CARD_KEYS: 0x0202,
  PIN_PUK: 0x0203,
  LAYOUT: 0x0204,
} as const;

export const PIN_REF = 0x81;
export const PSO_CDS = { p1: 0x9e, p2: 0x9a } as const;
/** PSO COMPUTE DIGITAL SIGNATURE over a warrant's TBSCertificate (manager cards, claims 10-11). */
export const PSO_CDS_WARRANT = { p1: 0x9e, p2: 0xac } as const;
/** PSO COMPUTE DIGITAL SIGNATURE over a revocation list's TBSCertList naming the card as issuer (docs/CARD.md). */
export const PSO_CDS_CRL = { p1: 0x9e, p2: 0xad } as const;
export const READ_RECORD_ONE = 0x04;
export const READ_RECORD_ALL = 0x05;

export const PIN_TRIES = 3;
export const PUK_TRIES = 5;
export const PIN_BLOCK_LENGTH = 8;
export const MAX_SLOTS = 80; // 80 x 50-byte v2 records: a 4 KB receipt file
export const DEFAULT_SLOTS = 16;

export const LIFECYCLE = { personalisation: 0x01, operational: 0x0f } as const;

/** ATR: T=0/T=1 capable, historical bytes "QTM-CARD01", TCK. */
export const ATR = (() => {
  const body = Buffer.concat([Buffer.from('3B8A8001', 'hex'), Buffer.from('QTM-CARD01', 'ascii')]);
  let tck = 0;
  for (const b of body.subarray(1)) tck ^= b;
  return Buffer.concat([body, Buffer.of(tck)]);
})();

/** PINs are 4-8 digits, PUKs 8 digits; on the wire both are 8 bytes, ASCII padded with FF. */
export function encodePinBlock(pin: string): Buffer {
  const block = Buffer.alloc(PIN_BLOCK_LENGTH, 0xff);
  block.write(pin, 'ascii');
  return block;
}

export function decodePinBlock(block: Uint8Array): string | undefined {
  if (block.length !== PIN_BLOCK_LENGTH) return undefined;
  const end = block.indexOf(0xff);
  const digits = Buffer.from(block.subarray(0, end < 0 ? PIN_BLOCK_LENGTH : end));
  if (end >= 0 && block.subarray(end).some((b) => b !== 0xff)) return undefined;
  const pin = digits.toString('ascii');
  return /^[0-9]{4,8}$/.test(pin) ? pin : undefined;
}

export function isValidPin(pin: string): boolean {
  return /^[0-9]{4,8}$/.test(pin);
}

export function isValidPuk(puk: string): boolean {
  return /^[0-9]{8}$/.test(puk);
}

/** GET DATA 0100: the card status, 17 bytes. */
export interface CardStatus {
  readonly appVersion: number;
  readonly serial: Buffer;
  /** 0 until personalisation sets it. */
  readonly profileVersion: number;
  readonly lifecycle: 'personalisation' | 'operational';
  readonly slotCount: number;
  readonly recordLength: number;
  /** undefined until a PIN is set. */
  readonly pinTriesLeft?: number;
  readonly pukTriesLeft?: number;
  /** 1-based; undefined when every slot is full. */
  readonly firstFreeSlot?: number;
  readonly keyGenerated: boolean;
  readonly certificatePresent: boolean;
  readonly cardKeysPresent: boolean;
  readonly pinVerified: boolean;
}

export const STATUS_LENGTH = 17;

export function encodeStatus(s: CardStatus): Buffer {
  const flags = (s.keyGenerated ? 1 : 0) | (s.certificatePresent ? 2 : 0) | (s.cardKeysPresent ? 4 : 0) | (s.pinTriesLeft !== undefined ? 8 : 0) | (s.pinVerified ? 16 : 0);
  return Buffer.concat([
    Buffer.of(s.appVersion),
    s.serial,
    Buffer.of(s.profileVersion, LIFECYCLE[s.lifecycle], s.slotCount, s.recordLength, s.pinTriesLeft ?? 0xff, s.pukTriesLeft ?? 0xff, s.firstFreeSlot ?? 0, flags),
  ]);
}

export function decodeStatus(b: Uint8Array): CardStatus {
  // What a card answers is input: a malformed status is a DecodeError (exit 2), never a crash.
  if (b.length !== STATUS_LENGTH) throw new DecodeError('card status', `must be ${STATUS_LENGTH} bytes, got ${b.length}`);
  if (b[10] !== LIFECYCLE.operational && b[10] !== LIFECYCLE.personalisation) throw new DecodeError('card status', `unknown life cycle byte 0x${b[10]!.toString(16).padStart(2, '0')}`);
  const flags = b[16]!;
  const pinSet = (flags & 8) !== 0;
  return {
    appVersion: b[0]!,
    serial: Buffer.from(b.subarray(1, 9)),
    profileVersion: b[9]!,
    lifecycle: b[10] === LIFECYCLE.operational ? 'operational' : 'personalisation',
    slotCount: b[11]!,
    recordLength: b[12]!,
    ...(pinSet ? { pinTriesLeft: b[13]!, pukTriesLeft: b[14]! } : {}),
    ...(b[15] ? { firstFreeSlot: b[15]! } : {}),
    keyGenerated: (flags & 1) !== 0,
    certificatePresent: (flags & 2) !== 0,
    cardKeysPresent: (flags & 4) !== 0,
    pinVerified: (flags & 16) !== 0,
  };
}
