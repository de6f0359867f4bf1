/**
 * Attacks on warrant revocation (issue 18 section 3), mounted over the server's real HTTPS: the
 * server's operator (or anyone who can write its warrants folder) tries to make it sign by proxy
 * under a warrant its issuer X revoked, by removing, replacing, rolling back or forging X's
 * revocation list, or by backdating a revocation to void proofs made while the warrant held.
 * Each is refused with 403 E_NO_WARRANT naming the reason, and the store keeps no new record.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { sign } from 'node:crypto';
import forge from 'node-forge';
import { join } from 'node:path';
import { StepError } from '../../src/client/transaction.js';
import { ServerError } from '../../src/client/api.js';
import { keyFingerprint } from '../../src/crypto/keys.js';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { createRequest, readRequest, WarrantRegistry } from '../../src/warrant/registry.js';
import { issueWarrant } from '../../src/warrant/warrant.js';
import { buildTbsCertList, crlPem, issueCrl, type CrlEntry } from '../../src/warrant/crl.js';
import { makeWorld, newCard, transact, type World } from '../e2e/env.js';
import { readIdentity, writeIdentity } from '../../src/pki/key-files.js';
import { fixture, qtm } from '../helpers.js';

const PASS = 'warrant key passphrase';
const MIN = 60_000;
const HOUR = 60 * MIN;
let world: World;
let xavier: ReturnType<typeof issueKeyAndCertificate>;
let warrantsDir: string;
let card: Awaited<ReturnType<typeof newCard>>;
const t0 = new Date(Math.floor(Date.now() / 1000) * 1000);

before(async () => {
  world = await makeWorld(({ dir, ca }) => {
    xavier = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Sales,O=Attack Shop' });
    warrantsDir = join(dir, 'warrants');
    createRequest(warrantsDir, 'sales', PASS);
    return { proxy: { registry: WarrantRegistry.open(warrantsDir, PASS), manager: [xavier.certificate] } };
  });
  card = await newCard(world);
  const w = issueWarrant({ issuer: xavier, subjectKey: readRequest(join(warrantsDir, 'sales.request.pem')), customers: [{ fingerprint: keyFingerprint(card.issued.certificate.publicKey) }], notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + HOUR) });
  writeFileSync(join(warrantsDir, 'card.warrant.pem'), [w, xavier.certificate].map((c) => c.toString()).join(''));
});
after(() => world.close());

function list(crlNumber: bigint, entries: CrlEntry[], o: { thisUpdate?: Date; nextUpdate?: Date; issuer?: typeof xavier } = {}) {
  const thisUpdate = o.thisUpdate ?? t0;
  return crlPem(issueCrl({ crlNumber, thisUpdate, nextUpdate: o.nextUpdate ?? new Date(thisUpdate.getTime() + HOUR), entries }, o.issuer ?? xavier).der);
}
const put = (pem: string, name = 'xavier.crl') => writeFileSync(join(warrantsDir, name), pem);

/** The transaction is refused with 403 E_NO_WARRANT matching `why`, and nothing is stored. */
async function refused(why: RegExp) {
  const id = (await world.server.store.lastTransactionId());
  await assert.rejects(transact(world, card), (e) => {
    const err = (e instanceof StepError ? e.cause : e) as ServerError;
    assert.ok(err instanceof ServerError, String(e));
    assert.equal(err.status, 403);
    assert.equal(err.serverCode, 'E_NO_WARRANT');
    assert.match(err.message, why);
    return true;
  });
  assert.equal((await world.server.store.lastTransactionId()), id, 'nothing prepared');
}

const A = { serial: 'AA01', revocationDate: new Date(t0.getTime() - 10 * MIN) };

test('attack: no list from X, or only another manager\'s list, or a damaged file: the server signs nothing for X', async () => {
  await refused(/no revocation list from "CN=Xavier Sales, O=Attack Shop"/);
  const olga = issueKeyAndCertificate(world.ca, { role: 'manager', subject: 'CN=Olga Other,O=Attack Shop' });
  put(list(9n, [], { issuer: olga }), 'olga.crl');
  await refused(/no revocation list from "CN=Xavier Sales, O=Attack Shop"/);
  rmSync(join(warrantsDir, 'olga.crl'));
  put('-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n');
  await refused(/xavier\.crl is not a usable revocation list \(revocation list \(CRL\): .*not a CertificateList/);
});

test('attack: a list in X\'s name signed by another key (unsigned, forged) is refused', async () => {
  const impostor = issueKeyAndCertificate(world.ca, { role: 'manager', subject: 'CN=Xavier Sales,O=Attack Shop' });
  put(list(1n, [], { issuer: impostor }));
  await refused(/xavier\.crl: the revocation list naming "CN=Xavier Sales, O=Attack Shop" is not signed by its key/);
});

test('X\'s genuine list is accepted and recorded with the time the server received it', async () => {
  put(list(2n, [A]));
  const r = await transact(world, card);
  assert.ok(r.transactionId > 0);
  const state = JSON.parse(readFileSync(join(warrantsDir, 'crl-state.json'), 'utf8'));
  const mine = state.issuers[keyFingerprint(xavier.certificate.publicKey)];
  assert.equal(mine.crlNumber, '2');
  assert.deepEqual(mine.revoked, [{ serial: 'AA01', revocationDate: A.revocationDate.toISOString() }]);
  assert.ok(Math.abs(Date.parse(mine.received[0].receivedAt) - Date.now()) < MIN);
});

test('attack: the older list put back (rollback) is refused', async () => {
  put(list(1n, []));
  await refused(/the revocation list of "CN=Xavier Sales, O=Attack Shop" is older \(number 1\) than the one this server already had \(number 2, received /);
});

test('attack: a newer list with an entry removed is refused', async () => {
  put(list(3n, []));
  await refused(/number 3 has lost the entry for warrant AA01 \(revoked .* in number 2\)/);
});

test('attack: a revocation dated before the previous list\'s thisUpdate (backdated) is refused', async () => {
  put(list(3n, [A, { serial: 'BB02', revocationDate: new Date(t0.getTime() - 20 * MIN) }], { thisUpdate: new Date(t0.getTime() + 1000) }));
  await refused(/number 3 revokes warrant BB02 as of .*, before the previous list's thisUpdate .*: a backdated revocation/);
});

test('attack: another list under a number already seen is refused', async () => {
  put(list(2n, [A, { serial: 'CC03', revocationDate: t0 }]));
  await refused(/number 2 differs from the list with that number this server already had/);
});

test('attack: a list past its nextUpdate is refused until X renews it', async () => {
  put(list(3n, [A], { thisUpdate: t0, nextUpdate: new Date(Date.now() - 1000) }));
  await refused(/was due to be replaced at .*`qtm warrant revoke` with no serial renews it/);
  put(list(4n, [A], { thisUpdate: new Date(t0.getTime() + 2000) }));
  assert.ok((await transact(world, card)).transactionId > 0, 'renewed: signing again');
});

test('attack: the server\'s record of lists seen (crl-state.json) emptied or damaged: it signs nothing for X until it is restored', async () => {
  const file = join(warrantsDir, 'crl-state.json');
  const saved = readFileSync(file, 'utf8');
  for (const [what, text] of [['empty', ''], ['truncated', saved.slice(0, 40)], ['wrong-typed', saved.replace(/"crlNumber": "(\d+)"/, '"crlNumber": $1')]] as const) {
    writeFileSync(file, text);
    await refused(/crl-state\.json: revocation list state: /);
    assert.equal(readFileSync(file, 'utf8'), text, `${what}: left as found`);
  }
  writeFileSync(file, saved);
});

test('migration: an entry of the old unsigned revocations.json stops proxy signing until X signs it into the CRL (qtm warrant revoke --import-json)', async () => {
  const fp = keyFingerprint(xavier.certificate.publicKey);
  const revokedAt = new Date(t0.getTime() + 2000).toISOString(); // not before list 4's thisUpdate
  writeFileSync(join(warrantsDir, 'revocations.json'), JSON.stringify({ version: 1, revoked: [{ serial: 'DD04', issuer: fp, revokedAt, reason: 'old' }, { serial: 'EE05', issuer: 'ab'.repeat(32), revokedAt }] }));
  await refused(/revocations\.json revokes warrant DD04 at .*, which the revocation list of "CN=Xavier Sales, O=Attack Shop" \(number 4\) does not: have X sign it in with `qtm warrant revoke --import-json`/);
  const prefix = join(warrantsDir, '..', 'xavier');
  writeIdentity(prefix, [xavier.certificate], xavier.privateKey, PASS);
  const r = qtm(['warrant', 'revoke', '--issuer', prefix, '--crl', join(warrantsDir, 'xavier.crl'), '--import-json', join(warrantsDir, 'revocations.json'), '--json'], { env: { QTM_KEY_PASSPHRASE: PASS } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.crlNumber, '5');
  assert.deepEqual(out.revoked, [{ serial: 'AA01', revocationDate: A.revocationDate.toISOString() }, { serial: 'DD04', revocationDate: revokedAt }], 'X\'s entries only, with their times');
  assert.ok((await transact(world, card)).transactionId > 0, 'migrated: signing again');
});

test('attack on an auditor: qtm verify --revocations with a list that is not X\'s own (another manager\'s, one forged in X\'s name, one X may not sign) fails the warrant check (exit 1)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-crl-verify-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = fixture('bundles', 'sample-v3-proxy.json');
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Other CA', passphrase: PASS });
  const x = readIdentity(fixture('keys', 'manager-v2'), 'qtm-fixture-only');
  const now = new Date();
  const content = { crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + HOUR), entries: [] };
  const crlOf = (issuer: { certificate: import('node:crypto').X509Certificate; privateKey: import('node:crypto').KeyObject }) => {
    const { tbs, algorithm } = buildTbsCertList(content, issuer.certificate);
    // Signed by hand: issueCrl would refuse to make a list its issuer may not sign.
    const der = Buffer.from(forge.asn1.toDer(forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.SEQUENCE, true, [
      forge.asn1.fromDer(tbs.toString('binary')), algorithm,
      forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.BITSTRING, false, '\x00' + sign('sha256', tbs, issuer.privateKey).toString('binary')),
    ])).getBytes(), 'binary');
    return crlPem(der);
  };
  const cases: [string, string, RegExp][] = [
    ['other.crl', crlOf(issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Olga Other,O=Example Shop B.V.' })), /the revocation list is not issued by "CN=Xavier Manager, O=Example Shop B\.V\.": give X's own list to --revocations/],
    ['forged.crl', crlOf(issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Manager,O=Example Shop B.V.' })), /the revocation list naming "CN=Xavier Manager, O=Example Shop B\.V\." is not signed by its key/],
    // The fixture's manager certificate predates CRLs: no cRLSign, so its list is not believed either.
    ['no-crlsign.crl', crlOf({ certificate: x.certificates[0]!, privateKey: x.privateKey }), /"CN=Xavier Manager, O=Example Shop B\.V\." may not sign revocation lists \(no cRLSign key usage: reissue its certificate\)/],
  ];
  for (const [name, pem, why] of cases) {
    writeFileSync(join(dir, name), pem);
    const r = qtm(['verify', bundle, '--trust', fixture('ca', 'ca.pem'), '--revocations', join(dir, name)]);
    assert.equal(r.status, 1, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^INVALID /m, name);
    assert.match(r.stdout, why, name);
  }
  const without = qtm(['verify', bundle, '--trust', fixture('ca', 'ca.pem')]);
  assert.equal(without.status, 0, 'the same proof without a list is valid: the list is what fails it');
});
