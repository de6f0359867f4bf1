/**
 * The patent's reverse case of proxy signing: a customer Y lets the server sign for Y (a reverse
 * auction), with the sellers Y names. Y's own card issues the warrant; the seller who originates
 * the transaction is verified, as the patent asks, by its card's signature on the record and by
 * being named in Y's warrant, before the server signs for Y.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { X509Certificate } from 'node:crypto';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { blankImage, MemoryStorage } from '../../src/card/virtual/storage.js';
import { StepError } from '../../src/client/transaction.js';
import { ServerError } from '../../src/client/api.js';
import { OID } from '../../src/crypto/oids.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { createRequest, readRequest, WarrantRegistry } from '../../src/warrant/registry.js';
import { issueWarrantWithCard } from '../../src/warrant/warrant.js';
import { crlPem, issueCrlWithSigner } from '../../src/warrant/crl.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { makeWorld, newCard, PIN, PUK, transact, type World } from './env.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

const PASS = 'reverse auction passphrase';
let world: World;
let buyer: { client: CardClient; certificate: X509Certificate };
let warrantsDir: string;

before(async () => {
  world = await makeWorld(async ({ dir, ca, sam }) => {
    const client = new CardClient(new InProcessTransport(new MemoryStorage(blankImage(4))));
    const issued = await issueCard(client, { ca, sam, register: IssuanceRegister.open(join(dir, 'ca', 'register'), sam.kcv), holder: 'CN=Yara Buyer,O=Buyer BV', pin: PIN, puk: PUK, slots: 4, profile: 'v2', mayDelegate: true });
    buyer = { client, certificate: issued.certificate };
    warrantsDir = join(dir, 'warrants');
    createRequest(warrantsDir, 'auction', PASS);
    return { proxy: { registry: WarrantRegistry.open(warrantsDir, PASS), manager: [issued.certificate] } };
  });
});
after(() => world.close());

test('the buyer\'s card issues a warrant naming a seller; the server signs for the buyer with that seller only', async () => {
  assert.ok(buyer.certificate.keyUsage?.includes(OID.ekuCardSigning) && buyer.certificate.keyUsage.includes(OID.ekuWarrantIssuing), 'a customer card that may delegate');
  const seller = await newCard(world);
  const other = await newCard(world);
  await buyer.client.select();
  await buyer.client.verifyPin(PIN);
  const w = await issueWarrantWithCard({
    issuer: { certificate: buyer.certificate, sign: (tbs) => buyer.client.signWarrant(tbs) },
    subjectKey: readRequest(join(warrantsDir, 'auction.request.pem')),
    customers: [{ fingerprint: keyFingerprint(seller.issued.certificate.publicKey) }],
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000),
  });
  writeFileSync(join(warrantsDir, 'seller.warrant.pem'), [w, buyer.certificate].map((c) => c.toString()).join(''));
  // The buyer's card also signs the buyer's revocation list (cRLSign): none, no proxy signature.
  await assert.rejects(transact(world, seller), (e) => /403 .*no revocation list from "CN=Yara Buyer|no revocation list from "CN=Yara Buyer/.test(((e instanceof StepError ? e.cause : e) as Error).message));
  const now = new Date();
  const list = await issueCrlWithSigner({ crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + 3_600_000), entries: [] }, { certificate: buyer.certificate, sign: (tbs) => buyer.client.signCrl(tbs) });
  writeFileSync(join(warrantsDir, 'yara.crl'), crlPem(list.der));

  const r = await transact(world, seller);
  const report = verifyBundle(r.bundle, { trustAnchors: [world.ca.certificate] });
  assert.deepEqual(report.failures, []);
  assert.match(report.checks.find((c) => c.name === 'warrant')!.detail, /on behalf of "CN=Yara Buyer, O=Buyer BV, serialNumber=[0-9A-F]{16}" under warrant [0-9A-F]+ .*covers "CN=Customer \d+/);

  await assert.rejects(transact(world, other), (e) => {
    const err = (e instanceof StepError ? e.cause : e) as ServerError;
    assert.equal(err.serverCode, 'E_NO_WARRANT');
    assert.match(err.message, /no warrant from "CN=Yara Buyer, O=Buyer BV, serialNumber=[0-9A-F]{16}" lets this server sign with "CN=Customer \d+/);
    return true;
  });
});
