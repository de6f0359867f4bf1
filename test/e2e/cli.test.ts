/**
 * The transaction as a user runs it: `qtm server start` in its own process, `qtm sign` as a
 * script (--yes) and as a person at a terminal (tmux), then `qtm verify` and `qtm server audit`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate } from '../../src/pki/ca.js';
import { writeIdentity } from '../../src/pki/key-files.js';
import { initSam } from '../../src/sam/sam.js';
import { QTM_BIN, qtm, requireTool, ROOT } from '../helpers.js';
import { startListeningProcess, startServerProcess, type ServerProcess } from './server-process.js';

const PASS = 'cli e2e passphrase';
const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS, QTM_PIN: '123456', QTM_PUK: '12345678' };
let dir: string;
let server: ServerProcess;
let url: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qtm-cli-e2e-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=CLI E2E CA', passphrase: PASS });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=CLI Shop receipts' });
  writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
  writeIdentity(join(dir, 'receipts'), [signer.certificate], signer.privateKey, PASS);
  initSam(join(dir, 'shop.sam'), PASS);
  const issue = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice CLI', '--card', join(dir, 'alice.card.json')], { env });
  assert.equal(issue.status, 0, issue.stderr);
  server = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'),
    '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store')], env);
  url = server.url;
});

after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const client = () => ['--server', url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive')];

test('qtm sign --yes --json: a scripted transaction, then verify, receipts list and audit', async () => {
  const r = qtm(['sign', ...client(), '--items', 'PAPER-A4:2,PEN-BLUE:1', '--yes', '--json'], { env: { QTM_PIN: '123456' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing on stderr without a TTY');
  const result = JSON.parse(r.stdout);
  assert.equal(result.slot, 1);
  assert.ok(existsSync(result.proof));
  assert.ok(result.apdus <= 16);
  assert.equal(qtm(['verify', result.proof, '--trust', join(dir, 'ca', 'ca.pem')]).status, 0);
  const list = JSON.parse(qtm(['receipts', 'list', '--card', join(dir, 'alice.card.json'), '--json']).stdout);
  assert.equal(list.slots[0].transactionId, result.transactionId);
  const audit = qtm(['server', 'audit', '--store', join(dir, 'store'), '--signer-cert', join(dir, 'receipts.pem'), '--trust', join(dir, 'ca', 'ca.pem'), '--json']);
  assert.equal(audit.status, 0, audit.stdout + audit.stderr);
  assert.ok(JSON.parse(audit.stdout).byState.delivered >= 1);
  // spawnSync blocked this event loop: let the server's log lines arrive.
  const deadline = Date.now() + 5000;
  while (!/"path":"\/transactions\/\d+\/ack","status":200/.test(server.log()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(server.log(), /"method":"POST","path":"\/transactions\/\d+\/confirm","status":200,"ms":[\d.]+,"client":"[0-9A-F]{16}","tx":\d+/);
});

test('qtm sign: PIN from stdin; refusals with clear one-line errors and exit codes', () => {
  const r = qtm(['sign', ...client(), '--items', 'NOTEBOOK:1', '--yes', '--pin-stdin', '--json'], { input: '123456\n' });
  assert.equal(r.status, 0, r.stderr);
  const noYes = qtm(['sign', ...client(), '--items', 'NOTEBOOK:1'], { env: { QTM_PIN: '123456' } });
  assert.equal(noYes.status, 2);
  assert.match(noYes.stderr, /not on a terminal: nobody can read and accept the order \(pass --yes/);
  const wrongPin = qtm(['sign', ...client(), '--items', 'NOTEBOOK:1', '--yes'], { env: { QTM_PIN: '999999' } });
  assert.equal(wrongPin.status, 1);
  assert.match(wrongPin.stderr, /^qtm: error: open the card and verify the PIN: wrong PIN: 2 tries left/);
  assert.equal(qtm(['sign', ...client(), '--items', 'NOTEBOOK:1', '--yes'], { env: { QTM_PIN: '123456' } }).status, 0, 'the right PIN resets the counter');
  const unknown = qtm(['sign', ...client(), '--items', 'CAVIAR:1', '--yes'], { env: { QTM_PIN: '123456' } });
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /fetch the concept order: server refused \(403 E_UNKNOWN_SKU\): unknown article "CAVIAR"/);
  const badTrust = qtm(['sign', '--server', url, '--trust', join(ROOT, 'fixtures', 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--items', 'NOTEBOOK:1', '--yes'], { env: { QTM_PIN: '123456' } });
  assert.equal(badTrust.status, 1);
  assert.match(badTrust.stderr, /server authentication failed/);
  const down = qtm(['sign', '--server', 'https://localhost:1', '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--items', 'NOTEBOOK:1', '--yes'], { env: { QTM_PIN: '123456' } });
  assert.equal(down.status, 2);
  assert.match(down.stderr, /cannot reach https:\/\/localhost:1: ECONNREFUSED \(check --server/);
});

/** tmux on a server of this test process's own (-L), never one another run on the machine shares or stops. */
function tmux(args: string[]): string {
  return spawnSync('tmux', ['-L', `qtm-test-${process.pid}`, ...args], { encoding: 'utf8' }).stdout;
}

async function waitForScreen(session: string, pattern: RegExp, ms = 20_000): Promise<string> {
  const deadline = Date.now() + ms;
  let screen = '';
  while (Date.now() < deadline) {
    screen = tmux(['capture-pane', '-p', '-t', session, '-S', '-60']);
    if (pattern.test(screen)) return screen;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`screen never showed ${pattern}:\n${screen}`);
}

test('the text-only dialog at a terminal: the order is shown, accepted, PIN masked; declining signs nothing', async (t) => {
  if (!requireTool(t, 'tmux', 'apt-get install tmux')) return;
  for (const answer of ['y', 'n'] as const) {
    const session = `qtm-dialog-${process.pid}-${answer}`;
    const exitFile = join(dir, `exit-${answer}`);
    const cmd = [process.execPath, QTM_BIN, 'sign', ...client(), '--items', 'STAPLER:1'].map((a) => `'${a}'`).join(' ');
    tmux(['new-session', '-d', '-s', session, '-x', '150', '-y', '50', `env -u QTM_PIN NO_COLOR=1 ${cmd}; echo $? > '${exitFile}'; sleep 30`]);
    try {
      const shown = await waitForScreen(session, /Sign this order with your card\?/);
      assert.match(shown, /Order to sign: \d+ bytes, SHA-256 [0-9a-f]{64}/);
      assert.match(shown, /│ Order \d{8}-[0-9a-f]{8}/);
      assert.match(shown, /│ +1 x Stapler, 24\/6/);
      tmux(['send-keys', '-t', session, answer, 'Enter']);
      if (answer === 'y') {
        await waitForScreen(session, /card PIN/);
        tmux(['send-keys', '-t', session, '123456', 'Enter']);
        const done = await waitForScreen(session, /signed: transaction \d+/);
        assert.doesNotMatch(done, /123456/, 'the PIN is never echoed');
        assert.match(done, /✔ send the third message \(\d+ ms\)/);
      } else {
        await waitForScreen(session, /order declined: nothing was signed/);
      }
      const deadline = Date.now() + 5000;
      while (!existsSync(exitFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(readFileSync(exitFile, 'utf8').trim(), answer === 'y' ? '0' : '1');
    } finally {
      tmux(['kill-session', '-t', session]);
    }
  }
});

test('Ctrl-C at the accept or the PIN prompt: "cancelled", nothing signed, exit 130', async (t) => {
  if (!requireTool(t, 'tmux', 'apt-get install tmux')) return;
  const slotsUsed = () => JSON.parse(qtm(['receipts', 'list', '--card', join(dir, 'alice.card.json'), '--json']).stdout).slots.filter((s: { state: string }) => s.state !== 'free').length;
  const before = slotsUsed();
  for (const at of ['accept', 'pin'] as const) {
    const session = `qtm-cancel-${process.pid}-${at}`;
    const exitFile = join(dir, `exit-cancel-${at}`);
    const cmd = [process.execPath, QTM_BIN, 'sign', ...client(), '--items', 'STAPLER:1'].map((a) => `'${a}'`).join(' ');
    tmux(['new-session', '-d', '-s', session, '-x', '150', '-y', '50', `env -u QTM_PIN NO_COLOR=1 ${cmd}; echo $? > '${exitFile}'; sleep 30`]);
    try {
      await waitForScreen(session, /Sign this order with your card\?/);
      if (at === 'pin') {
        tmux(['send-keys', '-t', session, 'y', 'Enter']);
        await waitForScreen(session, /card PIN/);
      }
      tmux(['send-keys', '-t', session, 'C-c']);
      const screen = await waitForScreen(session, /qtm: error: cancelled/);
      assert.match(screen, /^qtm: error: cancelled: nothing was signed or changed$/m);
      assert.doesNotMatch(screen, /internal error|force closed/);
      const deadline = Date.now() + 5000;
      while (!existsSync(exitFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(readFileSync(exitFile, 'utf8').trim(), '130', at);
    } finally {
      tmux(['kill-session', '-t', session]);
    }
  }
  assert.equal(slotsUsed(), before, 'no receipt was written: nothing was signed');
});

test('what you see is what you sign: the server will not compose a confusable order; the dialog names each non-ASCII code point', async (t) => {
  const catalogue = join(dir, 'unicode-catalogue.json');
  writeFileSync(catalogue, JSON.stringify({ shop: 'Example Shop B.V.', currency: 'EUR', items: [
    { sku: 'CREME', name: 'Cr\u00E8me br\u00FBl\u00E9e', price: 450 },
    { sku: 'APPLE', name: 'Pay \u0430pple juice', price: 199 },
    { sku: 'BRAILLE', name: 'Tea\u2800bags', price: 299 },
  ] }));
  const shop = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'),
    // The receipt key signed in ./store before: this store's IDs start beyond them (issue 18).
    '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store-unicode'), '--first-id', '3000', '--catalogue', catalogue], env);
  try {
    const shopClient = ['--server', shop.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive')];
    for (const [sku, why] of [['APPLE', /the word "\u0430pple" mixes Latin and Cyrillic letters: U\+0430/], ['BRAILLE', /U\+2800 "\u2800" is not in a script recommended for text/]] as const) {
      const r = qtm(['sign', ...shopClient, '--items', `${sku}:1`, '--yes'], { env: { QTM_PIN: '123456' } });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^qtm: error: fetch the concept order: server refused \\(422 E_PLAIN_TEXT\\): content is not plain text: ${why.source}`));
    }
    if (!requireTool(t, 'tmux', 'apt-get install tmux')) return;
    const session = `qtm-unicode-${process.pid}`;
    const exitFile = join(dir, 'exit-unicode');
    const cmd = [process.execPath, QTM_BIN, 'sign', ...shopClient, '--items', 'CREME:1'].map((a) => `'${a}'`).join(' ');
    tmux(['new-session', '-d', '-s', session, '-x', '150', '-y', '50', `env -u QTM_PIN NO_COLOR=1 LANG=C.UTF-8 ${cmd}; echo $? > '${exitFile}'; sleep 30`]);
    try {
      const shown = await waitForScreen(session, /Sign this order with your card\?/);
      assert.match(shown, /│ +1 x Crème brûlée +EUR +4\.50\n┆ col \d+ U\+00E8 è, col \d+ U\+00FB û, col \d+ U\+00E9 é\n/);
      assert.match(shown, /3 non-ASCII characters, each named by its code point/);
      tmux(['send-keys', '-t', session, 'n', 'Enter']);
      await waitForScreen(session, /order declined: nothing was signed/);
    } finally {
      tmux(['kill-session', '-t', session]);
    }
  } finally {
    await shop.stop();
  }
});

test('qtm demo runs end to end and verifies; --json is machine-readable', () => {
  const r = qtm(['demo', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.valid, true);
  assert.equal(j.story.length, 13); // 9, and the log key, the proof the reply carried, the witness's cosignature and the receipt's inclusion in it (issue 12)
  assert.ok(j.story.some((s: string) => /The server's reply carried the receipt's inclusion proof/.test(s)), 'the proof comes with the receipt');
  const human = qtm(['demo']);
  assert.equal(human.status, 0);
  assert.match(human.stdout, /Proof verified offline with only the CA certificate: VALID/);
  assert.match(human.stdout, /Both sides now hold proof of the same record/);
});

test('qtm demo --proxy: a proxy-signed transaction under a warrant, and a customer without one refused', (t) => {
  const dir2 = mkdtempSync(join(tmpdir(), 'qtm-demo-proxy-'));
  try {
    const r = qtm(['demo', '--proxy', '--json', '--keep', dir2]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.valid, true);
    assert.match(j.proxy.warrant, /^[0-9A-F]{32}$/);
    assert.match(j.proxy.refused, /^HTTP 403 E_NO_WARRANT: no warrant from "CN=Xavier Sales, O=Example Shop" lets this server sign with "CN=Zed Demo/);
    assert.match(j.story.join('\n'), new RegExp(`on behalf of "CN=Xavier Sales, O=Example Shop" under warrant ${j.proxy.warrant}`));
    // The kept files let an auditor check the same proof with the CLI and openssl (README "Auditing").
    const v = qtm(['verify', j.bundleFile, '--trust', join(dir2, 'ca', 'ca.pem'), '--revocations', join(dir2, 'warrants', 'revocations.json')]);
    assert.equal(v.status, 2, 'no revocation list was ever written: a missing list is an error, not an empty one');
    const list = JSON.parse(qtm(['warrant', 'list', '--dir', join(dir2, 'warrants'), '--json']).stdout);
    assert.equal(list[0].serial, j.proxy.warrant);
    assert.equal(list[0].state, 'valid');
    // X's first list (number 1, empty) predates the transaction: valid, revocation status unknown.
    const crl = join(dir2, 'warrants', 'xavier.crl');
    const early = qtm(['verify', j.bundleFile, '--trust', join(dir2, 'ca', 'ca.pem'), '--revocations', crl]);
    assert.equal(early.status, 0, early.stdout + early.stderr);
    assert.match(early.stdout, /under warrant [0-9A-F]{32} .*(revocation status unknown|not revoked) \(revocation list number 1 of \d{4}-[^)]*\)/);
    const revoke = qtm(['warrant', 'revoke', '--issuer', join(dir2, 'xavier'), '--crl', crl, j.proxy.warrant, '--json'], { env: { QTM_KEY_PASSPHRASE: 'qtm-demo-only' } });
    assert.equal(revoke.status, 0, revoke.stderr);
    assert.equal(JSON.parse(revoke.stdout).crlNumber, '2');
    assert.match(qtm(['warrant', 'list', '--dir', join(dir2, 'warrants')]).stdout, /revoked \d{4}-/);
    // openssl, which no one here wrote, reads the list and checks X's signature on it.
    if (requireTool(t, 'openssl', 'apt-get install openssl')) {
      const text = spawnSync('openssl', ['crl', '-in', crl, '-CAfile', join(dir2, 'xavier.pem'), '-noout', '-text'], { encoding: 'utf8' });
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stderr, /verify OK/);
      assert.match(text.stdout, new RegExp(`X509v3 CRL Number: \\s+2\\b[\\s\\S]*Serial Number: ${j.proxy.warrant}`));
    }
    // Signed less than T = 120 s before the revocation: the server may have backdated it, so it fails.
    const after = qtm(['verify', j.bundleFile, '--trust', join(dir2, 'ca', 'ca.pem'), '--revocations', crl]);
    assert.equal(after.status, 1, after.stdout + after.stderr);
    assert.match(after.stdout, /was revoked at .*may have been backdated: refused/);
  } finally {
    rmSync(dir2, { recursive: true, force: true });
  }
});

test('qtm warrant request / issue / list / revoke, and qtm server start --warrants, as a user runs them', async () => {
  const w = join(dir, 'warrants');
  const ok = (args: string[], extra: Record<string, string> = {}) => {
    const r = qtm(args, { env: { ...env, ...extra } });
    assert.equal(r.status, 0, `qtm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  ok(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'manager', '--subject', 'CN=Xavier CLI,O=CLI Shop', '--out', join(dir, 'keys', 'xavier')]);
  const request = JSON.parse(ok(['warrant', 'request', '--dir', w, '--name', 'sales', '--json']));
  assert.match(readFileSync(request.keyFile, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
  writeFileSync(join(dir, 'alice-card.pem'), ok(['card', 'info', '--card', join(dir, 'alice.card.json'), '--pem']));
  const issued = JSON.parse(ok(['warrant', 'issue', '--issuer', join(dir, 'keys', 'xavier'), '--request', request.requestFile, '--customer', join(dir, 'alice-card.pem'), '--days', '7', '--out', join(w, 'alice.warrant.pem'), '--json']));
  assert.match(issued.serial, /^[0-9A-F]{32}$/);

  // Refusals: one clear line each, documented exit codes, nothing written.
  const bad = (args: string[], code: number, why: RegExp) => {
    const r = qtm(args, { env });
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.equal(r.stderr.trim().split('\n').length <= 2, true, r.stderr);
  };
  bad(['warrant', 'issue', '--issuer', join(dir, 'keys', 'xavier'), '--request', request.requestFile, '--customer', join(dir, 'alice-card.pem'), '--out', join(w, 'x.pem')], 2, /must end in \.warrant\.pem/);
  bad(['warrant', 'issue', '--issuer', join(dir, 'keys', 'xavier'), '--request', request.requestFile, '--out', join(w, 'none.warrant.pem')], 2, /must name at least one customer/);
  bad(['warrant', 'issue', '--issuer', join(dir, 'receipts'), '--request', request.requestFile, '--customer', join(dir, 'alice-card.pem'), '--out', join(w, 'notx.warrant.pem')], 1, /not a manager/);
  bad(['warrant', 'revoke', '--issuer', join(dir, 'keys', 'xavier'), '--crl', join(w, 'xavier.crl'), 'NOT-HEX'], 2, /"NOT-HEX" is not a warrant serial/);
  bad(['warrant', 'revoke', '--crl', join(w, 'xavier.crl'), 'ABCDEF'], 2, /give X's key as --issuer PREFIX/);
  assert.ok(!existsSync(join(w, 'xavier.crl')), 'no list without X\'s key');
  ok(['warrant', 'revoke', '--issuer', join(dir, 'keys', 'xavier'), '--crl', join(w, 'xavier.crl')]);
  bad(['server', 'start', '--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store-x'), '--warrants', w], 2, /--warrants and --on-behalf-of go together/);
  assert.ok(!existsSync(join(w, 'none.warrant.pem')) && !existsSync(join(w, 'notx.warrant.pem')));

  const proxyServer = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'),
    '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store-proxy'), '--warrants', w, '--on-behalf-of', join(dir, 'keys', 'xavier.pem'),
    // The receipt key signed in ./store before: a new store must not hand its IDs out again (issue 18).
    '--first-id', '1000'], env);
  try {
    const signed = JSON.parse(ok(['sign', '--server', proxyServer.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive'), '--items', 'NOTEBOOK:1', '--yes', '--json']));
    const report = ok(['verify', signed.proof, '--trust', join(dir, 'ca', 'ca.pem')]);
    assert.match(report, new RegExp(`on behalf of "CN=Xavier CLI, O=CLI Shop" under warrant ${issued.serial}`));
    ok(['warrant', 'revoke', '--issuer', join(dir, 'keys', 'xavier'), '--crl', join(w, 'xavier.crl'), issued.serial]);
    const refused = qtm(['sign', '--server', proxyServer.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive'), '--items', 'NOTEBOOK:1', '--yes'], { env });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, new RegExp(`403 E_NO_WARRANT.*warrant ${issued.serial} was revoked at`));
  } finally {
    await proxyServer.stop();
  }
});

test('qtm warrant issue --issuer-card: manager X keeps the key on a card', () => {
  const w = join(dir, 'warrants-card');
  const run = (args: string[], extra: Record<string, string> = {}) => qtm(args, { env: { ...env, ...extra } });
  const issued = run(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Xavier Card,O=CLI Shop', '--role', 'manager', '--card', join(dir, 'xavier.card.json')]);
  assert.equal(issued.status, 0, issued.stderr);
  const request = JSON.parse(run(['warrant', 'request', '--dir', w, '--name', 'sales', '--json']).stdout);
  writeFileSync(join(dir, 'alice-card2.pem'), run(['card', 'info', '--card', join(dir, 'alice.card.json'), '--pem']).stdout);
  const args = ['warrant', 'issue', '--issuer-card', '--card', join(dir, 'xavier.card.json'), '--request', request.requestFile, '--customer', join(dir, 'alice-card2.pem'), '--out', join(w, 'alice.warrant.pem'), '--json'];
  const wrongPin = run(args, { QTM_PIN: '999999' });
  assert.equal(wrongPin.status, 1);
  assert.match(wrongPin.stderr, /wrong PIN/i);
  assert.ok(!existsSync(join(w, 'alice.warrant.pem')), 'nothing written on a wrong PIN');
  const ok = run(args);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(JSON.parse(ok.stdout).onBehalfOf, /^CN=Xavier Card, O=CLI Shop, serialNumber=[0-9A-F]{16}$/);
  assert.equal(JSON.parse(run(['warrant', 'list', '--dir', w, '--json']).stdout)[0].state, 'revocations unknown', 'no list from X yet');
  // The card signs X's revocation list (PSO COMPUTE DIGITAL SIGNATURE (CRL)), naming its own subject.
  const crl = join(w, 'xavier.crl');
  const revoked = run(['warrant', 'revoke', '--issuer-card', '--card', join(dir, 'xavier.card.json'), '--crl', crl, '--json']);
  assert.equal(revoked.status, 0, revoked.stderr);
  assert.deepEqual(JSON.parse(revoked.stdout).revoked, []);
  const list = JSON.parse(run(['warrant', 'list', '--dir', w, '--json']).stdout);
  assert.equal(list[0].state, 'valid');
  assert.equal(list[0].crlNumber, '1');
  const serial = JSON.parse(ok.stdout).serial;
  assert.equal(run(['warrant', 'revoke', '--issuer-card', '--card', join(dir, 'xavier.card.json'), '--crl', crl, serial]).status, 0);
  assert.match(JSON.parse(run(['warrant', 'list', '--dir', w, '--json']).stdout)[0].state, /^revoked /);
  // Another card's key cannot extend X's list: the list on file is not its own.
  const other = run(['warrant', 'revoke', '--issuer-card', '--card', join(dir, 'alice.card.json'), '--crl', crl]);
  assert.equal(other.status, 2, other.stderr);
  assert.match(other.stderr, /xavier\.crl: .*revocation list is not issued by "CN=Alice/);
  // A customer's card is not a manager's: refused before anything is signed.
  const notManager = run(['warrant', 'issue', '--issuer-card', '--card', join(dir, 'alice.card.json'), '--request', request.requestFile, '--customer', join(dir, 'alice-card2.pem'), '--out', join(w, 'x.warrant.pem')]);
  assert.equal(notManager.status, 1);
  assert.match(notManager.stderr, /not a manager/);
  const delegatingManager = run(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Both', '--role', 'manager', '--may-delegate', '--card', join(dir, 'both.card.json')]);
  assert.equal(delegatingManager.status, 2);
  assert.match(delegatingManager.stderr, /--may-delegate is for customer cards/);
  assert.ok(!existsSync(join(dir, 'both.card.json')), 'no card file left behind');
  const both = run(['warrant', 'issue', '--issuer-card', '--issuer', 'x', '--request', request.requestFile, '--customer', join(dir, 'alice-card2.pem'), '--out', join(w, 'y.warrant.pem')]);
  assert.equal(both.status, 2);
});

test('qtm demo --fair, and --cheat server|client: the TTP restores fairness', () => {
  for (const cheat of ['server', 'client']) {
    const r = qtm(['demo', '--fair', '--cheat', cheat, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.fairness, { cheat, clientHasX: cheat === 'client', serverHasY: cheat === 'client', fair: true });
  }
  const honest = JSON.parse(qtm(['demo', '--fair', '--json']).stdout);
  assert.equal(honest.valid, true);
  assert.match(honest.story.join('\n'), /X came from the server; the TTP was never needed/);
  assert.equal(qtm(['demo', '--cheat', 'server']).status, 2);
});

test('qtm ttp start + qtm server start --ttp + qtm sign --fair, as a user runs them', async () => {
  const run = (args: string[]) => {
    const r = qtm(args, { env });
    assert.equal(r.status, 0, `qtm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  run(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'ttp', '--subject', 'CN=CLI TTP', '--out', join(dir, 'keys', 'ttp')]);
  run(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'server', '--subject', 'CN=localhost', '--out', join(dir, 'keys', 'ttp-tls')]);
  const ttpProcess = await startListeningProcess(['ttp', 'start', '--identity', join(dir, 'keys', 'ttp'), '--tls', join(dir, 'keys', 'ttp-tls'), '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'ttp-store'), '--port', '0'], env);
  const ttpUrl = ttpProcess.url;
  const fairServer = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', join(dir, 'receipts'), '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca', 'ca.pem'),
    // The receipt key signed in other stores before: this one starts its IDs beyond theirs (issue 18).
    '--store', join(dir, 'store-fair'), '--first-id', '2000', '--ttp', ttpUrl, '--ttp-cert', join(dir, 'keys', 'ttp.pem')], env);
  try {
    const signed = JSON.parse(run(['sign', '--fair', '--server', fairServer.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive'), '--items', 'PEN-BLUE:2', '--yes', '--json']));
    assert.deepEqual(signed.fair, { xFrom: 'server' });
    assert.equal(qtm(['verify', signed.proof, '--trust', join(dir, 'ca', 'ca.pem')]).status, 0);
    const noTtp = qtm(['sign', '--fair', '--server', server.url, '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive'), '--items', 'PEN-BLUE:1', '--yes'], { env });
    assert.equal(noTtp.status, 1);
    assert.match(noTtp.stderr, /offers no fair exchange/);
  } finally {
    await fairServer.stop();
    await ttpProcess.stop();
  }
});
