/**
 * Many `qtm server start` processes on one PostgreSQL store (issue 10): any instance serves any
 * step of any transaction; an instance killed with SIGKILL mid-run loses no acknowledged
 * transaction and every card still gets its receipts through another; `--workers 2` serves; and
 * `qtm server audit` finds a row edited with psql. Real processes, real HTTPS, a real
 * PostgreSQL (test/pg-cluster.ts; skipped locally without the postgresql package, failed in CI).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam, type Sam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';
import { QtmApi } from '../../src/client/api.js';
import { openAndAuthenticate, runTransaction } from '../../src/client/transaction.js';
import { fetchReceipts } from '../../src/client/fetch-receipts.js';
import { Archive } from '../../src/client/archive.js';
import * as M from '../../src/protocol/messages.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { startPgCluster, type PgCluster } from '../pg-cluster.js';
import { qtm } from '../helpers.js';
import { cosigner } from '../../src/tlog/cosignature.js';
import { readNoteKey, readVkeyFile } from '../../src/tlog/log-key.js';
import { SIG_TYPE_COSIGNATURE_V1 } from '../../src/tlog/note.js';
import { createWitnessServer } from '../../src/tlog/witness-server.js';

const PASS = 'pg instances passphrase';
const PIN = '123456';
const ENV = { QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS };
let cluster: PgCluster | undefined;
let dir: string;
let url: string;
let ca: OpenCa;
let sam: Sam;
let caPem: string;
let serverArgs: string[];
const servers: ServerProcess[] = [];
let cards = 0;

before(async (t) => {
  cluster = await startPgCluster(t as never);
  if (!cluster) return;
  url = await cluster.database();
  dir = mkdtempSync(join(tmpdir(), 'qtm-pg-e2e-'));
  ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=PG CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=PG Shop receipts' });
  writeIdentity(join(dir, 'receipts'), [signer.certificate], signer.privateKey, PASS);
  sam = initSam(join(dir, 'shop.sam'), PASS);
  caPem = join(dir, 'ca', 'ca.pem');
  serverArgs = ['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', caPem];
  // Two migrations at once are safe (advisory lock); the second applies nothing.
  const [m1, m2] = await Promise.all([1, 2].map(() => new Promise<ReturnType<typeof qtm>>((r) => setImmediate(() => r(qtm(['server', 'migrate', '--store', url, '--json']))))));
  assert.equal(m1!.status, 0, m1!.stderr);
  assert.equal(m2!.status, 0, m2!.stderr);
  assert.deepEqual(JSON.parse(qtm(['server', 'migrate', '--store', url, '--json']).stdout).applied, []);
});

after(async () => {
  // One killed with SIGKILL has exited already (its exitCode stays null: it has a signalCode).
  await Promise.all(servers.filter((s) => s.child.exitCode === null && s.child.signalCode === null).map((s) => s.stop()));
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(extra: string[] = [], env: Record<string, string> = {}): Promise<ServerProcess> {
  const s = await startServerProcess([...serverArgs, ...extra], { ...ENV, QTM_STORE: url, ...env });
  servers.push(s);
  return s;
}

async function newCard(slots = 8) {
  const file = join(dir, `card-${++cards}.json`);
  FileStorage.create(file, slots);
  const issued = await issueCard(new CardClient(InProcessTransport.forFile(file)), { ca, sam, register: IssuanceRegister.open(join(dir, 'ca', 'register'), sam.kcv), holder: `CN=PG Customer ${cards}`, pin: PIN, puk: '12345678', slots, profile: 'v2' });
  return { file, issued, client: new CardClient(InProcessTransport.forFile(file)), archive: await Archive.open(join(dir, `archive-${cards}`)) };
}

const sql = (text: string) => {
  const r = cluster!.psql(url, text);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
};

test('an order composed through instance A is prepared, signed and confirmed through B, and acknowledged through A', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const [a, b] = [await start(), await start()];
  const card = await newCard();
  const hooks = { accept: async () => true, pin: async () => PIN };
  const apiA = new QtmApi(a.url, readFileSync(caPem, 'utf8'));
  const apiB = new QtmApi(b.url, readFileSync(caPem, 'utf8'));
  try {
    // Each instance authenticates the card on its own TLS connection (the login is bound to it).
    await openAndAuthenticate(apiA, card.client, PIN, hooks, {});
    await openAndAuthenticate(apiB, card.client, PIN, hooks, {});
    const concept = await apiA.call('POST', '/orders', { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, M.decodeConceptOrder);
    const prepared = await apiB.call('POST', '/transactions', { orderId: concept.orderId, content: concept.content.toString('base64') }, M.decodePrepared);
    // The same order prepared again through A: the same transaction, not a second one.
    const again = await apiA.call('POST', '/transactions', { orderId: concept.orderId, content: concept.content.toString('base64') }, M.decodePrepared);
    assert.equal(again.transactionId, prepared.transactionId);
    const signature = await card.client.signHeader(prepared.header);
    const first = { signature, challenge: await card.client.getChallenge(), slot: 1, priority: 0 };
    const second = await apiB.call('POST', `/transactions/${prepared.transactionId}/confirm`, M.encodeFirstMessage(first), M.decodeSecondMessage);
    assert.ok(second.headSignature, 'the second message carries the signed head');
    // A retried confirm through A gets the stored answer.
    assert.deepEqual((await apiA.call('POST', `/transactions/${prepared.transactionId}/confirm`, M.encodeFirstMessage(first), M.decodeSecondMessage)).envelope, second.envelope);
    const proof = await card.client.secureWrite(1, second.envelope);
    const acked = await apiA.call('POST', `/transactions/${prepared.transactionId}/ack`, M.encodeThirdMessage({ transactionId: prepared.transactionId, proof }));
    assert.deepEqual(acked, { transactionId: prepared.transactionId, state: 'delivered' });
  } finally {
    apiA.close();
    apiB.close();
  }
  assert.equal(sql(`SELECT state FROM transactions ORDER BY id DESC LIMIT 1`), 'delivered');
  // qtm sign through each instance in turn, as a customer would.
  await Promise.all([a.stop(), b.stop()]);
});

test('transactions spread over two instances, one killed with SIGKILL mid-run: every acknowledged one is stored once, every card gets its receipts', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const [a, b] = [await start(), await start()];
  const acknowledged: number[] = [];
  let killed = false;
  const run = async (card: Awaited<ReturnType<typeof newCard>>, n: number) => {
    for (let i = 0; i < n; i++) {
      const viaA = !killed && i % 2 === 0;
      const api = new QtmApi(viaA ? a.url : b.url, readFileSync(caPem, 'utf8'));
      try {
        const r = await runTransaction({
          api, card: card.client, trustAnchors: [ca.certificate], archive: card.archive, order: { items: [{ sku: 'PAPER-A4', quantity: 1 }] },
          hooks: {
            accept: async () => true, pin: async () => PIN,
            // Kill A while one of its confirms is on the wire: stored or not, never half.
            onStep: (step, phase) => {
              if (viaA && !killed && step === 'confirm' && phase === 'start' && acknowledged.length >= 3) {
                killed = true;
                a.child.kill('SIGKILL');
              }
            },
          },
        });
        acknowledged.push(r.transactionId);
      } catch {
        // A's death cut this one short: the card comes back through B (below).
      } finally {
        api.close();
      }
    }
  };
  const cardsHere = await Promise.all([newCard(), newCard(), newCard()]);
  await Promise.all(cardsHere.map((c) => run(c, 5)));
  assert.ok(killed, 'instance A was killed during the run');
  assert.ok(acknowledged.length >= 6, `only ${acknowledged.length} transactions were acknowledged`);
  // Every card fetches what was signed for it and not delivered, through B.
  for (const card of cardsHere) {
    const api = new QtmApi(b.url, readFileSync(caPem, 'utf8'));
    try {
      await fetchReceipts({ api, card: card.client, trustAnchors: [ca.certificate], archive: card.archive, pin: PIN });
    } finally {
      api.close();
    }
  }
  assert.equal(new Set(acknowledged).size, acknowledged.length, 'a transaction ID was acknowledged twice');
  for (const id of acknowledged) {
    assert.equal(sql(`SELECT count(*) FILTER (WHERE type = 'prepared') || ',' || count(*) FILTER (WHERE type IN ('confirmed', 'resolved')) FROM entries WHERE transaction_id = ${id}`), '1,1', `transaction ${id}`);
    assert.equal(sql(`SELECT state FROM transactions WHERE id = ${id}`), 'delivered');
  }
  assert.equal(sql(`SELECT count(*) FROM transactions WHERE state = 'confirmed'`), '0', 'a signed receipt never reached its card');
  await b.stop();
});

test('behind a TCP load balancer that passes TLS through, connections spread over two instances serve transactions end to end', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const backends = [await start(), await start()];
  // Round robin per connection, bytes passed through untouched (HAProxy mode tcp, an L4 balancer).
  let next = 0;
  const balancer = createServer((client) => {
    const port = Number(new URL(backends[next++ % backends.length]!.url).port);
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => balancer.listen(0, '127.0.0.1', () => r()));
  const front = `https://localhost:${(balancer.address() as AddressInfo).port}`;
  const card = await newCard();
  const served = () => backends.map((b) => (b.log().match(/"path":"\/transactions\/\d+\/ack"/g) ?? []).length);
  const before = served();
  try {
    for (let i = 0; i < 4; i++) {
      // Each run is one client connection (keep-alive): the card logs in on it, wherever it lands.
      const api = new QtmApi(front, readFileSync(caPem, 'utf8'));
      try {
        const r = await runTransaction({ api, card: card.client, trustAnchors: [ca.certificate], archive: card.archive, order: { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, hooks: { accept: async () => true, pin: async () => PIN } });
        assert.equal(sql(`SELECT state FROM transactions WHERE id = ${r.transactionId}`), 'delivered');
      } finally {
        api.close();
      }
    }
    // Request log lines reach this process through a pipe, after the replies: wait for all four.
    const acks = () => served().map((n, i) => n - before[i]!);
    for (let i = 0; i < 250 && acks()[0]! + acks()[1]! < 4; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(acks(), [2, 2], 'each instance acknowledged two of the four');
  } finally {
    await new Promise((r) => balancer.close(r));
    await Promise.all(backends.map((b) => b.stop()));
  }
});

test('--workers 2 on PostgreSQL serves transactions; the embedded store refuses --workers 2, and PostgreSQL refuses a --log directory', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const w = await start(['--workers', '2']);
  const card = await newCard();
  for (let i = 0; i < 4; i++) {
    const api = new QtmApi(w.url, readFileSync(caPem, 'utf8'));
    try {
      const r = await runTransaction({ api, card: card.client, trustAnchors: [ca.certificate], archive: card.archive, order: { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, hooks: { accept: async () => true, pin: async () => PIN } });
      assert.equal(sql(`SELECT state FROM transactions WHERE id = ${r.transactionId}`), 'delivered');
    } finally {
      api.close();
    }
  }
  // Both workers started and listen on the one port.
  for (let i = 0; i < 50 && (w.log().match(/"event":"listening"/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((w.log().match(/"event":"listening"/g) ?? []).length, 2, w.log());
  await w.stop();

  const embedded = qtm(['server', 'start', ...serverArgs, '--store', join(dir, 'store'), '--workers', '2'], { env: ENV });
  assert.equal(embedded.status, 2, embedded.stderr);
  assert.match(embedded.stderr, /--workers 2 needs a PostgreSQL store/);
  // A database never migrated is refused with what to do; --migrate at start migrates it.
  const fresh = await cluster.database();
  const unmigrated = qtm(['server', 'start', ...serverArgs, '--store', fresh, '--port', '0'], { env: ENV });
  assert.equal(unmigrated.status, 2, unmigrated.stderr);
  assert.match(unmigrated.stderr, /is not migrated .*qtm server migrate/);
  assert.doesNotMatch(unmigrated.stderr, /postgres:\/\/[^ ]*:[^*@ ]+@/, 'no password in messages');
  // (A fresh store for a receipt key that signed elsewhere needs --first-id: the signer marker.)
  const migrated = await start(['--store', fresh, '--migrate', '--first-id', '1000']);
  await migrated.stop();
  assert.equal(JSON.parse(qtm(['server', 'migrate', '--store', fresh, '--json']).stdout).applied.length, 0);
  const withLog = qtm(['server', 'start', ...serverArgs, '--store', url, '--log', join(dir, 'tlog'), '--log-key', join(dir, 'receipts'), '--port', '0'], { env: ENV });
  assert.equal(withLog.status, 2, withLog.stderr);
  assert.match(withLog.stderr, /PostgreSQL store keeps its transparency log in the database.*give --log-key without --log/);
});

test('the transparency log on PostgreSQL: two instances with one --log-key append to one log and serve it; receipts prove inclusion, a witness cosigns, the audit agrees', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  assert.equal(qtm(['log', 'init', '--out', join(dir, 'log'), '--origin', 'shop.example/log'], { env: ENV }).status, 0);
  assert.equal(qtm(['log', 'witness-key', '--out', join(dir, 'w1'), '--name', 'witness.example/w1'], { env: ENV }).status, 0);
  const vkey = join(dir, 'log.vkey');
  mkdirSync(join(dir, 'w1-state'));
  const witness = createWitnessServer({ logs: [readVkeyFile(vkey)], cosigner: cosigner(readNoteKey(join(dir, 'w1'), PASS, SIG_TYPE_COSIGNATURE_V1)), stateDir: join(dir, 'w1-state') });
  await new Promise<void>((r) => witness.listen(0, '127.0.0.1', () => r()));
  const witnessUrl = `http://127.0.0.1:${(witness.address() as AddressInfo).port}/`;
  const logArgs = ['--log-key', join(dir, 'log'), '--log-witness', witnessUrl];
  const [a, b] = [await start(logArgs), await start(logArgs)];
  const httpsEnv = { NODE_EXTRA_CA_CERTS: caPem };
  try {
    // What was signed in this store before the log existed got its leaves when the first instance started.
    assert.equal(sql(`SELECT count(*) FROM tlog_entries`), sql(`SELECT count(*) FROM transactions WHERE signed_by IS NOT NULL`));
    const card = await newCard();
    const bundles: { file: string; index: number }[] = [];
    for (const s of [a, b, a, b]) {
      const api = new QtmApi(s.url, readFileSync(caPem, 'utf8'));
      try {
        const r = await runTransaction({ api, card: card.client, trustAnchors: [ca.certificate], archive: card.archive, order: { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, hooks: { accept: async () => true, pin: async () => PIN } });
        bundles.push({ file: r.bundleFile, index: JSON.parse(readFileSync(r.bundleFile, 'utf8')).transparency.index });
      } finally {
        api.close();
      }
    }
    // One sequence of indices across both instances, in commit order, with no gap.
    assert.deepEqual(bundles.map((x) => x.index), [0, 1, 2, 3].map((i) => bundles[0]!.index + i));
    assert.equal(sql(`SELECT count(*) = max(idx) + 1 FROM tlog_entries`), 't');
    for (const { file } of bundles) {
      const v = qtm(['verify', file, '--trust', caPem, '--log-key', vkey, '--json']);
      assert.equal(v.status, 0, v.stdout);
    }
    // Both serve the one log (HTTPS with the shop's private CA, as an auditor reads it); the
    // audit rebuilds it through either and finds the store's set.
    for (const s of [a, b]) {
      const audit = qtm(['log', 'audit', '--store', url, '--log', `${s.url}/log/`, '--log-key', vkey, '--json'], { env: httpsEnv });
      assert.equal(audit.status, 0, audit.stdout + audit.stderr);
      assert.equal(JSON.parse(audit.stdout).ok, true);
    }
    // Published statically: a mirror of what A serves, which the audit reads as it reads A.
    const mirror = qtm(['log', 'mirror', '--log', `${a.url}/log/`, '--log-key', vkey, '--out', join(dir, 'mirror'), '--json'], { env: httpsEnv });
    assert.equal(mirror.status, 0, mirror.stderr);
    assert.equal(qtm(['log', 'audit', '--store', url, '--log', join(dir, 'mirror'), '--log-key', vkey]).status, 0);
    // The customer's monitor finds exactly this card's four leaves, through A.
    const keys = readdirSync(join(card.archive.dir, 'monitor-keys'));
    assert.equal(keys.length, 1);
    const m = qtm(['log', 'monitor', '--log', `${a.url}/log/`, '--log-key', vkey, '--state', join(dir, 'monitor.json'), '--card-key', join(card.archive.dir, 'monitor-keys', keys[0]!), '--json'], { env: httpsEnv });
    assert.equal(m.status, 0, m.stderr);
    assert.deepEqual(JSON.parse(m.stdout).cards[0].leaves, bundles.map((x) => x.index));
    // The witness cosigned a checkpoint pushed by an instance (not a timed assertion: wait for it).
    const last = bundles[3]!.index + 1;
    for (let i = 0; i < 500 && Number(sql(`SELECT coalesce(max(size), 0) FROM tlog_cosigned`)) < last; i++) await new Promise((r) => setTimeout(r, 20));
    const prove = qtm(['log', 'prove', bundles[0]!.file, '--log', `${b.url}/log/`, '--log-key', vkey, '--witness', join(dir, 'w1.vkey'), '--out', join(dir, 'witnessed.json')], { env: httpsEnv });
    assert.equal(prove.status, 0, prove.stderr);
    const v = qtm(['verify', join(dir, 'witnessed.json'), '--trust', caPem, '--log-key', vkey, '--witness', join(dir, 'w1.vkey'), '--json']);
    assert.equal(v.status, 0, v.stdout);
    // The database failing under the log is a server error, not "no checkpoint" (a monitor must not read a 404 as a log withdrawn).
    const status = () => new Promise<number>((resolve, reject) => {
      const u = new URL(`${a.url}/log/checkpoint`);
      const req = httpsRequest({ host: u.hostname, port: u.port, path: u.pathname, ca: readFileSync(caPem, 'utf8') }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(await status(), 200);
    sql(`ALTER TABLE tlog_meta RENAME TO tlog_meta_away`);
    try {
      assert.equal(await status(), 500);
    } finally {
      sql(`ALTER TABLE tlog_meta_away RENAME TO tlog_meta`);
    }
    assert.equal(await status(), 200);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await new Promise((r) => witness.close(r));
  }
});

test('qtm server audit on PostgreSQL: clean, then a row edited with psql is found (exit 1), in the entries and in the transactions table', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const audit = () => qtm(['server', 'audit', '--store', url, '--signer-cert', join(dir, 'receipts.pem'), '--trust', caPem, '--json'], { env: ENV });
  const clean = audit();
  assert.equal(clean.status, 0, clean.stdout + clean.stderr);
  const report = JSON.parse(clean.stdout) as { total: number; logProblems: string[]; tampered: unknown[] };
  assert.ok(report.total >= 8);
  assert.deepEqual(report.logProblems, []);
  const id = Number(sql(`SELECT max(id) FROM transactions WHERE state = 'delivered'`));

  // The transactions table: a delivered receipt marked pending again (to be offered twice).
  sql(`UPDATE transactions SET state = 'confirmed' WHERE id = ${id}`);
  let r = audit();
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stdout, new RegExp(`transactions row ${id} differs from its entries \\(edited\\): state`));
  sql(`UPDATE transactions SET state = 'delivered' WHERE id = ${id}`);
  assert.equal(audit().status, 0);

  // The entries table refuses an edit; its owner can drop the guard, and the chain shows the edit.
  const refused = cluster!.psql(url, `UPDATE entries SET line = line WHERE transaction_id = ${id}`);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /append-only/);
  sql(`ALTER TABLE entries DISABLE TRIGGER entries_append_only;
       UPDATE entries SET line = replace(line, '"time":', '"time":1') WHERE transaction_id = ${id} AND type = 'prepared'`);
  r = audit();
  assert.equal(r.status, 1, r.stdout);
  const edited = JSON.parse(r.stdout) as { logProblems: string[] };
  assert.ok(edited.logProblems.some((p) => /was edited: its line no longer hashes/.test(p)), edited.logProblems.join('\n'));
  // Recomputing the hashes does not help: the signed head names the old chain.
  const human = qtm(['server', 'audit', '--store', url, '--signer-cert', join(dir, 'receipts.pem'), '--trust', caPem], { env: ENV });
  assert.equal(human.status, 1);
  assert.match(human.stdout, /TAMPERED/);
});
