/**
 * Conformance of the fair exchange to its model (issue 13), over real HTTPS against real
 * `qtm server start --ttp` and `qtm ttp start` processes. Both parties are honest (the project's
 * own client code); each case loses one message, sends a party to the TTP early, orders abort
 * and resolve one way or the other, or restarts the TTP between requests. Each ends by asserting
 * the fairness predicate on what each party holds once the server's sweeper settled the
 * exchange: both signatures or neither. The model transition each case walks is named in
 * docs/FAIR-EXCHANGE.md ("The model and the code").
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { FairAbortedError } from '../../src/client/fair-exchange.js';
import { fetchReceipts } from '../../src/client/fetch-receipts.js';
import { openAndAuthenticate, runTransaction, StepError } from '../../src/client/transaction.js';
import { ClientHoldings, LossyApi, type LossPoint } from '../../src/demo/lossy-api.js';
import { TtpClient } from '../../src/fair/ttp-client.js';
import { transactionLabel } from '../../src/fair/label.js';
import { makeVerifiableEscrow } from '../../src/fair/verifiable-escrow.js';
import { keyFingerprint, signBytes } from '../../src/crypto/keys.js';
import * as M from '../../src/protocol/messages.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { encodeHeader } from '../../src/protocol/qtm-package.js';
import { headerFor } from '../../src/proof/make-proof.js';
import { oaepEncrypt } from '../../src/fair/oaep.js';
import { abortRequestStatement, escrowOfXStatement, resolveRequestStatement, type TtpRequest } from '../../src/fair/ttp.js';
import { randomBytes } from 'node:crypto';
import { FairProcesses, PIN, sleep } from './fair-processes.js';

/** Long enough for a loaded machine to make an escrow, short enough to wait for. */
const DEADLINE_SECONDS = 6;
let w: FairProcesses;

before(async () => {
  w = await FairProcesses.start(DEADLINE_SECONDS);
});
after(async () => {
  await w?.stop();
});

const caPem = () => w.caPem;
const newCard = () => w.newCard();
const serverRecord = (id: number) => w.record(id);
const serverY = (id: number) => w.holdsY(id);
const settled = (id: number) => w.settled(id);

interface Run {
  readonly card: Awaited<ReturnType<typeof newCard>>;
  readonly holdings: ClientHoldings;
  readonly id: number;
  readonly error: unknown;
}

/** One honest transaction through the project's client, losing `lose`, with the TTP reached through `ttpWrap`. */
async function honest(lose: LossPoint | undefined, o: { ttpWrap?: (t: TtpClient) => TtpClient; stopAfterExchange?: boolean } = {}): Promise<Run> {
  const card = await newCard();
  const api = new LossyApi(w.server.url, caPem(), lose);
  let error: unknown;
  try {
    await runTransaction({
      api, card: card.client, trustAnchors: [w.ca.certificate], archive: card.archive, order: { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, fair: true,
      hooks: { accept: async () => true, pin: async () => PIN, onStep: (step, phase) => {
        if (o.stopAfterExchange && step === 'exchange' && phase === 'done') throw new Error('the client stops after the exchange (it goes away)');
      } },
      ttp: (url) => {
        const t = new TtpClient(url, caPem());
        return api.holdings.watchTtp(o.ttpWrap ? o.ttpWrap(t) : t);
      },
    });
  } catch (err) {
    error = err;
  } finally {
    api.close();
  }
  return { card, holdings: api.holdings, id: api.holdings.transactionId!, error };
}

/** The client comes back for its receipt (qtm receipts fetch), its holdings counted. */
async function comeBack(run: Run): Promise<number[]> {
  const api = new LossyApi(w.server.url, caPem(), undefined, run.holdings);
  try {
    return (await fetchReceipts({ api, card: run.card.client, trustAnchors: [w.ca.certificate], archive: run.card.archive, pin: PIN })).map((f) => f.transactionId);
  } finally {
    api.close();
  }
}

/** The fairness predicate for two honest parties: both signatures or neither. */
async function assertFair(run: Run, expected: { y: boolean; x: boolean }): Promise<void> {
  const holds = { y: (await serverY(run.id)), x: run.holdings.x };
  assert.deepEqual(holds, expected, `server holds Y ${holds.y}, client holds X ${holds.x}`);
  assert.equal(holds.y, holds.x, 'fair: both or neither');
}

describe('fair exchange conformance over HTTPS (real server and TTP processes)', { concurrency: true }, () => {
  test('nothing lost: X from the server, Y in the first message; the TTP is never asked', async () => {
    const run = await honest(undefined);
    assert.equal(run.error, undefined);
    assert.equal((await serverRecord(run.id))!.state, 'delivered');
    await assertFair(run, { y: true, x: true });
  });

  test('first message (escrow of X) lost: the card signs nothing; at the deadline the server aborts', async () => {
    const run = await honest('first-message');
    assert.ok(run.error instanceof StepError && run.error.step === 'prepare');
    const rec = await settled(run.id);
    assert.ok(rec.fairAborted?.token, 'the server holds the abort token');
    await assertFair(run, { y: false, x: false });
  });

  test('escrow of Y lost: the client resolves at the TTP (X), then its first message gives the server Y', async () => {
    const run = await honest('escrow-y');
    assert.equal(run.error, undefined, String(run.error));
    assert.equal((await serverRecord(run.id))!.escrowY, undefined, 'the server never saw the escrow');
    assert.deepEqual(run.card.archive.fairOutcomes.map((f) => [f.transactionId, f.outcome, f.via]), [[run.id, 'x', 'ttp']], 'the client kept the TTP\'s X');
    await assertFair(run, { y: true, x: true });
  });

  test('X lost: the client resolves at the TTP, gets X, and completes', async () => {
    const run = await honest('x');
    assert.equal(run.error, undefined, String(run.error));
    assert.equal((await serverRecord(run.id))!.state, 'delivered');
    await assertFair(run, { y: true, x: true });
  });

  test('Y (the first message) lost: at the deadline the server resolves, the TTP extracts Y; the card gets the receipt later', async () => {
    const run = await honest('y');
    assert.ok(run.error instanceof StepError && run.error.step === 'confirm');
    const rec = await settled(run.id);
    assert.ok(rec.resolved, 'resolved at the TTP');
    assert.deepEqual(await comeBack(run), [run.id]);
    assert.equal((await serverRecord(run.id))!.state, 'delivered');
    await assertFair(run, { y: true, x: true });
  });

  test('the second message (package and envelope) lost: the server holds Y, the client X; the receipt comes later', async () => {
    const run = await honest('second-message');
    assert.ok(run.error instanceof StepError && run.error.step === 'confirm');
    assert.deepEqual(await comeBack(run), [run.id]);
    await assertFair(run, { y: true, x: true });
  });

  test('the client goes to the TTP early (resolves, never talks to the server again); the server\'s abort gets Y', async () => {
    const run = await honest('escrow-y', { stopAfterExchange: true });
    assert.match(String((run.error as StepError)?.cause ?? run.error), /stops after the exchange/);
    assert.ok(run.holdings.x, 'the client has X from the TTP');
    const rec = await settled(run.id);
    assert.ok(rec.resolved, 'the TTP answered the abort with Y, and the server applied it');
    assert.equal(rec.fairAborted, undefined, 'never a false abort');
    assert.deepEqual(await comeBack(run), [run.id]);
    await assertFair(run, { y: true, x: true });
  });

  test('abort before resolve: the server aborts at the deadline, the client then resolves and gets the abort token', async () => {
    let id = 0;
    const run = await honest('escrow-y', {
      ttpWrap: (t) => Object.assign(Object.create(t) as TtpClient, {
        request: async (...a: Parameters<TtpClient['request']>) => {
          // The client is slow: it reaches the TTP only after the server's abort is in.
          id = decodeTxId(a[0].header);
          await settled(id);
          return t.request(...a);
        },
      }),
    });
    assert.ok(run.error instanceof StepError && run.error.cause instanceof FairAbortedError, String(run.error));
    assert.equal(run.holdings.tokens.length, 1, 'the client holds the abort token');
    assert.deepEqual(run.card.archive.fairOutcomes.map((f) => [f.transactionId, f.outcome]), [[run.id, 'aborted']], 'and kept it');
    assert.ok((await serverRecord(run.id))!.fairAborted);
    await assertFair(run, { y: false, x: false });
  });

  test('a first message for an exchange the TTP resolved is answered from that state (a fresh envelope), never with "aborted"', async () => {
    const run = await honest('escrow-y', {
      ttpWrap: (t) => Object.assign(Object.create(t) as TtpClient, {
        request: async (...a: Parameters<TtpClient['request']>) => {
          const answer = await t.request(...a);
          // The client is slow after the TTP gave it X: the server's abort at the deadline comes first, and gets Y.
          await settled(decodeTxId(a[0].header));
          return answer;
        },
      }),
    });
    assert.equal(run.error, undefined, String(run.error));
    const rec = (await serverRecord(run.id))!;
    assert.ok(rec.resolved, 'settled at the TTP first');
    assert.equal(rec.state, 'delivered', 'the first message was answered with the resolved package and written to the card');
    await assertFair(run, { y: true, x: true });
  });

  test('issue 13, case 3: after the TTP resolved, a bogus escrow of Y is answered with the truth, and the server keeps Y', async () => {
    const card = await newCard();
    const holdings = new ClientHoldings();
    const api = new LossyApi(w.server.url, caPem(), undefined, holdings);
    try {
      const { certificate } = await openAndAuthenticate(api, card.client, PIN, { accept: async () => true, pin: async () => PIN }, {});
      const order = await api.call('POST', '/orders', { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }, M.decodeConceptOrder);
      const p = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64'), fair: true }, M.decodePrepared);
      const y = await card.client.signHeader(p.header);
      const t = holdings.watchTtp(new TtpClient(p.ttpUrl!, caPem()));
      try {
        await t.request({ header: p.header, deadline: p.deadline!, serverCertificates: p.serverCertificates.map((c) => new X509Certificate(c)), cardCertificates: [certificate] }, { kind: 'resolve-client', y, escrowX: p.escrowX!, escrowXSignature: p.escrowXSignature! });
      } finally {
        t.close();
      }
      assert.ok(holdings.x);
      await assert.rejects(api.call('POST', `/transactions/${p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: Buffer.alloc(3000, 1) }), M.decodeEscrowReply),
        (e: Error & { serverCode?: string }) => e.serverCode === 'E_BAD_ESCROW' && /TTP had already resolved/.test(e.message) && !/aborted at the TTP/.test(e.message));
      const rec = (await serverRecord(p.transactionId))!;
      assert.ok(rec.resolved && !rec.fairAborted, 'the abort was answered with Y, which the server applied');
      await assertFair({ card, holdings, id: p.transactionId, error: undefined }, { y: true, x: true });
    } finally {
      api.close();
    }
  });

  test('the client comes after the deadline: its escrow is refused (409 E_DEADLINE), it resolves; whoever is first at the TTP, the end is fair', async () => {
    const card = await newCard();
    const holdings = new ClientHoldings();
    const api = new LossyApi(w.server.url, caPem(), undefined, holdings);
    try {
      const { certificate } = await openAndAuthenticate(api, card.client, PIN, { accept: async () => true, pin: async () => PIN }, {});
      const order = await api.call('POST', '/orders', { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }, M.decodeConceptOrder);
      const p = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64'), fair: true }, M.decodePrepared);
      const y = await card.client.signHeader(p.header);
      await sleep((p.deadline! + 1) * 1000 - Date.now());
      await openAndAuthenticate(api, card.client, PIN, { accept: async () => true, pin: async () => PIN }, {}); // the idle connection was closed
      const ttpCert = new X509Certificate(p.ttpCertificates![0]!);
      const label = transactionLabel({ header: p.header, ttpFingerprint: Buffer.from(keyFingerprint(ttpCert.publicKey), 'hex'), deadline: p.deadline! });
      const escrowY = makeVerifiableEscrow({ cardKey: certificate.publicKey, ttpKey: ttpCert.publicKey, label, message: p.header, signature: y });
      await assert.rejects(api.call('POST', `/transactions/${p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY }), M.decodeEscrowReply),
        (e: Error & { serverCode?: string }) => e.serverCode === 'E_DEADLINE' || e.serverCode === 'E_ABORTING' || e.serverCode === 'E_ABORTED');
      const t = holdings.watchTtp(new TtpClient(p.ttpUrl!, caPem()));
      try {
        await t.request({ header: p.header, deadline: p.deadline!, serverCertificates: p.serverCertificates.map((c) => new X509Certificate(c)), cardCertificates: [certificate] }, { kind: 'resolve-client', y, escrowX: p.escrowX!, escrowXSignature: p.escrowXSignature! });
      } finally {
        t.close();
      }
      const rec = await settled(p.transactionId);
      // Either the client was first (X; the server's abort then gets Y) or the server (both get the token).
      assert.equal(holdings.x, rec.resolved !== undefined);
      assert.equal(holdings.tokens.length, rec.fairAborted ? 1 : 0);
      await assertFair({ card, holdings, id: p.transactionId, error: undefined }, holdings.x ? { y: true, x: true } : { y: false, x: false });
    } finally {
      api.close();
    }
  });
});

describe('fair exchange conformance: the TTP restarted, and down at the deadline', () => {
  test('the client resolves, the TTP restarts and is down at the deadline; the server backs off, reports, and settles with Y once it is back', async () => {
    const run = await honest('escrow-y', { stopAfterExchange: true });
    assert.ok(run.holdings.x);
    const port = w.ttpPort;
    await w.ttp.stop();
    await w.startTtp(port);
    await w.ttp.stop(); // down again until after the deadline: the server's abort goes unanswered
    const until = Date.now() + (DEADLINE_SECONDS + 20) * 1000;
    while (!w.server.log().includes(`"event":"fair-unsettled","tx":${run.id},`) && Date.now() < until) await sleep(250);
    assert.match(w.server.log(), new RegExp(`"event":"fair-unsettled","tx":${run.id},"outcome":"unreachable","attempts":1`), 'reported, with the attempt count');
    const intent = (await serverRecord(run.id))!;
    assert.ok(intent.fairAbortIntent && !intent.fairAborted && !intent.confirmed, 'the intent to abort is durable, nothing is settled');
    await w.startTtp(port);
    const rec = await settled(run.id);
    assert.ok(rec.resolved, 'the TTP kept its decision across the restart and answered the abort with Y');
    await assertFair(run, { y: true, x: true });
  });
});

describe('the TTP process: every state x request kind over HTTPS (docs/FAIR-EXCHANGE.md, the TTP table)', () => {
  test('NONE, ABORTED and RESOLVED against abort, resolve by the client (genuine and signed-bogus escrow of X) and resolve by the server', async () => {
    const profile = PROFILES.v2;
    const server = w.ids.receipts;
    const card = await newCard();
    const cardCert = card.issued.certificate;
    await card.client.select();
    await card.client.verifyPin(PIN);
    const ttpCert = w.ids.ttp.certificate;
    const ttp = new TtpClient(w.ttp.url, caPem());
    let n = 900_000;
    // One exchange as the honest server prepares it, in the state wanted.
    const exchangeIn = async (state: 'NONE' | 'ABORTED' | 'RESOLVED') => {
      const header = encodeHeader(headerFor({ profile, transactionId: n++, time: Math.floor(Date.now() / 1000), content: Buffer.from('state table\n'), server: { certificates: [server.certificate] }, partyA: { certificates: [server.certificate] }, partyB: { certificates: [cardCert] } }));
      const exchange = { header, deadline: Math.floor(Date.now() / 1000) + 600, serverCertificates: [server.certificate], cardCertificates: [cardCert] };
      const label = transactionLabel({ header, ttpFingerprint: Buffer.from(keyFingerprint(ttpCert.publicKey), 'hex'), deadline: exchange.deadline });
      const x = signBytes(profile, server.privateKey, header);
      const y = await card.client.signHeader(header);
      const signedEscrow = (plain: Buffer) => {
        const escrowX = oaepEncrypt(ttpCert.publicKey, plain, label);
        return { escrowX, escrowXSignature: signBytes(profile, server.privateKey, escrowOfXStatement(label, escrowX)) };
      };
      const escrowY = makeVerifiableEscrow({ cardKey: cardCert.publicKey, ttpKey: ttpCert.publicKey, label, message: header, signature: y });
      const requests = {
        abort: { kind: 'abort', proof: signBytes(profile, server.privateKey, abortRequestStatement(label)) },
        'resolve-client': { kind: 'resolve-client', y, ...signedEscrow(x) },
        'resolve-client, signed bogus escrow': { kind: 'resolve-client', y, ...signedEscrow(randomBytes(256)) },
        'resolve-server': { kind: 'resolve-server', x, escrowY, proof: signBytes(profile, server.privateKey, resolveRequestStatement(label, escrowY)) },
      } satisfies Record<string, TtpRequest>;
      if (state === 'ABORTED') assert.equal((await ttp.request(exchange, requests.abort)).outcome, 'aborted');
      if (state === 'RESOLVED') assert.equal((await ttp.request(exchange, requests['resolve-client'])).outcome, 'x');
      return { exchange, requests, x, y };
    };
    const expected: Record<string, Record<'NONE' | 'ABORTED' | 'RESOLVED', 'x' | 'y' | 'aborted'>> = {
      abort: { NONE: 'aborted', ABORTED: 'aborted', RESOLVED: 'y' },
      'resolve-client': { NONE: 'x', ABORTED: 'aborted', RESOLVED: 'x' },
      'resolve-client, signed bogus escrow': { NONE: 'aborted', ABORTED: 'aborted', RESOLVED: 'x' },
      'resolve-server': { NONE: 'y', ABORTED: 'aborted', RESOLVED: 'y' },
    };
    try {
      for (const [kind, byState] of Object.entries(expected)) {
        for (const [state, outcome] of Object.entries(byState) as ['NONE' | 'ABORTED' | 'RESOLVED', string][]) {
          const e = await exchangeIn(state);
          const a = await ttp.request(e.exchange, e.requests[kind as keyof typeof e.requests]);
          assert.equal(a.outcome, outcome, `${state} x ${kind}`);
          // The values are the parties' own signatures, and a later request of the other party agrees.
          if (a.outcome === 'x') assert.ok(a.x.equals(e.x));
          if (a.outcome === 'y') assert.ok(a.y.equals(e.y));
          const other = a.outcome === 'y' || kind === 'abort' ? e.requests['resolve-client'] : e.requests['resolve-server'];
          const b = await ttp.request(e.exchange, other);
          assert.equal(b.outcome === 'aborted', a.outcome === 'aborted', `${state} x ${kind}: both sides see the same decision`);
        }
      }
    } finally {
      ttp.close();
    }
  });
});

function decodeTxId(header: Buffer): number {
  return Number(header.readUInt32BE(1 + 32));
}
