/**
 * The TTP over HTTPS (TLS 1.3 only), its store, and a client for it. The TTP's TLS key and its
 * escrow key are separate identities, as the server's TLS and receipt keys are (claim 5).
 */
import type { AddressInfo } from 'node:net';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { createJsonHttpsServer, HttpError, readJson } from '../server/json-https.js';
import { QtmApi, ServerError } from '../client/api.js';
import { InputError } from '../errors.js';
import { OID } from '../crypto/oids.js';
import { Ttp, type Exchange, type TtpAnswer, type TtpRequest } from './ttp.js';
import { LowdbTtpStore } from './ttp-store.js';
import { decodeTtpAnswer, decodeTtpRequest, encodeTtpAnswer, encodeTtpRequest, TTP_PATHS } from './ttp-messages.js';

const MAX_BODY = 1024 * 1024;

export interface TtpParts {
  /** The escrow key: RSA-3072 or larger, certificate role ttp. */
  readonly identity: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly tls: { readonly privateKey: KeyObject; readonly certificates: readonly X509Certificate[] };
  readonly trustAnchors: readonly X509Certificate[];
  readonly storeDir: string;
  readonly host: string;
  readonly port: number;
  readonly log?: (line: Record<string, unknown>) => void;
}

export interface RunningTtp {
  readonly url: string;
  readonly ttp: Ttp;
  close(): Promise<void>;
}

export async function startTtp(p: TtpParts): Promise<RunningTtp> {
  const cert = p.identity.certificates[0]!;
  if (!(cert.keyUsage ?? []).includes(OID.ekuTrustedThirdParty)) throw new InputError('the TTP identity is not a trusted-third-party certificate', 'issue one with `qtm ca issue --role ttp`');
  if ((p.identity.privateKey.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) throw new InputError('the TTP key must be RSA-3072 or larger (a 2048-bit signature must fit under OAEP-SHA-256)');
  if (p.tls.privateKey.equals(p.identity.privateKey)) throw new InputError('the TTP\'s TLS key must not be its escrow key', 'issue a separate --role server identity for --tls');
  const store = await LowdbTtpStore.open(p.storeDir);
  const ttp = new Ttp({ store, privateKey: p.identity.privateKey, publicKey: cert.publicKey, trustAnchors: p.trustAnchors });
  const kinds = Object.entries(TTP_PATHS).map(([kind, path]) => [path, kind as TtpRequest['kind']] as const);
  const server = createJsonHttpsServer({
    tls: p.tls,
    log: p.log ?? ((line) => process.stderr.write(JSON.stringify(line) + '\n')),
    route: async (req) => {
      const path = new URL(req.url ?? '/', 'https://ttp').pathname;
      if (req.method === 'GET' && path === '/health') return { body: { ok: true, fingerprint: ttp.fingerprint.toString('hex'), certificate: cert.toString() } };
      const kind = kinds.find(([p]) => p === path)?.[1];
      if (req.method !== 'POST' || !kind) throw new HttpError(404, 'E_NOT_FOUND', `no route ${req.method} ${path}`);
      const { exchange, request } = decodeTtpRequest(kind, await readJson(req, MAX_BODY));
      const answer = await ttp.handle(exchange, request);
      if (answer.outcome === 'refused') throw new HttpError(403, answer.code, answer.reason);
      return { body: encodeTtpAnswer(answer), log: { outcome: answer.outcome } };
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new InputError(`port ${p.port} on ${p.host} is in use`, 'choose another --port') : err));
    server.listen(p.port, p.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `https://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    ttp,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await ttp.close();
    },
  };
}

/** What the parties use to reach the TTP: every answer, a refusal included, as a TtpAnswer. */
export class TtpClient {
  private readonly api: QtmApi;
  constructor(url: string, trustPem: string) {
    this.api = new QtmApi(url, trustPem);
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
