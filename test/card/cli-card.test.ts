import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCa } from '../../src/pki/ca.js';
import { initSam } from '../../src/sam/sam.js';
import { qtm, tempDir } from '../helpers.js';

const env = { QTM_CA_PASSPHRASE: 'ca passphrase', QTM_SAM_PASSPHRASE: 'sam passphrase', QTM_PIN: '1234', QTM_PUK: '12345678' };

function authority(dir: string) {
  initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=CLI Test CA', passphrase: env.QTM_CA_PASSPHRASE });
  initSam(join(dir, 'shop.sam'), env.QTM_SAM_PASSPHRASE);
}

test('card issue, info, receipts list, pin change and unblock from the command line', (t) => {
  const dir = tempDir(t);
  authority(dir);
  const card = join(dir, 'alice.card.json');
  const issue = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice,O=Customer', '--card', card, '--slots', '3', '--json'], { env });
  assert.equal(issue.status, 0, issue.stderr);
  assert.doesNotMatch(issue.stdout + issue.stderr, /1234|12345678/);
  const again = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Mallory', '--card', card], { env });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already issued and locked/);

  const info = JSON.parse(qtm(['card', 'info', '--card', card, '--json']).stdout);
  assert.equal(info.slots, 3);
  assert.equal(info.pinTriesLeft, 3);
  assert.match(info.holder, /CN=Alice, O=Customer, serialNumber=/);
  const list = JSON.parse(qtm(['receipts', 'list', '--json'], { env: { QTM_CARD: card } }).stdout);
  assert.deepEqual(list.next, { slot: 1, replaces: null });
  assert.equal(qtm(['receipts', 'show', '1', '--card', card, '--json']).stdout.includes('"free"'), true);
  assert.equal(qtm(['receipts', 'show', '9', '--card', card]).status, 2);

  const wrong = qtm(['card', 'pin', 'change', '--card', card], { env: { QTM_PIN: '0000', QTM_NEW_PIN: '4321' } });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^qtm: error: wrong PIN: 2 tries left before it blocks/);
  assert.equal(qtm(['card', 'pin', 'change', '--card', card], { env: { QTM_PIN: '1234', QTM_NEW_PIN: '4321' } }).status, 0);
  for (let i = 0; i < 3; i++) qtm(['card', 'pin', 'change', '--card', card], { env: { QTM_PIN: '0000', QTM_NEW_PIN: '1111' } });
  const blocked = qtm(['card', 'pin', 'change', '--card', card], { env: { QTM_PIN: '4321', QTM_NEW_PIN: '1111' } });
  assert.equal(blocked.status, 1);
  assert.match(blocked.stderr, /PIN is blocked \(unblock it with `qtm card pin unblock`/);
  assert.equal(qtm(['card', 'pin', 'unblock', '--card', card], { env: { QTM_PUK: '12345678', QTM_NEW_PIN: '8888' } }).status, 0);
  assert.equal(JSON.parse(qtm(['card', 'info', '--card', card, '--json']).stdout).pinTriesLeft, 3);
  const badPin = qtm(['card', 'pin', 'change', '--card', card], { env: { QTM_PIN: '8888', QTM_NEW_PIN: '12' } });
  assert.equal(badPin.status, 2);
  assert.match(badPin.stderr, /new PIN must be 4 to 8 digits \(nothing was sent to the card\)/);
});

test('no card chosen, or a file that is not a card: clear errors, exit 2', (t) => {
  const dir = tempDir(t);
  const none = qtm(['receipts', 'list']);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /no card chosen \(pass --reader NAME .* or --card FILE/);
  writeFileSync(join(dir, 'x.json'), '{"format":"other"}');
  assert.match(qtm(['card', 'info', '--card', join(dir, 'x.json')]).stderr, /is not a qtm virtual card/);
  assert.match(qtm(['card', 'info', '--card', join(dir, 'missing.json')]).stderr, /no virtual card at/);
});

test('batch issuing: one bad row does not stop or corrupt the others; report without PINs', (t) => {
  const dir = tempDir(t);
  authority(dir);
  writeFileSync(join(dir, 'holders.csv'), 'holder\n"CN=Bob Example,O=Customer"\nnot a distinguished name\n"CN=Carol Example,O=Customer"\n');
  const r = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--batch', join(dir, 'holders.csv'), '--out-dir', join(dir, 'cards'), '--slots', '2', '--json'], { env });
  assert.equal(r.status, 1, r.stderr);
  const { summary, results } = JSON.parse(r.stdout);
  assert.deepEqual(summary.issued, 2);
  assert.deepEqual(results.map((x: { status: string }) => x.status), ['issued', 'failed', 'issued']);
  assert.match(results[1].error, /not a distinguished name/);
  assert.match(r.stderr, /line 3 \(not a distinguished name\)/);
  const files = readdirSync(join(dir, 'cards')).sort();
  assert.deepEqual(files.filter((f) => f.startsWith('.')), [], 'no half-issued temporary card left');
  assert.equal(files.filter((f) => f.endsWith('.card.json')).length, 2);
  const report = readFileSync(join(dir, 'cards', 'report.csv'), 'utf8');
  assert.match(report, /^line,holder,status,serial,card_file,certificate_serial,error\n2,"CN=Bob Example,O=Customer",issued,/);
  assert.doesNotMatch(report + readFileSync(join(dir, 'cards', 'report.json'), 'utf8'), /1234|12345678/);
  for (const res of results.filter((x: { status: string }) => x.status === 'issued')) {
    assert.ok(existsSync(res.cardFile));
    const info = JSON.parse(qtm(['card', 'info', '--card', res.cardFile, '--json']).stdout);
    assert.equal(info.lifecycle, 'operational');
    assert.equal(info.serial, res.serial);
  }
});

test('sam init refuses to overwrite; sam info shows only the key check value', (t) => {
  const dir = tempDir(t);
  const e = { QTM_SAM_PASSPHRASE: 'sam passphrase' };
  const created = qtm(['sam', 'init', '--out', join(dir, 's.sam'), '--json'], { env: e });
  assert.equal(created.status, 0, created.stderr);
  const { kcv } = JSON.parse(created.stdout);
  assert.match(kcv, /^[0-9A-F]{6}$/);
  assert.equal(qtm(['sam', 'init', '--out', join(dir, 's.sam')], { env: e }).status, 1);
  assert.match(qtm(['sam', 'info', join(dir, 's.sam')]).stdout, new RegExp(kcv));
  const file = readFileSync(join(dir, 's.sam'), 'utf8');
  assert.doesNotMatch(file, /masterKey|"key"/);
});
