/**
 * Typed errors. Every error qtm raises on purpose is a QtmError with a stable `code` and the
 * process exit code it maps to, so the CLI can print one clear line and exit predictably:
 *   0 success / proof valid
 *   1 proof invalid, or an operation refused (wrong PIN, card refused a write, server refused)
 *   2 unusable input or usage (missing file, malformed bytes, bad flag)
 */
export const ExitCode = { ok: 0, invalid: 1, usage: 2 } as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class QtmError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode: ExitCodeValue,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Input that cannot be used at all: a file that is missing, bytes that do not decode. */
export class InputError extends QtmError {
  constructor(message: string, hint?: string, code = 'E_INPUT') {
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
  constructor(message: string, hint?: string, code = 'E_REFUSED') {
    super(message, code, ExitCode.invalid, hint);
  }
}
