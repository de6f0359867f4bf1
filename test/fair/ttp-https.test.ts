/** The TTP over HTTPS: the same decisions as in process, 168 KB escrows in a request, refusals as 403. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { issueKeyAndCertificate } from '../../src/pki/ca.js';
import { signBytes } from '../../src/crypto/keys.js';
import { headerFor } from '../../src/proof/make-proof.js';
import { encodeHeader } from '../../src/protocol/qtm-package.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { memoryCa } from '../../src/proof/sample.js';
import { oaepEncrypt } from '../../src/fair/oaep.js';
import { makeVerifiableEscrow } from '../../src/fair/verifiable-escrow.js';
import { abortRequestStatement, escrowOfXStatement, resolveRequestStatement, verifyAbortToken, type Exchange } from '../../src/fair/ttp.js';
import { startTtp, type RunningTtp } from '../../src/fair/ttp-server.js';
import { TtpClient } from '../../src/fair/ttp-client.js';
import type { RateLimitedError, RateLimitWait } from '../../src/http/client.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { qtm } from '../helpers.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { startListeningProcess } from '../e2e/server-process.js';
import { tmpdir } from 'node:os';

const profile = PROFILES.v2;
const ca = memoryCa();
/** An identity as the servers take it: the key and its certificate chain. */
const identity = (...args: Parameters<typeof issueKeyAndCertificate>) => {
  const i = issueKeyAndCertificate(...args);
  return { privateKey: i.privateKey, certificate: i.certificate, certificates: [i.certificate] };
};
const server = identity(ca, { role: 'signer', subject: 'CN=Shop receipts' });
const card = identity(ca, { role: 'card', subject: 'CN=Customer,serialNumber=0102030405060708' });
const ttpId = identity(ca, { role: 'ttp', subject: 'CN=Example TTP' });
const ttpTls = identity(ca, { role: 'server', subject: 'CN=localhost' });
let dir: string;
let running: RunningTtp;
let client: TtpClient;
const logs: Record<string, unknown>[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-ttp-'));
  running = await startTtp({ identity: ttpId, tls: ttpTls, trustAnchors: [ca.certificate], storeDir: join(dir, 'ttp'), host: '127.0.0.1', port: 0, log: (l) => logs.push(l) });
  client = new TtpClient(running.url.replace('127.0.0.1', 'localhost'), ca.certificate.toString());
});
after(async () => {
  client.close();
  await running.close();
  rmSync(dir, { recursive: true, force: true });
});

let id = 1;
function exchange(): { exchange: Exchange; x: Buffer; y: Buffer } {
  const header = encodeHeader(headerFor({ profile, transactionId: id++, time: 1_790_000_000, content: Buffer.from('order\n'), server, partyA: server, partyB: card }));
  return {
    exchange: { header, deadline: 1_900_000_000, serverCertificates: [server.certificate], cardCertificates: [card.certificate] },
    x: signBytes(profile, server.privateKey, header),
    y: signBytes(profile, card.privateKey, header),
  };
}

test('over HTTPS: the server resolves with a 168 KB verifiable escrow and gets Y; the client then gets X', async () => {
  const t = exchange();
  const label = running.ttp.label(t.exchange);
  const escrowY = makeVerifiableEscrow({ cardKey: card.certificate.publicKey, ttpKey: ttpId.certificate.publicKey, label, message: t.exchange.header, signature: t.y });
  const answer = await client.request(t.exchange, { kind: 'resolve-server', x: t.x, escrowY, proof: signBytes(profile, server.privateKey, resolveRequestStatement(label, escrowY)) });
  assert.ok(answer.outcome === 'y' && answer.y.equals(t.y));
  const escrowX = oaepEncrypt(ttpId.certificate.publicKey, t.x, label);
  const forClient = await client.request(t.exchange, { kind: 'resolve-client', y: t.y, escrowX, escrowXSignature: signBytes(profile, server.privateKey, escrowOfXStatement(label, escrowX)) });
  assert.ok(forClient.outcome === 'x' && forClient.x.equals(t.x));
  assert.match(JSON.stringify(logs), /"path":"\/v1\/resolve\/server","status":200,"ms":[\d.]+,"outcome":"y"/);
});

test('over HTTPS: an abort gives a token anyone can check; a forged abort is refused with 403', async () => {
  const t = exchange();
  const label = running.ttp.label(t.exchange);
  const forged = await client.request(t.exchange, { kind: 'abort', proof: signBytes(profile, card.privateKey, abortRequestStatement(label)) });
  assert.equal(forged.outcome, 'refused');
  assert.match(forged.outcome === 'refused' ? forged.reason : '', /only the originator/);
  const a = await client.request(t.exchange, { kind: 'abort', proof: signBytes(profile, server.privateKey, abortRequestStatement(label)) });
  assert.ok(a.outcome === 'aborted' && verifyAbortToken(ttpId.certificate.publicKey, label, a.token));
});

test('over HTTPS: a TTP at its rate limit answers 429; the client waits out its Retry-After and gets the decision, or says E_RATE_LIMITED when told not to wait', async (t) => {
  // One request every 2 s per address, no burst: the second request at once is refused.
  const busyDir = mkdtempSync(join(tmpdir(), 'qtm-ttp-busy-'));
  const busy = await startTtp({ identity: ttpId, tls: ttpTls, trustAnchors: [ca.certificate], storeDir: join(busyDir, 'ttp'), host: '127.0.0.1', port: 0, log: () => {}, limits: { rate: { perSecond: 0.5, burst: 1 } } });
  const url = busy.url.replace('127.0.0.1', 'localhost');
  const waits: RateLimitWait[] = [];
  const patient = new TtpClient(url, ca.certificate.toString(), { retry: { onWait: (w) => waits.push(w) } });
  const impatient = new TtpClient(url, ca.certificate.toString(), { retry: { maxRetries: 0 } });
  t.after(async () => {
    patient.close();
    impatient.close();
    await busy.close();
    rmSync(busyDir, { recursive: true, force: true });
  });
  const first = exchange();
  const abort = (e: typeof first) => ({ kind: 'abort' as const, proof: signBytes(profile, server.privateKey, abortRequestStatement(busy.ttp.label(e.exchange))) });
  const a = await patient.request(first.exchange, abort(first));
  assert.equal(a.outcome, 'aborted');
  // The token is spent: told not to wait, the client names the refusal and the wait.
  const second = exchange();
  await assert.rejects(impatient.request(second.exchange, abort(second)), (err: RateLimitedError) => {
    assert.equal(err.code, 'E_RATE_LIMITED');
    assert.ok(err.retryAfterSeconds !== undefined && err.retryAfterSeconds >= 1, String(err.retryAfterSeconds));
    return true;
  });
  // A resolve at once: refused with 429, waited out, sent again, and decided once.
  const y = signBytes(profile, card.privateKey, first.exchange.header);
  const label = busy.ttp.label(first.exchange);
  const escrowX = oaepEncrypt(ttpId.certificate.publicKey, first.x, label);
  const r = await patient.request(first.exchange, { kind: 'resolve-client', y, escrowX, escrowXSignature: signBytes(profile, server.privateKey, escrowOfXStatement(label, escrowX)) });
  assert.ok(r.outcome === 'aborted' && verifyAbortToken(ttpId.certificate.publicKey, label, r.token), 'the exchange stays aborted: the repeat got the one decision');
  assert.ok(waits.length >= 1, 'the client waited at least once');
  for (const w of waits) {
    assert.equal(w.path, '/v1/resolve/client');
    assert.match(w.message, /too many requests/);
    assert.ok(w.seconds >= 1 && w.seconds <= 2, String(w.seconds));
  }
});

test('the TTP refuses to start with a key too small for the escrows, or its TLS key as escrow key', async () => {
  const small = identity(ca, { role: 'ttp', subject: 'CN=Small TTP', keySpec: 'rsa2048' });
  await assert.rejects(startTtp({ identity: small, tls: ttpTls, trustAnchors: [ca.certificate], storeDir: join(dir, 'x'), host: '127.0.0.1', port: 0 }), /RSA-3072 or larger/);
  await assert.rejects(startTtp({ identity: ttpId, tls: ttpId, trustAnchors: [ca.certificate], storeDir: join(dir, 'y'), host: '127.0.0.1', port: 0 }), /must not be its escrow key/);
});

test('qtm ttp start serves until stopped and says where it listens', async () => {
  const pass = 'ttp cli passphrase';
  writeIdentity(join(dir, 'keys', 'ttp'), [ttpId.certificate], ttpId.privateKey, pass);
  writeIdentity(join(dir, 'keys', 'ttp-tls'), [ttpTls.certificate], ttpTls.privateKey, pass);
  writeFileSync(join(dir, 'ca.pem'), ca.certificate.toString());
  const child = await startListeningProcess(['ttp', 'start', '--identity', join(dir, 'keys', 'ttp'), '--tls', join(dir, 'keys', 'ttp-tls'), '--trust', join(dir, 'ca.pem'), '--store', join(dir, 'cli-store'), '--port', '0'], { QTM_KEY_PASSPHRASE: pass });
  const url = child.url;
  const t = exchange();
  const cli = new TtpClient(url, ca.certificate.toString());
  const a = await cli.request(t.exchange, { kind: 'abort', proof: signBytes(profile, server.privateKey, abortRequestStatement(running.ttp.label(t.exchange))) });
  cli.close();
  assert.equal(a.outcome, 'aborted');
  // A second TTP on the same store would decide the same exchanges on its own: refused, exit 2.
  const second = qtm(['ttp', 'start', '--identity', join(dir, 'keys', 'ttp'), '--tls', join(dir, 'keys', 'ttp-tls'), '--trust', join(dir, 'ca.pem'), '--store', join(dir, 'cli-store'), '--port', '0'], { env: { QTM_KEY_PASSPHRASE: pass } });
  assert.equal(second.status, 2, second.stderr);
  assert.match(second.stderr, new RegExp(`the TTP store .*cli-store is in use by process ${child.child.pid}`));
  assert.doesNotMatch(second.stderr, /listening/);
  await child.stop();
  assert.equal(child.child.exitCode, 0);
  assert.match(child.log(), /"event":"stopped"/);
});

test('qtm ttp start after kill -9 keeps every answered decision; a lowdb ttp.json is converted when it starts', async () => {
  const pass = 'ttp cli passphrase';
  const store = join(dir, 'crash-store');
  const args = ['ttp', 'start', '--identity', join(dir, 'keys', 'ttp'), '--tls', join(dir, 'keys', 'ttp-tls'), '--trust', join(dir, 'ca.pem'), '--store', store, '--port', '0'];
  // A decision made by an earlier qtm, in its lowdb document.
  const old = exchange();
  const oldLabel = running.ttp.label(old.exchange);
  const oldToken = (await running.ttp.handle(old.exchange, { kind: 'abort', proof: signBytes(profile, server.privateKey, abortRequestStatement(oldLabel)) }));
  assert.equal(oldToken.outcome, 'aborted');
  const key = oldLabel.toString('hex');
  const oldRecord = { key, label: key, headerHash: createHash('sha256').update(old.exchange.header).digest('hex'), state: 'aborted', token: oldToken.outcome === 'aborted' ? oldToken.token.toString('base64') : '', at: new Date().toISOString() };
  mkdirSync(store, { recursive: true });
  writeFileSync(join(store, 'ttp.json'), JSON.stringify({ version: 1, records: { [key]: oldRecord } }));

  const first = await startListeningProcess(args, { QTM_KEY_PASSPHRASE: pass });
  assert.match(first.log(), /"event":"store","message":"TTP store: converted 1 records from ttp\.json \(lowdb\) to ttp\.log/);
  let cli = new TtpClient(first.url, ca.certificate.toString());
  // The converted decision stands: the client's resolve gets the abort, never X.
  const e = exchange();
  const label = running.ttp.label(e.exchange);
  const escrowX = oaepEncrypt(ttpId.certificate.publicKey, old.x, oldLabel);
  const late = await cli.request(old.exchange, { kind: 'resolve-client', y: old.y, escrowX, escrowXSignature: signBytes(profile, server.privateKey, escrowOfXStatement(oldLabel, escrowX)) });
  assert.ok(late.outcome === 'aborted' && oldToken.outcome === 'aborted' && late.token.equals(oldToken.token));
  const answered = await cli.request(e.exchange, { kind: 'abort', proof: signBytes(profile, server.privateKey, abortRequestStatement(label)) });
  cli.close();
  assert.equal(answered.outcome, 'aborted');
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));

  const again = await startListeningProcess(args, { QTM_KEY_PASSPHRASE: pass });
  cli = new TtpClient(again.url, ca.certificate.toString());
  const ex = oaepEncrypt(ttpId.certificate.publicKey, e.x, label);
  const after = await cli.request(e.exchange, { kind: 'resolve-client', y: e.y, escrowX: ex, escrowXSignature: signBytes(profile, server.privateKey, escrowOfXStatement(label, ex)) });
  cli.close();
  await again.stop();
  assert.ok(after.outcome === 'aborted' && answered.outcome === 'aborted' && after.token.equals(answered.token), 'the abort answered before kill -9 stands, with the same token');
  assert.doesNotMatch(again.log(), /converted/, 'converted once');
});
