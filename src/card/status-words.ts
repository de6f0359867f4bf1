/**
 * ISO 7816-4 status words used by the qtm card application, and the typed errors the host
 * raises for them (docs/CARD.md lists which command returns which).
 */
import { RefusedError, QtmError, ExitCode } from '../errors.js';
import { hexSw } from './apdu.js';

export const SW = {
  OK: 0x9000,
  BYTES_REMAINING: 0x6100, // 61xx: xx more bytes with GET RESPONSE
  WRONG_PIN: 0x63c0, // 63Cx: x tries left
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS: 0x6982, // PIN not verified in this session
  AUTH_BLOCKED: 0x6983, // PIN or PUK blocked
  REFERENCE_DATA_UNUSABLE: 0x6984, // no pending challenge for a secure write
  CONDITIONS_NOT_SATISFIED: 0x6985, // wrong life-cycle state, or missing prerequisite
  SM_DATA_INCORRECT: 0x6988, // secure write MAC or cryptogram wrong
  WRONG_DATA: 0x6a80,
  FUNCTION_NOT_SUPPORTED: 0x6a81,
  FILE_NOT_FOUND: 0x6a82, // application not found
  RECORD_NOT_FOUND: 0x6a83, // empty slot
  NOT_ENOUGH_MEMORY: 0x6a84,
  WRONG_P1P2: 0x6a86,
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  WRONG_OFFSET: 0x6b00, // READ BINARY beyond the end of the file
  WRONG_LE: 0x6c00, // 6Cxx: retry with Le = xx
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  NO_PRECISE_DIAGNOSIS: 0x6f00,
} as const;

const MEANING: Record<number, string> = {
  [SW.WRONG_LENGTH]: 'wrong length',
  [SW.SECURITY_STATUS]: 'PIN not verified',
  [SW.AUTH_BLOCKED]: 'blocked',
  [SW.REFERENCE_DATA_UNUSABLE]: 'no pending card challenge',
  [SW.CONDITIONS_NOT_SATISFIED]: 'conditions of use not satisfied',
  [SW.SM_DATA_INCORRECT]: 'secure message rejected (MAC or cryptogram wrong)',
  [SW.WRONG_DATA]: 'incorrect data',
  [SW.FUNCTION_NOT_SUPPORTED]: 'function not supported',
  [SW.FILE_NOT_FOUND]: 'application not found',
  [SW.RECORD_NOT_FOUND]: 'record not found (empty slot)',
  [SW.NOT_ENOUGH_MEMORY]: 'not enough memory',
  [SW.WRONG_P1P2]: 'incorrect P1/P2',
  [SW.WRONG_OFFSET]: 'offset beyond the end of the file',
  [SW.REFERENCED_DATA_NOT_FOUND]: 'referenced data not found',
  [SW.INS_NOT_SUPPORTED]: 'instruction not supported',
  [SW.CLA_NOT_SUPPORTED]: 'class not supported',
  [SW.NO_PRECISE_DIAGNOSIS]: 'card error',
};

export function describeSw(sw: number): string {
  if ((sw & 0xfff0) === SW.WRONG_PIN) return `wrong PIN, ${sw & 0x0f} tries left`;
  if ((sw & 0xff00) === SW.BYTES_REMAINING) return `${sw & 0xff || 256} more bytes available`;
  return MEANING[sw] ?? 'unknown status';
}

/** The card answered a command with a status word other than 9000. */
export class CardStatusError extends RefusedError {
  constructor(
    readonly command: string,
    readonly sw: number,
  ) {
    super(`card refused ${command}: ${hexSw(sw)} ${describeSw(sw)}`, undefined, 'E_CARD_SW');
  }
}

export class WrongPinError extends RefusedError {
  constructor(
    readonly which: 'PIN' | 'PUK',
    readonly triesLeft: number,
  ) {
    super(triesLeft === 0 ? `wrong ${which}: the ${which} is now blocked` : `wrong ${which}: ${triesLeft} ${triesLeft === 1 ? 'try' : 'tries'} left before it blocks`,
      triesLeft > 0 ? 'check it and try again' : which === 'PIN' ? 'unblock it with `qtm card pin unblock` and the PUK' : 'the card can no longer be unblocked; have it re-issued', 'E_WRONG_PIN');
  }
}

export class PinBlockedError extends RefusedError {
  constructor(readonly which: 'PIN' | 'PUK') {
    super(`${which} is blocked`, which === 'PIN' ? 'unblock it with `qtm card pin unblock` and the PUK' : 'the card can no longer be unblocked; have it re-issued', 'E_PIN_BLOCKED');
  }
}

/** The card or reader cannot be reached at all. */
export class CardUnavailableError extends QtmError {
  constructor(message: string, hint?: string) {
    super(message, 'E_CARD_UNAVAILABLE', ExitCode.usage, hint);
  }
}
