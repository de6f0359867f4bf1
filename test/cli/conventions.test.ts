/**
 * Conventions users of OpenSC, ykman, step and cosign expect (issue 14), through the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCa } from '../../src/pki/ca.js';
import { initSam } from '../../src/sam/sam.js';
import { spawnSync } from 'node:child_process';
import { fixture, qtm, requireTool, ROOT, tempDir } from '../helpers.js';

const CA = fixture('ca', 'ca.pem');

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

  // card issue from files: the PIN and PUK it sets are the ones in the files.
  const second = join(dir, 'bob.card.json');
  writeFileSync(join(dir, 'puk'), '87654321\n');
  const fromFiles = qtm(['card', 'issue', '--ca', join(dir, 'ca'), '--sam', join(dir, 'shop.sam'), '--holder', 'CN=Bob', '--card', second,
    '--ca-passphrase-file', join(dir, 'ca.pass'), '--sam-passphrase-file', join(dir, 'sam.pass'), '--pin-file', join(dir, 'pin'), '--puk-file', join(dir, 'puk')]);
  assert.equal(fromFiles.status, 0, fromFiles.stderr);
  assert.doesNotMatch(fromFiles.stderr, /PIN \d+ {3}PUK/, 'no generated PIN is shown when the files gave them');
  assert.equal(qtm(['card', 'pin', 'change', '--card', second, '--pin-stdin'], { input: '1234\n4321\n' }).status, 0, 'the PIN from --pin-file is set');
  for (let i = 0; i < 3; i++) qtm(['card', 'pin', 'change', '--card', second, '--pin-stdin'], { input: '0000\n1111\n' });
  const byPukFile = qtm(['card', 'pin', 'unblock', '--card', second, '--puk-file', join(dir, 'puk'), '--new-pin-file', join(dir, 'pin')]);
  assert.equal(byPukFile.status, 0, `the PUK from --puk-file is set: ${byPukFile.stderr}`);

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
    'warrant request': ['--passphrase-file'], 'warrant issue': ['--passphrase-file', '--pin-file', '--pin-stdin'], sign: ['--pin-file', '--pin-stdin'], 'receipts fetch': ['--pin-file', '--pin-stdin'],
    'log init': ['--passphrase-file', '--key-passphrase-file'], 'log witness-key': ['--passphrase-file', '--key-passphrase-file'],
    'log witness': ['--passphrase-file', '--key-passphrase-file'], 'log witness-serve': ['--passphrase-file', '--key-passphrase-file'] } as Record<string, string[]>;
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

test('qtm verify -: the bundle from standard input; --content - too; --trust a directory; QTM_TRUST as for sign', (t) => {
  const dir = tempDir(t);
  const bundle = readFileSync(fixture('bundles', 'sample-v2.json'), 'utf8');
  const fromStdin = qtm(['verify', '-', '--trust', CA], { input: bundle });
  assert.equal(fromStdin.status, 0, fromStdin.stderr);
  assert.match(fromStdin.stdout, /^VALID -: transaction 42/);
  const decoded = JSON.parse(qtm(['package', 'decode', '-', '--json'], { input: bundle }).stdout);
  assert.equal(decoded.transactionId, 42);
  const junk = qtm(['verify', '-', '--trust', CA], { input: 'not a bundle' });
  assert.equal(junk.status, 2);
  assert.match(junk.stdout, /^UNUSABLE -: /);

  mkdirSync(join(dir, 'anchors'));
  copyFileSync(fixture('keys', 'server-v2.pem'), join(dir, 'server.txt')); // not an anchor, not in the directory
  copyFileSync(CA, join(dir, 'anchors', 'shop-ca.pem'));
  const byDir = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', join(dir, 'anchors')]);
  assert.equal(byDir.status, 0, byDir.stderr);
  mkdirSync(join(dir, 'empty'));
  const emptyDir = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', join(dir, 'empty')]);
  assert.equal(emptyDir.status, 2);
  assert.match(emptyDir.stderr, /^qtm: error: trust directory .*empty holds no \*\.pem, \*\.crt or \*\.cer file\n$/);

  const env = qtm(['verify', fixture('bundles', 'sample-v2.json')], { env: { QTM_TRUST: CA } });
  assert.equal(env.status, 0, env.stderr);
  const envDir = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--json'], { env: { QTM_TRUST: join(dir, 'anchors') } });
  assert.equal(JSON.parse(envDir.stdout).summary.valid, 1);

  const b = JSON.parse(bundle);
  const detached = join(dir, 'detached.json');
  const content = Buffer.from(b.content.base64, 'base64');
  delete b.content;
  writeFileSync(detached, JSON.stringify(b));
  assert.equal(qtm(['verify', detached, '--trust', CA]).status, 1, 'without the content the proof cannot be checked');
  const withContent = qtm(['verify', detached, '--trust', CA, '--content', '-'], { input: content.toString('latin1') });
  assert.equal(withContent.status, 0, withContent.stdout + withContent.stderr);
});

test('every environment variable qtm reads is listed in qtm --help', () => {
  const help = qtm(['--help']).stdout;
  const read = new Set<string>();
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []));
  for (const f of [...walk(join(ROOT, 'src')), join(ROOT, 'bin', 'qtm.ts')]) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/process\.env\.([A-Z][A-Z0-9_]+)|process\.env\[['"]([A-Z][A-Z0-9_]+)['"]\]|\benv: '([A-Z][A-Z0-9_]+)'|'(NO_COLOR)'/g)) read.add(m[1] ?? m[2] ?? m[3] ?? m[4]!);
  }
  read.delete('QTM_DEMO_PIN_UNUSED'); // the demo's prompt, named so that no environment answers it
  assert.ok(read.size >= 12, [...read].join(' '));
  for (const name of read) assert.match(help, new RegExp(`\\b${name}\\b`), `${name} is read but not listed in qtm --help`);
  assert.match(help, /PCSCLITE_CSOCK_NAME/);
});

test('examples on the group commands\' help too, every one of them', () => {
  const paths = commandPaths();
  const groups = paths.filter((p) => paths.some((q) => q.length === p.length + 1 && p.every((w, i) => q[i] === w))).map((p) => p.join(' '));
  for (const g of ['ca', 'key', 'sam', 'hsm', 'card', 'card pin', 'server', 'warrant', 'ttp', 'receipts', 'log', 'package']) assert.ok(groups.includes(g), `${g} is a group`);
  for (const g of [...groups, 'completion']) {
    const r = qtm([...g.split(' '), '--help']);
    assert.equal(r.status, 0, g);
    assert.match(r.stdout, /\nExamples:\n  \$ qtm /, `qtm ${g} --help has no examples`);
  }
});

test('qtm completion bash completes commands and options from the command definitions; zsh and fish scripts; exit 2 for another shell', (t) => {
  const dir = tempDir(t);
  const script = join(dir, 'qtm.bash');
  writeFileSync(script, qtm(['completion', 'bash']).stdout);
  const complete = (...words: string[]) => spawnSync('bash', ['-c', `source '${script}'; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _qtm; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' }).stdout.trim().split('\n');
  assert.deepEqual(complete('qtm', 'card', 'pin', '').sort(), ['--help', 'change', 'unblock']);
  assert.ok(complete('qtm', '').includes('inspect'));
  assert.ok(complete('qtm', '').includes('completion'));
  assert.deepEqual(complete('qtm', 'verify', '--tr'), ['--trust']);
  assert.ok(complete('qtm', 'card', 'pin', 'change', '--').includes('--pin-file'));
  assert.ok(complete('qtm', 'card', 'info', '-').includes('-r'));
  const zsh = qtm(['completion', 'zsh']);
  assert.match(zsh.stdout, /^#compdef qtm\n/);
  const fish = qtm(['completion', 'fish']).stdout;
  assert.match(fish, /^complete -c qtm -n '__fish_seen_subcommand_from card; and __fish_seen_subcommand_from pin; and not __fish_seen_subcommand_from change unblock' -a change /m);
  assert.match(fish, /^complete -c qtm -n '__fish_seen_subcommand_from verify' -l trust -r -F /m);
  const other = qtm(['completion', 'tcsh']);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /^qtm: error: command-argument value 'tcsh' is invalid for argument 'shell'\. Allowed choices are bash, zsh, fish\./);
});

test('qtm man: a man page with every command and option, rendered by man without warnings', (t) => {
  const page = qtm(['man']);
  assert.equal(page.status, 0, page.stderr);
  assert.match(page.stdout, /^\.TH QTM 1 "\d{4}-\d\d-\d\d" "qtm 0\.1\.0" "User Commands"\n\.SH NAME\nqtm \\- both sides/);
  for (const s of ['.B qtm card pin change', '.B qtm inspect <bundle>', '.B qtm completion <shell>', '--pin-file <file>', '--trust <ca.pem|dir>', 'QTM_TRUST', '130 cancelled']) assert.ok(page.stdout.includes(s.replace(/-/g, '\\-')), `${s} in the man page`);
  if (!requireTool(t, 'groff', 'apt-get install groff')) return;
  const rendered = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: page.stdout, encoding: 'utf8' });
  assert.equal(rendered.stderr, '', 'groff warnings');
  assert.equal(rendered.status, 0);
});

test('-q prints only what is wrong; -v adds every check and the error code; not both', () => {
  const CA_ = fixture('ca', 'ca.pem');
  const quiet = qtm(['verify', fixture('bundles'), '--trust', CA_, '-q']);
  assert.equal(quiet.status, 1);
  assert.doesNotMatch(quiet.stdout, /^VALID/m);
  assert.match(quiet.stdout, /^INVALID .*sample-v2-proxy\.json/m);
  assert.match(quiet.stdout, /^6 bundles: 5 valid, 1 invalid/m);
  const verbose = qtm(['-v', 'verify', fixture('bundles', 'sample-v2.json'), '--trust', CA_]);
  assert.match(verbose.stdout, /^  ✔ signature-server: server signature over fields 1-5 verifies/m);
  assert.doesNotMatch(qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA_]).stdout, /✔/);
  const err = qtm(['verify', fixture('bundles', 'sample-v2.json'), '-v']);
  assert.equal(err.stderr, 'qtm: error: no trust anchor given (pass the CA certificate with --trust CA.pem)\n  (code E_INPUT, exit 2)\n');
  const both = qtm(['-q', '-v', 'verify', fixture('bundles', 'sample-v2.json'), '--trust', CA_]);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /^qtm: error: give -q\/--quiet or -v\/--verbose, not both\n$/);
});
