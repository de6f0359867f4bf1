/**
 * The trusted third party of the fair exchange (issue 6; docs/FAIR-EXCHANGE.md has the table and
 * the spin model it follows). One record per transaction, state none / aborted / resolved; every
 * request is one compare-and-set, serialised per transaction and durable before it is answered:
 * the first well-formed request wins, a repeated request gets the same answer, and a request
 * naming the same transaction with another pre-QTM package is refused.
 */
import { createHash, sign, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { fingerprint, keyFingerprint, verifyBytes } from '../crypto/keys.js';
import { decodeHeader, type PackageHeader } from '../protocol/qtm-package.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { validateChain } from '../verify/chain.js';
import { transactionLabel } from './label.js';
import { oaepDecrypt } from './oaep.js';
import type { TtpRecord, TtpStore } from './ttp-store.js';
import { extractSignature } from './verifiable-escrow.js';

const ABORT_DOMAIN = Buffer.from('qtm fair exchange abort v1\0');
const ABORT_REQUEST_DOMAIN = Buffer.from('qtm fair exchange abort request v1\0');

/** What both parties and the TTP agree on: the transaction, its deadline and who signs. */
export interface Exchange {
  /** The pre-QTM package (fields 1-7): party A is the server's key, party B the card's. */
  readonly header: Buffer;
  readonly deadline: number;
  readonly serverCertificates: readonly X509Certificate[];
  readonly cardCertificates: readonly X509Certificate[];
}

export type TtpAnswer =
  | { readonly outcome: 'x'; readonly x: Buffer }
  | { readonly outcome: 'y'; readonly y: Buffer }
  | { readonly outcome: 'aborted'; readonly token: Buffer }
  | { readonly outcome: 'refused'; readonly reason: string };

export type TtpRequest =
  /** Only the originator may abort: `proof` is its signature (receipt key) over abortRequestStatement(label). */
  | { readonly kind: 'abort'; readonly proof: Buffer }
  | { readonly kind: 'resolve-client'; readonly y: Buffer; readonly escrowX: Buffer }
  | { readonly kind: 'resolve-server'; readonly x: Buffer; readonly escrowY: Buffer };

export interface TtpOptions {
  readonly store: TtpStore;
  /** RSA-3072 or larger: decrypts the escrows and signs abort tokens. */
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** CAs the server's and the cards' certificates must chain to. */
  readonly trustAnchors: readonly X509Certificate[];
  readonly now?: () => Date;
}

interface Checked {
  readonly key: string;
  readonly header: PackageHeader;
  readonly headerHash: string;
  readonly label: Buffer;
  readonly serverKey: KeyObject;
  readonly cardKey: KeyObject;
}

export function abortRequestStatement(label: Uint8Array): Buffer {
  return Buffer.concat([ABORT_REQUEST_DOMAIN, label]);
}

export function abortStatement(label: Uint8Array): Buffer {
  return Buffer.concat([ABORT_DOMAIN, label]);
}

/** Anyone can check an abort token with the TTP's public key and the transaction's label. */
export function verifyAbortToken(ttpKey: KeyObject, label: Uint8Array, token: Uint8Array): boolean {
  try {
    return verify('sha256', abortStatement(label), ttpKey, token);
  } catch {
    return false;
  }
}

export class Ttp {
  private readonly queues = new Map<string, Promise<unknown>>();
  readonly fingerprint: Buffer;

  constructor(private readonly o: TtpOptions) {
    this.fingerprint = Buffer.from(keyFingerprint(o.publicKey), 'hex');
  }

  /** The label both escrows must be made under, for this TTP. */
  label(exchange: Pick<Exchange, 'header' | 'deadline'>): Buffer {
    return transactionLabel({ header: exchange.header, ttpFingerprint: this.fingerprint, deadline: exchange.deadline });
  }

  private check(exchange: Exchange): Checked | string {
    let header: PackageHeader;
    try {
      header = decodeHeader(exchange.header);
    } catch (err) {
      return `the pre-QTM package does not decode: ${(err as Error).message}`;
    }
    const profile = profileByPackageVersion(header.version)!;
    if (profile.legacy) return 'the fair exchange needs profile v2';
    const server = exchange.serverCertificates[0];
    const card = exchange.cardCertificates[0];
    if (!server || !card) return 'the server\'s and the card\'s certificates are needed';
    if (!fingerprint(server.publicKey, profile).equals(header.fingerprintA)) return 'party A of the package is not the server certificate\'s key';
    if (!fingerprint(card.publicKey, profile).equals(header.fingerprintB)) return 'party B of the package is not the card certificate\'s key';
    const now = this.o.now?.() ?? new Date();
    for (const [what, chain] of [['server', exchange.serverCertificates], ['card', exchange.cardCertificates]] as const) {
      const r = validateChain(chain[0]!, chain.slice(1), this.o.trustAnchors, now);
      if (!r.ok) return `the ${what} certificate is not trusted: ${r.reason}`;
    }
    return {
      key: `${Buffer.from(header.serverId).toString('hex')}/${header.transactionId}`,
      header,
      headerHash: createHash('sha256').update(exchange.header).digest('hex'),
      label: this.label(exchange),
      serverKey: server.publicKey,
      cardKey: card.publicKey,
    };
  }

  /** One request: validated, then decided and stored atomically for its transaction. */
  async handle(exchange: Exchange, request: TtpRequest): Promise<TtpAnswer> {
    const c = this.check(exchange);
    if (typeof c === 'string') return { outcome: 'refused', reason: c };
    const profile = profileByPackageVersion(c.header.version)!;
    if (request.kind === 'abort' && !verifyBytes(profile, c.serverKey, abortRequestStatement(c.label), request.proof)) {
      return { outcome: 'refused', reason: 'only the originator (the server) may abort: the abort request is not signed by its key' };
    }
    if (request.kind === 'resolve-client' && !verifyBytes(profile, c.cardKey, exchange.header, request.y)) {
      return { outcome: 'refused', reason: 'the deposited Y is not the card\'s signature on this transaction' };
    }
    if (request.kind === 'resolve-server' && !verifyBytes(profile, c.serverKey, exchange.header, request.x)) {
      return { outcome: 'refused', reason: 'the deposited X is not the server\'s signature on this transaction' };
    }
    const previous = this.queues.get(c.key) ?? Promise.resolve();
    const turn = previous.then(() => this.decide(c, exchange, request));
    const settled = turn.catch(() => undefined);
    this.queues.set(c.key, settled);
    void settled.then(() => {
      if (this.queues.get(c.key) === settled) this.queues.delete(c.key);
    });
    return turn;
  }

  private token(c: Checked): Buffer {
    return sign('sha256', abortStatement(c.label), this.o.privateKey);
  }

  private async decide(c: Checked, exchange: Exchange, request: TtpRequest): Promise<TtpAnswer> {
    const record = this.o.store.get(c.key);
    if (record && record.headerHash !== c.headerHash) {
      return { outcome: 'refused', reason: `transaction ${c.header.transactionId} is known to this TTP with another first message` };
    }
    if (record && record.label !== c.label.toString('hex')) {
      return { outcome: 'refused', reason: `transaction ${c.header.transactionId} is known to this TTP with another deadline` };
    }
    const at = (this.o.now?.() ?? new Date()).toISOString();
    const save = (r: Omit<TtpRecord, 'key' | 'headerHash' | 'label' | 'at'>) =>
      this.o.store.put({ key: c.key, headerHash: c.headerHash, label: c.label.toString('hex'), at, ...r });
    const state = record?.state ?? 'none';

    if (state === 'aborted') return { outcome: 'aborted', token: this.token(c) };
    if (state === 'resolved') {
      // Whoever comes later gets the other party's signature: the exchange already happened here.
      return request.kind === 'resolve-client'
        ? { outcome: 'x', x: Buffer.from(record!.x!, 'base64') }
        : { outcome: 'y', y: Buffer.from(record!.y!, 'base64') };
    }
    switch (request.kind) {
      case 'abort':
        await save({ state: 'aborted' });
        return { outcome: 'aborted', token: this.token(c) };
      case 'resolve-client': {
        const x = oaepDecrypt(this.o.privateKey, request.escrowX, c.label);
        const profile = profileByPackageVersion(c.header.version)!;
        if (!x || !verifyBytes(profile, c.serverKey, exchange.header, x)) {
          // A bogus escrow of X: the server cheated. Abort for both, for good.
          await save({ state: 'aborted' });
          return { outcome: 'aborted', token: this.token(c) };
        }
        await save({ state: 'resolved', x: x.toString('base64'), y: request.y.toString('base64') });
        return { outcome: 'x', x };
      }
      case 'resolve-server': {
        const y = extractSignature(request.escrowY, { cardKey: c.cardKey, ttpKey: this.o.publicKey, ttpPrivateKey: this.o.privateKey, label: c.label, message: exchange.header });
        if (!y) return { outcome: 'refused', reason: 'Y cannot be extracted from this escrow; the state is unchanged' };
        await save({ state: 'resolved', x: request.x.toString('base64'), y: y.toString('base64') });
        return { outcome: 'y', y };
      }
    }
  }
}
