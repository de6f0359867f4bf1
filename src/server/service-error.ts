import { QtmError, ExitCode, type ErrorCode } from '../errors.js';

/**
 * A refusal of the QTM service (the transaction core, proxy signing, the fair exchange). It says
 * what was refused and why; which HTTP status that is, is the HTTP layer's business
 * (../http/status.ts), so the service can be driven without HTTP.
 */
export class ServiceError extends QtmError {
  constructor(code: ErrorCode, message: string) {
    super(message, code, ExitCode.invalid);
  }
}
