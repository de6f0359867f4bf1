/**
 * The trusted third party of the fair exchange (issues 6, 13, 17; docs/FAIR-EXCHANGE.md has the
 * table and the spin model it follows), after Asokan-Shoup-Waidner: the server is the originator
 * (its promise: the escrow of X, signed with its receipt key over the label), the card's client
 * the responder (its promise: the verifiable escrow of Y). Only the server aborts; the client only
 * resolves.
 *
 * One record per exchange, keyed by its label L (which binds the pre-QTM package, the TTP and the
 * deadline), state none / aborted / resolved. Before any private-key work every request passes,
 * in this order: the roles and fields (field 2 = the server certificate's key, with
 * receipt-signing usage; field 6 = field 2; field 7 = the card certificate's key, with
 * card-signing usage), then exactly one signature check that the server authenticated this L
 * (its abort request, its resolve request, or its signature on the escrow of X the client
 * deposits), then both chains, then the deposits. So no record is ever created by a request the
 * server did not sign, and a request it did not sign costs one signature verification. Every
 * decision is one compare-and-set, serialised per exchange and durable before it is answered.
 * Decryption runs in a worker thread (ttp-worker.ts).
 */
import { createHash, sign, verify, type KeyObject, type X509Certificate } from 'node:crypto';
import { fingerprint, keyFingerprint, verifyBytes } from '../crypto/keys.js';
import { OID } from '../crypto/oids.js';
import { decodeHeader, type PackageHeader } from '../protocol/qtm-package.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { validateChain } from '../verify/chain.js';
import { transactionLabel } from './label.js';
import type { TtpRecord, TtpStore } from './ttp-store.js';
import { TtpWorker } from './ttp-worker.js';
import { escrowProblems } from './verifiable-escrow.js';

const ABORT_DOMAIN = Buffer.from('qtm fair exchange abort v1\0');
const ABORT_REQUEST_DOMAIN = Buffer.from('qtm fair exchange abort request v1\0');
const ESCROW_X_DOMAIN = Buffer.from('qtm fair exchange escrow of X v1\0');
const RESOLVE_REQUEST_DOMAIN = Buffer.from('qtm fair exchange resolve request v1\0');

/** What both parties and the TTP agree on: the transaction, its deadline and who signs. */
export interface Exchange {
  /** The pre-QTM package (fields 1-7): party A is the server's key, party B the card's. */
  readonly header: Buffer;
  readonly deadline: number;
  readonly serverCertificates: readonly X509Certificate[];
  readonly cardCertificates: readonly X509Certificate[];
}

/** Why the TTP refused a request; the state is unchanged by every refusal. */
export type TtpRefusal =
  | 'E_TTP_ROLES' // a field or a certificate's usage is not what its role needs
  | 'E_TTP_NOT_SIGNED' // the server did not authenticate this request's label
  | 'E_TTP_UNTRUSTED' // a certificate chain does not reach the TTP's anchors
  | 'E_TTP_DEPOSIT' // the deposited X or Y, or the escrow of Y, does not check
  | 'E_TTP_CONFLICT'; // the label is known with another package (never, for an honest SHA-256)

export type TtpAnswer =
  | { readonly outcome: 'x'; readonly x: Buffer }
  | { readonly outcome: 'y'; readonly y: Buffer }
  | { readonly outcome: 'aborted'; readonly token: Buffer }
  | { readonly outcome: 'refused'; readonly code: TtpRefusal | string; readonly reason: string };

export type TtpRequest =
  /** Only the originator may abort: `proof` is its signature (receipt key) over abortRequestStatement(label). */
  | { readonly kind: 'abort'; readonly proof: Buffer }
  /** The client deposits Y and the server's escrow of X with the server's signature over escrowOfXStatement(label, escrowX). */
  | { readonly kind: 'resolve-client'; readonly y: Buffer; readonly escrowX: Buffer; readonly escrowXSignature: Buffer }
  /** The server deposits X and the client's escrow of Y; `proof` is its signature over resolveRequestStatement(label, escrowY). */
  | { readonly kind: 'resolve-server'; readonly x: Buffer; readonly escrowY: Buffer; readonly proof: Buffer };

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

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** What the server signs with its receipt key when it hands out its escrow of X (block 303). */
export function escrowOfXStatement(label: Uint8Array, escrowX: Uint8Array): Buffer {
  return Buffer.concat([ESCROW_X_DOMAIN, label, sha256(escrowX)]);
}

/** What the server signs to resolve: only it can make this fresh, unlike X, which the client holds. */
export function resolveRequestStatement(label: Uint8Array, escrowY: Uint8Array): Buffer {
  return Buffer.concat([RESOLVE_REQUEST_DOMAIN, label, sha256(escrowY)]);
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
  private readonly worker: TtpWorker;
  readonly fingerprint: Buffer;

  constructor(private readonly o: TtpOptions) {
    this.fingerprint = Buffer.from(keyFingerprint(o.publicKey), 'hex');
    this.worker = new TtpWorker(o.privateKey);
  }

  /** The label both escrows must be made under, for this TTP. */
  label(exchange: Pick<Exchange, 'header' | 'deadline'>): Buffer {
    return transactionLabel({ header: exchange.header, ttpFingerprint: this.fingerprint, deadline: exchange.deadline });
  }

  /** The roles and fields of an exchange: no signature is checked here. */
  private check(exchange: Exchange): Checked | TtpAnswer {
    const refuse = (reason: string): TtpAnswer => ({ outcome: 'refused', code: 'E_TTP_ROLES', reason });
    let header: PackageHeader;
    try {
      header = decodeHeader(exchange.header);
    } catch (err) {
      return refuse(`the pre-QTM package does not decode: ${(err as Error).message}`);
    }
    const profile = profileByPackageVersion(header.version)!;
    if (profile.legacy) return refuse('the fair exchange needs profile v2');
    const server = exchange.serverCertificates[0];
    const card = exchange.cardCertificates[0];
    if (!server || !card) return refuse('the server\'s and the card\'s certificates are needed');
    if (!(server.keyUsage ?? []).includes(OID.ekuReceiptSigning)) return refuse('the server certificate is not a receipt-signing certificate');
    if (!(card.keyUsage ?? []).includes(OID.ekuCardSigning)) return refuse('the card certificate is not a card-signing certificate');
    if (!fingerprint(server.publicKey, profile).equals(header.serverId)) return refuse('the server ID (field 2) is not the server certificate\'s key');
    if (!Buffer.from(header.fingerprintA).equals(header.serverId)) return refuse('party A (field 6) is not the server (field 2): the fair exchange is offered for the server\'s own signature');
    if (!fingerprint(card.publicKey, profile).equals(header.fingerprintB)) return refuse('party B (field 7) is not the card certificate\'s key');
    const label = this.label(exchange);
    return {
      key: label.toString('hex'),
      header,
      headerHash: createHash('sha256').update(exchange.header).digest('hex'),
      label,
      serverKey: server.publicKey,
      cardKey: card.publicKey,
    };
  }

  /** The one signature check before anything else: the server authenticated this request's label. */
  private serverSigned(c: Checked, request: TtpRequest): TtpAnswer | undefined {
    const profile = profileByPackageVersion(c.header.version)!;
    const [statement, signature, what] = request.kind === 'abort'
      ? [abortRequestStatement(c.label), request.proof, 'only the originator (the server) may abort: the abort request is not signed by its key']
      : request.kind === 'resolve-server'
        ? [resolveRequestStatement(c.label, request.escrowY), request.proof, 'only the server may resolve as the server: the resolve request is not signed by its receipt key']
        : [escrowOfXStatement(c.label, request.escrowX), request.escrowXSignature, 'the escrow of X is not signed by the server for this exchange: the server never made it'];
    return verifyBytes(profile, c.serverKey, statement, signature) ? undefined : { outcome: 'refused', code: 'E_TTP_NOT_SIGNED', reason: what };
  }

  /** One request: validated, then decided and stored atomically for its exchange. */
  async handle(exchange: Exchange, request: TtpRequest): Promise<TtpAnswer> {
    const c = this.check(exchange);
    if ('outcome' in c) return c;
    const unsigned = this.serverSigned(c, request);
    if (unsigned) return unsigned;
    const now = this.o.now?.() ?? new Date();
    for (const [what, chain] of [['server', exchange.serverCertificates], ['card', exchange.cardCertificates]] as const) {
      const r = validateChain(chain[0]!, chain.slice(1), this.o.trustAnchors, now);
      if (!r.ok) return { outcome: 'refused', code: 'E_TTP_UNTRUSTED', reason: `the ${what} certificate is not trusted: ${r.reason}` };
    }
    const profile = profileByPackageVersion(c.header.version)!;
    if (request.kind === 'resolve-client' && !verifyBytes(profile, c.cardKey, exchange.header, request.y)) {
      return { outcome: 'refused', code: 'E_TTP_DEPOSIT', reason: 'the deposited Y is not the card\'s signature on this transaction' };
    }
    if (request.kind === 'resolve-server' && !verifyBytes(profile, c.serverKey, exchange.header, request.x)) {
      return { outcome: 'refused', code: 'E_TTP_DEPOSIT', reason: 'the deposited X is not the server\'s signature on this transaction' };
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

  /** Stops the decryption worker. */
  close(): Promise<void> {
    return this.worker.close();
  }

  /** The abort token, signed once and kept with the record (a repeated request costs no signature). */
  private token(c: Checked, record?: TtpRecord): Buffer {
    return record?.token ? Buffer.from(record.token, 'base64') : sign('sha256', abortStatement(c.label), this.o.privateKey);
  }

  /**
   * The answer a decided record gives: whoever comes after the decision gets the same outcome.
   * Y is never released after an abort: an aborted record keeps no Y.
   */
  private answerFrom(c: Checked, record: TtpRecord, request: TtpRequest): TtpAnswer {
    if (record.headerHash !== c.headerHash) {
      return { outcome: 'refused', code: 'E_TTP_CONFLICT', reason: `this label is known to this TTP with another first message` };
    }
    if (record.state === 'aborted') return { outcome: 'aborted', token: this.token(c, record) };
    // Resolved: the exchange already happened here; each party gets the other's signature.
    return request.kind === 'resolve-client'
      ? { outcome: 'x', x: Buffer.from(record.x!, 'base64') }
      : { outcome: 'y', y: Buffer.from(record.y!, 'base64') };
  }

  /**
   * One compare-and-set: read the record, decide, store. Two guards make it atomic: handle()
   * runs the decisions of one exchange one after another (so a second request never repeats the
   * decryption), and the store's put keeps the first decision for a label, answering a later one
   * with it (the guard that also holds across processes, for a shared store).
   */
  private async decide(c: Checked, exchange: Exchange, request: TtpRequest): Promise<TtpAnswer> {
    const record = await this.o.store.get(c.key);
    if (record) return this.answerFrom(c, record, request);

    const at = (this.o.now?.() ?? new Date()).toISOString();
    /** Stores our decision and answers it, or answers the decision stored first. */
    const decided = async (r: Omit<TtpRecord, 'key' | 'headerHash' | 'label' | 'at'>, ours: TtpAnswer): Promise<TtpAnswer> => {
      const mine: TtpRecord = { key: c.key, headerHash: c.headerHash, label: c.label.toString('hex'), at, ...r };
      const stored = await this.o.store.put(mine);
      return stored === mine ? ours : this.answerFrom(c, stored, request);
    };
    switch (request.kind) {
      case 'abort': {
        const token = this.token(c);
        return decided({ state: 'aborted', token: token.toString('base64') }, { outcome: 'aborted', token });
      }
      case 'resolve-client': {
        const x = await this.worker.decrypt(request.escrowX, c.label);
        const profile = profileByPackageVersion(c.header.version)!;
        if (!x || !verifyBytes(profile, c.serverKey, exchange.header, x)) {
          // A bogus escrow of X that the server signed: the server cheated. Abort for both, for good; Y is dropped.
          const token = this.token(c);
          return decided({ state: 'aborted', token: token.toString('base64') }, { outcome: 'aborted', token });
        }
        return decided({ state: 'resolved', x: x.toString('base64'), y: request.y.toString('base64') }, { outcome: 'x', x });
      }
      case 'resolve-server': {
        // The public check first (no private key); only an escrow that passes it is opened.
        const problems = escrowProblems(request.escrowY, { cardKey: c.cardKey, ttpKey: this.o.publicKey, label: c.label, message: exchange.header });
        const y = problems.length ? undefined : await this.worker.extract(request.escrowY, { cardKey: c.cardKey, ttpKey: this.o.publicKey, label: c.label, message: exchange.header });
        if (!y) return { outcome: 'refused', code: 'E_TTP_DEPOSIT', reason: `Y cannot be extracted from this escrow${problems.length ? ` (${problems[0]})` : ''}; the state is unchanged` };
        return decided({ state: 'resolved', x: request.x.toString('base64'), y: y.toString('base64') }, { outcome: 'y', y });
      }
    }
  }
}
