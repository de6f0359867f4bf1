/**
 * Conventions users of OpenSC, ykman, step and cosign expect (issue 14), through the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCa } from '../../src/pki/ca.js';
import { initSam } from '../../src/sam/sam.js';
import { qtm, tempDir } from '../helpers.js';

/** Every command path, from the help screens alone, as a user discovers them. */
function commandPaths(prefix: string[] = []): string[][] {
  const section = qtm([...prefix, '--help']).stdout.split('Commands:')[1];
  if (!section) return [];
  const names = [...section.split('\n\n')[0]!.matchAll(/^  (\w[\w-]*)\b/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  return names.flatMap((n) => [[...prefix, n], ...commandPaths([...prefix, n])]);
}

test('secrets from files and stdin: card issue, pin change and unblock, with no secret in the environment or a flag', (t) => {
  const dir = tempDir(t);
  initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Files CA', passphrase: 'ca passphrase' });
  initSam(join(dir, 'shop.sam'), 'sam passphrase');
  writeFileSync(join(dir, 'ca.pass'), 'ca passphrase\n', { mode: 0o600 });
  writeFileSync(join(dir, 'sam.pass'), 'sam passphrase\n', { mode: 0o600 });
  const card = join(dir, 'alice.card.json');
  const issue = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Alice', '--card', card,
    '--ca-passphrase-file', join(dir, 'ca.pass'), '--sam-passphrase-file', join(dir, 'sam.pass'), '--pin-stdin'], { input: '1234\n12345678\n' });
  assert.equal(issue.status, 0, issue.stderr);

  writeFileSync(join(dir, 'pin'), '1234\n');
  writeFileSync(join(dir, 'new-pin'), '5678\r\n');
  const change = qtm(['card', 'pin', 'change', '--card', card, '--pin-file', join(dir, 'pin'), '--new-pin-file', join(dir, 'new-pin')]);
  assert.equal(change.status, 0, change.stderr);
  // A flag given on the command line wins over the environment.
  const wrong = qtm(['card', 'pin', 'change', '--card', card, '--pin-stdin'], { input: '0000\n1111\n', env: { QTM_PIN: '5678', QTM_NEW_PIN: '1111' } });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /wrong PIN: 2 tries left/);
  for (let i = 0; i < 2; i++) qtm(['card', 'pin', 'change', '--card', card, '--pin-stdin'], { input: '0000\n1111\n' });
  const unblock = qtm(['card', 'pin', 'unblock', '--card', card, '--pin-stdin'], { input: '12345678\n2468\n' });
  assert.equal(unblock.status, 0, unblock.stderr);
  assert.equal(qtm(['card', 'pin', 'change', '--card', card, '--pin-stdin'], { input: '2468\n1357\n' }).status, 0, 'the PIN set through stdin works');

  const missing = qtm(['card', 'pin', 'change', '--card', card, '--pin-file', join(dir, 'nope'), '--new-pin-file', join(dir, 'new-pin')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^qtm: error: --pin-file .*nope: cannot read the card PIN: ENOENT \(check the path and its permissions\)\n$/);
  writeFileSync(join(dir, 'empty'), '\n');
  const empty = qtm(['sam', 'init', '--out', join(dir, 'x.sam'), '--passphrase-file', join(dir, 'empty')]);
  assert.equal(empty.status, 2);
  assert.match(empty.stderr, /--passphrase-file .*empty: the first line is empty, no SAM passphrase in it/);
  const none = qtm(['card', 'pin', 'change', '--card', card]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /card PIN needed \(set QTM_PIN, pass --pin-file FILE, or --pin-stdin, or run on a terminal to be prompted\)/);
});

test('no command takes a secret in a flag; every command that reads one offers a file flag', () => {
  const secretFlag = /^\s+(?:-\w, )?--((?:[a-z]+-)*(?:pin|puk|passphrase|password|secret))\s+<(?!file)/m;
  const readers = { 'card issue': ['--ca-passphrase-file', '--sam-passphrase-file', '--pin-file', '--puk-file', '--pin-stdin'], 'card pin change': ['--pin-file', '--new-pin-file', '--pin-stdin'],
    'card pin unblock': ['--puk-file', '--new-pin-file', '--pin-stdin'], 'ca init': ['--passphrase-file'], 'ca issue': ['--ca-passphrase-file', '--key-passphrase-file'], 'sam init': ['--passphrase-file'],
    'key rewrap': ['--passphrase-file'], 'server start': ['--key-passphrase-file', '--sam-passphrase-file'], 'server attest': ['--passphrase-file'], 'ttp start': ['--passphrase-file'],
    'warrant request': ['--passphrase-file'], 'warrant issue': ['--passphrase-file', '--pin-file', '--pin-stdin'], sign: ['--pin-file', '--pin-stdin'], 'receipts fetch': ['--pin-file', '--pin-stdin'] } as Record<string, string[]>;
  const seen = new Set<string>();
  for (const p of commandPaths()) {
    const help = qtm([...p, '--help']).stdout;
    assert.doesNotMatch(help, secretFlag, `${p.join(' ')} takes a secret in a flag`);
    const want = readers[p.join(' ')];
    if (want) for (const f of want) assert.match(help, new RegExp(`  ${f}\\b`), `${p.join(' ')} has no ${f}`);
    seen.add(p.join(' '));
  }
  for (const k of Object.keys(readers)) assert.ok(seen.has(k), `${k} is a command`);
});
