/**
 * The qtm server's API as the client reaches it: JSON over HTTPS (../http/client.ts) on one
 * connection per transaction, at the paths of ../protocol/routes.ts, with a 429 waited out for
 * the requests that may be sent again (RETRY_RULES).
 */
import { JsonHttpsClient, type ClientOptions, type RetryRule } from '../http/client.js';
import { matchRoute, type Route } from '../protocol/routes.js';

export { ServerError, RateLimitedError, ServerUnreachableError, isServerAuthenticationFailure, DEFAULT_RETRY, type ClientOptions, type RateLimitWait } from '../http/client.js';

/**
 * Which requests the client sends again after a 429, and on which connection. A 429 from this
 * server comes before the request is routed (../http/server.ts, ../server/http-server.ts), so it
 * did nothing; but a client cannot know that of every 429 (a proxy, another server), so only a
 * request whose repetition is harmless is repeated. Every step of the service is idempotent by
 * design (../server/qtm-service.ts); the reason for each:
 * - health, order, pending, transaction: GETs, they change nothing.
 * - compose: the server keeps no concept orders (docs/FORMATS.md): a repeat only makes another
 *   order ID for the same items, and the client uses the one answer it gets.
 * - auth-challenge: a new nonce replaces the connection's last one.
 * - auth-response: one nonce, one try: had the first been processed, the repeat is refused
 *   (E_NONCE), never a second login; the nonce lives on this connection.
 * - prepare: one transaction per order; a repeat by the same card gets the same transaction.
 * - escrow: the same escrow of Y gets the same X; another is E_ALREADY_ESCROWED.
 * - confirm: the same first message gets the stored second message; another is E_ALREADY_CONFIRMED.
 * - redeliver: the same challenge and slot get the same envelope.
 * - ack: the same storage proof is acknowledged once, and answered the same again.
 * The card's login lives on its connection: a request that needs it is repeated only there.
 */
export const RETRY_RULES: Record<Route['name'], RetryRule> = {
  health: 'any-connection',
  compose: 'any-connection',
  'auth-challenge': 'any-connection',
  order: 'any-connection',
  'auth-response': 'same-connection',
  pending: 'same-connection',
  transaction: 'same-connection',
  prepare: 'same-connection',
  escrow: 'same-connection',
  confirm: 'same-connection',
  redeliver: 'same-connection',
  ack: 'same-connection',
};

/** The rule for a request: RETRY_RULES by its route; a path the API does not have is never repeated. */
export function retryRule(method: string, path: string): RetryRule {
  const route = matchRoute(method, new URL(path, 'https://qtm').pathname);
  return route ? RETRY_RULES[route.name] : 'never';
}

export class QtmApi extends JsonHttpsClient {
  constructor(baseUrl: string, trustPem: string, options: ClientOptions = {}) {
    super(baseUrl, trustPem, { ...options, retry: { rule: retryRule, ...options.retry } });
  }
}
