/**
 * `qtm verify DIR`: an archive run through the real CLI (issue 14, "Verification at archive
 * scale"). A tree of the fixture bundles and tampered copies, verified with one and two worker
 * threads; JSON Lines; exit codes; an interrupted run resumed from its --state file with every
 * bundle reported exactly once; a hostile tree that ends with named errors and no hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, fixtureText, qtm, QTM_BIN, ROOT, tempDir, which } from '../helpers.js';
import { decodeBundle, encodeBundle } from '../../src/bundle/proof-bundle.js';
import { decodeState } from '../../src/verify/run-state.js';

const CA = fixture('ca', 'ca.pem');
const SAMPLES = ['sample-v1.json', 'sample-v2.json', 'sample-v3.json', 'sample-v3-proxy.json', 'sample-v2-proxy-attested.json'];

interface Line {
  file: string;
  status: 'valid' | 'invalid' | 'unusable';
  failures?: { name: string }[];
  error?: string;
  summary?: Record<string, number>;
}

function jsonLines(stdout: string): Line[] {
  return stdout.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
}

/** A genuine bundle with one bit of its package's last signature flipped: invalid, by signature-server. */
function tampered(): string {
  const b = decodeBundle(fixtureText('bundles', 'sample-v3.json'));
  const pkg = Buffer.from(b.package);
  pkg[pkg.length - 1]! ^= 1;
  return encodeBundle({ ...b, package: pkg });
}

/**
 * `n` genuine bundles over a few nested folders, one tampered (invalid) and one junk (unusable)
 * bundle, and files that are not bundles. Returns the tree's root.
 */
function makeTree(dir: string, n: number, { bad = true } = {}): string {
  const root = join(dir, 'archive');
  for (let i = 0; i < n; i++) {
    const month = join(root, `2026-${String((i % 4) + 1).padStart(2, '0')}`, i % 3 === 0 ? 'late' : '');
    mkdirSync(month, { recursive: true });
    copyFileSync(fixture('bundles', SAMPLES[i % SAMPLES.length]!), join(month, `r${String(i).padStart(4, '0')}.json`));
  }
  writeFileSync(join(root, '2026-01', 'notes.txt'), 'not a bundle');
  writeFileSync(join(root, '.hidden.json'), 'never looked at');
  if (bad) {
    writeFileSync(join(root, '2026-02', 'tampered.json'), tampered());
    writeFileSync(join(root, '2026-03', 'junk.json'), '{"hello": 1}');
  }
  return root;
}

/** The walk order, by a model: each folder's names in code-unit order, depth first, hidden names left out. */
function modelOrder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...modelOrder(p));
    else if (name.endsWith('.json')) out.push(p);
  }
  return out;
}

test('archive run: --jobs 1 and --jobs 2 give the same results in walk order; JSON Lines and a summary; exit 2 for an unusable bundle', (t) => {
  const root = makeTree(tempDir(t), 23);
  const runs = [1, 2].map((jobs) => qtm(['verify', root, '--trust', CA, '--json', '--jobs', String(jobs)]));
  for (const r of runs) assert.equal(r.status, 2, r.stderr);
  const [one, two] = runs.map((r) => jsonLines(r.stdout));
  const summaries = [one!.pop()!.summary!, two!.pop()!.summary!];
  assert.deepEqual(one, two, 'the same per-bundle results whatever the number of workers');
  assert.deepEqual(one!.map((l) => l.file), modelOrder(root), 'every bundle once, in walk order');
  for (const s of summaries) {
    assert.deepEqual({ total: s.total, valid: s.valid, invalid: s.invalid, unusable: s.unusable, legacy: s.legacy, skipped: s.skipped, runs: s.runs },
      { total: 25, valid: 23, invalid: 1, unusable: 1, legacy: 5, skipped: 1, runs: 1 });
    assert.ok(s.seconds! >= 0 && s.bundlesPerSecond! >= 0);
  }
  assert.deepEqual([summaries[0]!.jobs, summaries[1]!.jobs], [1, 2]);
  const bad = one!.filter((l) => l.status !== 'valid');
  assert.deepEqual(bad.map((l) => [l.file.slice(root.length + 1), l.status]), [['2026-02/tampered.json', 'invalid'], ['2026-03/junk.json', 'unusable']]);
  assert.deepEqual(bad[0]!.failures!.map((f) => f.name), ['signature-server']);
  assert.match(bad[1]!.error!, /mediaType must be/);
});

test('archive run: exit 0 when all valid, 1 with an invalid bundle; the text report names what is wrong and counts the rest', (t) => {
  const dir = tempDir(t);
  const root = makeTree(dir, 7, { bad: false });
  const ok = qtm(['verify', root, '--trust', CA, '--jobs', '2']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^7 bundles: 7 valid, 0 invalid, 0 unusable, 2 legacy v1; 1 other file skipped; \d+\.\d s, [\d,]+ bundles\/s with 2 workers$/m);
  writeFileSync(join(root, '2026-04', 'tampered.json'), tampered());
  const quiet = qtm(['verify', root, '--trust', CA, '-q']);
  assert.equal(quiet.status, 1);
  assert.match(quiet.stdout, /^INVALID .*2026-04\/tampered\.json: transaction 42 .*\n {2}✘ signature-server: /m);
  assert.doesNotMatch(quiet.stdout, /^VALID/m);
  assert.match(quiet.stdout, /^8 bundles: 7 valid, 1 invalid, 0 unusable/m);
  // Several files named (as a shell glob gives them) are an archive run too.
  const named = qtm(['verify', join(root, '2026-04', 'tampered.json'), fixture('bundles', 'sample-v2.json'), '--trust', CA, '--json']);
  assert.equal(named.status, 1);
  assert.deepEqual(jsonLines(named.stdout).map((l) => l.status ?? 'summary'), ['invalid', 'valid', 'summary']);
  // An empty folder given as an argument is not "all valid".
  mkdirSync(join(dir, 'empty'));
  const empty = qtm(['verify', join(dir, 'empty'), '--trust', CA]);
  assert.equal(empty.status, 2);
  assert.match(empty.stdout, /^UNUSABLE .*empty: holds no \*\.json bundle: nothing verified there$/m);
  assert.equal(qtm(['verify', root, '--trust', CA, '--jobs', '0']).status, 2, '--jobs must be positive');
  const single = qtm(['verify', fixture('bundles', 'sample-v2.json'), '--trust', CA, '--state', join(dir, 's')]);
  assert.equal(single.status, 2);
  assert.match(single.stderr, /^qtm: error: --state is for a run over a directory or several bundles/);
});

interface Running {
  child: ReturnType<typeof spawn>;
  done: Promise<{ status: number | null; stdout: string; stderr: string }>;
}

function start(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [QTM_BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
  return { child, done };
}

/** Waits (bounded) until the state file shows at least `n` bundles done. */
async function stateShows(file: string, n: number): Promise<number> {
  for (let i = 0; i < 600; i++) {
    if (existsSync(file)) {
      const s = decodeState(readFileSync(file, 'utf8'));
      if (s.done >= n) return s.done;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the state file never showed ${n} bundles done`);
}

for (const signal of ['SIGINT', 'SIGKILL'] as const) {
  test(`archive run: stopped by ${signal} after its state shows progress, resumed with --state: every bundle reported exactly once, one summary for the whole run`, async (t) => {
    const dir = tempDir(t);
    const root = makeTree(dir, 90);
    const state = join(dir, 'run.state');
    const args = ['verify', root, '--trust', CA, '--json', '--jobs', '2', '--state', state];
    // The test hook holds the run after 40 bundles (reported, state saved), as if it were slow there.
    const first = start(args, { QTM_TEST_VERIFY_HOLD_AFTER: '40' });
    const saved = await stateShows(state, 40);
    first.child.kill(signal);
    const a = await first.done;
    const firstLines = jsonLines(a.stdout);
    if (signal === 'SIGINT') {
      assert.equal(a.status, 130, a.stderr);
      assert.match(a.stderr, new RegExp(`^qtm: interrupted after ${saved} bundles \\(.*\\); resume with: qtm verify .* --state ${state.replace(/[.]/g, '\\.')}\\n$`));
      const error = firstLines.pop() as unknown as { error: { code: string; exitCode: number } };
      assert.deepEqual([error.error.code, error.error.exitCode], ['E_CANCELLED', 130]);
    } else {
      assert.equal(a.status, null, 'killed');
    }
    assert.equal(firstLines.length, saved, 'the state file counts exactly the bundles reported');
    assert.equal(decodeState(readFileSync(state, 'utf8')).done, saved);

    const second = start(args);
    const b = await second.done;
    assert.equal(b.status, 2, b.stderr);
    assert.match(b.stderr, new RegExp(`^resuming after ${saved} bundles`));
    const secondLines = jsonLines(b.stdout);
    const summary = secondLines.pop()!.summary!;
    const files = [...firstLines, ...secondLines].map((l) => l.file);
    assert.deepEqual(files, modelOrder(root), 'every bundle exactly once across the two runs, in walk order');
    assert.deepEqual({ total: summary.total, valid: summary.valid, invalid: summary.invalid, unusable: summary.unusable, runs: summary.runs }, { total: 92, valid: 90, invalid: 1, unusable: 1, runs: 2 });
    assert.equal(existsSync(state), false, 'the state file is removed when the run ends');
  });
}

test('archive run: a state file of another verification, of a changed tree, or damaged, is refused by name (exit 2)', async (t) => {
  const dir = tempDir(t);
  const root = makeTree(dir, 12, { bad: false });
  const state = join(dir, 'run.state');
  const held = start(['verify', root, '--trust', CA, '--state', state, '--jobs', '1'], { QTM_TEST_VERIFY_HOLD_AFTER: '5' });
  assert.equal(await stateShows(state, 5), 5);
  held.child.kill('SIGKILL');
  await held.done;

  const other = qtm(['verify', root, '--trust', CA, '--state', state, '--at', '2030-01-01T00:00:00Z']);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /^qtm: error: .*run\.state: the state of another verification \(other bundles or options\)/);

  // A bundle added before the position: the fifth bundle of the walk is another file now.
  copyFileSync(fixture('bundles', 'sample-v2.json'), join(root, '2026-01', 'a-first.json'));
  const changed = qtm(['verify', root, '--trust', CA, '--state', state]);
  assert.equal(changed.status, 2);
  assert.match(changed.stderr, /^qtm: error: .*run\.state: bundle 5 of the walk order is now .*, not .*: the tree changed since the state was saved/m);

  const nowhere = qtm(['verify', root, '--trust', CA, '--state', join(dir, 'no-such-folder', 'run.state')]);
  assert.equal(nowhere.status, 2);
  assert.match(nowhere.stderr, /^qtm: error: .*no-such-folder\/run\.state: cannot save the verify state \(ENOENT\) \(give --state a path in a folder you can write\)\n$/);
  assert.equal(nowhere.stdout, '', 'nothing verified before the state can be saved');

  writeFileSync(state, JSON.stringify({ ...JSON.parse(readFileSync(state, 'utf8')), done: -1 }));
  const damaged = qtm(['verify', root, '--trust', CA, '--state', state, '--json']);
  assert.equal(damaged.status, 2);
  assert.match(damaged.stderr, /^qtm: error: .*run\.state: verify state: "done" must be a non-negative integer \(the run cannot be resumed from it: remove it to verify from the start\)\n$/);
  assert.equal(JSON.parse(damaged.stdout).error.code, 'E_FILE_DAMAGED');
});

test('archive run: a hostile tree (link loops, a FIFO, a huge file, unreadable entries, non-bundles) ends with one named error each, no hang', (t) => {
  const dir = tempDir(t);
  const h = join(dir, 'hostile');
  mkdirSync(h);
  copyFileSync(fixture('bundles', 'sample-v2.json'), join(h, 'ok.json'));
  symlinkSync('b-loop.json', join(h, 'a-loop.json'));
  symlinkSync('a-loop.json', join(h, 'b-loop.json'));
  symlinkSync('nowhere.json', join(h, 'c-dangling.json'));
  assert.equal(spawnSync('mkfifo', [join(h, 'd-fifo.json')]).status, 0, 'mkfifo (coreutils)');
  writeFileSync(join(h, 'e-huge.json'), Buffer.alloc(6 * 1024 * 1024, 0x20));
  symlinkSync('.', join(h, 'f-dirlink.json'));
  symlinkSync('..', join(h, 'up')); // a loop of folders, were links followed
  writeFileSync(join(h, 'photo.png'), Buffer.alloc(100));
  writeFileSync(join(h, 'i-package.json'), '{"name": "not a bundle", "version": "1.0.0"}');
  // As root, permissions do not stop reads: run as nobody then, in a tree nobody may enter, when
  // nobody can run qtm from where this checkout is (else the unreadable entries are left out).
  chmodSync(dir, 0o755);
  chmodSync(h, 0o755);
  const root = process.getuid?.() === 0;
  const asNobody = root ? { uid: 65534, gid: 65534 } : {};
  const locks = !root || spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(QTM_BIN)}, 4)`], asNobody).status === 0;
  if (locks) {
    writeFileSync(join(h, 'g-locked.json'), fixtureText('bundles', 'sample-v2.json'));
    chmodSync(join(h, 'g-locked.json'), 0o000);
    mkdirSync(join(h, 'h-locked'));
    copyFileSync(fixture('bundles', 'sample-v2.json'), join(h, 'h-locked', 'inside.json'));
    chmodSync(join(h, 'h-locked'), 0o000);
  } else {
    t.diagnostic('running as root in a checkout user nobody cannot read: unreadable files and folders not tested');
  }
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [QTM_BIN, 'verify', h, '--trust', CA, '--json', '--jobs', '2'], {
    cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: '/tmp' }, timeout: 60_000, ...asNobody,
  });
  if (locks) chmodSync(join(h, 'h-locked'), 0o755);
  assert.equal(r.signal, null, `no hang (${performance.now() - t0} ms)`);
  assert.equal(r.status, 2, r.stderr);
  const lines = jsonLines(r.stdout);
  const summary = lines.pop()!.summary!;
  const got = Object.fromEntries(lines.map((l) => [l.file.slice(h.length + 1), l.status === 'unusable' ? l.error : l.status]));
  assert.deepEqual(Object.keys(got), ['a-loop.json', 'b-loop.json', 'c-dangling.json', 'd-fifo.json', 'e-huge.json', 'f-dirlink.json', ...(locks ? ['g-locked.json', 'h-locked'] : []), 'i-package.json', 'ok.json']);
  assert.equal(got['a-loop.json'], 'cannot read: ELOOP (a loop of symbolic links)');
  assert.equal(got['b-loop.json'], 'cannot read: ELOOP (a loop of symbolic links)');
  assert.equal(got['c-dangling.json'], 'cannot read: ENOENT (no such file, or a symbolic link to nothing)');
  assert.equal(got['d-fifo.json'], 'cannot read: not a regular file (a FIFO)');
  assert.match(got['e-huge.json']!, /^proof bundle: 6291456 bytes, over the 524288-byte cap .*not read$/);
  assert.equal(got['f-dirlink.json'], 'cannot read: not a regular file (a directory (reached through a symbolic link, which is not followed into))');
  if (locks) {
    assert.equal(got['g-locked.json'], 'cannot read: EACCES (permission denied)');
    assert.equal(got['h-locked'], 'cannot read the directory: EACCES (the bundles in it were not verified)');
  }
  assert.match(got['i-package.json']!, /^proof bundle: mediaType must be/);
  assert.equal(got['ok.json'], 'valid');
  const n = locks ? 10 : 8;
  assert.deepEqual([summary.total, summary.valid, summary.unusable, summary.skipped], [n, 1, n - 1, 2], 'photo.png and the link "up" are skipped, not followed');
});

test('archive run: a progress line on stderr only on a terminal, without colour under NO_COLOR, never beside JSON on one terminal', (t) => {
  if (!which('script')) {
    if (process.env.CI) throw new Error('script (util-linux, Debian package bsdutils) is required in CI');
    t.skip('script not found; install with: apt-get install bsdutils');
    return;
  }
  const root = makeTree(tempDir(t), 6, { bad: false });
  const onTerminal = (args: string[]) => spawnSync('script', ['-qec', [process.execPath, QTM_BIN, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], {
    cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', TERM: 'xterm' }, timeout: 60_000,
  });
  const text = onTerminal(['verify', root, '--trust', CA, '--jobs', '1']);
  assert.equal(text.status, 0, text.stdout);
  assert.match(text.stdout, /verifying \[[#.]{24}\] \d+\/≥?\d+/, 'the progress line, on the terminal');
  assert.doesNotMatch(text.stdout, /\x1b\[3\dm/, 'no colour under NO_COLOR');
  const json = onTerminal(['verify', root, '--trust', CA, '--jobs', '1', '--json']);
  assert.equal(json.status, 0);
  assert.doesNotMatch(json.stdout, /verifying \[/, 'no progress among JSON lines on one terminal');
  const piped = qtm(['verify', root, '--trust', CA]);
  assert.doesNotMatch(piped.stderr, /verifying/, 'none when stderr is not a terminal');
});
