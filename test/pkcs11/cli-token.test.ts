/**
 * Every long-term key in a SoftHSM2 token, through the real CLI: SAM master key, CA key, receipt
 * key and the warrants' proxy key S. Card issuing (one card and a batch), the transaction, a
 * proxy signature; the proofs verify offline and with docs/verify-with-openssl.sh. Then the
 * operator's mistakes and an attacker's reads: one clear line each, exit 2, nothing changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qtm, requireTool, ROOT, tempDir, type RunResult } from '../helpers.js';
import { startServerProcess } from '../e2e/server-process.js';
import { requireSoftHsm, softHsmToken, USER_PIN, type TestToken } from './softhsm-helper.js';

const PASS = 'token e2e passphrase';

function runner(tok: TestToken) {
  const env = { ...tok.env, QTM_KEY_PASSPHRASE: PASS, QTM_PIN: '123456', QTM_PUK: '12345678' };
  const ok = (args: string[], extra: Record<string, string> = {}) => {
    const r = qtm(args, { env: { ...env, ...extra } });
    assert.equal(r.status, 0, `qtm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return { env, ok };
}

/** The token's objects as pkcs11-tool (OpenSC) lists them after logging in. */
function listObjects(tok: TestToken): string {
  const r = spawnSync('pkcs11-tool', ['--module', tok.module, '--token-label', tok.label, '--login', '--pin', USER_PIN, '--list-objects'], { env: { ...process.env, SOFTHSM2_CONF: tok.conf }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('every key in a token: sam init, ca init/issue, card issue (one and a batch), transaction, proxy signature; proofs verify offline and with openssl', async (t) => {
  if (!requireSoftHsm(t) || !requireTool(t, 'openssl', 'apt-get install openssl') || !requireTool(t, 'jq', 'apt-get install jq')) return;
  const tok = softHsmToken(t, 'shop');
  const dir = tempDir(t);
  const { env, ok } = runner(tok);

  ok(['sam', 'init', '--pkcs11', tok.uri('master')]);
  const ca = JSON.parse(ok(['ca', 'init', '--out', join(dir, 'ca'), '--pkcs11', tok.uri('ca'), '--json']));
  assert.ok(!existsSync(join(dir, 'ca', 'ca-key.pem')), 'no CA key file');
  assert.equal(JSON.parse(readFileSync(join(dir, 'ca', 'ca.json'), 'utf8')).key, tok.uri('ca'));
  const signer = JSON.parse(ok(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'signer', '--subject', 'CN=Token receipts', '--out', join(dir, 'receipts'), '--pkcs11', tok.uri('receipts'), '--json']));
  assert.equal(signer.privateKey, tok.uri('receipts'));
  assert.ok(!existsSync(join(dir, 'receipts-key.pem')));
  // TLS stays a file key (Node's TLS cannot use a token key without an OpenSSL engine).
  ok(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'server', '--subject', 'CN=localhost', '--out', join(dir, 'tls')]);
  ok(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'manager', '--subject', 'CN=Xavier Token,O=Shop', '--out', join(dir, 'xavier')]);
  assert.equal(spawnSync('openssl', ['verify', '-CAfile', ca.certificate, join(dir, 'receipts.pem'), join(dir, 'tls.pem')], { encoding: 'utf8' }).status, 0);

  ok(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', tok.uri('master'), '--holder', 'CN=Alice Token', '--card', join(dir, 'alice.card.json')]);
  writeFileSync(join(dir, 'holders.csv'), 'holder\nCN=Bob Token\nCN=Carol Token\n');
  const batch = JSON.parse(ok(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', tok.uri('master'), '--batch', join(dir, 'holders.csv'), '--out-dir', join(dir, 'cards'), '--json']));
  assert.equal(batch.summary.issued, 2);
  assert.equal(batch.summary.failed, 0);

  // The proxy key S in the token, a warrant for Alice from Xavier.
  const request = JSON.parse(ok(['warrant', 'request', '--dir', join(dir, 'warrants'), '--name', 'sales', '--pkcs11', tok.uri('proxy-sales'), '--json']));
  assert.equal(readFileSync(request.keyFile, 'utf8').trim(), tok.uri('proxy-sales'));
  writeFileSync(join(dir, 'alice.pem'), ok(['card', 'info', '--card', join(dir, 'alice.card.json'), '--pem']));
  ok(['warrant', 'issue', '--issuer', join(dir, 'xavier'), '--request', request.requestFile, '--customer', join(dir, 'alice.pem'), '--days', '7', '--out', join(dir, 'warrants', 'alice.warrant.pem')]);
  // X's own signed revocation list (issue 18): the server signs by proxy only with one.
  ok(['warrant', 'revoke', '--crl', join(dir, 'warrants', 'xavier.crl'), '--issuer', join(dir, 'xavier')]);

  const server = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', tok.uri('receipts'), '--sam', tok.uri('master'), '--trust', ca.certificate, '--store', join(dir, 'store')], env);
  const proofs: string[] = [];
  try {
    for (const card of [join(dir, 'alice.card.json'), join(dir, 'cards', readdirSync(join(dir, 'cards')).find((f) => f.endsWith('.card.json'))!)]) {
      const signed = JSON.parse(ok(['sign', '--server', server.url, '--trust', ca.certificate, '--card', card, '--archive', join(dir, 'archive'), '--items', 'PAPER-A4:2', '--yes', '--json']));
      proofs.push(signed.proof);
    }
  } finally {
    await server.stop();
  }
  // The token remembers that its receipt key signed in ./store (a data object beside the key): an
  // empty store started with it is refused, as with key files (issue 18).
  const reuse = qtm(['server', 'start', '--tls', join(dir, 'tls'), '--signer', tok.uri('receipts'), '--sam', tok.uri('master'), '--trust', ca.certificate, '--store', join(dir, 'store-proxy'), '--port', '0'], { env });
  assert.equal(reuse.status, 2, reuse.stderr);
  assert.match(reuse.stderr, /this receipt key signed transactions up to at least 2 in the store .*store, and this store is empty: it would hand their IDs out again/);
  assert.match(reuse.stderr, /--first-id 3/);
  const proxy = await startServerProcess(['--tls', join(dir, 'tls'), '--signer', tok.uri('receipts'), '--sam', tok.uri('master'), '--trust', ca.certificate,
    // The same receipt key signed in ./store: this store's IDs start beyond them (issue 18).
    '--store', join(dir, 'store-proxy'), '--first-id', '1000', '--warrants', join(dir, 'warrants'), '--on-behalf-of', join(dir, 'xavier.pem')], env);
  try {
    const signed = JSON.parse(ok(['sign', '--server', proxy.url, '--trust', ca.certificate, '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive'), '--items', 'NOTEBOOK:1', '--yes', '--json']));
    assert.match(ok(['verify', signed.proof, '--trust', ca.certificate]), /on behalf of "CN=Xavier Token, O=Shop" under warrant/);
    proofs.push(signed.proof);
  } finally {
    await proxy.stop();
  }
  for (const proof of proofs) {
    assert.equal(qtm(['verify', proof, '--trust', ca.certificate]).status, 0, proof);
    const o = spawnSync('sh', [join(ROOT, 'docs', 'verify-with-openssl.sh'), proof, ca.certificate], { encoding: 'utf8' });
    assert.equal(o.status, 0, `${proof}: ${o.stdout}${o.stderr}`);
  }
  // The receipts are on the cards: the token SAM's diversified keys are the ones the cards got.
  const receipts = JSON.parse(ok(['receipts', 'list', '--card', join(dir, 'alice.card.json'), '--json']));
  assert.equal(receipts.slots.filter((s: { state: string }) => s.state === 'used').length, 2, JSON.stringify(receipts).slice(0, 300));
  const audit = qtm(['server', 'audit', '--store', join(dir, 'store'), '--signer-cert', join(dir, 'receipts.pem'), '--trust', ca.certificate]);
  assert.equal(audit.status, 0, audit.stdout + audit.stderr);
});

test('pkcs11-tool (OpenSC) lists the master key as sensitive and never extractable; reading its value fails', (t) => {
  if (!requireSoftHsm(t) || !requireTool(t, 'pkcs11-tool', 'apt-get install opensc')) return;
  const tok = softHsmToken(t, 'shop');
  const { ok } = runner(tok);
  ok(['sam', 'init', '--pkcs11', tok.uri('master')]);
  const listing = listObjects(tok);
  const master = /Secret Key Object;[^\n]*\n\s+label:\s+master\n(?:\s+[^\n]*\n)*?\s+Access:\s+([^\n]*)/.exec(listing);
  assert.ok(master, listing);
  assert.match(master[1]!, /sensitive, always sensitive, never extractable, local/);
  const read = spawnSync('pkcs11-tool', ['--module', tok.module, '--token-label', tok.label, '--login', '--pin', USER_PIN, '--read-object', '--type', 'secrkey', '--label', 'master'], { env: { ...process.env, SOFTHSM2_CONF: tok.conf } });
  assert.notEqual(read.status, 0, 'reading the value must fail');
  assert.equal(read.stdout.length, 0, 'no key bytes on stdout');
  const info = JSON.parse(ok(['sam', 'info', tok.uri('master'), '--json']));
  assert.deepEqual(info.attributes, { sensitive: true, always_sensitive: true, extractable: false, never_extractable: true, sign: true, encrypt: false, decrypt: false, wrap: false });
  assert.doesNotMatch(JSON.stringify(info), /value/i);
});

test('operator errors: wrong PIN, missing token, missing object, not a PKCS#11 module, pin-value: one line each, exit 2, nothing changed', (t) => {
  if (!requireSoftHsm(t) || !requireTool(t, 'pkcs11-tool', 'apt-get install opensc')) return;
  const tok = softHsmToken(t, 'shop');
  const dir = tempDir(t);
  const { env, ok } = runner(tok);
  ok(['sam', 'init', '--pkcs11', tok.uri('master')]);
  ok(['ca', 'init', '--out', join(dir, 'ca'), '--pkcs11', tok.uri('ca')]);
  const before = listObjects(tok);
  const filesBefore = readdirSync(dir).sort();

  const refused = (args: string[], extra: Record<string, string>, why: RegExp): RunResult => {
    const r = qtm(args, { env: { ...env, ...extra } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr + r.stdout, new RegExp(USER_PIN));
    return r;
  };
  const issue = (uri: string) => ['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'signer', '--subject', 'CN=x', '--out', join(dir, 'receipts'), '--pkcs11', uri];
  const card = (sam: string) => ['card', 'issue', '--ca', join(dir, 'ca'), '--sam', sam, '--holder', 'CN=Eve', '--card', join(dir, 'eve.card.json')];

  refused(issue(tok.uri('receipts')), { QTM_PKCS11_PIN: 'not-the-pin' }, /wrong user PIN for token "shop" \(CKR_PIN_INCORRECT\)/);
  refused(card(tok.uri('master')), { QTM_PKCS11_PIN: 'not-the-pin' }, /wrong user PIN/);
  refused(card('pkcs11:token=elsewhere;object=master'), {}, /no PKCS#11 token token=elsewhere in .*libsofthsm2\.so/);
  refused(card(tok.uri('no-such-key')), {}, /no secret-key object object=no-such-key in token "shop"/);
  refused(card(tok.uri('master')), { QTM_PKCS11_MODULE: '/lib/x86_64-linux-gnu/libc.so.6' }, /libc\.so\.6 is not a PKCS#11 module/);
  refused(card(tok.uri('master')), { QTM_PKCS11_MODULE: join(dir, 'missing.so') }, /cannot load the PKCS#11 module .*missing\.so: no such file/);
  refused(card(`${tok.uri('master')}?pin-value=${USER_PIN}`), {}, /pin-value puts the PIN where any user can read it/);
  refused(['server', 'start', '--tls', tok.uri('tls'), '--signer', tok.uri('receipts'), '--sam', tok.uri('master'), '--trust', join(dir, 'ca', 'ca.pem'), '--store', join(dir, 'store')], {}, /the TLS key cannot be in a PKCS#11 token/);
  refused(card('pkcs11:token=shop;object=mas ter'), {}, /not a PKCS#11 URI \(RFC 7512\): " " in "object" must be percent-encoded/);
  // A key is never replaced: refused (exit 1, as for an existing key file).
  const again = qtm(['sam', 'init', '--pkcs11', tok.uri('master')], { env });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already holds an object labelled "master"/);

  assert.equal(listObjects(tok), before, 'the token is unchanged');
  assert.deepEqual(readdirSync(dir).sort(), filesBefore, 'no file written');

  // pin-source: the PIN from a file the URI names (and QTM_PKCS11_PIN unset).
  writeFileSync(join(dir, 'pin'), `${USER_PIN}\n`, { mode: 0o600 });
  const withSource = qtm(['sam', 'info', `${tok.uri('master')}?pin-source=file:${join(dir, 'pin')}`], { env: { ...env, QTM_PKCS11_PIN: '' } });
  assert.equal(withSource.status, 0, withSource.stderr);
});

test('qtm demo --pkcs11: the whole transaction with every long-term key in a throwaway SoftHSM2 token, or a new token in SOFTHSM2_CONF', (t) => {
  if (!requireSoftHsm(t) || !requireTool(t, 'pkcs11-tool', 'apt-get install opensc')) return;
  const dir = tempDir(t);
  const throwaway = qtm(['demo', '--pkcs11', '--proxy', '--json', '--keep', join(dir, 'demo')]);
  assert.equal(throwaway.status, 0, throwaway.stderr);
  const result = JSON.parse(throwaway.stdout);
  assert.equal(result.valid, true);
  assert.match(result.story[0], /throwaway SoftHSM2/);
  assert.ok(existsSync(join(dir, 'demo', 'softhsm', 'softhsm2.conf')));
  assert.ok(!existsSync(join(dir, 'demo', 'shop.sam')) && !existsSync(join(dir, 'demo', 'ca', 'ca-key.pem')) && !existsSync(join(dir, 'demo', 'receipts-key.pem')), 'no key files');
  assert.deepEqual(readdirSync(join(dir, 'demo', 'warrants')).filter((f) => f.endsWith('-key.pem')), []);

  const tok = softHsmToken(t, 'existing');
  // An operator's QTM_PKCS11_PIN (for their own tokens) is not the demo token's PIN: the demo uses its own.
  const inConf = qtm(['demo', '--pkcs11', '--json'], { env: { SOFTHSM2_CONF: tok.conf, QTM_PKCS11_PIN: USER_PIN } });
  assert.equal(inConf.status, 0, inConf.stderr);
  assert.equal(JSON.parse(inConf.stdout).valid, true);
  const slots = spawnSync('pkcs11-tool', ['--module', tok.module, '--list-token-slots'], { env: { ...process.env, SOFTHSM2_CONF: tok.conf }, encoding: 'utf8' });
  assert.match(slots.stdout, /token label\s+:\s+existing/);
  assert.match(slots.stdout, /token label\s+:\s+qtm-demo-[0-9a-f]{8}/);
});

test('qtm hsm list shows tokens (no PIN) and a token\'s objects with their attributes, never values; warrant issue --issuer takes a manager key in a token', (t) => {
  if (!requireSoftHsm(t)) return;
  const tok = softHsmToken(t, 'shop');
  const dir = tempDir(t);
  const { ok } = runner(tok);
  ok(['sam', 'init', '--pkcs11', tok.uri('master')]);
  ok(['ca', 'init', '--out', join(dir, 'ca'), '--pkcs11', tok.uri('ca')]);
  ok(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'manager', '--subject', 'CN=Xavier HSM', '--key', 'p256', '--out', join(dir, 'xavier'), '--pkcs11', tok.uri('xavier')]);

  const tokens = JSON.parse(ok(['hsm', 'list', '--json'], { QTM_PKCS11_PIN: '' })).tokens;
  assert.ok(tokens.some((x: { label: string; initialized: boolean; uri: string }) => x.label === 'shop' && x.initialized && x.uri.startsWith('pkcs11:token=shop;serial=')), JSON.stringify(tokens));
  const listing = JSON.parse(ok(['hsm', 'list', 'pkcs11:token=shop', '--json']));
  const byLabel = (label: string, cls: string) => listing.objects.find((x: { label: string; class: string }) => x.label === label && x.class === cls);
  assert.deepEqual([byLabel('master', 'secret-key').keyType, byLabel('master', 'secret-key').bits], ['AES', 128]);
  assert.equal(byLabel('master', 'secret-key').attributes.extractable, false);
  assert.equal(byLabel('ca', 'private').bits, 3072);
  assert.equal(byLabel('xavier', 'private').keyType, 'EC');
  assert.equal(byLabel('xavier', 'private').attributes.never_extractable, true);
  assert.ok(byLabel('xavier', 'cert'), 'the certificate is stored beside the key');
  assert.doesNotMatch(JSON.stringify(listing), /"value"|modulus|exponent/i);

  // A warrant signed with X's key in the token (P-256: CKM_ECDSA, r||s converted to DER).
  const request = JSON.parse(ok(['warrant', 'request', '--dir', join(dir, 'warrants'), '--name', 'sales', '--pkcs11', tok.uri('proxy'), '--json']));
  writeFileSync(join(dir, 'someone.pem'), readFileSync(join(dir, 'xavier.pem')));
  ok(['warrant', 'issue', '--issuer', tok.uri('xavier'), '--request', request.requestFile, '--customer', join(dir, 'someone.pem'), '--out', join(dir, 'warrants', 'w.warrant.pem')]);
  // X's revocation list, signed with X's key in the token too.
  ok(['warrant', 'revoke', '--crl', join(dir, 'warrants', 'xavier.crl'), '--issuer', tok.uri('xavier')]);
  const list = JSON.parse(ok(['warrant', 'list', '--dir', join(dir, 'warrants'), '--json']));
  assert.equal(JSON.stringify(list).includes('"valid"'), true, JSON.stringify(list));
});

test('at a terminal, the token PIN is asked once, masked, and never echoed', async (t) => {
  if (!requireSoftHsm(t) || !requireTool(t, 'tmux', 'apt-get install tmux')) return;
  const tok = softHsmToken(t, 'shop');
  const dir = tempDir(t);
  const { ok } = runner(tok);
  ok(['sam', 'init', '--pkcs11', tok.uri('master')]);
  ok(['ca', 'init', '--out', join(dir, 'ca'), '--pkcs11', tok.uri('ca')]);
  // Its own tmux server (-L): never one another run on the machine shares or stops.
  const tmux = (args: string[]) => spawnSync('tmux', ['-L', `qtm-test-${process.pid}`, ...args], { encoding: 'utf8' }).stdout;
  const session = `qtm-pin-${process.pid}`;
  const exitFile = join(dir, 'exit');
  const cmd = [process.execPath, join(ROOT, 'dist', 'bin', 'qtm.js'), 'card', 'issue', '--ca', join(dir, 'ca'), '--sam', tok.uri('master'), '--holder', 'CN=Tty', '--card', join(dir, 'tty.card.json')].map((a) => `'${a}'`).join(' ');
  tmux(['new-session', '-d', '-s', session, '-x', '150', '-y', '30', `env -u QTM_PKCS11_PIN SOFTHSM2_CONF='${tok.conf}' QTM_PKCS11_MODULE='${tok.module}' QTM_PIN=123456 QTM_PUK=12345678 NO_COLOR=1 ${cmd}; echo $? > '${exitFile}'; sleep 30`]);
  const screen = async (pattern: RegExp) => {
    const deadline = Date.now() + 20_000;
    let s = '';
    while (Date.now() < deadline) {
      s = tmux(['capture-pane', '-p', '-t', session, '-S', '-30']);
      if (pattern.test(s)) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`screen never showed ${pattern}:\n${s}`);
  };
  try {
    await screen(/user PIN of token shop/);
    tmux(['send-keys', '-t', session, USER_PIN, 'Enter']);
    const done = await screen(/issued card [0-9A-F]{16}/);
    assert.doesNotMatch(done, new RegExp(USER_PIN), 'the PIN is never echoed');
    assert.equal(done.match(/user PIN of token shop/g)?.length, 1, 'one prompt for the CA key and the master key in the same token');
    const deadline = Date.now() + 5000;
    while (!existsSync(exitFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(readFileSync(exitFile, 'utf8').trim(), '0');
  } finally {
    tmux(['kill-session', '-t', session]);
  }
});

test('without the pkcs11js binding (it did not build): one line saying how to get it, exit 2; file keys still work', (t) => {
  const dir = tempDir(t);
  // Preloaded into the qtm process: resolving pkcs11js fails as on a machine where it did not build.
  const preload = join(dir, 'no-pkcs11js.cjs');
  writeFileSync(preload, `const M = require('node:module'); const r = M._resolveFilename; M._resolveFilename = function (req, ...a) { if (req === 'pkcs11js') throw Object.assign(new Error("Cannot find module 'pkcs11js'"), { code: 'MODULE_NOT_FOUND' }); return r.call(this, req, ...a); };\n`);
  const env = { NODE_OPTIONS: `--require ${preload}`, QTM_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so', QTM_PKCS11_PIN: '1234', QTM_SAM_PASSPHRASE: PASS };
  const r = qtm(['sam', 'info', 'pkcs11:token=shop;object=master'], { env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /PKCS#11 is not available: the pkcs11js binding did not load \(Cannot find module 'pkcs11js'\).*install python3, make and g\+\+, then run npm ci again/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  const file = qtm(['sam', 'init', '--out', join(dir, 'shop.sam')], { env });
  assert.equal(file.status, 0, file.stderr);
});
