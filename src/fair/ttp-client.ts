/**
 * The parties' HTTPS client of the TTP (TLS 1.3 only, the TTP authenticated against the CA).
 */
import { JsonHttpsClient, ServerError } from '../http/client.js';
import type { Exchange, TtpAnswer, TtpRequest } from './ttp.js';
import { decodeTtpAnswer, encodeTtpRequest, TTP_PATHS } from './ttp-messages.js';

/** What the parties use to reach the TTP: every answer, a refusal included, as a TtpAnswer. */
export class TtpClient {
  private readonly api: JsonHttpsClient;
  constructor(url: string, trustPem: string) {
    this.api = new JsonHttpsClient(url, trustPem);
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
