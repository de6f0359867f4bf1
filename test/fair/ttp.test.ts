/**
 * The TTP (issue 6): each test ends by asserting who holds which signature. Fair means the
 * client holds X exactly when the server holds Y.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { issueCertificate } from '../../src/pki/ca.js';
import { signBytes } from '../../src/crypto/keys.js';
import { headerFor } from '../../src/proof/make-proof.js';
import { encodeHeader } from '../../src/protocol/qtm-package.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { memoryCa } from '../../src/proof/sample.js';
import { oaepEncrypt } from '../../src/fair/oaep.js';
import { makeVerifiableEscrow } from '../../src/fair/verifiable-escrow.js';
import { abortRequestStatement, escrowOfXStatement, resolveRequestStatement, Ttp, verifyAbortToken, type Exchange, type TtpAnswer } from '../../src/fair/ttp.js';
import { LogTtpStore } from '../../src/fair/ttp-store.js';
import { tempDir } from '../helpers.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const profile = PROFILES.v2;
const ca = memoryCa();
const serverKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const cardKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ttpKeys = generateKeyPairSync('rsa', { modulusLength: 3072 });
const serverCert = issueCertificate(ca, { role: 'signer', subject: 'CN=Fair Shop receipts', publicKey: serverKeys.publicKey });
const cardCert = issueCertificate(ca, { role: 'card', subject: 'CN=Fair Customer,serialNumber=0A0B0C0D0E0F1011', publicKey: cardKeys.publicKey });
let nextId = 1;

/** A fresh transaction: its header, both signatures, both escrows, as honest parties make them. */
function transaction(deadline = 1_900_000_000) {
  const signer = { certificates: [serverCert] };
  const header = encodeHeader(headerFor({ profile, transactionId: nextId++, time: Math.floor(Date.now() / 1000), content: Buffer.from('2 x paper\n'), server: signer, partyA: signer, partyB: { certificates: [cardCert] } }));
  const exchange: Exchange = { header, deadline, serverCertificates: [serverCert], cardCertificates: [cardCert] };
  const x = signBytes(profile, serverKeys.privateKey, header);
  const y = signBytes(profile, cardKeys.privateKey, header);
  return { exchange, x, y };
}

const storeOf = new WeakMap<Ttp, LogTtpStore>();
async function ttpAt(dir: string) {
  const store = await LogTtpStore.open(dir);
  const ttp = new Ttp({ store, privateKey: ttpKeys.privateKey, publicKey: ttpKeys.publicKey, trustAnchors: [ca.certificate] });
  storeOf.set(ttp, store);
  labelOf = (exchange) => ttp.label(exchange);
  return ttp;
}

/** Stops a TTP as `qtm ttp start` does on SIGTERM: its worker, then its store (and its lock). */
async function stop(ttp: Ttp) {
  await ttp.close();
  await storeOf.get(ttp)!.close();
}

/** Both escrows, with the server's signatures on its escrow of X and on its resolve request (issue 17). */
function escrows(ttp: Ttp, t: ReturnType<typeof transaction>, opts: { bogusX?: boolean; escrowYFor?: Buffer } = {}) {
  const label = ttp.label(t.exchange);
  const escrowX = oaepEncrypt(ttpKeys.publicKey, opts.bogusX ? randomBytes(256) : t.x, label);
  const escrowY = makeVerifiableEscrow({ cardKey: cardKeys.publicKey, ttpKey: ttpKeys.publicKey, label: opts.escrowYFor ?? label, message: t.exchange.header, signature: t.y });
  return {
    escrowX, escrowY,
    escrowXSignature: signBytes(profile, serverKeys.privateKey, escrowOfXStatement(label, escrowX)),
    proof: signBytes(profile, serverKeys.privateKey, resolveRequestStatement(label, escrowY)),
  };
}

/** The server's signed abort request. */
function abort(exchange: Exchange) {
  return { kind: 'abort' as const, proof: signBytes(profile, serverKeys.privateKey, abortRequestStatement(labelOf(exchange))) };
}
let labelOf: (exchange: Exchange) => Buffer;

const gotX = (a: TtpAnswer, x: Buffer) => a.outcome === 'x' && a.x.equals(x);
const gotY = (a: TtpAnswer, y: Buffer) => a.outcome === 'y' && a.y.equals(y);

test('client resolves first: it gets X, the TTP keeps Y for the server; repeats get the same answers', async (t) => {
  const ttp = await ttpAt(tempDir(t));
  const tx = transaction();
  const e = escrows(ttp, tx);
  const first = await ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature });
  assert.ok(gotX(first, tx.x));
  assert.ok(gotX(await ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature }), tx.x), 'repeated');
  // The server, which never got Y, aborts on its timeout: the TTP hands it Y instead.
  assert.ok(gotY(await ttp.handle(tx.exchange, abort(tx.exchange)), tx.y), 'client holds X, server holds Y');
  assert.ok(gotY(await ttp.handle(tx.exchange, { kind: 'resolve-server', x: tx.x, escrowY: e.escrowY, proof: e.proof }), tx.y));
});

test('Y lost in transit: the server resolves with X and the TTP extracts Y from the verifiable escrow', async (t) => {
  const ttp = await ttpAt(tempDir(t));
  const tx = transaction();
  const e = escrows(ttp, tx);
  assert.ok(gotY(await ttp.handle(tx.exchange, { kind: 'resolve-server', x: tx.x, escrowY: e.escrowY, proof: e.proof }), tx.y));
  assert.ok(gotX(await ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature }), tx.x), 'and the client can still get X');
});

test('the server aborts first: everyone gets the abort token, nobody gets a signature', async (t) => {
  const ttp = await ttpAt(tempDir(t));
  const tx = transaction();
  const e = escrows(ttp, tx);
  const aborted = await ttp.handle(tx.exchange, abort(tx.exchange));
  assert.equal(aborted.outcome, 'aborted');
  assert.ok(aborted.outcome === 'aborted' && verifyAbortToken(ttpKeys.publicKey, ttp.label(tx.exchange), aborted.token));
  assert.equal((await ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature })).outcome, 'aborted');
  assert.equal((await ttp.handle(tx.exchange, { kind: 'resolve-server', x: tx.x, escrowY: e.escrowY, proof: e.proof })).outcome, 'aborted');
});

test('a bogus escrow of X from the server: the client\'s resolve aborts, and a later server resolve fails', async (t) => {
  const ttp = await ttpAt(tempDir(t));
  const tx = transaction();
  const e = escrows(ttp, tx, { bogusX: true });
  assert.equal((await ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature })).outcome, 'aborted');
  const later = await ttp.handle(tx.exchange, { kind: 'resolve-server', x: tx.x, escrowY: e.escrowY, proof: e.proof });
  assert.equal(later.outcome, 'aborted', 'the server never gets Y');
});

test('a wrong escrow of Y (made under another label): the server\'s resolve is refused and nothing changes', async (t) => {
  const ttp = await ttpAt(tempDir(t));
  const tx = transaction();
  const e = escrows(ttp, tx, { escrowYFor: Buffer.alloc(32, 9) });
  const r = await ttp.handle(tx.exchange, { kind: 'resolve-server', x: tx.x, escrowY: e.escrowY, proof: e.proof });
  assert.equal(r.outcome, 'refused');
  assert.match(r.outcome === 'refused' ? r.reason : '', /cannot be extracted; the state is unchanged|cannot be extracted/);
  // State unchanged: the server may still abort.
  assert.equal((await ttp.handle(tx.exchange, abort(tx.exchange))).outcome, 'aborted');
});

test('abort racing a client resolve, both orders: the outcome is always fair', async (t) => {
  for (let round = 0; round < 6; round++) {
    const ttp = await ttpAt(tempDir(t));
    const tx = transaction();
    const e = escrows(ttp, tx);
    const requests = [() => ttp.handle(tx.exchange, abort(tx.exchange)), () => ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature })];
    if (round % 2) requests.reverse();
    const answers = await Promise.all(requests.map((r) => r()));
    const [server, client] = round % 2 ? [answers[1]!, answers[0]!] : [answers[0]!, answers[1]!];
    const clientHasX = gotX(client, tx.x);
    const serverHasY = gotY(server, tx.y);
    assert.equal(clientHasX, serverHasY, `round ${round}: client ${client.outcome}, server ${server.outcome}`);
    assert.equal(round % 2 ? 'resolved' : 'aborted', clientHasX ? 'resolved' : 'aborted', 'the first request wins');
  }
});

test('two TTP front-ends on one store (as instances on a shared database would be): an abort racing a client resolve, exactly one decides', async (t) => {
  // Each Ttp serialises its own requests per exchange; across front-ends only the store's
  // compare-and-set (put keeps the first decision) stands between two decisions.
  const store = await LogTtpStore.open(tempDir(t));
  const options = { store, privateKey: ttpKeys.privateKey, publicKey: ttpKeys.publicKey, trustAnchors: [ca.certificate] };
  const [a, b] = [new Ttp(options), new Ttp(options)];
  labelOf = (exchange) => a.label(exchange);
  for (let round = 0; round < 6; round++) {
    const tx = transaction();
    const e = escrows(a, tx);
    const aborting = () => a.handle(tx.exchange, abort(tx.exchange));
    const resolving = () => b.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature });
    const [server, client] = round % 2
      ? (await Promise.all([resolving(), aborting()])).reverse() as [TtpAnswer, TtpAnswer]
      : await Promise.all([aborting(), resolving()]);
    const stored = await store.get(a.label(tx.exchange).toString('hex'));
    assert.equal(gotX(client, tx.x), gotY(server, tx.y), `round ${round}: client ${client.outcome}, server ${server.outcome}`);
    if (stored!.state === 'aborted') {
      // Both were answered from the one stored decision: the same token, never a second one.
      assert.ok(server.outcome === 'aborted' && client.outcome === 'aborted' && server.token.equals(client.token), `round ${round}`);
      assert.equal(server.token.toString('base64'), stored!.token);
    } else {
      assert.ok(gotX(client, tx.x) && gotY(server, tx.y), `round ${round}`);
    }
    assert.ok(await a.handle(tx.exchange, abort(tx.exchange)).then((r) => r.outcome === (stored!.state === 'aborted' ? 'aborted' : 'y')), 'a later request gets the same decision');
  }
  assert.equal(await store.count(), 6, 'one record per exchange');
  await a.close();
  await b.close();
  await store.close();
  assert.equal(readFileSync(join(store.directory, 'ttp.log'), 'utf8').trim().split('\n').length, 6, 'one line per exchange: the loser wrote nothing');
});

test('refusals: wrong deposits, another first message or deadline for the same transaction, untrusted parties', async (t) => {
  const ttp = await ttpAt(tempDir(t));
  const tx = transaction();
  const e = escrows(ttp, tx);
  assert.match(JSON.stringify(await ttp.handle(tx.exchange, { kind: 'resolve-client', y: randomBytes(256), escrowX: e.escrowX, escrowXSignature: e.escrowXSignature })), /not the card's signature/);
  assert.match(JSON.stringify(await ttp.handle(tx.exchange, { kind: 'resolve-server', x: tx.y, escrowY: e.escrowY, proof: e.proof })), /not the server's signature/);
  assert.match(JSON.stringify(await ttp.handle(tx.exchange, { kind: 'abort', proof: signBytes(profile, cardKeys.privateKey, abortRequestStatement(ttp.label(tx.exchange))) })), /only the originator/);
  assert.ok(gotX(await ttp.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature }), tx.x));
  // Records are keyed by the label (issue 17), not by the transaction ID: another package or
  // deadline with the same ID is another exchange, and whatever happens to it leaves this one
  // resolved. (Refusing it "as known with another first message" let a squatter block the real one.)
  const changed = Buffer.from(tx.exchange.header);
  changed[changed.length - 65]! ^= 1; // the last byte of the content ID (fields 6 and 7 are 32 bytes each)
  const other = { ...tx.exchange, header: changed };
  assert.equal((await ttp.handle(other, abort(other))).outcome, 'aborted');
  const later = { ...tx.exchange, deadline: tx.exchange.deadline + 1 };
  assert.equal((await ttp.handle(later, abort(later))).outcome, 'aborted');
  assert.ok(gotY(await ttp.handle(tx.exchange, abort(tx.exchange)), tx.y), 'the exchange itself is still resolved');
  const stranger = memoryCa();
  const foreign = issueCertificate(stranger, { role: 'card', subject: 'CN=Elsewhere', publicKey: cardKeys.publicKey });
  assert.match(JSON.stringify(await ttp.handle({ ...tx.exchange, cardCertificates: [foreign] }, abort(tx.exchange))), /card certificate is not trusted/);
});

test('a TTP restart between requests keeps every decision', async (t) => {
  const dir = tempDir(t);
  const tx = transaction();
  const before = await ttpAt(dir);
  const e = escrows(before, tx);
  assert.equal((await before.handle(tx.exchange, abort(tx.exchange))).outcome, 'aborted');
  await stop(before);
  const after = await ttpAt(dir);
  assert.equal((await after.handle(tx.exchange, { kind: 'resolve-client', y: tx.y, escrowX: e.escrowX, escrowXSignature: e.escrowXSignature })).outcome, 'aborted', 'the abort survived the restart');
});
