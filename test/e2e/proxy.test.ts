/**
 * Sign by proxy over real HTTPS (claims 10-11, patent figure 2): the server signs as manager X
 * for customers X's warrants name, refuses everyone else naming X and Y, and never signs under
 * a warrant after its revocation has returned.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { ServerError } from '../../src/client/api.js';
import { StepError } from '../../src/client/transaction.js';
import { verifyBundle } from '../../src/verify/verify-bundle.js';
import { auditStore } from '../../src/server/audit.js';
import { createRequest, readRequest, WarrantRegistry } from '../../src/warrant/registry.js';
import { issueWarrant } from '../../src/warrant/warrant.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { crlPem, issueCrl } from '../../src/warrant/crl.js';
import { autoHooks, makeWorld, newCard, transact, type World } from './env.js';

const PASS = 'warrant key passphrase';
const HOUR = 3_600_000;
let world: World;
let xavier: ReturnType<typeof issueKeyAndCertificate>;
let warrantsDir: string;
let registry: WarrantRegistry;

function writeWarrant(name: string, customers: Parameters<typeof issueWarrant>[0]['customers'], from = new Date(Date.now() - HOUR), to = new Date(Date.now() + HOUR)) {
  const w = issueWarrant({ issuer: xavier, subjectKey: readRequest(join(warrantsDir, 'sales.request.pem')), customers, notBefore: from, notAfter: to });
  writeFileSync(join(warrantsDir, `${name}.warrant.pem`), [w, xavier.certificate].map((c) => c.toString()).join(''));
  return w.serialNumber.toUpperCase();
}

/** X signs its next revocation list into the warrants folder, as `qtm warrant revoke` does. */
function writeCrl(entries: { serial: string; revocationDate: Date }[], crlNumber: bigint) {
  const now = new Date();
  const list = issueCrl({ crlNumber, thisUpdate: now, nextUpdate: new Date(now.getTime() + HOUR), entries }, xavier);
  writeFileSync(join(warrantsDir, 'xavier.crl'), crlPem(list.der));
  return list;
}

const refusal = (e: unknown) => (e instanceof StepError ? e.cause : e) as ServerError;

before(async () => {
  world = await makeWorld(({ dir, ca }) => {
    xavier = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Sales,O=E2E Shop' });
    warrantsDir = join(dir, 'warrants');
    createRequest(warrantsDir, 'sales', PASS);
    registry = WarrantRegistry.open(warrantsDir, PASS);
    writeCrl([], 1n); // without a current list from X the server signs nothing for X
    // A TTP is configured too, so that a fair request reaches the proxy rule (it is never asked).
    const ttpCert = issueKeyAndCertificate(ca, { role: 'ttp', subject: 'CN=Unused TTP' }).certificate;
    const fair = { ttp: { url: 'https://localhost:1', certificates: [ttpCert], request: async () => { throw new Error('the TTP must not be asked'); } }, deadlineSeconds: 600 };
    return { proxy: { registry, manager: [xavier.certificate] }, fair };
  });
});
after(() => world.close());

test('claim 10: the server signs for X with a customer X\'s warrant covers; the proof says so', async () => {
  const yara = await newCard(world);
  const serial = writeWarrant('yara', [{ fingerprint: keyFingerprint(yara.issued.certificate.publicKey) }]);
  const r = await transact(world, yara);
  assert.deepEqual(r.bundle.warrants?.length, 1);
  const report = verifyBundle(r.bundle, { trustAnchors: [world.ca.certificate] });
  assert.deepEqual(report.failures, []);
  assert.match(report.checks.find((c) => c.name === 'warrant')!.detail, new RegExp(`on behalf of "CN=Xavier Sales, O=E2E Shop" under warrant ${serial}`));
  assert.equal((await world.server.store.get(r.transactionId))!.prepared.warrant?.serial, serial);
  const audit = await auditStore(world.server.store, [world.signer.certificate.toString()], [world.ca.certificate]);
  assert.deepEqual(audit.tampered, [], 'the audit rebuilds proxy proofs with their warrant');
});

test('a customer no warrant covers is refused with 403 naming X and Y; nothing is stored or written', async () => {
  const zed = await newCard(world);
  const before = (await world.server.store.lastTransactionId());
  await assert.rejects(transact(world, zed), (e) => {
    const err = refusal(e);
    assert.ok(err instanceof ServerError);
    assert.equal(err.status, 403);
    assert.equal(err.serverCode, 'E_NO_WARRANT');
    assert.match(err.message, /no warrant from "CN=Xavier Sales, O=E2E Shop" lets this server sign with "CN=Customer \d+, serialNumber=[0-9A-F]{16}" \(none names this customer\)$/);
    return true;
  });
  assert.equal((await world.server.store.lastTransactionId()), before);
  assert.ok((await zed.client.readRecord(1)) === undefined);
});

test('expired and not-yet-valid warrants are refused by the server', async () => {
  const card = await newCard(world);
  const fp = keyFingerprint(card.issued.certificate.publicKey);
  writeWarrant('old', [{ fingerprint: fp }], new Date(Date.now() - 3 * HOUR), new Date(Date.now() - 2 * HOUR));
  writeWarrant('future', [{ fingerprint: fp }], new Date(Date.now() + HOUR), new Date(Date.now() + 2 * HOUR));
  await assert.rejects(transact(world, card), (e) => {
    const m = refusal(e).message;
    assert.match(m, /expired at/);
    assert.match(m, /is not valid until/);
    assert.doesNotMatch(m, /does not cover/, 'warrants for other customers are not described');
    return true;
  });
});

test('a warrant revoked between prepare and confirm is never used; the verifier rejects later signatures', async () => {
  const card = await newCard(world);
  const serial = writeWarrant('revocable', [{ fingerprint: keyFingerprint(card.issued.certificate.publicKey) }]);
  const first = await transact(world, card);
  // A CRL dates in whole seconds: revoke in the second after the first proof's.
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 10));
  const id = (await world.server.store.lastTransactionId()) + 1;
  let revocations: ReturnType<typeof writeCrl> | undefined;
  await assert.rejects(transact(world, card, {
    hooks: autoHooks({ onStep: (step, phase) => {
      // The revocation returns before the first message goes out (the card signs after prepare).
      if (step === 'sign' && phase === 'start') revocations = writeCrl([{ serial, revocationDate: new Date() }], 2n);
    } }),
  }), (e) => {
    assert.match(refusal(e).message, new RegExp(`cannot sign by proxy: warrant ${serial} was revoked at`));
    return true;
  });
  assert.equal((await world.server.store.get(id))?.state, 'prepared', 'prepared, never confirmed');
  // A proof made before the revocation stays valid with the revocation list; a new transaction is refused.
  assert.equal(verifyBundle(first.bundle, { trustAnchors: [world.ca.certificate], revocations: revocations!, clockToleranceSeconds: 0 }).valid, true);
  // Made less than T = 120 s before the revocation, it may have been backdated: with the default T it fails.
  assert.match(verifyBundle(first.bundle, { trustAnchors: [world.ca.certificate], revocations: revocations! }).failures.map((f) => f.detail).join(), /may have been backdated/);
  await assert.rejects(transact(world, card), (e) => /was revoked at/.test(refusal(e).message));
});

test('forged and widened warrants in the folder are never used', async () => {
  const card = await newCard(world);
  const fp = keyFingerprint(card.issued.certificate.publicKey);
  const impostor = issueKeyAndCertificate(world.ca, { role: 'manager', subject: 'CN=Xavier Sales,O=E2E Shop' });
  const forged = issueWarrant({ issuer: impostor, subjectKey: readRequest(join(warrantsDir, 'sales.request.pem')), customers: [{ fingerprint: fp }], notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + HOUR) });
  // Filed with the real X's certificate after it, as a forger would.
  writeFileSync(join(warrantsDir, 'forged.warrant.pem'), [forged, xavier.certificate].map((c) => c.toString()).join(''));
  await assert.rejects(transact(world, card), (e) => /is not signed by "CN=Xavier Sales, O=E2E Shop"/.test(refusal(e).message));
  assert.ok(existsSync(join(warrantsDir, 'forged.warrant.pem')));

  // Widened: a genuine warrant for another card, its policy edited to name this one.
  const other = await newCard(world);
  writeWarrant('other', [{ fingerprint: keyFingerprint(other.issued.certificate.publicKey) }]);
  const pem = readFileSync(join(warrantsDir, 'other.warrant.pem'), 'utf8');
  const der = Buffer.from(new X509Certificate(pem).raw);
  const at = der.indexOf(Buffer.from(keyFingerprint(other.issued.certificate.publicKey)));
  Buffer.from(fp).copy(der, at);
  const widened = new X509Certificate(der);
  writeFileSync(join(warrantsDir, 'other.warrant.pem'), [widened, xavier.certificate].map((c) => c.toString()).join(''));
  await assert.rejects(transact(world, card), (e) => {
    const m = refusal(e).message;
    assert.equal(m.match(/is not signed by/g)?.length, 2, m); // the forged one and the widened one
    return true;
  });
});

test('claims 11 and 14 together: a fair exchange with proxy signing is refused before anything is signed (400 E_NO_TTP, naming the reason\'s place)', async () => {
  const yara = await newCard(world);
  writeWarrant('yara-fair', [{ fingerprint: keyFingerprint(yara.issued.certificate.publicKey) }]);
  const id = (await world.server.store.lastTransactionId());
  await assert.rejects(transact(world, yara, { fair: true }), (e) => {
    const r = refusal(e);
    return r instanceof ServerError && r.status === 400 && r.serverCode === 'E_NO_TTP' && /not offered together with proxy signing.*FAIR-EXCHANGE\.md/.test(r.message);
  });
  assert.equal((await world.server.store.lastTransactionId()), id, 'nothing was prepared');
  assert.equal(await yara.client.readRecord(1), undefined, 'nothing on the card');
});
