/**
 * Attacks on the record's time (issue 18 section 4), by a server whose clock is wrong or lies,
 * mounted with the real `qtm sign` and `qtm verify` against a real HTTPS server whose clock is
 * injected: 30 days ahead (the card must not sign next month's date), 40 s back under a warrant
 * revoked meanwhile (the verifier must not believe a date within T of the revocation), and a
 * first message sent long after the record was prepared (the server abandons the record).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StepError } from '../../src/client/transaction.js';
import { ServerError } from '../../src/client/api.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { createRequest, readRequest, WarrantRegistry } from '../../src/warrant/registry.js';
import { issueWarrant } from '../../src/warrant/warrant.js';
import { crlPem, issueCrl } from '../../src/warrant/crl.js';
import { autoHooks, makeWorld, newCard, PIN, transact, type World } from '../e2e/env.js';
import { QTM_BIN, ROOT } from '../helpers.js';

const PASS = 'warrant key passphrase';
const HOUR = 3_600_000;
let world: World;
let xavier: ReturnType<typeof issueKeyAndCertificate>;
let warrantsDir: string;
let offsetMs = 0;

before(async () => {
  world = await makeWorld(({ dir, ca }) => {
    xavier = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Clock,O=Clock Shop' });
    warrantsDir = join(dir, 'warrants');
    createRequest(warrantsDir, 'sales', PASS);
    const now = new Date();
    writeFileSync(join(warrantsDir, 'xavier.crl'), crlPem(issueCrl({ crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + 60 * 86_400_000), entries: [] }, xavier).der));
    return { proxy: { registry: WarrantRegistry.open(warrantsDir, PASS), manager: [xavier.certificate] }, now: () => new Date(Date.now() + offsetMs) };
  });
});
after(() => world.close());

/** A card and X's warrant naming it. */
async function coveredCard() {
  const card = await newCard(world);
  const w = issueWarrant({ issuer: xavier, subjectKey: readRequest(join(warrantsDir, 'sales.request.pem')), customers: [{ fingerprint: keyFingerprint(card.issued.certificate.publicKey) }], notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + 40 * 86_400_000) });
  writeFileSync(join(warrantsDir, `${card.issued.serial}.warrant.pem`), [w, xavier.certificate].map((c) => c.toString()).join(''));
  return { card, serial: w.serialNumber.toUpperCase() };
}

/** The real CLI, asynchronously: the server runs in this process. */
function qtm(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [QTM_BIN, ...args], { cwd: ROOT, env: { ...process.env, QTM_PIN: PIN, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
const sign = (cardFile: string, extra: string[] = []) => qtm(['sign', '--server', world.url, '--trust', join(world.dir, 'ca', 'ca.pem'), '--card', cardFile, '--archive', join(world.dir, 'archive-cli'), '--items', 'PAPER-A4:1', '--yes', ...extra]);

test('attack: a server 30 days ahead: qtm sign refuses the record before the card signs (exit 1, E_CLOCK_SKEW, time and T named)', async () => {
  const { card } = await coveredCard();
  offsetMs = 30 * 86_400_000;
  try {
    const id = (await world.server.store.lastTransactionId()) + 1;
    const r = await sign(card.file);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /the record is dated \d{4}-\d\d-\d\dT[\d:.]+Z, 25(91|92)\d{3} s ahead of this computer's clock \(.*\): more than the clock tolerance of 120 s; nothing was signed/);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('qtm: error')).length, 1, r.stderr);
    assert.equal((await world.server.store.get(id))?.state, 'prepared', 'the server never got a first message');
    await card.client.select();
    assert.equal(await card.client.readRecord(1), undefined, 'nothing on the card');
    // With a tolerance wide enough the same server is believed: the check is what refused.
    const wide = await sign(card.file, ['--clock-tolerance', String(31 * 86_400), '--json']);
    assert.equal(wide.status, 0, wide.stderr);
    assert.equal(JSON.parse(wide.stdout).clockToleranceSeconds, 31 * 86_400);
    assert.match(JSON.parse(wide.stdout).recordTime, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    const plain = await sign(card.file, ['--clock-tolerance', String(31 * 86_400)]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stderr, /record dated \d{4}-[\d:T.-]+Z, 25(91|92)\d{3} s ahead of this computer's clock \(tolerance 2678400 s\)/, 'the step output names the record time and T');
  } finally {
    offsetMs = 0;
  }
});

test('attack: a server 40 s back signs under a warrant revoked meanwhile: qtm verify fails it (dated within T of the revocation)', async () => {
  const { card, serial } = await coveredCard();
  offsetMs = -40_000;
  let signed;
  try {
    signed = await sign(card.file, ['--json']);
  } finally {
    offsetMs = 0;
  }
  assert.equal(signed.status, 0, signed.stderr);
  const j = JSON.parse(signed.stdout);
  assert.equal(j.clockToleranceSeconds, 120);
  const skew = Date.parse(j.recordTime) - Date.now();
  assert.ok(skew < -35_000 && skew > -50_000, `the record is dated 40 s back: ${j.recordTime}`);
  // X revokes the warrant now: after the record's (backdated) time, before the real signing time + T.
  const now = new Date();
  writeFileSync(join(warrantsDir, 'xavier.crl'), crlPem(issueCrl({ crlNumber: 2n, thisUpdate: now, nextUpdate: new Date(now.getTime() + HOUR), entries: [{ serial, revocationDate: now }] }, xavier).der));
  const v = await qtm(['verify', j.proof, '--trust', join(world.dir, 'ca', 'ca.pem'), '--revocations', join(warrantsDir, 'xavier.crl')]);
  assert.equal(v.status, 1, v.stdout + v.stderr);
  assert.match(v.stdout, new RegExp(`✘ warrant: warrant ${serial} was revoked at .* \\(a proxy signature dated later than 120 s before that may have been backdated: refused\\)`));
  const trusting = await qtm(['verify', j.proof, '--trust', join(world.dir, 'ca', 'ca.pem'), '--revocations', join(warrantsDir, 'xavier.crl'), '--clock-tolerance', '0']);
  assert.equal(trusting.status, 0, 'believing the server\'s date (T = 0) it would pass: T is what refuses it');
});

test('attack: a first message more than T after the record: 409 E_RECORD_EXPIRED, the record abandoned for good; preparing again gives a new ID and time', async () => {
  const { card } = await coveredCard();
  const id = (await world.server.store.lastTransactionId()) + 1;
  await assert.rejects(transact(world, card, {
    hooks: autoHooks({ onStep: (step, phase) => { if (step === 'sign' && phase === 'start') offsetMs = 200_000; } }),
  }), (e) => {
    const err = (e instanceof StepError ? e.cause : e) as ServerError;
    assert.ok(err instanceof ServerError, String(e));
    assert.equal(err.status, 409);
    assert.equal(err.serverCode, 'E_RECORD_EXPIRED');
    assert.match(err.message, new RegExp(`transaction ${id} is abandoned: the record is dated .*, 2\\d\\d s ago, more than the clock tolerance of 120 s; prepare the order again`));
    return true;
  });
  offsetMs = 0;
  const rec = (await world.server.store.get(id))!;
  assert.equal(rec.abandoned?.type, 'abandoned');
  assert.equal(rec.confirmed, undefined, 'never signed');
  const again = await transact(world, card);
  assert.ok(again.transactionId > id, 'a new ID');
  assert.ok(Math.abs(Date.parse(again.recordTime) - Date.now()) < 10_000, 'and a fresh time');
});
