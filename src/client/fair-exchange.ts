/**
 * The client's side of the fair exchange (claims 12-14, patent figure 3 blocks 304-311): check
 * the server's offer, send a verifiable escrow of the card's signature Y, and get X from the
 * server or, when it does not come or is wrong, from the TTP. Y itself goes to the server only
 * afterwards, in the first message, so the client never gives Y before it holds a valid X.
 */
import { PATHS } from '../protocol/routes.js';
import { X509Certificate } from 'node:crypto';
import { fingerprint, keyFingerprint, verifyBytes } from '../crypto/keys.js';
import { OID } from '../crypto/oids.js';
import * as M from '../protocol/messages.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { decodeHeader } from '../protocol/qtm-package.js';
import { transactionLabel } from '../fair/label.js';
import { makeVerifiableEscrow } from '../fair/verifiable-escrow.js';
import { escrowOfXStatement, verifyAbortToken, type Exchange, type TtpAnswer, type TtpRequest } from '../fair/ttp.js';
import { validateChain } from '../verify/chain.js';
import { QtmError, RefusedError } from '../errors.js';
import { ServerError, type QtmApi } from './api.js';

export interface FairOffer {
  readonly ttpUrl: string;
  readonly ttpCertificates: X509Certificate[];
  readonly deadline: number;
  readonly escrowX: Buffer;
  /** The server's receipt-key signature over the label and SHA-256 of escrowX, checked. */
  readonly escrowXSignature: Buffer;
  readonly label: Buffer;
}

export interface TtpLike {
  request(exchange: Exchange, request: TtpRequest): Promise<TtpAnswer>;
  close(): void;
}

/** The exchange ended at the TTP without signatures: neither side holds the other's. */
export class FairAbortedError extends RefusedError {
  constructor(readonly token: Buffer | undefined, detail: string) {
    super(`the fair exchange was aborted at the TTP: ${detail}; neither side holds the other's signature`);
  }
}

/** Block 304: the offer must name a TTP the client trusts, with a key the escrow can use. */
export function checkFairOffer(prepared: M.PreparedTransaction, trustAnchors: readonly X509Certificate[], now = new Date()): FairOffer {
  if (!prepared.escrowX || !prepared.ttpUrl || !prepared.ttpCertificates || prepared.deadline === undefined) {
    throw new RefusedError('the server did not offer a fair exchange (no TTP or escrow of X in its reply)');
  }
  const certs = prepared.ttpCertificates.map((p) => new X509Certificate(p));
  const chain = validateChain(certs[0]!, certs.slice(1), trustAnchors, now);
  if (!chain.ok) throw new RefusedError(`the server's TTP is not trusted: ${chain.reason}`);
  if (!(certs[0]!.keyUsage ?? []).includes(OID.ekuTrustedThirdParty)) throw new RefusedError('the server\'s TTP certificate is not a trusted-third-party certificate');
  if (prepared.deadline * 1000 <= now.getTime()) throw new RefusedError('the fair exchange\'s deadline has already passed');
  const ttpFingerprint = Buffer.from(keyFingerprint(certs[0]!.publicKey), 'hex');
  const label = transactionLabel({ header: prepared.header, ttpFingerprint, deadline: prepared.deadline });
  // Issue 17: the server's promise is its signed escrow of X. Before the card signs, check that the
  // server ID (field 2) and party A (field 6) are the server certificate's receipt-signing key, and
  // that this key signed this escrow for this label: otherwise the TTP could not hold the server to it.
  const header = decodeHeader(prepared.header);
  const profile = profileByPackageVersion(header.version)!;
  const server = new X509Certificate(prepared.serverCertificates[0]!);
  if (!(server.keyUsage ?? []).includes(OID.ekuReceiptSigning)) throw new RefusedError('the server certificate is not a receipt-signing certificate');
  if (!fingerprint(server.publicKey, profile).equals(header.serverId)) throw new RefusedError('the record\'s server ID (field 2) is not the server certificate\'s key');
  if (!Buffer.from(header.fingerprintA).equals(header.serverId)) throw new RefusedError('party A (field 6) is not the server: the fair exchange is for the server\'s own signature');
  if (!prepared.escrowXSignature || !verifyBytes(profile, server.publicKey, escrowOfXStatement(label, prepared.escrowX), prepared.escrowXSignature)) {
    throw new RefusedError('the server\'s escrow of X is not signed by its receipt key for this exchange: the card does not sign');
  }
  return { ttpUrl: prepared.ttpUrl, ttpCertificates: certs, deadline: prepared.deadline, escrowX: prepared.escrowX, escrowXSignature: prepared.escrowXSignature, label };
}

export interface SignatureExchange {
  readonly api: QtmApi;
  readonly prepared: M.PreparedTransaction;
  readonly offer: FairOffer;
  readonly cardCertificate: X509Certificate;
  /** The card's signature on the record. */
  readonly y: Buffer;
  readonly ttp: TtpLike;
}

/** Blocks 305-310: X from the server for a verifiable escrow of Y, or from the TTP for Y itself. */
export async function exchangeSignatures(e: SignatureExchange): Promise<{ x: Buffer; via: 'server' | 'ttp' }> {
  const header = e.prepared.header;
  const profile = profileByPackageVersion(decodeHeader(header).version)!;
  const serverKey = new X509Certificate(e.prepared.partyACertificates[0]!).publicKey;
  const escrowY = makeVerifiableEscrow({ cardKey: e.cardCertificate.publicKey, ttpKey: e.offer.ttpCertificates[0]!.publicKey, label: e.offer.label, message: header, signature: e.y });
  let x: Buffer | undefined;
  try {
    x = (await e.api.call('POST', PATHS.escrow(e.prepared.transactionId), M.encodeEscrowMessage({ escrowY }), M.decodeEscrowReply)).x;
  } catch (err) {
    // The server refused our escrow and aborted: there is nothing to resolve.
    if (err instanceof ServerError && err.serverCode === 'E_BAD_ESCROW') throw err;
    if (!(err instanceof QtmError)) throw err;
    // Otherwise (lost, server gone): resolve below.
  }
  if (x && verifyBytes(profile, serverKey, header, x)) return { x, via: 'server' };
  // Block 310: X is wrong or missing. Deposit Y at the TTP, which decrypts the escrow of X.
  const exchange: Exchange = {
    header, deadline: e.offer.deadline,
    serverCertificates: e.prepared.serverCertificates.map((p) => new X509Certificate(p)),
    cardCertificates: [e.cardCertificate],
  };
  const answer = await e.ttp.request(exchange, { kind: 'resolve-client', y: e.y, escrowX: e.offer.escrowX, escrowXSignature: e.offer.escrowXSignature });
  // Every TTP answer is checked and applied: a valid X ends the exchange for the client; a valid
  // abort token ends it without signatures (the client then never sends Y); anything else is no answer.
  if (answer.outcome === 'x' && verifyBytes(profile, serverKey, header, answer.x)) return { x: answer.x, via: 'ttp' };
  if (answer.outcome === 'aborted' && verifyAbortToken(e.offer.ttpCertificates[0]!.publicKey, e.offer.label, answer.token)) {
    throw new FairAbortedError(answer.token, x ? 'the server sent a wrong X and its escrow of X was bogus' : 'X never came and the server\'s escrow of X was bogus or the server had aborted');
  }
  if (answer.outcome === 'aborted' || answer.outcome === 'x') throw new RefusedError(`the TTP's answer does not verify (${answer.outcome === 'x' ? 'X is not the server\'s signature' : 'the abort token is not the TTP\'s'}): the exchange is not settled; resolve again`);
  throw new RefusedError(`the TTP did not resolve the exchange: ${answer.outcome === 'refused' ? answer.reason : answer.outcome}`);
}
