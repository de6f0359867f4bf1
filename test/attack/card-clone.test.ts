/**
 * Issue 18, section 1: a card made with another card's serial. Mounted as the attacker would:
 * Mallory's blank card file carries Alice's serial (a blank card chooses its own serial), through
 * `qtm card issue`; an insider's clone certificate for Alice's serial, against a real
 * `qtm server start` process over real HTTPS; Alice's `qtm receipts fetch` afterwards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, openCa, issueCertificate, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam, openSam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { QtmApi, ServerError } from '../../src/client/api.js';
import * as M from '../../src/protocol/messages.js';
import { authenticationData } from '../../src/protocol/card-authentication.js';
import { qtm } from '../helpers.js';
import { startServerProcess, type ServerProcess } from '../e2e/server-process.js';

const PASS = 'clone attack passphrase';
const PIN = '123456';
const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS, QTM_PIN: PIN, QTM_PUK: '12345678' };
let dir: string;
let server: ServerProcess;
let aliceSerial: string;
/** Alice's transaction: signed by the server, its receipt not yet on her card. */
let aliceTx: number;

const path = (...p: string[]) => join(dir, ...p);
const serverArgs = () => ['--tls', path('tls'), '--signer', path('receipts'), '--sam', path('shop.sam'), '--trust', path('ca', 'ca.pem'), '--store', path('store')];

/** A blank virtual card file whose serial is the given one (any blank card chooses its own). */
function blankWithSerial(file: string, serial: string): void {
  FileStorage.create(file, 4);
  const image = JSON.parse(readFileSync(file, 'utf8')) as { serial: string };
  image.serial = serial;
  writeFileSync(file, JSON.stringify(image));
}

/** Logs in with the card's key; `certificate` replaces the one on the card (a renewed one). */
async function login(cardFile: string, certificate?: X509Certificate): Promise<QtmApi> {
  const card = new CardClient(InProcessTransport.forFile(cardFile));
  await card.select();
  await card.verifyPin(PIN);
  const api = new QtmApi(server.url, readFileSync(path('ca', 'ca.pem'), 'utf8'));
  const cert = certificate ?? await card.readCertificate();
  const { nonce } = await api.call('POST', '/auth/challenge', {}, M.decodeAuthChallenge);
  const signature = await card.internalAuthenticate(authenticationData(api.exporter(nonce), nonce));
  try {
    await api.call('POST', '/auth/response', M.encodeAuthResponse({ certificates: [cert.toString()], nonce, signature }));
  } catch (err) {
    api.close();
    throw err;
  }
  return api;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-clone-'));
  const ca = initCa(path('ca'), { profile: 'v2', subject: 'CN=Clone Test CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Clone Shop receipts' });
  writeIdentity(path('tls'), [tls.certificate], tls.privateKey, PASS);
  writeIdentity(path('receipts'), [signer.certificate], signer.privateKey, PASS);
  initSam(path('shop.sam'), PASS);
  const issue = qtm(['card', 'issue', '--ca', path('ca'), '--sam', path('shop.sam'), '--holder', 'CN=Alice Clone Test', '--card', path('alice.card.json'), '--json'], { env });
  assert.equal(issue.status, 0, issue.stderr);
  aliceSerial = JSON.parse(issue.stdout).serial;
  server = await startServerProcess(serverArgs(), env);
  // Alice signs an order; the server signs it; the receipt never reaches her card (a lost connection).
  const api = await login(path('alice.card.json'));
  try {
    const card = new CardClient(InProcessTransport.forFile(path('alice.card.json')));
    await card.select();
    await card.verifyPin(PIN);
    const order = await api.call('POST', '/orders', { items: [{ sku: 'PAPER-A4', quantity: 3 }] }, M.decodeConceptOrder);
    const prepared = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64') }, M.decodePrepared);
    const first = M.encodeFirstMessage({ signature: await card.signHeader(prepared.header), challenge: await card.getChallenge(), slot: 1, priority: 0 });
    await api.call('POST', `/transactions/${prepared.transactionId}/confirm`, first, M.decodeSecondMessage);
    aliceTx = prepared.transactionId;
  } finally {
    api.close();
  }
});

after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('Mallory\'s blank card file made with Alice\'s serial is refused by qtm card issue: nothing signed, the register row unchanged', () => {
  const rowFile = join(path('ca', 'register'), openSam(path('shop.sam'), PASS).kcv.toUpperCase(), `${aliceSerial}.json`);
  const row = readFileSync(rowFile, 'utf8');
  assert.equal(JSON.parse(row).state, 'issued');
  blankWithSerial(path('mallory.card.json'), aliceSerial);
  const r = qtm(['card', 'issue', '--ca', path('ca'), '--sam', path('shop.sam'), '--holder', 'CN=Mallory', '--card', path('mallory.card.json')], { env });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`card serial ${aliceSerial} was issued .* to another card key .*this card is refused, nothing was signed`));
  // --retry takes over only a reservation left by a failed run, never an issued serial.
  const retry = qtm(['card', 'issue', '--ca', path('ca'), '--sam', path('shop.sam'), '--holder', 'CN=Mallory', '--card', path('mallory.card.json'), '--retry'], { env });
  assert.equal(retry.status, 1, retry.stderr);
  assert.equal(readFileSync(rowFile, 'utf8'), row);
  const info = JSON.parse(qtm(['card', 'info', '--card', path('mallory.card.json'), '--json']).stdout);
  assert.equal(info.lifecycle, 'personalisation', 'Mallory\'s card got no certificate and was not locked');
});

/** The insider's clone: Mallory's card, personalised with Alice's serial by the CA directly, beside the register. */
async function insiderClone(file: string): Promise<void> {
  blankWithSerial(file, aliceSerial);
  const ca = openCa(path('ca'), PASS);
  const sam = openSam(path('shop.sam'), PASS);
  const register = IssuanceRegister.open(mkdtempSync(join(tmpdir(), 'qtm-insider-register-')), sam.kcv);
  await issueCard(new CardClient(InProcessTransport.forFile(file)), { ca, sam, register, holder: 'CN=Alice Clone Test', pin: PIN, puk: '12345678', slots: 4, profile: 'v2' });
}

test('a clone certificate for Alice\'s serial, made with the CA directly: its login is refused (qtm receipts fetch exit 1, 403 E_CARD_KEY_CONFLICT), nothing stored', async () => {
  await insiderClone(path('clone.card.json'));
  const fetchClone = qtm(['receipts', 'fetch', '--server', server.url, '--trust', path('ca', 'ca.pem'), '--card', path('clone.card.json'), '--archive', path('clone-archive')], { env });
  assert.equal(fetchClone.status, 1, fetchClone.stderr);
  assert.match(fetchClone.stderr, new RegExp(`card serial ${aliceSerial} is registered on this server with another card key`));
  await assert.rejects(login(path('clone.card.json')), (e) => e instanceof ServerError && e.status === 403 && e.serverCode === 'E_CARD_KEY_CONFLICT');
  const audit = qtm(['server', 'audit', '--store', path('store'), '--signer-cert', path('receipts.pem'), '--trust', path('ca', 'ca.pem'), '--json']);
  assert.equal(audit.status, 0, 'the refused clone stored nothing');
});

test('the clone admitted (its serial unknown to the login register): it sees none of Alice\'s transactions and cannot have her receipt sealed; the audit lists the serial with two keys; Alice still fetches hers', async () => {
  // As if the server's login register had no row for Alice's serial (lost, or a server
  // instance that has not seen her yet): the per-transaction binding must hold on its own.
  await server.stop();
  unlinkSync(path('store', 'card-keys', aliceSerial));
  server = await startServerProcess(serverArgs(), env);
  const api = await login(path('clone.card.json'));
  try {
    const pending = await api.call<{ transactions: number[] }>('GET', '/transactions/pending');
    assert.deepEqual(pending.transactions, [], 'no receipt of Alice\'s is offered to the clone');
    await assert.rejects(api.call('GET', `/transactions/${aliceTx}`), (e) => e instanceof ServerError && e.status === 404 && e.serverCode === 'E_NO_TRANSACTION');
    const clone = new CardClient(InProcessTransport.forFile(path('clone.card.json')));
    await clone.select();
    await clone.verifyPin(PIN);
    const redeliver = M.encodeRedeliverRequest({ challenge: await clone.getChallenge(), slot: 1 });
    await assert.rejects(api.call('POST', `/transactions/${aliceTx}/redeliver`, redeliver), (e) => e instanceof ServerError && e.status === 404 && e.serverCode === 'E_NO_TRANSACTION');
    const third = M.encodeThirdMessage({ transactionId: aliceTx, proof: Buffer.alloc(8) });
    await assert.rejects(api.call('POST', `/transactions/${aliceTx}/ack`, third), (e) => e instanceof ServerError && e.status === 404 && e.serverCode === 'E_NO_TRANSACTION');
    // The clone's own order: the store now holds Alice's serial with two card keys, which the audit lists.
    const order = await api.call('POST', '/orders', { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }, M.decodeConceptOrder);
    const own = await api.call('POST', '/transactions', { orderId: order.orderId, content: order.content.toString('base64') }, M.decodePrepared);
    const audit = qtm(['server', 'audit', '--store', path('store'), '--signer-cert', path('receipts.pem'), '--trust', path('ca', 'ca.pem'), '--json']);
    assert.equal(audit.status, 1, audit.stdout + audit.stderr);
    const shared = JSON.parse(audit.stdout).sharedSerials as { serial: string; keys: { transactions: number[] }[] }[];
    assert.deepEqual(shared.map((c) => [c.serial, c.keys.map((k) => k.transactions)]), [[aliceSerial, [[aliceTx], [own.transactionId]]]]);
    const text = qtm(['server', 'audit', '--store', path('store'), '--signer-cert', path('receipts.pem'), '--trust', path('ca', 'ca.pem')]);
    assert.match(text.stdout, new RegExp(`card serial ${aliceSerial} was used with 2 card keys`));
  } finally {
    api.close();
  }
  // The clone's login claimed the serial: the audit cannot see it yet (nothing stored for it),
  // and Alice is now refused at login. The operator restores her row; she gets her receipt.
  await server.stop();
  unlinkSync(path('store', 'card-keys', aliceSerial));
  server = await startServerProcess(serverArgs(), env);
  const fetched = qtm(['receipts', 'fetch', '--server', server.url, '--trust', path('ca', 'ca.pem'), '--card', path('alice.card.json'), '--archive', path('alice-archive'), '--json'], { env });
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.match(fetched.stdout, new RegExp(`"transactionId":\\s*${aliceTx}\\b`));
  const list = JSON.parse(qtm(['receipts', 'list', '--card', path('alice.card.json'), '--json']).stdout);
  assert.ok(list.slots.some((s: { transactionId?: number }) => s.transactionId === aliceTx), 'Alice\'s receipt is on her card');
});

test('Alice\'s key certified again (a renewal, or the old form whose certificate serial is the card serial): she logs in and keeps her transactions', async () => {
  const card = new CardClient(InProcessTransport.forFile(path('alice.card.json')));
  await card.select();
  const current = await card.readCertificate();
  const ca = openCa(path('ca'), PASS);
  const renewed = issueCertificate(ca, { role: 'card', subject: current.subject.replace(/\n/g, ','), publicKey: current.publicKey });
  const oldForm = issueCertificate(ca, { role: 'card', subject: current.subject.replace(/\n/g, ','), publicKey: current.publicKey, serialHex: aliceSerial });
  assert.notEqual(renewed.serialNumber, current.serialNumber);
  assert.equal(oldForm.serialNumber, aliceSerial);
  for (const certificate of [renewed, oldForm]) {
    const api = await login(path('alice.card.json'), certificate);
    try {
      const tx = await api.call('GET', `/transactions/${aliceTx}`, undefined, M.decodePrepared);
      assert.equal(tx.transactionId, aliceTx);
    } finally {
      api.close();
    }
  }
});
