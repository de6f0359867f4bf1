/**
 * Typed errors. Every error qtm raises on purpose is a QtmError with a stable `code` and the
 * process exit code it maps to, so the CLI can print one clear line and exit predictably:
 *   0 success / proof valid
 *   1 proof invalid, or an operation refused (wrong PIN, card refused a write, server refused)
 *   2 unusable input or usage (missing file, malformed bytes, bad flag)
 */
export const ExitCode = { ok: 0, invalid: 1, usage: 2 } as const;

/**
 * Every error code qtm raises, in one union so that a misspelt code does not compile. The HTTP
 * status of the codes a server answers with is in ../http/status.ts; docs name each where it
 * can appear.
 */
export const ERROR_CODES = [
  // input and usage (exit 2)
  'E_INPUT', 'E_DECODE', 'E_JSON', 'E_VERIFY_STATE', 'E_PASSPHRASE', 'E_CATALOGUE', 'E_UNKNOWN_SKU', 'E_ORDER_TOO_LARGE', 'E_PLAIN_TEXT', 'E_FILE', 'E_FILE_DAMAGED', 'E_CRL', 'E_CRL_STATE',
  // refusals (exit 1)
  'E_REFUSED', 'E_DECLINED', 'E_CANCELLED', 'E_WRONG_PIN', 'E_PIN_BLOCKED', 'E_CARD_SW', 'E_CARD_UNAVAILABLE', 'E_CARD_BUSY', 'E_NOT_ISSUED',
  // keys in a PKCS#11 token (issue 11)
  'E_PKCS11', 'E_PKCS11_BINDING', 'E_PKCS11_EXISTS', 'E_PKCS11_MODULE', 'E_PKCS11_OBJECT', 'E_PKCS11_PIN', 'E_PKCS11_TOKEN', 'E_PKCS11_URI',
  // the transparency log (issue 12)
  'E_TLOG_PROOF', 'E_TLOG_SIGNATURE', 'E_TLOG_MISBEHAVIOUR',
  // card issuing: the issuance register (issue 18)
  'E_SERIAL_TAKEN', 'E_SERIAL_RESERVED',
  // the client's view of a server (exit 1 or 2)
  'E_SERVER', 'E_SERVER_AUTH', 'E_UNREACHABLE', 'E_UNKNOWN',
  // the HTTP layer
  'E_BAD_URL', 'E_BAD_REQUEST', 'E_TIMEOUT', 'E_TOO_LARGE', 'E_NOT_FOUND', 'E_METHOD_NOT_ALLOWED', 'E_INTERNAL',
  // card authentication
  'E_NOT_AUTHENTICATED', 'E_NONCE', 'E_CLIENT_AUTH', 'E_CLIENT_CERT', 'E_CARD_KEY_CONFLICT',
  // the transaction core
  'E_PROFILE', 'E_NO_ORDER', 'E_BAD_ORDER', 'E_RATE_LIMITED', 'E_ORDER_TAKEN', 'E_NO_TRANSACTION', 'E_TX_MISMATCH', 'E_BAD_SIGNATURE', 'E_ALREADY_CONFIRMED',
  'E_NOT_CONFIRMED', 'E_BAD_PROOF',
  // one ID, one record (issue 18): what the client refuses of a server
  'E_ID_REUSED', 'E_BAD_HEAD',
  // proxy signing (claims 10-11)
  'E_NO_WARRANT', 'E_WARRANT_GONE',
  // the record's time (issue 18): the client's clock and the server's age limit
  'E_CLOCK_SKEW', 'E_RECORD_EXPIRED',
  // the fair exchange (claims 12-14) and its TTP
  'E_NO_TTP', 'E_NOT_FAIR', 'E_ABORTED', 'E_ABORTING', 'E_DEADLINE', 'E_ALREADY_ESCROWED', 'E_BAD_ESCROW', 'E_TTP_ANSWER',
  'E_TTP_ROLES', 'E_TTP_NOT_SIGNED', 'E_TTP_UNTRUSTED', 'E_TTP_DEPOSIT', 'E_TTP_CONFLICT',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class QtmError extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode,
    readonly exitCode: ExitCodeValue,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Input that cannot be used at all: a file that is missing, bytes that do not decode. */
export class InputError extends QtmError {
  constructor(message: string, hint?: string, code: ErrorCode = 'E_INPUT') {
    super(message, code, ExitCode.usage, hint);
  }
}

/** A wire format that does not decode: truncated, overlong, unknown version, trailing bytes. */
export class DecodeError extends InputError {
  constructor(
    readonly format: string,
    message: string,
  ) {
    super(`${format}: ${message}`, undefined, 'E_DECODE');
  }
}

/** An operation that was understood and refused (bad PIN, invalid proof, refused write). */
export class RefusedError extends QtmError {
  constructor(message: string, hint?: string, code: ErrorCode = 'E_REFUSED') {
    super(message, code, ExitCode.invalid, hint);
  }
}
