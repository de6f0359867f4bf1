/**
 * The parties' HTTPS client of the TTP (TLS 1.3 only, the TTP authenticated against the CA).
 */
import { JsonHttpsClient, ServerError, type ClientOptions, type RetryRule } from '../http/client.js';
import type { Exchange, TtpAnswer, TtpRequest } from './ttp.js';
import { decodeTtpAnswer, encodeTtpRequest, TTP_PATHS } from './ttp-messages.js';

/**
 * A 429 from the TTP (its HTTP layer's rate limit, ../http/server.ts) is waited out as its
 * Retry-After says, within the client's bounds (../http/client.ts, DEFAULT_RETRY), for every TTP
 * request and on any connection: the TTP's answer is its one decision for the exchange (ttp.ts:
 * a compare-and-set, and whoever comes after it gets the same outcome), and each request carries
 * its own signatures (no login lives on a connection), so a repeat can change nothing the first
 * could not. A party near its deadline would rather wait a few seconds than give up.
 */
export const TTP_RETRY_RULE = (): RetryRule => 'any-connection';

/** What the parties use to reach the TTP: every answer, a refusal included, as a TtpAnswer. */
export class TtpClient {
  private readonly api: JsonHttpsClient;
  constructor(url: string, trustPem: string, options: ClientOptions = {}) {
    this.api = new JsonHttpsClient(url, trustPem, { ...options, retry: { rule: TTP_RETRY_RULE, ...options.retry } });
  }

  async request(exchange: Exchange, request: TtpRequest): Promise<TtpAnswer> {
    try {
      return await this.api.call('POST', TTP_PATHS[request.kind], encodeTtpRequest(exchange, request), decodeTtpAnswer);
    } catch (err) {
      // Every refusal of the TTP is a 403 with its named code (E_TTP_*); the state is unchanged.
      if (err instanceof ServerError && err.status === 403) return { outcome: 'refused', code: err.serverCode, reason: err.message };
      throw err;
    }
  }

  close(): void {
    this.api.close();
  }
}
