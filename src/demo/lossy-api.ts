/**
 * A client connection that loses one fair-exchange message, for `qtm demo --fair --lose` and the
 * conformance tests, and an observer of what the client ends up holding. The four messages of
 * the exchange, in order (Asokan-Shoup-Waidner):
 *   first-message  server -> client  the pre-QTM package with the escrow of X (POST /transactions reply)
 *   escrow-y       client -> server  the verifiable escrow of Y (POST /transactions/N/escrow)
 *   x              server -> client  X (the escrow request's reply)
 *   y              client -> server  Y, in the first message of the secure write (POST /transactions/N/confirm)
 * A lost request never reaches the server; a lost reply was processed by the server and never
 * reaches the client. Either way the client sees a broken connection.
 */
import { matchRoute, type Route } from '../protocol/routes.js';
import { X509Certificate } from 'node:crypto';
import { verifyBytes } from '../crypto/keys.js';
import { QtmApi, ServerUnreachableError } from '../client/api.js';
import type { TtpLike } from '../client/fair-exchange.js';
import * as M from '../protocol/messages.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { decodeHeader, decodePackage } from '../protocol/qtm-package.js';

export const LOST_MESSAGES = ['first-message', 'escrow-y', 'x', 'y'] as const;
export type LostMessage = (typeof LOST_MESSAGES)[number];
/** The four, and the second message of the secure write (the package and envelope), which the tests lose too. */
export type LossPoint = LostMessage | 'second-message';

const NAMES: Record<LossPoint, string> = { 'second-message': 'second message (the signed package)',  'first-message': 'server\'s first message (the escrow of X)', 'escrow-y': 'escrow of Y', x: 'X', y: 'first message (carrying Y)' };

/** Where each message travels: the route (../protocol/routes.ts) and whether it is the request or the reply. */
const FAIR_PATHS: { message: LossPoint; route: Route['name']; direction: 'request' | 'reply' }[] = [
  { message: 'first-message', route: 'prepare', direction: 'reply' },
  { message: 'escrow-y', route: 'escrow', direction: 'request' },
  { message: 'x', route: 'escrow', direction: 'reply' },
  { message: 'y', route: 'confirm', direction: 'request' },
  { message: 'second-message', route: 'confirm', direction: 'reply' },
];

/** Every X that reached the client (from the server or the TTP), checked against the transaction. */
export class ClientHoldings {
  private prepared: M.PreparedTransaction | undefined;
  private readonly candidates: Buffer[] = [];
  /** Abort tokens the TTP gave the client. */
  readonly tokens: Buffer[] = [];

  sawPrepared(p: M.PreparedTransaction): void {
    this.prepared = p;
  }

  sawX(x: Buffer): void {
    this.candidates.push(x);
  }

  /** True when the client holds a valid X for the transaction it prepared. */
  get x(): boolean {
    const p = this.prepared;
    if (!p) return false;
    const profile = profileByPackageVersion(decodeHeader(p.header).version)!;
    const key = new X509Certificate(p.partyACertificates[0]!).publicKey;
    return this.candidates.some((x) => verifyBytes(profile, key, p.header, x));
  }

  get transactionId(): number | undefined {
    return this.prepared?.transactionId;
  }

  /** Wraps the client's TTP connection so that X from the TTP counts too. */
  watchTtp(ttp: TtpLike): TtpLike {
    return {
      request: async (exchange, request) => {
        const answer = await ttp.request(exchange, request);
        if (answer.outcome === 'x') this.sawX(answer.x);
        if (answer.outcome === 'aborted') this.tokens.push(answer.token);
        return answer;
      },
      close: () => ttp.close(),
    };
  }
}

export class LossyApi extends QtmApi {
  /** Set once the chosen message was dropped. */
  lost = false;

  constructor(url: string, trustPem: string, private readonly lose: LossPoint | undefined, readonly holdings = new ClientHoldings()) {
    super(url, trustPem);
  }

  private drops(method: string, path: string, direction: 'request' | 'reply'): LossPoint | undefined {
    if (!this.lose || this.lost) return undefined;
    const route = matchRoute(method, path)?.name;
    const p = FAIR_PATHS.find((f) => f.message === this.lose && f.route === route && f.direction === direction);
    return p?.message;
  }

  override async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, decode?: (j: unknown) => T): Promise<T> {
    const before = this.drops(method, path, 'request');
    if (before) {
      this.lost = true;
      throw new ServerUnreachableError(`the connection broke: the ${NAMES[before]} was lost on its way to the server`);
    }
    const reply = await super.call(method, path, body, decode);
    const route = matchRoute(method, path)?.name;
    if (route === 'prepare') this.holdings.sawPrepared(reply as M.PreparedTransaction);
    const after = this.drops(method, path, 'reply');
    if (after) {
      this.lost = true;
      throw new ServerUnreachableError(`the connection broke: the ${NAMES[after]} was lost on its way to the client`);
    }
    if (route === 'escrow') this.holdings.sawX((reply as M.EscrowReply).x);
    if (route === 'confirm' || route === 'redeliver') this.holdings.sawX(Buffer.from(decodePackage((reply as M.SecondMessage).package).signatureA));
    return reply;
  }
}
