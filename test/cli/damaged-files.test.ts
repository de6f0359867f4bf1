/**
 * Issue 18 section 6: every local file qtm reads, damaged three ways (truncated, empty, a field of
 * the wrong type), through the real CLI: exit 2 and one line naming the file and what is wrong,
 * never "internal error" (exit 3) and never a card error or a wrong-passphrase refusal.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qtm } from '../helpers.js';
import { tmpdir } from 'node:os';

const PASS = 'damaged files passphrase';
const env = { QTM_CA_PASSPHRASE: PASS, QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS, QTM_PIN: '123456', QTM_PUK: '12345678' };
const dir = mkdtempSync(join(tmpdir(), 'qtm-damaged-'));
const good: Record<string, string> = {};

function ok(args: string[]): string {
  const r = qtm(args, { env });
  assert.equal(r.status, 0, `qtm ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

before(() => {
  ok(['ca', 'init', '--out', join(dir, 'ca')]);
  ok(['sam', 'init', '--out', join(dir, 'shop.sam')]);
  ok(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice', '--card', join(dir, 'alice.card.json')]);
  writeFileSync(join(dir, 'alice.pem'), ok(['card', 'info', '--card', join(dir, 'alice.card.json'), '--pem']));
  ok(['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'manager', '--subject', 'CN=Xavier', '--out', join(dir, 'xavier')]);
  ok(['warrant', 'request', '--dir', join(dir, 'warrants'), '--name', 'sales']);
  ok(['warrant', 'issue', '--issuer', join(dir, 'xavier'), '--request', join(dir, 'warrants', 'sales.request.pem'), '--customer', join(dir, 'alice.pem'), '--out', join(dir, 'warrants', 'alice.warrant.pem')]);
  ok(['warrant', 'revoke', '--issuer', join(dir, 'xavier'), '--crl', join(dir, 'xavier.crl')]);
  mkdirSync(join(dir, 'archive'), { recursive: true });
  writeFileSync(join(dir, 'archive', 'index.json'), JSON.stringify({ proofs: [{ serverId: 'ab'.repeat(32), transactionId: 1, cardSerial: '0102030405060708', slot: 1, state: 'delivered', file: 'x.json', savedAt: '2026-12-01T00:00:00.000Z' }], replaced: [] }));
  for (const f of ['shop.sam', 'ca/ca.json', 'alice.card.json', 'alice.pem', 'warrants/alice.warrant.pem', 'xavier.crl', 'archive/index.json']) good[f] = readFileSync(join(dir, f), 'latin1');
});

after(() => rmSync(dir, { recursive: true, force: true }));

type Damage = 'truncated' | 'empty' | 'wrong-typed';
/** Writes `file` damaged, runs the command, restores the file; asserts exit 2 and one line naming it. */
function damaged(file: string, how: Damage, wrongTyped: (text: string) => string, args: string[], why: RegExp) {
  const path = join(dir, file);
  const text = good[file]!;
  writeFileSync(path, how === 'empty' ? '' : how === 'truncated' ? text.slice(0, Math.floor(text.length / 2)) : wrongTyped(text), 'latin1');
  try {
    const r = qtm(args, { env });
    assert.equal(r.status, 2, `${file} ${how}: ${r.stdout}${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${file} ${how}: one line: ${r.stderr}`);
    assert.ok(lines[0]!.startsWith('qtm: error: ') && lines[0]!.includes(path), `${file} ${how}: names the file: ${r.stderr}`);
    assert.match(lines[0]!, why, `${file} ${how}`);
  } finally {
    writeFileSync(path, text, 'latin1');
  }
}

const json = (f: (o: Record<string, any>) => void) => (text: string) => {
  const o = JSON.parse(text);
  f(o);
  return JSON.stringify(o);
};
const cases: { file: string; args: () => string[]; wrongTyped: (text: string) => string; why: Record<Damage, RegExp> }[] = [
  {
    file: 'shop.sam', args: () => ['sam', 'info', join(dir, 'shop.sam')], wrongTyped: json((o) => { o.data = 5; }),
    why: { truncated: /SAM keystore is not valid JSON \(truncated or damaged\)/, empty: /SAM keystore is empty/, 'wrong-typed': /SAM keystore field "data" must be base64 text, not 5/ },
  },
  {
    file: 'shop.sam', args: () => ['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Bob', '--card', join(dir, `bob-${Math.random()}.card.json`)], wrongTyped: json((o) => { o.kdf = { ...o.kdf, N: 'big' }; }),
    why: { truncated: /SAM keystore is not valid JSON/, empty: /SAM keystore is empty/, 'wrong-typed': /SAM keystore field "kdf\.N" must be a number, not "big"/ },
  },
  {
    file: 'ca/ca.json', args: () => ['ca', 'issue', '--ca', join(dir, 'ca'), '--role', 'signer', '--subject', 'CN=S', '--out', join(dir, `s-${Math.random()}`)], wrongTyped: json((o) => { o.profile = 3; }),
    why: { truncated: /CA description is not valid JSON/, empty: /CA description is empty/, 'wrong-typed': /CA description field "profile" must be a string, not 3/ },
  },
  {
    file: 'alice.card.json', args: () => ['card', 'info', '--card', join(dir, 'alice.card.json')], wrongTyped: json((o) => { o.slots = 'x'; }),
    why: { truncated: /virtual card is not valid JSON/, empty: /virtual card is empty/, 'wrong-typed': /virtual card field "slots" must be an array, not "x"/ },
  },
  {
    // The card's certificate, inside its file: cut short.
    file: 'alice.card.json', args: () => ['receipts', 'list', '--card', join(dir, 'alice.card.json')], wrongTyped: json((o) => { o.certificate = o.certificate.slice(0, 200); }),
    why: { truncated: /virtual card is not valid JSON/, empty: /virtual card is empty/, 'wrong-typed': /virtual card field "certificate" is not a valid X\.509 certificate \(truncated or damaged\)/ },
  },
  {
    file: 'alice.pem', args: () => ['warrant', 'issue', '--issuer', join(dir, 'xavier'), '--request', join(dir, 'warrants', 'sales.request.pem'), '--customer', join(dir, 'alice.pem'), '--out', join(dir, `w-${Math.random()}.warrant.pem`)], wrongTyped: () => '{"certificate":"alice"}\n',
    why: { truncated: /alice\.pem (holds no PEM certificate|is not a PEM or DER X\.509 certificate)/, empty: /alice\.pem holds no PEM certificate/, 'wrong-typed': /alice\.pem holds no PEM certificate/ },
  },
  {
    // A warrant file: a certificate of the right shape that is not a warrant (X's own certificate twice).
    file: 'warrants/alice.warrant.pem', args: () => ['warrant', 'list', '--dir', join(dir, 'warrants')], wrongTyped: () => readFileSync(join(dir, 'xavier.pem'), 'utf8').repeat(2),
    why: { truncated: /alice\.warrant\.pem (holds no PEM certificate|is not a PEM or DER X\.509 certificate|must hold the warrant followed by)/, empty: /alice\.warrant\.pem holds no PEM certificate/, 'wrong-typed': /alice\.warrant\.pem: warrant: the certificate has no RFC 3820 proxyCertInfo extension/ },
  },
  {
    file: 'xavier.crl', args: () => ['warrant', 'revoke', '--issuer', join(dir, 'xavier'), '--crl', join(dir, 'xavier.crl')], wrongTyped: () => readFileSync(join(dir, 'xavier.pem'), 'utf8'),
    why: { truncated: /revocation list \(CRL\): (not valid DER|not one PEM)/, empty: /revocation list \(CRL\): empty/, 'wrong-typed': /revocation list \(CRL\): not valid DER/ },
  },
  {
    file: 'archive/index.json', args: () => ['receipts', 'fetch', '--server', 'https://localhost:1', '--trust', join(dir, 'ca', 'ca.pem'), '--card', join(dir, 'alice.card.json'), '--archive', join(dir, 'archive')], wrongTyped: json((o) => { o.proofs[0].transactionId = '1'; }),
    why: { truncated: /archive index is not valid JSON/, empty: /archive index is empty/, 'wrong-typed': /archive index field "proofs\[0\]\.transactionId" must be a number, not "1"/ },
  },
];

for (const c of cases) {
  test(`a damaged ${c.file} (${c.args()[0]} ${c.args()[1]}): truncated, empty and wrong-typed are exit 2 naming the file`, () => {
    for (const how of ['truncated', 'empty', 'wrong-typed'] as const) damaged(c.file, how, c.wrongTyped, c.args(), c.why[how]);
  });
}

test('the undamaged files still work (the damage above is what is refused)', () => {
  ok(['sam', 'info', join(dir, 'shop.sam')]);
  ok(['card', 'info', '--card', join(dir, 'alice.card.json')]);
  ok(['warrant', 'list', '--dir', join(dir, 'warrants')]);
  ok(['warrant', 'revoke', '--issuer', join(dir, 'xavier'), '--crl', join(dir, 'xavier.crl')]);
});
