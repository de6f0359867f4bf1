/**
 * Attack (issue 17, section 4): two confirms of one transaction with different first messages,
 * sent at once over two authenticated HTTPS connections to a real `qtm server start` process.
 * Before: both answered 200, the store kept both and the later won, so the first client's
 * acknowledged receipt was then refused. Now the store appends the signing of a transaction once,
 * atomically: one 200, one 409 E_ALREADY_CONFIRMED, one confirmed entry in the log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { QtmApi, ServerError } from '../../src/client/api.js';
import { openAndAuthenticate } from '../../src/client/transaction.js';
import * as M from '../../src/protocol/messages.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

const PASS = 'race passphrase';
const PIN = '123456';
let dir: string;
let server: ServerProcess;
let caPem: string;
let cardFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-race-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Race CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Race Shop receipts' });
  writeIdentity(join(dir, 'receipts'), [signer.certificate], signer.privateKey, PASS);
  const sam = initSam(join(dir, 'shop.sam'), PASS);
  cardFile = join(dir, 'card.json');
  FileStorage.create(cardFile, 8);
  await issueCard(new CardClient(InProcessTransport.forFile(cardFile)), { ca, sam, register: IssuanceRegister.open(join(dir, 'ca', 'register'), sam.kcv), holder: 'CN=Race Customer', pin: PIN, puk: '12345678', slots: 8, profile: 'v2' });
  caPem = join(dir, 'ca', 'ca.pem');
  server = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', caPem, '--store', join(dir, 'store')],
    { QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS });
});

after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('two concurrent confirms with different first messages: one 200, one 409 E_ALREADY_CONFIRMED, one stored', async () => {
  const card = new CardClient(InProcessTransport.forFile(cardFile));
  const hooks = { accept: async () => true, pin: async () => PIN };
  const ids: number[] = [];
  for (let round = 0; round < 4; round++) {
    const api1 = new QtmApi(server.url, readFileSync(caPem, 'utf8'));
    const api2 = new QtmApi(server.url, readFileSync(caPem, 'utf8'));
    try {
      await openAndAuthenticate(api1, card, PIN, hooks, {});
      await openAndAuthenticate(api2, card, PIN, hooks, {});
      const concept = await api1.call('POST', '/orders', { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, M.decodeConceptOrder);
      const prepared = await api1.call('POST', '/transactions', { orderId: concept.orderId, content: concept.content.toString('base64') }, M.decodePrepared);
      ids.push(prepared.transactionId);
      const signature = await card.signHeader(prepared.header);
      // Two first messages, built by hand: the same card signature, another challenge R.
      const mine = { signature, challenge: await card.getChallenge(), slot: 1, priority: 0 };
      const other = { signature, challenge: randomBytes(16), slot: 1, priority: 0 };
      const confirm = (api: QtmApi, fm: M.FirstMessage) => api.call('POST', `/transactions/${prepared.transactionId}/confirm`, M.encodeFirstMessage(fm), M.decodeSecondMessage);
      const results = await Promise.allSettled([confirm(api1, mine), confirm(api2, other)]);
      assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'exactly one of the two confirms is answered 200');
      const won = results.findIndex((r) => r.status === 'fulfilled');
      const lost = 1 - won;
      const refusal = (results[lost] as PromiseRejectedResult).reason;
      assert.ok(refusal instanceof ServerError, String(refusal));
      assert.equal(refusal.status, 409);
      assert.equal(refusal.serverCode, 'E_ALREADY_CONFIRMED');
      const answer = (results[won] as PromiseFulfilledResult<M.SecondMessage>).value;
      // The answer given is the one the store keeps: asking again returns the same envelope.
      const [winnerApi, winnerFm, loserApi, loserFm] = won === 0 ? [api1, mine, api2, other] : [api2, other, api1, mine];
      assert.deepEqual((await confirm(winnerApi, winnerFm)).envelope, answer.envelope);
      await assert.rejects(confirm(loserApi, loserFm), (e: unknown) => e instanceof ServerError && e.status === 409 && e.serverCode === 'E_ALREADY_CONFIRMED');
      if (won === 0) {
        // The receipt the first client was given is written and acknowledged.
        const proof = await card.secureWrite(1, answer.envelope);
        const acked = await api1.call('POST', `/transactions/${prepared.transactionId}/ack`, M.encodeThirdMessage({ transactionId: prepared.transactionId, proof }));
        assert.deepEqual(acked, { transactionId: prepared.transactionId, state: 'delivered' });
      }
    } finally {
      api1.close();
      api2.close();
    }
  }
  await server.stop();
  const confirmed = readFileSync(join(dir, 'store', 'transactions.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'confirmed');
  assert.deepEqual(confirmed.map((e) => e.transactionId), ids, 'exactly one confirmed entry per transaction');
});
