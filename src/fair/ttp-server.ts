/**
 * The TTP over HTTPS (TLS 1.3 only) and its store; its client is ./ttp-client.ts. The TTP's TLS key
 * and its escrow key are separate identities, as the server's TLS and receipt keys are (claim 5).
 */
import type { AddressInfo } from 'node:net';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { createJsonHttpsServer, HttpError, methodNotAllowed, readJson, type TrafficLimits } from '../http/server.js';
import { InputError, isErrorCode } from '../errors.js';
import { OID } from '../crypto/oids.js';
import { Ttp, type TtpRequest } from './ttp.js';
import { LogTtpStore } from './ttp-store.js';
import { decodeTtpRequest, encodeTtpAnswer, TTP_PATHS } from './ttp-messages.js';

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
  /** Timeouts and connection and rate limits, the same as the qtm server's (../http/server.ts). */
  readonly limits?: Partial<TrafficLimits>;
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
  const log = p.log ?? ((line) => process.stderr.write(JSON.stringify(line) + '\n'));
  // One TTP per store (its LOCK): a second one is refused here, before it listens.
  const store = await LogTtpStore.open(p.storeDir, { onWarning: (message) => log({ time: new Date().toISOString(), event: 'store', message }) });
  const ttp = new Ttp({ store, privateKey: p.identity.privateKey, publicKey: cert.publicKey, trustAnchors: p.trustAnchors });
  const kinds = Object.entries(TTP_PATHS).map(([kind, path]) => [path, kind as TtpRequest['kind']] as const);
  const server = createJsonHttpsServer({
    tls: p.tls,
    log,
    ...(p.limits ? { limits: p.limits } : {}),
    route: async (req) => {
      const path = new URL(req.url ?? '/', 'https://ttp').pathname;
      if (req.method === 'GET' && path === '/health') return { body: { ok: true, fingerprint: ttp.fingerprint.toString('hex'), certificate: cert.toString() } };
      const kind = kinds.find(([p]) => p === path)?.[1];
      if (req.method !== 'POST' || !kind) {
        const allowed = path === '/health' ? ['GET'] : kind ? ['POST'] : [];
        throw allowed.length ? methodNotAllowed(req.method ?? 'GET', path, allowed) : new HttpError('E_NOT_FOUND', `no route ${req.method} ${path}`);
      }
      const { exchange, request } = decodeTtpRequest(kind, await readJson(req, MAX_BODY));
      const answer = await ttp.handle(exchange, request);
      if (answer.outcome === 'refused') throw new HttpError(isErrorCode(answer.code) ? answer.code : 'E_REFUSED', answer.reason);
      return { body: encodeTtpAnswer(answer), log: { outcome: answer.outcome } };
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new InputError(`port ${p.port} on ${p.host} is in use`, 'choose another --port') : err));
      server.listen(p.port, p.host, () => resolve());
    });
  } catch (err) {
    await ttp.close();
    await store.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  return {
    url: `https://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    ttp,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await ttp.close();
      await store.close();
    },
  };
}
