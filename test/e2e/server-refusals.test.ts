/**
 * What `qtm server start` refuses, mounted through the real CLI (issue 13, smaller defects):
 * claim 5's TLS key as the receipt key, a catalogue that is not valid UTF-8, and an order longer
 * than the content limit the client's decoder applies.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { MAX_CONTENT_BYTES } from '../../src/protocol/plain-text.js';
import { FIXTURES, qtm } from '../helpers.js';
import { startServerProcess } from './server-process.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

const PASS = 'refusals passphrase';
const env = { QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS };
let dir: string;
let cardFile: string;
const base = () => ['server', 'start', '--port', '0', '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem')];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-refusals-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Refusals CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Refusals receipts' });
  writeIdentity(join(dir, 'receipts'), [signer.certificate], signer.privateKey, PASS);
  const sam = initSam(join(dir, 'shop.sam'), PASS);
  cardFile = join(dir, 'card.json');
  FileStorage.create(cardFile, 4);
  await issueCard(new CardClient(InProcessTransport.forFile(cardFile)), { ca, sam, register: IssuanceRegister.open(join(dir, 'ca', 'register'), sam.kcv), holder: 'CN=Refusals Customer', pin: '123456', puk: '12345678', slots: 4, profile: 'v2' });
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('claim 5: qtm server start refuses the TLS identity as the receipt signer (exit 2), and stores nothing', () => {
  const store = join(dir, 'store-claim5');
  const r = qtm([...base(), '--tls', join(dir, 'tls'), '--signer', join(dir, 'tls'), '--store', store], { env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^qtm: error: the receipt-signing key must not be the TLS key \(claim 5\)/);
  assert.match(r.stderr, /issue a separate --role signer identity/);
  assert.doesNotMatch(r.stderr, /"event":"listening"/);
  assert.equal(existsSync(store), false, 'no store created');
});

test('a catalogue with invalid UTF-8 is refused with the byte offset (exit 2), never read lossily', () => {
  const good = readFileSync(join(FIXTURES, 'catalogue.json'));
  const at = good.indexOf('Fountain pen') + 'Fountain'.length;
  // "Fountain\xFFpen": a lossy read made it U+FFFD, which the plain-text check lets through.
  const bad = Buffer.concat([good.subarray(0, at), Buffer.from([0xff]), good.subarray(at + 1)]);
  writeFileSync(join(dir, 'bad-catalogue.json'), bad);
  const r = qtm([...base(), '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--store', join(dir, 'store-cat'), '--catalogue', join(dir, 'bad-catalogue.json')], { env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^qtm: error: the catalogue .*bad-catalogue\\.json is not valid UTF-8 at byte ${at}\\b`));
  // A truncated multi-byte sequence too (the first byte of "é" without its second).
  const cut = Buffer.concat([good.subarray(0, at), Buffer.from([0xc3]), good.subarray(at + 1)]);
  writeFileSync(join(dir, 'cut-catalogue.json'), cut);
  const c = qtm([...base(), '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--store', join(dir, 'store-cat'), '--catalogue', join(dir, 'cut-catalogue.json')], { env });
  assert.equal(c.status, 2);
  assert.match(c.stderr, new RegExp(`not valid UTF-8 at byte ${at}\\b`));
});

test('an order over the content limit is refused when the server composes it (403 E_ORDER_TOO_LARGE), not by the client after', async () => {
  // One article with a long (plain) name: 50 of them make an order of about 73 KB.
  const catalogue = JSON.parse(readFileSync(join(FIXTURES, 'catalogue.json'), 'utf8'));
  catalogue.items.push({ sku: 'LONG', name: 'Long description '.repeat(85), price: 100 });
  writeFileSync(join(dir, 'long-catalogue.json'), JSON.stringify(catalogue));
  const server = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem'),
    '--store', join(dir, 'store-long'), '--catalogue', join(dir, 'long-catalogue.json')], env);
  try {
    const sign = (items: string) => qtm(['sign', '--server', server.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', cardFile, '--archive', join(dir, 'archive'), '--items', items, '--yes', '--json'], { env: { QTM_PIN: '123456' } });
    const r = sign(Array(50).fill('LONG:1').join(','));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`server refused \\(403 E_ORDER_TOO_LARGE\\): the order would be \\d{5,} bytes, over the ${MAX_CONTENT_BYTES}-byte limit for signed content`));
    // Below the limit the same article is composed, signed and decoded by the client.
    const ok = sign('LONG:1,PAPER-A4:1');
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).transactionId, 1, 'the refused order prepared nothing');
  } finally {
    await server.stop();
  }
});

test('issue 18: a receipt key that signed before is refused an empty store (its IDs would be handed out again) unless --first-id is given', async () => {
  // The marker a server leaves beside its receipt key once it has signed (PREFIX.signed.json).
  writeFileSync(join(dir, 'receipts.signed.json'), JSON.stringify({ store: '/srv/qtm/old-store', lastTransactionId: 7, updated: new Date().toISOString() }));
  const r = qtm([...base(), '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--store', join(dir, 'store-empty')], { env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^qtm: error: this receipt key signed transactions up to at least 7 in the store \/srv\/qtm\/old-store, and this store is empty: it would hand their IDs out again/);
  assert.match(r.stderr, /--first-id 8/);
  const server = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem'),
    '--store', join(dir, 'store-empty'), '--first-id', '8'], env);
  try {
    const signed = qtm(['sign', '--server', server.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', cardFile, '--archive', join(dir, 'archive-first-id'), '--items', 'PAPER-A4:1', '--yes', '--json'], { env: { QTM_PIN: '123456' } });
    assert.equal(signed.status, 0, signed.stderr);
    assert.equal(JSON.parse(signed.stdout).transactionId, 8, 'the first ID of the new store is the one given');
  } finally {
    await server.stop();
  }
});
