/**
 * The HTTP status each refusal of the qtm server and the TTP answers with. The service raises
 * typed errors with a code and no status; this table, in the HTTP layer, is the one mapping.
 * Codes not listed: a DecodeError is 400, a plain-text refusal 422, any other QtmError 403.
 */
import type { ErrorCode } from '../errors.js';

export const HTTP_STATUS: { readonly [C in ErrorCode]?: number } = {
  E_BAD_URL: 400,
  E_BAD_REQUEST: 400,
  E_TIMEOUT: 408,
  E_JSON: 400,
  E_DECODE: 400,
  E_PROFILE: 400,
  E_NO_TTP: 400,
  E_TX_MISMATCH: 400,
  E_NOT_AUTHENTICATED: 401,
  E_NONCE: 401,
  E_BAD_SIGNATURE: 403,
  E_BAD_PROOF: 403,
  E_BAD_ESCROW: 403,
  E_NO_WARRANT: 403,
  E_CLIENT_AUTH: 403,
  E_CLIENT_CERT: 403,
  E_CARD_KEY_CONFLICT: 403,
  E_NO_ORDER: 404,
  E_BAD_ORDER: 403,
  E_RATE_LIMITED: 429,
  E_NO_TRANSACTION: 404,
  E_NOT_FOUND: 404,
  E_ORDER_TAKEN: 409,
  E_ALREADY_CONFIRMED: 409,
  E_ALREADY_ESCROWED: 409,
  E_NOT_CONFIRMED: 409,
  E_NOT_FAIR: 409,
  E_ABORTED: 409,
  E_ABORTING: 409,
  E_DEADLINE: 409,
  E_WARRANT_GONE: 409,
  E_RECORD_EXPIRED: 409,
  E_TTP_ROLES: 403,
  E_TTP_NOT_SIGNED: 403,
  E_TTP_UNTRUSTED: 403,
  E_TTP_DEPOSIT: 403,
  E_TTP_CONFLICT: 403,
  E_TOO_LARGE: 413,
  E_PLAIN_TEXT: 422,
  E_TTP_ANSWER: 502,
};
