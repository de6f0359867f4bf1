import { QtmError, ExitCode } from '../errors.js';

/** A refusal with the HTTP status it maps to. */
export class ServiceError extends QtmError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
  ) {
    super(message, code, ExitCode.invalid);
  }
}
