/**
 * `qtm demo --fair [--cheat server|client] [--lose MESSAGE]`: a TTP on loopback, the ways a party
 * can cheat, and the messages an honest exchange can lose, each ending with who holds which signature.
 */
import { PATHS } from '../protocol/routes.js';
import { randomBytes, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { issueKeyAndCertificate, type OpenCa } from '../pki/ca.js';
import { startTtp, type RunningTtp } from '../fair/ttp-server.js';
import { TtpClient } from '../fair/ttp-client.js';
import type { FairOptions, QtmService, ServerCheat } from '../server/qtm-service.js';
import type { TransactionStore } from '../store/types.js';
import { runTransaction, StepError, type TransactionInput } from '../client/transaction.js';
import { FairAbortedError } from '../client/fair-exchange.js';
import { fetchReceipts } from '../client/fetch-receipts.js';
import { keyFingerprint, verifyBytes } from '../crypto/keys.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { decodeHeader, encodeHeader } from '../protocol/qtm-package.js';
import { LossyApi, type LostMessage } from './lossy-api.js';
import type { QtmApi } from '../client/api.js';
import type { CardClient } from '../card/client.js';
import * as M from '../protocol/messages.js';
import { transactionLabel } from '../fair/label.js';
import { oaepEncrypt } from '../fair/oaep.js';
import type { Exchange, TtpRequest } from '../fair/ttp.js';

export type Cheat = 'server' | 'client';

/** The demo's server takes its cheat from here (`cheat` in FairOptions): honest until runCheat sets it. */
export interface CheatSwitch {
  current?: ServerCheat;
}

export async function startDemoTtp(dir: string, ca: OpenCa, cheat?: CheatSwitch, deadlineSeconds = 300): Promise<{ running: RunningTtp; fair: FairOptions; close(): Promise<void> }> {
  const identity = (role: 'ttp' | 'server', subject: string) => {
    const i = issueKeyAndCertificate(ca, { role, subject });
    return { privateKey: i.privateKey, certificates: [i.certificate] };
  };
  const escrowKey = identity('ttp', 'CN=qtm Demo TTP,O=Example Arbiter');
  const running = await startTtp({ identity: escrowKey, tls: identity('server', 'CN=localhost,O=Example Arbiter'), trustAnchors: [ca.certificate], storeDir: join(dir, 'ttp'), host: '127.0.0.1', port: 0, log: () => {} });
  const url = running.url.replace('127.0.0.1', 'localhost');
  const client = new TtpClient(url, ca.certificate.toString());
  return {
    running,
    fair: { ttp: { url, certificates: escrowKey.certificates as X509Certificate[], request: (e, r) => client.request(e, r) }, deadlineSeconds, ...(cheat ? { cheat: () => cheat.current } : {}) },
    async close() {
      client.close();
      await running.close();
    },
  };
}

/** The server cheats: an escrow of nothing, and garbage where X should be (blocks 303, 308). */
export const BOGUS_SERVER: ServerCheat = {
  escrowOfX: () => randomBytes(384),
  releaseX: () => randomBytes(256),
};

export interface CheatOutcome {
  readonly story: string[];
  readonly clientHasX: boolean;
  readonly serverHasY: boolean;
  readonly transactionId: number;
  /** The cheating client's moves at the TTP, each with the code it was refused with. */
  readonly moves?: { readonly move: string; readonly refused: string }[];
}

export async function runCheat(cheat: Cheat, o: { service: QtmService; store: TransactionStore; cheatSwitch: CheatSwitch; transaction: Omit<TransactionInput, 'fair'> }): Promise<CheatOutcome> {
  const id = (await o.store.lastTransactionId()) + 1;
  const story: string[] = [];
  if (cheat === 'server') {
    o.cheatSwitch.current = BOGUS_SERVER;
    story.push('The server CHEATS: its escrow of X is random bytes, and where X should come it sends garbage.');
    let clientHasX = false;
    try {
      await runTransaction({ ...o.transaction, fair: true });
      clientHasX = true;
    } catch (err) {
      if (!(err instanceof StepError && err.cause instanceof FairAbortedError)) throw err;
      story.push('The client found X wrong and resolved at the TTP with its Y; the TTP opened the escrow of X, found it bogus, and ABORTED the exchange: the client has an abort token, and its Y stayed with the TTP.');
    }
    const later = await o.service.resolveAtTtp(id);
    const serverHasY = (await o.store.get(id))?.confirmed !== undefined;
    story.push(`At the deadline the server asked the TTP for Y: ${later === 'aborted' ? 'refused with the abort token' : later}. Neither side holds the other's signature: fair.`);
    return { story, clientHasX, serverHasY, transactionId: id };
  }
  story.push('The client CHEATS: it sends a valid verifiable escrow of Y, takes X, and never sends Y.');
  await runTransaction({
    ...o.transaction, fair: true,
    hooks: { ...o.transaction.hooks, onStep: (step, phase, ms) => {
      o.transaction.hooks.onStep?.(step, phase, ms);
      if (step === 'exchange' && phase === 'done') throw new Error('the cheating client walks away with X');
    } },
  }).catch((err: Error) => {
    if (!/walks away/.test(err.message)) throw err;
  });
  story.push('The client holds X. Before the deadline it tries to unbalance the exchange at the TTP (issue 17):');
  const moves = await cheatingClientMoves(o.transaction.api, o.transaction.card, id, o.transaction.trustAnchors);
  for (const m of moves) story.push(`  - ${m.move}: refused (${m.refused})`);
  story.push('At the deadline the server resolved at the TTP with X and the client\'s escrow:');
  const outcome = await o.service.resolveAtTtp(id);
  const serverHasY = (await o.store.get(id))?.confirmed !== undefined;
  story.push(`the TTP ${outcome === 'resolved' ? 'extracted Y from the verifiable escrow (one of its 128 unopened halves), and the server signed the receipt with it' : `answered ${outcome}`}. Both sides hold both signatures: fair. The receipt reaches the card when the client returns (qtm receipts fetch).`);
  return { story, clientHasX: true, serverHasY, transactionId: id, moves };
}

export interface LossOutcome {
  readonly story: string[];
  readonly holds: { readonly server: { readonly y: boolean }; readonly client: { readonly x: boolean } };
  readonly fair: boolean;
  readonly transactionId: number;
}

const LOSS_STORY: Record<LostMessage, string> = {
  'first-message': 'The server\'s first message (the pre-QTM package and its escrow of X) is LOST on its way to the client: the card signs nothing.',
  'escrow-y': 'The client\'s verifiable escrow of Y is LOST on its way to the server.',
  x: 'The server checked the escrow of Y and released X, but X is LOST on its way to the client.',
  y: 'The client holds X; the first message, carrying Y, is LOST on its way to the server.',
};

/** Whether the server holds a Y that verifies with the card's key for this transaction. */
export async function serverHoldsY(store: TransactionStore, transactionId: number): Promise<boolean> {
  const rec = await store.get(transactionId);
  if (!rec?.confirmed) return false;
  const header = Buffer.from(rec.prepared.header, 'base64');
  const card = certificatesFromPemBundle(rec.prepared.clientCertificate, 'stored client certificate')[0]!;
  const profile = profileByPackageVersion(decodeHeader(header).version)!;
  return verifyBytes(profile, card.publicKey, header, Buffer.from(rec.confirmed.firstMessage.signatureB, 'base64'));
}

/**
 * `qtm demo --fair --lose MESSAGE`: both parties honest, one message of the exchange lost. The
 * client does what the protocol says (resolve at the TTP when X does not come), the server's
 * sweeper settles at the deadline, and the client comes back for its receipt.
 */
export async function runLoss(lose: LostMessage, o: { url: string; trustPem: string; store: TransactionStore; deadlineSeconds: number; transaction: Omit<TransactionInput, 'fair' | 'api' | 'ttp'> }): Promise<LossOutcome> {
  const story = [LOSS_STORY[lose]];
  const api = new LossyApi(o.url, o.trustPem, lose);
  const holdings = api.holdings;
  try {
    const r = await runTransaction({ ...o.transaction, api, fair: true, ttp: (url) => holdings.watchTtp(new TtpClient(url, o.trustPem)) });
    story.push(`The transaction completed anyway (X came from the ${r.fair?.xFrom === 'ttp' ? 'TTP' : 'server'}).`);
  } catch (err) {
    const cause = err instanceof StepError && err.cause instanceof Error ? err.cause : err as Error;
    story.push(`The client stopped at "${err instanceof StepError ? err.step : '?'}": ${cause.message}. It holds X: ${holdings.x ? 'yes' : 'no'}${holdings.x && api.lost && lose !== 'y' ? ' (the TTP gave it, for the card\'s Y)' : ''}.`);
  } finally {
    api.close();
  }
  const id = holdings.transactionId!;
  const until = Date.now() + (o.deadlineSeconds + 20) * 1000;
  let rec = await o.store.get(id);
  while (!rec?.confirmed && !rec?.fairAborted && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 200));
    rec = await o.store.get(id);
  }
  if (!rec) throw new Error(`transaction ${id} is not in the store`);
  story.push(rec.fairAborted
    ? `The server settled at the TTP: ABORTED (${rec.fairAborted.reason}); it holds the TTP's abort token.`
    : rec.resolved ? 'At the deadline the server asked the TTP, which had the card\'s Y (deposited by the client, or extracted from its verifiable escrow): the server signed the receipt with it.'
      : rec.confirmed ? 'The server holds Y from the first message and signed the receipt.' : 'The server could not settle the exchange yet.');
  if (rec.confirmed && rec.state !== 'delivered') {
    const back = new LossyApi(o.url, o.trustPem, undefined, holdings);
    try {
      const fetched = await fetchReceipts({ api: back, card: o.transaction.card, trustAnchors: o.transaction.trustAnchors, archive: o.transaction.archive, pin: await o.transaction.hooks.pin() });
      story.push(`The client came back (qtm receipts fetch): the receipt${fetched.length === 1 ? '' : 's'} for transaction ${fetched.map((f) => f.transactionId).join(', ')} went to the card, with the package carrying X.`);
    } finally {
      back.close();
    }
  }
  const holds = { server: { y: await serverHoldsY(o.store, id) }, client: { x: holdings.x } };
  const fair = holds.server.y === holds.client.x;
  story.push(`Server holds Y: ${holds.server.y ? 'yes' : 'no'}; client holds X: ${holds.client.x ? 'yes' : 'no'}: ${fair ? 'fair' : 'UNFAIR'}.`);
  return { story, holds, fair, transactionId: id };
}

/**
 * The cheating client's moves at the TTP once it holds X (issue 17, section 2), each sent as a
 * card holder can: with her card, its certificate and what the server sent. The TTP refuses
 * each, and leaves the exchange for the server to resolve.
 */
export async function cheatingClientMoves(api: QtmApi, card: CardClient, transactionId: number, trustAnchors: readonly X509Certificate[]): Promise<{ move: string; refused: string }[]> {
  const p = await api.call('GET', PATHS.transaction(transactionId), undefined, M.decodePrepared);
  const cardCertificate = await card.readCertificate();
  const ttpCert = new X509Certificate(p.ttpCertificates![0]!);
  const label = (header: Buffer) => transactionLabel({ header, ttpFingerprint: Buffer.from(keyFingerprint(ttpCert.publicKey), 'hex'), deadline: p.deadline! });
  const exchange: Exchange = { header: p.header, deadline: p.deadline!, serverCertificates: p.serverCertificates.map((c) => new X509Certificate(c)), cardCertificates: [cardCertificate] };
  const y = await card.signHeader(p.header);
  const h = decodeHeader(p.header);
  // Another package with her transaction's ID (the content changed): the server never made it.
  const squat = encodeHeader({ ...h, contentId: Buffer.alloc(h.contentId.length, 0x5a) });
  const ttp = new TtpClient(p.ttpUrl!, trustAnchors.map((c) => c.toString()).join(''));
  const moves: [string, Exchange, TtpRequest][] = [
    ['resolve with her valid Y and a bogus escrow of X (no server signature on it)', exchange, { kind: 'resolve-client', y, escrowX: oaepEncrypt(ttpCert.publicKey, randomBytes(256), label(p.header)), escrowXSignature: p.escrowXSignature! }],
    ['squat her transaction\'s ID with a package the server never made', { ...exchange, header: squat }, { kind: 'resolve-client', y: await card.signHeader(squat), escrowX: oaepEncrypt(ttpCert.publicKey, randomBytes(256), label(squat)), escrowXSignature: p.escrowXSignature! }],
    ['abort (only the originator may)', exchange, { kind: 'abort', proof: y }],
    ['resolve as the server, with a made-up escrow and no server signature', exchange, { kind: 'resolve-server', x: randomBytes(256), escrowY: randomBytes(2000), proof: y }],
  ];
  const out: { move: string; refused: string }[] = [];
  try {
    for (const [move, e, request] of moves) {
      const a = await ttp.request(e, request);
      if (a.outcome !== 'refused') throw new Error(`the TTP did not refuse the cheating client's move "${move}": ${a.outcome}`);
      out.push({ move, refused: a.code });
    }
  } finally {
    ttp.close();
  }
  return out;
}
