/**
 * The fair exchange over real HTTPS (claims 12-14, patent figure 3): a TTP service, a server
 * that offers it, clients with cards. Every test ends by asserting who holds which signature.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { QtmApi, ServerError } from '../../src/client/api.js';
import { FairAbortedError } from '../../src/client/fair-exchange.js';
import { fetchReceipts } from '../../src/client/fetch-receipts.js';
import { openAndAuthenticate, StepError } from '../../src/client/transaction.js';
import { startTtp, type RunningTtp } from '../../src/fair/ttp-server.js';
import { TtpClient } from '../../src/fair/ttp-client.js';
import * as M from '../../src/protocol/messages.js';
import { auditStore } from '../../src/server/audit.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { Archive } from '../../src/client/archive.js';
import type { ServerCheat } from '../../src/server/qtm-service.js';
import { autoHooks, makeWorld, newCard, PIN, transact, type World } from './env.js';

let world: World;
let ttp: RunningTtp;
const ttpLog: Record<string, unknown>[] = [];

before(async () => {
  world = await makeWorld(async ({ dir, ca }) => {
    const identity = (role: 'ttp' | 'server', subject: string) => {
      const i = issueKeyAndCertificate(ca, { role, subject });
      return { privateKey: i.privateKey, certificates: [i.certificate] };
    };
    const escrowKey = identity('ttp', 'CN=E2E TTP');
    ttp = await startTtp({ identity: escrowKey, tls: identity('server', 'CN=localhost'), trustAnchors: [ca.certificate], storeDir: join(dir, 'ttp'), host: '127.0.0.1', port: 0, log: (l) => ttpLog.push(l) });
    const url = ttp.url.replace('127.0.0.1', 'localhost');
    const client = new TtpClient(url, ca.certificate.toString());
    return { fair: { ttp: { url, certificates: escrowKey.certificates, request: (e, r) => client.request(e, r) }, deadlineSeconds: 600, cheat: () => serverCheat } };
  });
});
after(async () => {
  await world.close();
  await ttp.close();
});

/** The cheating party injected into this file's server (FairOptions.cheat): honest when undefined. */
let serverCheat: ServerCheat | undefined;
/** A cheating server for one test. */
function cheat(c: ServerCheat): () => void {
  serverCheat = c;
  return () => void (serverCheat = undefined);
}
const ttpRequests = () => ttpLog.filter((l) => typeof l.path === 'string' && (l.path as string).startsWith('/v1/')).length;

/** A fair transaction prepared by a fresh card, through the API step by step. */
async function prepareFair() {
  const card = await newCard(world);
  const api = new QtmApi(world.url, world.ca.certificate.toString());
  await openAndAuthenticate(api, card.client, PIN, autoHooks(), {});
  const order = await api.call('POST', '/orders', { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, M.decodeConceptOrder);
  return { api, prepared: await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64'), fair: true }, M.decodePrepared) };
}

test('honest parties: X comes from the server, the TTP is never consulted, the proof verifies', async () => {
  const card = await newCard(world);
  const before = ttpRequests();
  const r = await transact(world, card, { fair: true });
  assert.deepEqual(r.fair, { xFrom: 'server' });
  assert.equal(ttpRequests(), before);
  assert.equal(verifyBundle(r.bundle, { trustAnchors: [world.ca.certificate] }).valid, true);
  assert.equal((await world.server.store.get(r.transactionId))!.state, 'delivered');
});

test('a server that withholds X (sends garbage): the client resolves at the TTP, gets X and completes', async () => {
  const restore = cheat({ releaseX: () => randomBytes(256) });
  try {
    const card = await newCard(world);
    const r = await transact(world, card, { fair: true });
    assert.deepEqual(r.fair, { xFrom: 'ttp' }, 'client holds X');
    assert.equal((await world.server.store.get(r.transactionId))!.state, 'delivered', 'server holds Y (the first message)');
  } finally {
    restore();
  }
});

test('a server with a bogus escrow of X that withholds X: the TTP aborts; neither holds the other\'s signature', async () => {
  const restore = [
    // The server keeps its real X but gives the client an escrow of nothing, and garbage for X.
    cheat({ releaseX: () => randomBytes(256), escrowOfX: () => randomBytes(384) }),
  ];
  try {
    const card = await newCard(world);
    const id = (await world.server.store.lastTransactionId()) + 1;
    await assert.rejects(transact(world, card, { fair: true }), (e) => e instanceof StepError && e.cause instanceof FairAbortedError);
    assert.equal((await world.server.store.get(id))!.state, 'prepared', 'server holds no Y');
    assert.equal((await card.client.readRecord(1)), undefined, 'no receipt on the card');
    // The server cannot get Y later either: the TTP aborted for good.
    restore.forEach((r) => r());
    assert.equal(await world.server.service.resolveAtTtp(id), 'aborted');
  } finally {
    restore.forEach((r) => r());
  }
});

test('a client that takes X and withholds Y: the server resolves at the TTP, which extracts Y; the card gets the receipt later', async () => {
  const card = await newCard(world);
  const id = (await world.server.store.lastTransactionId()) + 1;
  await assert.rejects(transact(world, card, { fair: true, hooks: autoHooks({ onStep: (step, phase) => {
    if (step === 'exchange' && phase === 'done') throw new Error('the client walks away with X');
  } }) }), /walks away/);
  assert.equal((await world.server.store.get(id))!.state, 'prepared');
  assert.equal(await world.server.service.resolveAtTtp(id), 'resolved');
  const rec = (await world.server.store.get(id))!;
  assert.equal(rec.state, 'confirmed', 'server holds Y, from the TTP');
  assert.deepEqual((await auditStore(world.server.store, [world.signer.certificate.toString()], [world.ca.certificate])).tampered, []);
  // When the client comes back, the receipt is offered again with a fresh challenge.
  const api = new QtmApi(world.url, world.ca.certificate.toString());
  try {
    const archive = await Archive.open(join(world.dir, 'archive-returning'));
    const fetched = await fetchReceipts({ api, card: card.client, trustAnchors: [world.ca.certificate], archive, pin: PIN });
    assert.deepEqual(fetched.map((f) => f.transactionId), [id]);
  } finally {
    api.close();
  }
  assert.equal((await world.server.store.get(id))!.state, 'delivered');
});

test('a wrong escrow of Y: the server aborts at the TTP and refuses; the client cannot resolve afterwards', async () => {
  const { api, prepared } = await prepareFair();
  try {
    await assert.rejects(api.call('POST', `/transactions/${prepared.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: randomBytes(2000) }), M.decodeEscrowReply),
      (e) => e instanceof ServerError && e.serverCode === 'E_BAD_ESCROW' && /aborted at the TTP/.test(e.message));
    const rec = (await world.server.store.get(prepared.transactionId))!;
    assert.ok(rec.fairAborted?.token, 'the server holds the TTP\'s abort token');
    await assert.rejects(api.call('POST', `/transactions/${prepared.transactionId}/confirm`, M.encodeFirstMessage({ signature: randomBytes(256), challenge: randomBytes(16), slot: 1, priority: 0 }), M.decodeSecondMessage),
      (e) => e instanceof ServerError && e.serverCode === 'E_ABORTED');
  } finally {
    api.close();
  }
});

test('no escrow by the deadline: the server aborts at the TTP', async () => {
  const { api, prepared } = await prepareFair();
  try {
    assert.ok((await world.server.service.overdueFair(new Date((prepared.deadline! + 1) * 1000))).includes(prepared.transactionId));
    assert.equal(await world.server.service.resolveAtTtp(prepared.transactionId), 'aborted');
    assert.ok(!(await world.server.service.overdueFair(new Date((prepared.deadline! + 1) * 1000))).includes(prepared.transactionId));
  } finally {
    api.close();
  }
});
