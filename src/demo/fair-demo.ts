/**
 * `qtm demo --fair [--cheat server|client]`: a TTP on loopback, and the two ways a party can
 * cheat, each ending with who holds which signature.
 */
import { randomBytes, type X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { issueKeyAndCertificate, type OpenCa } from '../pki/ca.js';
import { startTtp, TtpClient, type RunningTtp } from '../fair/ttp-server.js';
import type { FairOptions, QtmService, ServerCheat } from '../server/qtm-service.js';
import type { TransactionStore } from '../store/types.js';
import { runTransaction, StepError, type TransactionInput } from '../client/transaction.js';
import { FairAbortedError } from '../client/fair-exchange.js';

export type Cheat = 'server' | 'client';

/** The demo's server takes its cheat from here (`cheat` in FairOptions): honest until runCheat sets it. */
export interface CheatSwitch {
  current?: ServerCheat;
}

export async function startDemoTtp(dir: string, ca: OpenCa, cheat?: CheatSwitch): Promise<{ running: RunningTtp; fair: FairOptions; close(): Promise<void> }> {
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
    fair: { ttp: { url, certificates: escrowKey.certificates as X509Certificate[], request: (e, r) => client.request(e, r) }, deadlineSeconds: 300, ...(cheat ? { cheat: () => cheat.current } : {}) },
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
}

export async function runCheat(cheat: Cheat, o: { service: QtmService; store: TransactionStore; cheatSwitch: CheatSwitch; transaction: Omit<TransactionInput, 'fair'> }): Promise<CheatOutcome> {
  const id = o.store.lastTransactionId() + 1;
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
    const serverHasY = o.store.get(id)?.confirmed !== undefined;
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
  story.push('The client holds X. At the deadline the server resolved at the TTP with X and the client\'s escrow:');
  const outcome = await o.service.resolveAtTtp(id);
  const serverHasY = o.store.get(id)?.confirmed !== undefined;
  story.push(`the TTP ${outcome === 'resolved' ? 'extracted Y from the verifiable escrow (one of its 128 unopened halves), and the server signed the receipt with it' : `answered ${outcome}`}. Both sides hold both signatures: fair. The receipt reaches the card when the client returns (qtm receipts fetch).`);
  return { story, clientHasX: true, serverHasY, transactionId: id };
}
