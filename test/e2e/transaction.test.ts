/**
 * Claims 1-9 end to end over real HTTPS on loopback with in-process virtual cards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, verify, X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { QtmApi, ServerError } from '../../src/client/api.js';
import { Archive } from '../../src/client/archive.js';
import { fetchReceipts } from '../../src/client/fetch-receipts.js';
import { DeclinedError, StepError } from '../../src/client/transaction.js';
import { decodeBundle } from '../../src/bundle/proof-bundle.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { CardStatusError, SW, WrongPinError } from '../../src/card/status-words.js';
import { AUTH_PREFIX } from '../../src/card/app-spec.js';
import * as M from '../../src/protocol/messages.js';
import { decodePackage } from '../../src/protocol/qtm-package.js';
import { PlainTextError } from '../../src/protocol/plain-text.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { authenticationData } from '../../src/protocol/card-authentication.js';
import { auditStore } from '../../src/server/audit.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { LogStore } from '../../src/store/log-store.js';
import { autoHooks, makeWorld, newCard, PIN, transact, type World } from './env.js';

let world: World;
before(async () => {
  world = await makeWorld();
});
after(async () => {
  await world.close();
});

/** A client API whose responses a test can rewrite, standing for a compromised server or network. */
class TamperingApi extends QtmApi {
  constructor(
    url: string,
    trust: string,
    private readonly tamper: (method: string, path: string, body: unknown, json: unknown) => unknown,
    private readonly drop: (path: string) => boolean = () => false,
  ) {
    super(url, trust);
  }
  override async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, decode?: (j: unknown) => T): Promise<T> {
    if (this.drop(path)) throw new Error('connection lost');
    const raw = await super.call<unknown>(method, path, body);
    const json = this.tamper(method, path, body, raw);
    return decode ? decode(json) : (json as T);
  }
}

/**
 * Authenticates a card on a new API connection (for direct protocol tests). With `reselect`
 * false the card session continues as it is (PIN verified, pending challenge kept).
 */
async function authenticated(card: Awaited<ReturnType<typeof newCard>>, reselect = true) {
  const api = new QtmApi(world.url, world.ca.certificate.toString());
  if (reselect) {
    await card.client.select();
    await card.client.verifyPin(PIN);
  }
  const cert = await card.client.readCertificate();
  const { nonce } = await api.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
  const signature = await card.client.internalAuthenticate(authenticationData(api.exporter(nonce), nonce));
  await api.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert.toString()], nonce, signature }));
  return { api, cert };
}

test('claim 1: both sides end with the record and each other\'s signature; receipt on the card', async () => {
  const card = await newCard(world);
  const r = await transact(world, card);
  // Client side: the archived bundle verifies offline.
  const bundle = decodeBundle(readFileSync(r.bundleFile, 'utf8'));
  assert.equal(verifyBundle(bundle, { trustAnchors: [world.ca.certificate] }).valid, true);
  // Server side: record, first message, client certificate stored; delivered.
  const rec = (await world.server.store.get(r.transactionId))!;
  assert.equal(rec.state, 'delivered');
  assert.deepEqual(Buffer.from(rec.prepared.content, 'base64'), bundle.content);
  assert.match(rec.prepared.clientCertificate, /BEGIN CERTIFICATE/);
  assert.equal(rec.confirmed!.firstMessage.signatureB, Buffer.from(decodePackage(bundle.package).signatureB).toString('base64'));
  // Card: the receipt is in the slot, equal to the bundle's card record.
  assert.deepEqual(await card.client.readRecord(r.slot), bundle.cardRecord);
  assert.ok(r.apdus <= 16, `${r.apdus} APDUs`);
  // One structured log line per request.
  assert.ok(world.logs.some((l) => l.path === `/transactions/${r.transactionId}/ack` && l.status === 200 && typeof l.ms === 'number'));
});

test('what you see is what you sign: the client refuses a concept order with confusables or not in NFC, before showing or signing it', async () => {
  const attacks: [string, (t: string) => string, RegExp][] = [
    ['a Cyrillic a in a Latin word', (t) => t.replace('Order', 'Pay \u0430pple'), /the word "\u0430pple" mixes Latin and Cyrillic letters/],
    ['a decomposed accent', (t) => t.replace('Order', 'Cafe\u0301'), /not in Unicode NFC: U\+0065 U\+0301 is U\+00E9/],
    ['U+0336 over the digits', (t) => t.replace(/(\d)\.(\d\d)/, '$1\u0336.$2'), /combining mark U\+0336 .* on U\+003\d "\d", not a letter/],
    ['fifty stacked marks', (t) => t.replace('Order', 'Orde' + 'r' + '\u0301'.repeat(50)), /repeated on one character|stacked/],
    ['a braille blank', (t) => t.replace('Order ', 'Order\u2800'), /U\+2800 .* is not in a script recommended for text/],
  ];
  for (const [name, rewrite, pattern] of attacks) {
    const card = await newCard(world);
    const api = new TamperingApi(world.url, world.ca.certificate.toString(), (m, path, _b, json) => {
      if (m === 'POST' && path === '/orders') {
        const j = json as { content: string };
        return { ...j, content: Buffer.from(rewrite(Buffer.from(j.content, 'base64').toString('utf8'))).toString('base64') };
      }
      return json;
    });
    const shown: Buffer[] = [];
    const slotsBefore = card.storage.load().slots;
    await assert.rejects(transact(world, card, { api, hooks: autoHooks({ accept: async (c: Buffer) => (shown.push(c), true) }) }),
      (e) => e instanceof StepError && e.step === 'order' && e.code === 'E_PLAIN_TEXT' && pattern.test(e.message), name);
    assert.equal(shown.length, 0, `${name}: never shown for acceptance`);
    assert.deepEqual(card.storage.load().slots, slotsBefore, `${name}: nothing written to the card`);
  }
});

test('claim 1: a record tampered with on the way is refused by the client before signing', async () => {
  const card = await newCard(world);
  const api = new TamperingApi(world.url, world.ca.certificate.toString(), (m, path, _b, json) => {
    if (m === 'POST' && path === '/transactions') {
      const j = json as { content: string };
      return { ...j, content: Buffer.from(Buffer.from(j.content, 'base64').toString().replace('2 x', '9 x')).toString('base64') };
    }
    return json;
  });
  const slotsBefore = card.storage.load().slots;
  await assert.rejects(transact(world, card, { api }), (e) => e instanceof StepError && e.step === 'prepare' && /content other than the order/.test(e.message));
  assert.deepEqual(card.storage.load().slots, slotsBefore);
});

test('claim 1: a second message with a forged server signature is refused, nothing is written', async () => {
  const card = await newCard(world);
  const api = new TamperingApi(world.url, world.ca.certificate.toString(), (_m, path, _b, json) => {
    if (path.endsWith('/confirm')) {
      const j = json as { package: string };
      const pkg = Buffer.from(j.package, 'base64');
      pkg[pkg.length - 5]! ^= 0xff;
      return { ...j, package: pkg.toString('base64') };
    }
    return json;
  });
  const slotsBefore = card.storage.load().slots;
  await assert.rejects(transact(world, card, { api }), (e) => e instanceof StepError && e.step === 'verify' && /signature-server/.test(e.message));
  assert.deepEqual(card.storage.load().slots, slotsBefore);
});

test('claim 1: a wrong client signature is refused by the server and nothing is confirmed', async () => {
  const card = await newCard(world);
  const { api } = await authenticated(card);
  try {
    const order = await api.call('POST', '/orders', { items: [{ sku: 'NOTEBOOK', quantity: 1 }] }, M.decodeConceptOrder);
    const prepared = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64') }, M.decodePrepared);
    const bad = M.encodeFirstMessage({ signature: randomBytes(256), challenge: randomBytes(16), slot: 1, priority: 0 });
    await assert.rejects(api.call('POST', `/transactions/${prepared.transactionId}/confirm`, bad), (e) => e instanceof ServerError && e.status === 403 && e.serverCode === 'E_BAD_SIGNATURE');
    assert.equal((await world.server.store.get(prepared.transactionId))!.state, 'prepared');
  } finally {
    api.close();
  }
});

test('claim 1: replayed first messages: same one is idempotent, a different one is refused, one for another transaction fails', async () => {
  const card = await newCard(world);
  const { api } = await authenticated(card);
  try {
    const prepareOne = async () => {
      const order = await api.call('POST', '/orders', { items: [{ sku: 'STAPLER', quantity: 1 }] }, M.decodeConceptOrder);
      return api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64') }, M.decodePrepared);
    };
    const p1 = await prepareOne();
    const p2 = await prepareOne();
    const sig1 = await card.client.signHeader(p1.header);
    const first = M.encodeFirstMessage({ signature: sig1, challenge: await card.client.getChallenge(), slot: 1, priority: 0 });
    const a = await api.call('POST', `/transactions/${p1.transactionId}/confirm`, first);
    const b = await api.call('POST', `/transactions/${p1.transactionId}/confirm`, first);
    assert.deepEqual(a, b, 'retrying the same first message returns the same second message');
    const other = { ...first, challenge: randomBytes(16).toString('base64') };
    await assert.rejects(api.call('POST', `/transactions/${p1.transactionId}/confirm`, other), (e) => e instanceof ServerError && e.status === 409);
    await assert.rejects(api.call('POST', `/transactions/${p2.transactionId}/confirm`, first), (e) => e instanceof ServerError && e.serverCode === 'E_BAD_SIGNATURE');
  } finally {
    api.close();
  }
});

test('claims 3, 7: a secure write replayed onto the card is refused and changes nothing', async () => {
  const card = await newCard(world);
  let envelope: Buffer | undefined;
  let slot = 0;
  const api = new TamperingApi(world.url, world.ca.certificate.toString(), (_m, path, _b, json) => {
    if (path.endsWith('/confirm')) {
      envelope = Buffer.from((json as { envelope: string }).envelope, 'base64');
      slot = (json as { slot: number }).slot;
    }
    return json;
  });
  await transact(world, card, { api });
  const slots = JSON.stringify(card.storage.load().slots);
  await assert.rejects(card.client.secureWrite(slot, envelope!), (e) => e instanceof CardStatusError && e.sw === SW.REFERENCE_DATA_UNUSABLE);
  await card.client.getChallenge();
  await assert.rejects(card.client.secureWrite(slot, envelope!), (e) => e instanceof CardStatusError && e.sw === SW.SM_DATA_INCORRECT);
  assert.equal(JSON.stringify(card.storage.load().slots), slots);
});

test('claim 7: a lost third message leaves the receipt pending; the client fetches it again with a fresh challenge', async () => {
  const card = await newCard(world);
  const archive = await Archive.open(join(world.dir, 'archive-lost-ack'));
  const api = new TamperingApi(world.url, world.ca.certificate.toString(), (_m, _p, _b, json) => json, (path) => path.endsWith('/ack'));
  await assert.rejects(transact(world, card, { api, archive }), /connection lost/);
  const pendingTx = (await world.server.store.lastTransactionId());
  assert.equal((await world.server.store.get(pendingTx))!.state, 'confirmed');
  assert.equal(archive.proofs.find((p) => p.transactionId === pendingTx)?.state, 'received', 'the proof was archived before the card write');
  const used = card.storage.load().slots.filter(Boolean).length;

  const api2 = new QtmApi(world.url, world.ca.certificate.toString());
  try {
    const done = await fetchReceipts({ api: api2, card: card.client, trustAnchors: [world.ca.certificate], archive, pin: PIN });
    assert.deepEqual(done.map((d) => [d.transactionId, d.rewritten]), [[pendingTx, true]]);
  } finally {
    api2.close();
  }
  assert.equal((await world.server.store.get(pendingTx))!.state, 'delivered');
  assert.equal(card.storage.load().slots.filter(Boolean).length, used, 'rewritten in its own slot, no slot used twice');
  assert.equal(archive.proofs.find((p) => p.transactionId === pendingTx)?.state, 'delivered');
});

test('the server killed after storing and before replying: the retried first message gets the stored answer', async () => {
  const card = await newCard(world);
  const { api } = await authenticated(card);
  let first: ReturnType<typeof M.encodeFirstMessage>;
  let txId: number;
  try {
    const order = await api.call('POST', '/orders', { items: [{ sku: 'INK-BLUE', quantity: 2 }] }, M.decodeConceptOrder);
    const prepared = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64') }, M.decodePrepared);
    txId = prepared.transactionId;
    first = M.encodeFirstMessage({ signature: await card.client.signHeader(prepared.header), challenge: await card.client.getChallenge(), slot: 2, priority: 0 });
    // The service stores the confirmation; the reply never reaches the client.
    const cert = await card.client.readCertificate();
    const id = { certificates: [cert], cardSerial: card.issued.serial, cardKey: keyFingerprint(cert.publicKey), subject: '', profile: (await import('../../src/protocol/profile.js')).PROFILES.v2 };
    await world.server.service.confirm(id, txId, M.decodeFirstMessage(first));
  } finally {
    api.close();
  }
  await world.restart(); // the store is reopened from disk
  const again = await authenticated(card, false); // the client's card session (and its R) survived
  try {
    const second = await again.api.call('POST', `/transactions/${txId}/confirm`, first, M.decodeSecondMessage);
    const w = await card.client.secureWrite(2, second.envelope);
    await again.api.call('POST', `/transactions/${txId}/ack`, M.encodeThirdMessage({ transactionId: txId, proof: w }));
    assert.equal((await world.server.store.get(txId))!.state, 'delivered');
  } finally {
    again.api.close();
  }
});

test('claim 6: a full card replaces the lowest-priority, oldest receipt, archived first', async () => {
  const card = await newCard(world, 2);
  const archive = await Archive.open(join(world.dir, 'archive-full'));
  const a = await transact(world, card, { archive, priority: 5 });
  const b = await transact(world, card, { archive, priority: 1 });
  const c = await transact(world, card, { archive, priority: 9 });
  assert.deepEqual([a.slot, b.slot, c.slot], [1, 2, 2]);
  assert.equal(c.replaced?.record?.transactionId, b.transactionId);
  assert.equal(archive.replaced.length, 1);
  assert.equal(archive.replaced[0]!.slot, 2);
  assert.equal(Buffer.from(archive.replaced[0]!.record, 'hex').readUInt32BE(1), b.transactionId);
  assert.equal(archive.proofs.length, 3, 'all three proofs stay in the archive');
});

test('claim 8: content with a bidi override is refused by the client, naming the character and position', async () => {
  const card = await newCard(world);
  const api = new TamperingApi(world.url, world.ca.certificate.toString(), (_m, path, _b, json) => {
    if (path === '/orders') {
      const j = json as { content: string };
      return { ...j, content: Buffer.from(Buffer.from(j.content, 'base64').toString().replace('Total', 'Total \u202E')).toString('base64') };
    }
    return json;
  });
  let shown = false;
  await assert.rejects(transact(world, card, { api, hooks: autoHooks({ accept: async () => (shown = true) }) }),
    (e) => e instanceof StepError && e.step === 'order' && e.cause instanceof PlainTextError && /bidirectional control U\+202E at byte \d+ \(line \d+, column \d+\)/.test(e.message));
  assert.equal(shown, false, 'never shown, never signed');
});

test('declining or a wrong PIN leaves no trace on the card or the server', async () => {
  const card = await newCard(world);
  const before = { slots: JSON.stringify(card.storage.load().slots), last: (await world.server.store.lastTransactionId()) };
  await assert.rejects(transact(world, card, { hooks: autoHooks({ accept: async () => false }) }), DeclinedError);
  await assert.rejects(transact(world, card, { hooks: autoHooks({ pin: async () => '000000' }) }), (e) => e instanceof StepError && e.step === 'card' && e.cause instanceof WrongPinError);
  assert.equal(JSON.stringify(card.storage.load().slots), before.slots);
  assert.equal((await world.server.store.lastTransactionId()), before.last, 'no transaction prepared');
});

test('claim 9: card authentication is bound to its TLS session; a relayed signature fails', async () => {
  const card = await newCard(world);
  await card.client.select();
  await card.client.verifyPin(PIN);
  const cert = (await card.client.readCertificate()).toString();
  const a = new QtmApi(world.url, world.ca.certificate.toString());
  const b = new QtmApi(world.url, world.ca.certificate.toString());
  try {
    const { nonce: nonceA } = await a.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
    const { nonce: nonceB } = await b.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
    // The card signs connection A's exporter, and someone presents it on connection B.
    const sigForA = await card.client.internalAuthenticate(authenticationData(a.exporter(nonceB), nonceB));
    await assert.rejects(b.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert], nonce: nonceB, signature: sigForA })), (e) => e instanceof ServerError && e.status === 403);
    // Unauthenticated connections cannot prepare transactions.
    await assert.rejects(b.call('POST', '/transactions', { orderId: 'x' }), (e) => e instanceof ServerError && e.status === 401);
    // The honest path on A still works, once (the nonce is spent by the failure on B only for B).
    const data = authenticationData(a.exporter(nonceA), nonceA);
    const sig = await card.client.internalAuthenticate(data);
    await a.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert], nonce: nonceA, signature: sig }));
    // The card really signed "QTM-AUTH" || data (docs/CARD.md), never the data alone: an
    // authentication signature cannot stand for a package signature.
    const cardKey = new X509Certificate(cert).publicKey;
    assert.deepEqual(AUTH_PREFIX, Buffer.from('51544D2D41555448', 'hex'));
    assert.ok(verify('sha256', Buffer.concat([Buffer.from('QTM-AUTH', 'ascii'), data]), cardKey, sig), 'signature over the documented prefix and the data');
    assert.ok(!verify('sha256', data, cardKey, sig), 'not over the data without the prefix');
  } finally {
    a.close();
    b.close();
  }
});

test('claim 9 with TLS session resumption: a resumed connection carries no login, and an authentication made on the first is refused on it', async () => {
  const card = await newCard(world);
  const { api: first, cert } = await authenticated(card);
  let session: Buffer | undefined;
  const ticketed = new QtmApi(world.url, world.ca.certificate.toString(), { onSession: (s) => { session = s; } });
  const resumedOf = async () => {
    await ticketed.call('GET', '/health');
    for (let i = 0; i < 50 && !session; i++) await new Promise((r) => setTimeout(r, 10)); // the ticket follows the handshake
    assert.ok(session, 'the server issues TLS 1.3 session tickets');
    return new QtmApi(world.url, world.ca.certificate.toString(), { session });
  };
  const resumed = await resumedOf();
  try {
    // A logged-in connection's ticket, resumed: the login stays with the first connection.
    const { nonce: n1 } = await ticketed.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
    const sig1 = await card.client.internalAuthenticate(authenticationData(ticketed.exporter(n1), n1));
    await ticketed.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert.toString()], nonce: n1, signature: sig1 }));
    await assert.rejects(resumed.call('GET', '/transactions/pending'), (e) => e instanceof ServerError && e.status === 401);
    assert.equal(resumed.lastSocket?.isSessionReused(), true, 'the connection was resumed');
    // Its exporter value is its own (fresh randoms and key share), so the first connection's signature fails on it.
    const { nonce: n2 } = await resumed.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
    assert.ok(!ticketed.exporter(n2).equals(resumed.exporter(n2)), 'the resumed connection exports another value');
    const relayed = await card.client.internalAuthenticate(authenticationData(ticketed.exporter(n2), n2));
    await assert.rejects(resumed.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert.toString()], nonce: n2, signature: relayed })), (e) => e instanceof ServerError && e.status === 403);
    // The card authenticates the resumed connection itself, and then it serves.
    const { nonce: n3 } = await resumed.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
    const own = await card.client.internalAuthenticate(authenticationData(resumed.exporter(n3), n3));
    await resumed.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert.toString()], nonce: n3, signature: own }));
    assert.deepEqual(await resumed.call('GET', '/transactions/pending'), { transactions: [] });
  } finally {
    first.close();
    ticketed.close();
    resumed.close();
  }
});

test('the server speaks TLS 1.3 only, with its TLS certificate, not the receipt key', async () => {
  const port = Number(new URL(world.url).port);
  await assert.rejects(new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: world.ca.certificate.toString(), maxVersion: 'TLSv1.2' }, () => resolve(s));
    s.on('error', reject);
  }));
  const cert = await new Promise<import('node:tls').PeerCertificate>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: world.ca.certificate.toString() }, () => {
      resolve(s.getPeerCertificate());
      s.end();
    });
    s.on('error', reject);
  });
  assert.equal(cert.fingerprint256, world.tls.certificate.fingerprint256);
  assert.notEqual(cert.fingerprint256, world.signer.certificate.fingerprint256);
});

test('20 concurrent clients with distinct cards: every receipt delivered, none lost', async () => {
  const cards = await Promise.all(Array.from({ length: 20 }, () => newCard(world)));
  const results = await Promise.all(cards.map((c) => transact(world, c)));
  const ids = new Set(results.map((r) => r.transactionId));
  assert.equal(ids.size, 20);
  for (const r of results) assert.equal((await world.server.store.get(r.transactionId))!.state, 'delivered');
  for (const [i, c] of cards.entries()) assert.ok(await c.client.readRecord(results[i]!.slot));
});

test('audit: every stored record verifies; edited and damaged records are detected, read-only beside the server', async () => {
  const signer = [world.signer.certificate.toString()];
  const clean = await auditStore(world.server.store, signer, [world.ca.certificate]);
  assert.deepEqual(clean.tampered, []);
  assert.deepEqual(clean.damagedLines, []);
  assert.ok(clean.byState.delivered >= 20);

  // A read-only audit beside the running server (which holds the lock) sees the same.
  const storeFile = join(world.dir, 'store', 'transactions.log');
  const live = LogStore.open(join(world.dir, 'store'), { readOnly: true });
  assert.equal((await auditStore(live, signer, [world.ca.certificate])).total, clean.total);
  await live.close();
  assert.throws(() => LogStore.open(join(world.dir, 'store')), /is in use by process \d+/);

  const lines = readFileSync(storeFile, 'utf8').split('\n');
  const prepared = lines.flatMap((l, i) => (l.includes('"type":"prepared"') ? [i] : []));
  const edited = JSON.parse(lines[prepared[0]!]!);
  edited.content = Buffer.from(Buffer.from(edited.content, 'base64').toString().replace('2 x', '3 x')).toString('base64');
  lines[prepared[0]!] = JSON.stringify(edited);
  const unreadable = JSON.parse(lines[prepared[1]!]!);
  unreadable.clientCertificate = '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n';
  lines[prepared[1]!] = JSON.stringify(unreadable);
  lines[prepared[2]! + 1] = lines[prepared[2]! + 1]!.slice(0, 40); // a cut line inside the log
  const copyDir = join(world.dir, 'tampered-store');
  mkdirSync(copyDir);
  writeFileSync(join(copyDir, 'transactions.log'), lines.join('\n'));
  assert.throws(() => LogStore.open(copyDir), /damaged at line \d+/, 'a writer refuses a damaged log');
  const tamperedStore = LogStore.open(copyDir, { readOnly: true });
  const report = await auditStore(tamperedStore, signer, [world.ca.certificate]);
  await tamperedStore.close();
  assert.deepEqual(report.damagedLines, [prepared[2]! + 2]);
  const byId = new Map(report.tampered.map((f) => [f.transactionId, f.problems.join(' ')]));
  assert.match(byId.get(edited.transactionId) ?? '', /content does not match its content ID/);
  assert.match(byId.get(unreadable.transactionId) ?? '', /unreadable|does not decode|certificate/);
});
