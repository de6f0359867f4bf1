/**
 * Issue 17, section 2: what a card holder (or another shop) can send the TTP. Each attack is
 * built by hand, sent over HTTPS to real `qtm ttp start` and `qtm server start --ttp` processes,
 * and ends asserting the refusal's code and who holds what once the server settled the exchange.
 * The attacker has nothing but her card (and its PIN), its certificate, and what the server
 * sent her; "another shop" has its own receipt-signing identity from the same CA.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { fingerprint, keyFingerprint, signBytes, verifyBytes } from '../../src/crypto/keys.js';
import { QtmApi, ServerError } from '../../src/client/api.js';
import { openAndAuthenticate, runTransaction } from '../../src/client/transaction.js';
import { transactionLabel } from '../../src/fair/label.js';
import { oaepEncrypt } from '../../src/fair/oaep.js';
import { abortRequestStatement, escrowOfXStatement, resolveRequestStatement, type Exchange, type TtpRequest } from '../../src/fair/ttp.js';
import { encodeTtpRequest, TTP_PATHS } from '../../src/fair/ttp-messages.js';
import { makeVerifiableEscrow } from '../../src/fair/verifiable-escrow.js';
import { headerFor } from '../../src/proof/make-proof.js';
import * as M from '../../src/protocol/messages.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { encodeHeader } from '../../src/protocol/qtm-package.js';
import { FairProcesses, PIN, postJson } from './fair-processes.js';

const profile = PROFILES.v2;
const DEADLINE_SECONDS = 5;
let w: FairProcesses;

before(async () => {
  w = await FairProcesses.start(DEADLINE_SECONDS);
});
after(async () => {
  await w?.stop();
});

const hooks = { accept: async () => true, pin: async () => PIN };

/** The attacker's honest start: her card authenticated, a fair transaction prepared, Y signed, the escrow of Y made. */
async function begin() {
  const card = await w.newCard();
  const api = new QtmApi(w.server.url, w.caPem);
  const { certificate } = await openAndAuthenticate(api, card.client, PIN, hooks, {});
  const order = await api.call('POST', '/orders', { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, M.decodeConceptOrder);
  const p = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64'), fair: true }, M.decodePrepared);
  const y = await card.client.signHeader(p.header);
  const ttpCert = new X509Certificate(p.ttpCertificates![0]!);
  const label = (header: Buffer, deadline = p.deadline!) => transactionLabel({ header, ttpFingerprint: Buffer.from(keyFingerprint(ttpCert.publicKey), 'hex'), deadline });
  const escrowY = makeVerifiableEscrow({ cardKey: certificate.publicKey, ttpKey: ttpCert.publicKey, label: label(p.header), message: p.header, signature: y });
  const exchange: Exchange = { header: p.header, deadline: p.deadline!, serverCertificates: p.serverCertificates.map((c) => new X509Certificate(c)), cardCertificates: [certificate] };
  return { card, api, certificate, p, y, ttpCert, label, escrowY, exchange };
}

/** Sends a TTP request built by hand (any exchange, any fields) and returns status, code and answer. */
async function toTtp(exchange: Exchange, request: TtpRequest) {
  const r = await postJson(w.ttp.url, TTP_PATHS[request.kind], encodeTtpRequest(exchange, request), w.caPem);
  return { status: r.status, code: (r.body.error as { code?: string } | undefined)?.code, outcome: r.body.outcome as string | undefined, body: r.body };
}

/** A pre-QTM package the server never made: any fields the attacker likes. */
function forgedHeader(o: { transactionId: number; server: X509Certificate; partyA?: X509Certificate; card: X509Certificate; content?: string }) {
  return encodeHeader(headerFor({
    profile, transactionId: o.transactionId, time: Math.floor(Date.now() / 1000), content: Buffer.from(o.content ?? '1 x PAPER-A4 (squatted)\n'),
    server: { certificates: [o.server] }, partyA: { certificates: [o.partyA ?? o.server] }, partyB: { certificates: [o.card] },
  }));
}

/** The client holds X when a signature it received verifies with the server's key over the package. */
const validX = (header: Buffer, x: Buffer | undefined) => x !== undefined && verifyBytes(profile, w.ids.receipts.certificate.publicKey, header, x);

/** An honest fair transaction that the server prepares next: it must end with both signatures. */
async function honestNext(): Promise<number> {
  const card = await w.newCard();
  const api = new QtmApi(w.server.url, w.caPem);
  try {
    const r = await runTransaction({ api, card: card.client, trustAnchors: [w.ca.certificate], archive: card.archive, order: { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }, hooks, fair: true });
    assert.deepEqual(r.fair, { xFrom: 'server' });
    assert.ok((await w.holdsY(r.transactionId)), 'the honest exchange ends with the server holding Y');
    return r.transactionId;
  } finally {
    api.close();
  }
}

describe('a card holder against the TTP (issue 17, section 2)', () => {
  test('after X, resolve with a bogus escrow of X (or a genuine one with a forged signature): 403 E_TTP_NOT_SIGNED; the server still gets Y', async () => {
    const a = await begin();
    const { x } = await a.api.call('POST', `/transactions/${a.p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: a.escrowY }), M.decodeEscrowReply);
    assert.ok(validX(a.p.header, x), 'she holds X');
    const bogus = oaepEncrypt(a.ttpCert.publicKey, randomBytes(256), a.label(a.p.header));
    for (const [escrowX, escrowXSignature] of [
      [bogus, randomBytes(256)],
      [bogus, a.p.escrowXSignature!], // the server's signature covers SHA-256 of its own escrow
      [a.p.escrowX!, signBytes(profile, issueKeyAndCertificate(w.ca, { role: 'signer', subject: 'CN=Not the shop' }).privateKey, escrowOfXStatement(a.label(a.p.header), a.p.escrowX!))],
    ] as const) {
      const r = await toTtp(a.exchange, { kind: 'resolve-client', y: a.y, escrowX, escrowXSignature });
      assert.equal(r.status, 403);
      assert.equal(r.code, 'E_TTP_NOT_SIGNED');
    }
    a.api.close(); // she walks away with X and never sends Y
    const rec = await w.settled(a.p.transactionId);
    assert.ok(rec.resolved, 'the TTP was left NONE, so the server resolved and the TTP extracted Y');
    assert.ok((await w.holdsY(a.p.transactionId)), 'client holds X, server holds Y: fair');
  });

  test('squat the server\'s next transaction ID with her card certificate as "server": 403 E_TTP_ROLES; the real exchange ends fair', async () => {
    const a = await begin();
    a.api.close();
    const next = a.p.transactionId + 1;
    const header = forgedHeader({ transactionId: next, server: a.certificate, card: a.certificate });
    const exchange: Exchange = { header, deadline: a.p.deadline!, serverCertificates: [a.certificate], cardCertificates: [a.certificate] };
    const y = await a.card.client.signHeader(header);
    for (const request of [
      { kind: 'abort', proof: randomBytes(256) },
      { kind: 'resolve-client', y, escrowX: oaepEncrypt(a.ttpCert.publicKey, randomBytes(256), a.label(header)), escrowXSignature: randomBytes(256) },
    ] satisfies TtpRequest[]) {
      const r = await toTtp(exchange, request);
      assert.equal(r.status, 403);
      assert.equal(r.code, 'E_TTP_ROLES', JSON.stringify(r.body));
    }
    assert.equal(await honestNext(), next);
    await w.settled(a.p.transactionId); // her own exchange: aborted at its deadline, nothing held
  });

  test('squat it with the real server certificate and a package the server never made: 403 E_TTP_NOT_SIGNED, no record; the real exchange ends fair', async () => {
    const a = await begin();
    a.api.close();
    const next = a.p.transactionId + 1;
    const server = w.ids.receipts.certificate;
    const header = forgedHeader({ transactionId: next, server, card: a.certificate });
    const exchange: Exchange = { header, deadline: a.p.deadline!, serverCertificates: [server], cardCertificates: [a.certificate] };
    const y = await a.card.client.signHeader(header);
    const escrowX = oaepEncrypt(a.ttpCert.publicKey, randomBytes(256), a.label(header));
    const resolve = await toTtp(exchange, { kind: 'resolve-client', y, escrowX, escrowXSignature: randomBytes(256) });
    assert.deepEqual([resolve.status, resolve.code], [403, 'E_TTP_NOT_SIGNED']);
    // The card signs only packages (6A80 for anything else): her best proof is her card's Y.
    const abort = await toTtp(exchange, { kind: 'abort', proof: y });
    assert.deepEqual([abort.status, abort.code], [403, 'E_TTP_NOT_SIGNED'], 'the card cannot sign for the server');
    const resolveServer = await toTtp(exchange, { kind: 'resolve-server', x: randomBytes(256), escrowY: a.escrowY, proof: randomBytes(256) });
    assert.deepEqual([resolveServer.status, resolveServer.code], [403, 'E_TTP_NOT_SIGNED']);
    assert.equal(await honestNext(), next);
  });

  test('another shop squats the ID through /v1/abort with its own receipt key: roles refuse it, or it is only its own exchange', async () => {
    const a = await begin();
    a.api.close();
    const next = a.p.transactionId + 1;
    const other = issueKeyAndCertificate(w.ca, { role: 'signer', subject: 'CN=Other shop receipts' });
    // Field 2 names the victim shop, field 6 and the certificate the other shop.
    const victim = forgedHeader({ transactionId: next, server: w.ids.receipts.certificate, partyA: other.certificate, card: a.certificate });
    const asVictim: Exchange = { header: victim, deadline: a.p.deadline!, serverCertificates: [other.certificate], cardCertificates: [a.certificate] };
    const r = await toTtp(asVictim, { kind: 'abort', proof: signBytes(profile, other.privateKey, abortRequestStatement(a.label(victim))) });
    assert.deepEqual([r.status, r.code], [403, 'E_TTP_ROLES']);
    // Its own server ID with the same transaction ID: a different label, a different record.
    const own = forgedHeader({ transactionId: next, server: other.certificate, card: a.certificate });
    const ownExchange: Exchange = { header: own, deadline: a.p.deadline!, serverCertificates: [other.certificate], cardCertificates: [a.certificate] };
    const ownAbort = await toTtp(ownExchange, { kind: 'abort', proof: signBytes(profile, other.privateKey, abortRequestStatement(a.label(own))) });
    assert.equal(ownAbort.outcome, 'aborted');
    assert.ok(!fingerprint(other.certificate.publicKey, profile).equals(fingerprint(w.ids.receipts.certificate.publicKey, profile)));
    assert.equal(await honestNext(), next, 'the victim\'s exchange with that ID is untouched');
  });

  test('after X on her own transaction, squat its ID with another package and never send Y: refused; the server resolves and holds Y', async () => {
    const a = await begin();
    const { x } = await a.api.call('POST', `/transactions/${a.p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: a.escrowY }), M.decodeEscrowReply);
    a.api.close();
    assert.ok(validX(a.p.header, x));
    const squat = forgedHeader({ transactionId: a.p.transactionId, server: w.ids.receipts.certificate, card: a.certificate, content: 'nothing at all\n' });
    const exchange: Exchange = { ...a.exchange, header: squat };
    const y = await a.card.client.signHeader(squat);
    const r = await toTtp(exchange, { kind: 'resolve-client', y, escrowX: oaepEncrypt(a.ttpCert.publicKey, randomBytes(256), a.label(squat)), escrowXSignature: a.p.escrowXSignature! });
    assert.deepEqual([r.status, r.code], [403, 'E_TTP_NOT_SIGNED']);
    const rec = await w.settled(a.p.transactionId);
    assert.ok(rec.resolved, 'the server\'s resolve was not blocked');
    assert.ok((await w.holdsY(a.p.transactionId)), 'client holds X, server holds Y: fair');
  });

  test('X is no authentication: a client holding X cannot resolve as the server (403 E_TTP_NOT_SIGNED, nothing decrypted, state unchanged)', async () => {
    const a = await begin();
    const { x } = await a.api.call('POST', `/transactions/${a.p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: a.escrowY }), M.decodeEscrowReply);
    const started = performance.now();
    const r = await toTtp(a.exchange, { kind: 'resolve-server', x, escrowY: a.escrowY, proof: randomBytes(256) });
    const ms = performance.now() - started;
    assert.deepEqual([r.status, r.code], [403, 'E_TTP_NOT_SIGNED']);
    assert.ok(ms < 500, `refused before any decryption (${ms.toFixed(0)} ms)`);
    // Nothing was decided: she can still resolve honestly and gets X; the server then holds Y.
    const honest = await toTtp(a.exchange, { kind: 'resolve-client', y: a.y, escrowX: a.p.escrowX!, escrowXSignature: a.p.escrowXSignature! });
    assert.equal(honest.outcome, 'x');
    const confirm = await a.api.call('POST', `/transactions/${a.p.transactionId}/confirm`, M.encodeFirstMessage({ signature: a.y, challenge: await a.card.client.getChallenge(), slot: 1, priority: 0 }), M.decodeSecondMessage);
    a.api.close();
    assert.equal(confirm.transactionId, a.p.transactionId);
    assert.ok((await w.holdsY(a.p.transactionId)));
  });

  test('the client tries to abort: 403 E_TTP_NOT_SIGNED (only the originator aborts); the exchange then completes', async () => {
    const a = await begin();
    const r = await toTtp(a.exchange, { kind: 'abort', proof: a.y }); // the only signature her card makes
    assert.deepEqual([r.status, r.code], [403, 'E_TTP_NOT_SIGNED']);
    const { x } = await a.api.call('POST', `/transactions/${a.p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: a.escrowY }), M.decodeEscrowReply);
    await a.api.call('POST', `/transactions/${a.p.transactionId}/confirm`, M.encodeFirstMessage({ signature: a.y, challenge: await a.card.client.getChallenge(), slot: 1, priority: 0 }), M.decodeSecondMessage);
    a.api.close();
    assert.ok(validX(a.p.header, x) && (await w.holdsY(a.p.transactionId)));
  });
});

describe('the server\'s abort whose answer is lost, and a late escrow (issue 17, section 2)', () => {
  test('abort unanswered (TTP down): a later valid escrow gets 409 E_ABORTING, no X; once the TTP answers, the exchange settles fair', async () => {
    const a = await begin();
    const port = w.ttpPort;
    await w.ttp.stop();
    try {
      await assert.rejects(a.api.call('POST', `/transactions/${a.p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: randomBytes(3000) }), M.decodeEscrowReply),
        (e) => e instanceof ServerError && e.serverCode === 'E_BAD_ESCROW' && /waits for its answer/.test(e.message));
      assert.ok((await w.record(a.p.transactionId))!.fairAbortIntent, 'the intent to abort was stored before the request left');
      await assert.rejects(a.api.call('POST', `/transactions/${a.p.transactionId}/escrow`, M.encodeEscrowMessage({ escrowY: a.escrowY }), M.decodeEscrowReply),
        (e) => e instanceof ServerError && e.status === 409 && e.serverCode === 'E_ABORTING');
      await assert.rejects(a.api.call('POST', `/transactions/${a.p.transactionId}/confirm`, M.encodeFirstMessage({ signature: a.y, challenge: await a.card.client.getChallenge(), slot: 1, priority: 0 }), M.decodeSecondMessage),
        (e) => e instanceof ServerError && e.status === 409 && e.serverCode === 'E_ABORTING');
    } finally {
      await w.startTtp(port);
    }
    // The first message again: the server asks the TTP first, which aborts now (it never got the
    // lost request); the client holds nothing, the server nothing.
    await assert.rejects(a.api.call('POST', `/transactions/${a.p.transactionId}/confirm`, M.encodeFirstMessage({ signature: a.y, challenge: await a.card.client.getChallenge(), slot: 1, priority: 0 }), M.decodeSecondMessage),
      (e) => e instanceof ServerError && e.serverCode === 'E_ABORTED');
    a.api.close();
    const rec = await w.settled(a.p.transactionId);
    assert.ok(rec.fairAborted?.token);
    assert.equal((await w.holdsY(a.p.transactionId)), false, 'neither holds the other\'s signature');
    const late = await toTtp(a.exchange, { kind: 'resolve-client', y: a.y, escrowX: a.p.escrowX!, escrowXSignature: a.p.escrowXSignature! });
    assert.equal(late.outcome, 'aborted', 'Y is never released after an abort, and the client gets no X');
  });
});
