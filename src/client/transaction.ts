/**
 * The client side of a transaction (claim 1 and figure 3): fetch the concept order, show it,
 * accept, PIN, authenticate with the card, sign the pre-QTM package on the card, send the first
 * message, check the second (server signature, content ID, chains), archive the proof, write
 * the receipt to the card, read it back, and send the third message. Each step is named, timed
 * and reported; an error says which step failed.
 */
import { PATHS } from '../protocol/routes.js';
import { X509Certificate } from 'node:crypto';
import { CardClient } from '../card/client.js';
import { chooseSlot, readSlots, type SlotView } from '../card/receipts.js';
import { fingerprint, keyFingerprint } from '../crypto/keys.js';
import { OID } from '../crypto/oids.js';
import { encodeBundle, type ProofBundle } from '../bundle/proof-bundle.js';
import { cardRecordFor } from '../proof/make-proof.js';
import * as M from '../protocol/messages.js';
import { checkUnambiguousText } from '../protocol/unambiguous-text.js';
import { profileOfCard } from '../protocol/profile.js';
import { decodeHeader, decodePackage, encodeHeader, type PackageHeader } from '../protocol/qtm-package.js';
import { SERVER_ID_PREFIX_LENGTH } from '../protocol/card-record.js';
import { headSigner, headStatement } from '../store/head.js';
import { authenticationData } from '../protocol/card-authentication.js';
import { validateChain } from '../verify/chain.js';
import { verifyBundle } from '../verify/verify-bundle.js';
import { QtmError, RefusedError } from '../errors.js';
import type { QtmApi } from './api.js';
import type { Archive } from './archive.js';
import { checkFairOffer, exchangeSignatures, FairAbortedError, type TtpLike } from './fair-exchange.js';
import { TtpClient } from '../fair/ttp-client.js';
import { decodeTransparency } from '../tlog/bundle-proof.js';
import { cardTag, encodeMonitorKeyFile } from '../tlog/card-tag.js';
import { decodeSignedCheckpoint } from '../tlog/checkpoint.js';
import { leafHash } from '../tlog/hash.js';
import { commitment, encodeEntry } from '../tlog/leaf.js';
import { verifyInclusion } from '../tlog/merkle.js';
import { DecodeError } from '../errors.js';
import { clockSkewProblem, DEFAULT_CLOCK_TOLERANCE_SECONDS, recordSkewSeconds } from '../protocol/clock.js';

export type Step = 'order' | 'accept' | 'card' | 'authenticate' | 'prepare' | 'sign' | 'exchange' | 'slot' | 'confirm' | 'verify' | 'write' | 'read-back' | 'acknowledge';

export const STEP_LABEL: Record<Step, string> = {
  order: 'fetch the concept order',
  accept: 'show the order and ask to accept',
  card: 'open the card and verify the PIN',
  authenticate: 'authenticate with the card over TLS',
  prepare: 'get the record to sign',
  sign: 'sign the record on the card',
  exchange: 'exchange signatures fairly (escrows; the TTP if needed)',
  slot: 'choose the receipt slot',
  confirm: 'send the first message',
  verify: 'check the second message',
  write: 'write the receipt to the card',
  'read-back': 'read the receipt back',
  acknowledge: 'send the third message',
};

/** Fails a step with its name in the message, keeping the original exit code. */
export class StepError extends QtmError {
  constructor(
    readonly step: Step,
    override readonly cause: QtmError,
  ) {
    super(`${STEP_LABEL[step]}: ${cause.message}`, cause.code, cause.exitCode, cause.hint);
  }
}

export class DeclinedError extends RefusedError {
  constructor() {
    super('order declined: nothing was signed, nothing was sent to the server', undefined, 'E_DECLINED');
  }
}

export interface TransactionHooks {
  /** Shows the exact content bytes; resolves true to accept. */
  accept(content: Buffer): Promise<boolean>;
  pin(): Promise<string>;
  onStep?(step: Step, phase: 'start' | 'done', ms?: number): void;
  /** The prepared record's time, checked against this computer's clock (issue 18 section 4). */
  onRecordTime?(info: { readonly recordTime: string; readonly skewSeconds: number; readonly clockToleranceSeconds: number }): void;
}

export interface TransactionInput {
  readonly api: QtmApi;
  readonly card: CardClient;
  readonly trustAnchors: readonly X509Certificate[];
  readonly archive: Archive;
  /** A concept order handed over whole (the server keeps none: issue 18), or items to compose one from. */
  readonly order: { readonly concept: M.ConceptOrder } | { readonly items: M.OrderItem[] };
  readonly priority?: number;
  readonly hooks: TransactionHooks;
  /** Fair exchange of signatures through the server's TTP (claims 12-14). */
  readonly fair?: boolean;
  /** How to reach the TTP (default: HTTPS, trusting input.trustAnchors). */
  readonly ttp?: (url: string) => TtpLike;
  /** T: a record dated further than this from `now()` is refused before the card signs (default 120 s). */
  readonly clockToleranceSeconds?: number;
  /** This computer's clock (tests inject one). */
  readonly now?: () => Date;
}

export interface TransactionResult {
  readonly transactionId: number;
  readonly serverId: string;
  readonly slot: number;
  readonly bundleFile: string;
  readonly bundle: ProofBundle;
  readonly replaced?: SlotView;
  /** Fair exchange: where X came from (the server, or the TTP when the server failed to send it). */
  readonly fair?: { readonly xFrom: 'server' | 'ttp' };
  readonly apdus: number;
  readonly timings: Partial<Record<Step, number>>;
  /** The record's time (package field 4) and the tolerance it was checked with. */
  readonly recordTime: string;
  readonly clockToleranceSeconds: number;
}

async function step<T>(name: Step, hooks: TransactionHooks, timings: Partial<Record<Step, number>>, run: () => Promise<T>): Promise<T> {
  hooks.onStep?.(name, 'start');
  const t0 = performance.now();
  try {
    const r = await run();
    timings[name] = performance.now() - t0;
    hooks.onStep?.(name, 'done', timings[name]);
    return r;
  } catch (err) {
    if (err instanceof StepError || err instanceof DeclinedError) throw err;
    if (err instanceof QtmError) throw new StepError(name, err);
    throw err;
  }
}

/** Card: select, PIN, certificate; then card authentication bound to the TLS session. */
export async function openAndAuthenticate(api: QtmApi, card: CardClient, pin: string, hooks: TransactionHooks, timings: Partial<Record<Step, number>>) {
  const opened = await step('card', hooks, timings, async () => {
    await card.select();
    const status = await card.status();
    if (status.lifecycle !== 'operational') throw new RefusedError('the card is not issued yet (run `qtm card issue`)');
    await card.verifyPin(pin);
    return { status, certificate: await card.readCertificate() };
  });
  await step('authenticate', hooks, timings, async () => {
    const { nonce } = await api.call('POST', PATHS.authChallenge, {}, M.decodeAuthChallenge);
    const signature = await card.internalAuthenticate(authenticationData(api.exporter(nonce), nonce));
    await api.call('POST', PATHS.authResponse, M.encodeAuthResponse({ certificates: [opened.certificate.toString()], nonce, signature }));
  });
  return opened;
}

/**
 * Refuses, before the card signs, a record whose transaction ID the archive or the card already
 * holds for another record of this server, or whose header names another ID than the server
 * did: a server that hands an ID out twice would leave the customer two proofs of one number.
 */
export function refuseReusedId(o: { prepared: M.PreparedTransaction; header: PackageHeader; archive: Archive; slots: readonly SlotView[] }): void {
  const { prepared, header } = o;
  if (header.transactionId !== prepared.transactionId) {
    throw new RefusedError(`the server named transaction ${prepared.transactionId}, but the record it sent is transaction ${header.transactionId}`, undefined, 'E_ID_REUSED');
  }
  const serverId = Buffer.from(header.serverId).toString('hex');
  if (o.archive.headersFor(serverId, header.transactionId).some((h) => h !== prepared.header.toString('base64'))) {
    throw new RefusedError(`the archive already holds another record as transaction ${header.transactionId} of this server: it hands the ID out a second time`, 'keep both as evidence; ask the shop (qtm server audit)', 'E_ID_REUSED');
  }
  const prefix = Buffer.from(header.serverId).subarray(0, SERVER_ID_PREFIX_LENGTH);
  const clash = o.slots.find((s) => s.record && s.record.transactionId === header.transactionId && s.record.serverIdPrefix && Buffer.from(s.record.serverIdPrefix).equals(prefix)
    && !(Buffer.from(s.record.contentId).equals(header.contentId) && s.record.time === header.time));
  if (clash) throw new RefusedError(`card slot ${clash.slot} already holds another receipt as transaction ${header.transactionId} of this server: it hands the ID out a second time`, 'keep both as evidence; ask the shop (qtm server audit)', 'E_ID_REUSED');
}

/** Keeps the store head the server signed with this receipt (./archive.ts), after checking its signature. */
export async function keepStoreHead(archive: Archive, serverId: string, second: M.SecondMessage, serverPem: string): Promise<void> {
  if (second.headSeq === undefined || !second.headHash || !second.headSignature) return;
  const head = { seq: second.headSeq, hash: second.headHash.toString('hex') };
  if (!headSigner(new X509Certificate(serverPem).publicKey).verify(headStatement(head), second.headSignature)) {
    throw new RefusedError('the store head in the server\'s answer is not signed by its receipt key', undefined, 'E_BAD_HEAD');
  }
  await archive.keepHead({ serverId, ...head, sig: second.headSignature.toString('base64') });
}

/**
 * Issue 12: the leaf's inclusion proof the server sent with the receipt must lead to the root of
 * the checkpoint it came with (its signature is checked by whoever knows the log key: qtm verify
 * --log-key), and the card's tag must be the one the monitoring key gives, or the card holder could
 * never find the card's leaves. Returns the proof for the bundle and the key file to keep.
 */
export function checkLogProof(second: M.SecondMessage, cardCertificate: X509Certificate): { transparency: ProofBundle['transparency']; monitorKeyFile?: { name: string; text: string } } {
  if (!second.transparency) return { transparency: undefined };
  let t;
  try {
    t = decodeTransparency('second message', second.transparency);
  } catch (err) {
    if (err instanceof DecodeError) throw new RefusedError(`the server's log proof is malformed: ${err.message}`, undefined, 'E_TLOG_MISBEHAVIOUR');
    throw err;
  }
  const pkg = decodePackage(second.package);
  const leaf = { transactionId: pkg.transactionId, package: second.package };
  const cp = decodeSignedCheckpoint(t.checkpoint).checkpoint;
  try {
    verifyInclusion(t.index, cp.size, leafHash(encodeEntry({ ...leaf, ...(t.tag ? { tag: t.tag } : {}) })), t.proof, cp.root);
  } catch (err) {
    throw new RefusedError(`the server's log proof does not show transaction ${pkg.transactionId} in its checkpoint of size ${cp.size}: ${(err as Error).message}`, undefined, 'E_TLOG_MISBEHAVIOUR');
  }
  if (Boolean(t.tag) !== Boolean(second.monitorKey)) throw new RefusedError('the server sent a card-tagged leaf without the monitoring key, or a key without a tag', undefined, 'E_TLOG_MISBEHAVIOUR');
  if (!t.tag || !second.monitorKey) return { transparency: t };
  if (!cardTag(second.monitorKey, commitment(leaf)).equals(t.tag)) {
    throw new RefusedError('the monitoring key the server sent does not give this leaf\'s card tag: the card\'s leaves could not be found with it', undefined, 'E_TLOG_MISBEHAVIOUR');
  }
  const cardKey = keyFingerprint(cardCertificate.publicKey);
  const name = `${cp.origin.replace(/[^A-Za-z0-9.-]+/g, '_')}-${cardKey.slice(0, 16)}.key`;
  return { transparency: t, monitorKeyFile: { name, text: encodeMonitorKeyFile({ origin: cp.origin, cardKey, key: second.monitorKey }) } };
}

/** Checks a second message against what was prepared and assembles the proof bundle. */
export function checkSecondMessage(opts: {
  prepared: M.PreparedTransaction;
  second: M.SecondMessage;
  cardCertificate: X509Certificate;
  trustAnchors: readonly X509Certificate[];
  priority: number;
  ownSignature?: Buffer;
}): { bundle: ProofBundle; record: Buffer; monitorKeyFile?: { name: string; text: string } } {
  const { prepared, second } = opts;
  const logged = checkLogProof(second, opts.cardCertificate);
  const pkg = decodePackage(second.package);
  if (!encodeHeader(pkg).equals(prepared.header)) throw new RefusedError('the signed package is not the record that was prepared');
  if (opts.ownSignature && !Buffer.from(pkg.signatureB).equals(opts.ownSignature)) throw new RefusedError('the package does not carry this card\'s signature');
  const record = cardRecordFor(pkg, opts.priority);
  const bundle: ProofBundle = {
    package: second.package,
    content: prepared.content,
    certificates: { server: prepared.serverCertificates, partyA: prepared.partyACertificates, partyB: [opts.cardCertificate.toString()] },
    ...(prepared.warrants ? { warrants: prepared.warrants } : {}),
    cardRecord: record,
    ...(logged.transparency ? { transparency: logged.transparency } : {}),
  };
  const report = verifyBundle(bundle, { trustAnchors: opts.trustAnchors });
  if (!report.valid) throw new RefusedError(`the server's reply does not verify: ${report.failures.map((f) => `${f.name}: ${f.detail}`).join('; ')}`);
  return { bundle, record, ...(logged.monitorKeyFile ? { monitorKeyFile: logged.monitorKeyFile } : {}) };
}

export async function runTransaction(input: TransactionInput): Promise<TransactionResult> {
  const { api, card, hooks, archive } = input;
  const timings: Partial<Record<Step, number>> = {};
  const priority = input.priority ?? 0;
  const apdusBefore = card.apduCount; // the client may be reused across transactions
  const tolerance = input.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;

  const concept = await step('order', hooks, timings, async () => {
    const c = 'concept' in input.order
      ? input.order.concept
      : await api.call('POST', PATHS.orders, { items: input.order.items }, M.decodeConceptOrder);
    checkUnambiguousText(c.content); // claim 8: plain, NFC, no confusables (UTS #39); refused before anything is shown or signed
    return c;
  });
  const accepted = await step('accept', hooks, timings, () => hooks.accept(concept.content));
  if (!accepted) throw new DeclinedError();
  const pin = await hooks.pin();
  const { status, certificate } = await openAndAuthenticate(api, card, pin, hooks, timings);
  const profile = profileOfCard(status.profileVersion)!;

  let recordInfo: Parameters<NonNullable<TransactionHooks['onRecordTime']>>[0] | undefined;
  const prepared = await step('prepare', hooks, timings, async () => {
    const p = await api.call('POST', PATHS.transactions, { orderId: concept.orderId, content: concept.content.toString('base64'), ...(input.fair ? { fair: true } : {}) }, M.decodePrepared);
    // What is signed is what was read: the record's content must be the bytes shown.
    if (!p.content.equals(concept.content)) throw new RefusedError('the server offered content other than the order that was shown and accepted');
    const header = decodeHeader(p.header);
    if (header.version !== profile.packageVersion) throw new RefusedError(`the record is package version ${header.version}; a card of profile ${profile.name} signs only version ${profile.packageVersion}, whose server signature binds party A`);
    if (!fingerprint(certificate.publicKey, profile).equals(header.fingerprintB)) throw new RefusedError('the record names another card as party B');
    // The record's time is the server's word: a server whose clock is off (or that lies) would
    // have the card sign a date far from now, e.g. before a warrant's revocation (issue 18 section 4).
    const clock = (input.now ?? (() => new Date()))();
    const skewProblem = clockSkewProblem(header.time, clock, tolerance);
    if (skewProblem) throw new RefusedError(`${skewProblem}; nothing was signed`, 'check this computer\'s clock (and the server\'s); --clock-tolerance sets T', 'E_CLOCK_SKEW');
    recordInfo = { recordTime: new Date(header.time * 1000).toISOString(), skewSeconds: recordSkewSeconds(header.time, clock), clockToleranceSeconds: tolerance };
    const server = new X509Certificate(p.serverCertificates[0]!);
    if (!fingerprint(server.publicKey, profile).equals(header.serverId)) throw new RefusedError('the record\'s server ID is not the server certificate\'s key');
    const chain = validateChain(server, p.serverCertificates.slice(1).map((x) => new X509Certificate(x)), input.trustAnchors, new Date());
    if (!chain.ok) throw new RefusedError(`the server's receipt certificate is not trusted: ${chain.reason}`);
    if (!(server.keyUsage ?? []).includes(OID.ekuReceiptSigning)) throw new RefusedError('the server certificate is not a receipt-signing certificate');
    // Issue 18: one transaction ID, one record. Before the card signs anything under this ID.
    const slots = await readSlots(card, status);
    refuseReusedId({ prepared: p, header, archive, slots });
    return { ...p, slots, ...(input.fair ? { offer: checkFairOffer(p, input.trustAnchors) } : {}) };
  });

  if (recordInfo) hooks.onRecordTime?.(recordInfo);
  const signature = await step('sign', hooks, timings, () => card.signHeader(prepared.header));

  let fairVia: 'server' | 'ttp' | undefined;
  if (prepared.offer) {
    const offer = prepared.offer;
    await step('exchange', hooks, timings, async () => {
      const ttp = (input.ttp ?? ((url) => new TtpClient(url, input.trustAnchors.map((c) => c.toString()).join(''))))(offer.ttpUrl);
      const kept = { serverId: Buffer.from(decodeHeader(prepared.header).serverId).toString('hex'), transactionId: prepared.transactionId };
      try {
        const got = await exchangeSignatures({ api, prepared, offer, cardCertificate: certificate, y: signature, ttp });
        fairVia = got.via;
        // Issue 13: what the exchange gave the client is kept before anything else happens.
        await archive.keepFairOutcome({ ...kept, outcome: 'x', value: got.x.toString('base64'), via: got.via });
      } catch (err) {
        if (err instanceof FairAbortedError && err.token) await archive.keepFairOutcome({ ...kept, outcome: 'aborted', value: err.token.toString('base64'), via: 'ttp' });
        throw err;
      } finally {
        ttp.close();
      }
    });
  }

  // A resolve at the TTP can outlast the server's idle timeout: the card authenticates the new connection.
  if (prepared.offer && !api.connected) await openAndAuthenticate(api, card, pin, hooks, timings);

  const { slot, replaced, challenge } = await step('slot', hooks, timings, async () => {
    const choice = chooseSlot(prepared.slots);
    if (!choice) throw new RefusedError('the card has no receipt slots');
    if (choice.replaces?.raw) {
      await archive.archiveReplaced({ cardSerial: status.serial.toString('hex').toUpperCase(), slot: choice.slot, record: choice.replaces.raw.toString('hex') });
    }
    return { slot: choice.slot, replaced: choice.replaces, challenge: await card.getChallenge() };
  });

  const second = await step('confirm', hooks, timings, () =>
    api.call('POST', PATHS.confirm(prepared.transactionId), M.encodeFirstMessage({ signature, challenge, slot, priority }), M.decodeSecondMessage));

  const { bundle, record, saved } = await step('verify', hooks, timings, async () => {
    if (second.transactionId !== prepared.transactionId || second.slot !== slot) throw new RefusedError('the second message is for another transaction or slot');
    const checked = checkSecondMessage({ prepared, second, cardCertificate: certificate, trustAnchors: input.trustAnchors, priority, ownSignature: signature });
    const serverId = Buffer.from(decodeHeader(prepared.header).serverId).toString('hex');
    await keepStoreHead(archive, serverId, second, prepared.serverCertificates[0]!);
    if (checked.monitorKeyFile) archive.keepMonitorKey(checked.monitorKeyFile.name, checked.monitorKeyFile.text);
    const saved = await archive.saveProof({ serverId, transactionId: prepared.transactionId, cardSerial: status.serial.toString('hex').toUpperCase(), slot, state: 'received', header: prepared.header.toString('base64') }, encodeBundle(checked.bundle), second.package);
    return { ...checked, saved };
  });

  const proof = await step('write', hooks, timings, () => card.secureWrite(slot, second.envelope));
  await step('read-back', hooks, timings, async () => {
    const back = await card.readRecord(slot);
    if (!back || !back.equals(record)) throw new RefusedError(`slot ${slot} does not hold the receipt that was written`);
  });
  await step('acknowledge', hooks, timings, async () => {
    await api.call('POST', PATHS.ack(prepared.transactionId), M.encodeThirdMessage({ transactionId: prepared.transactionId, proof }));
    await archive.markDelivered(saved.serverId, prepared.transactionId, second.package);
  });

  return {
    transactionId: prepared.transactionId,
    serverId: saved.serverId,
    slot,
    bundleFile: saved.file,
    bundle,
    ...(replaced ? { replaced } : {}),
    ...(fairVia ? { fair: { xFrom: fairVia } } : {}),
    apdus: card.apduCount - apdusBefore,
    timings,
    recordTime: new Date(decodeHeader(prepared.header).time * 1000).toISOString(),
    clockToleranceSeconds: tolerance,
  };
}


