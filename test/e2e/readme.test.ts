/**
 * The README runs as written (issue 14): its shell blocks, in order, in a fresh temporary
 * directory, with `qtm` from `npm link` of this checkout (into a temporary npm prefix), the real
 * pcscd with the vpcd driver, openssl and jq. The conventions for README authors (skipping a
 * block, `# exit N`, background servers, `needs postgres`) are in test/readme-blocks.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildScript, extractBlocks, splitComment } from '../readme-blocks.js';
import { postgresBin, runBlocks } from '../readme-run.js';
import { requireTool, ROOT } from '../helpers.js';
import { requirePcscd } from '../card/pcsc-helpers.js';
import { requireSoftHsm } from '../pkcs11/softhsm-helper.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

test('block extraction: sh and bash blocks with their README lines; directives; unknown ones refused', () => {
  const md = [
    '# t', // 1
    '```sh', // 2
    'echo one', // 3
    '```', // 4
    '```js', // 5
    'not shell', // 6
    '```', // 7
    '<!-- readme-test: skip: needs a person at the keyboard -->', // 8
    '```bash', // 9
    'read x', // 10
    '```', // 11
    '<!-- readme-test: in the clone -->', // 12
    '<!-- readme-test: needs postgres -->', // 13
    '```sh', // 14
    'npm link', // 15
    '```', // 16
  ].join('\n');
  const blocks = extractBlocks(md);
  assert.deepEqual(blocks.map((b) => [b.line, b.lines.join('|'), b.skip, b.inClone, b.needs.join()]), [
    [3, 'echo one', undefined, false, ''],
    [10, 'read x', 'needs a person at the keyboard', false, ''],
    [15, 'npm link', undefined, true, 'postgres'],
  ]);
  assert.throws(() => extractBlocks('<!-- readme-test: skpi: typo -->\n```sh\nx\n```\n'), /unknown directive "readme-test: skpi: typo"/);
  assert.throws(() => extractBlocks('<!-- readme-test: skip -->\n```sh\nx\n```\n'), /unknown directive/, 'a skip needs its reason');
  assert.throws(() => extractBlocks('```sh\nx\n'), /never closed/);
  assert.throws(() => buildScript(extractBlocks('```sh\nfalse \\\n  x  # exit 1\n```\n'), { clone: '/' }), /must end a command on one line/);
});

test('comments are split off outside quotes only', () => {
  assert.deepEqual(splitComment('qtm verify a.json   # exit 1: refused'), { code: 'qtm verify a.json', comment: '# exit 1: refused' });
  assert.deepEqual(splitComment(`grep -A3 'Proxy # Certificate' x # c`), { code: `grep -A3 'Proxy # Certificate' x`, comment: '# c' });
  assert.deepEqual(splitComment('echo "a#b" x#y'), { code: 'echo "a#b" x#y', comment: '' });
  assert.deepEqual(splitComment('# only a comment'), { code: '', comment: '# only a comment' });
});

test('comment splitting, for any words: a # inside quotes or a word stays code, the first # after a blank starts the comment', () => {
  const word = fc.stringMatching(/^[A-Za-z0-9_./:=,-]{1,12}$/);
  const quoted = fc.tuple(fc.constantFrom('"', "'"), fc.stringMatching(/^[A-Za-z0-9 #._-]{0,12}$/)).map(([q, t]) => `${q}${t}${q}`);
  const hashInWord = fc.tuple(word, word).map(([a, b]) => `${a}#${b}`);
  const code = fc.array(fc.oneof(word, quoted, hashInWord), { minLength: 1, maxLength: 6 }).map((ws) => ws.join(' '));
  fc.assert(fc.property(code, fc.stringMatching(/^[ -~]{0,30}$/), fc.integer({ min: 1, max: 4 }), (c, comment, blanks) => {
    assert.deepEqual(splitComment(c), { code: c, comment: '' });
    assert.deepEqual(splitComment(`${c}${' '.repeat(blanks)}#${comment}`), { code: c, comment: `#${comment}` });
  }));
});

const sample = (body: string) => extractBlocks(body);

test('the runner: state carries between blocks, # exit N is checked, a background server is waited for and stopped', async () => {
  const ok = await runBlocks(sample([
    '```sh',
    'export GREETING=hello; mkdir sub',
    'false   # exit 1: expected to fail',
    'node -e "require(\'net\').createServer().listen(0, \'127.0.0.1\')" &',
    'server=$!',
    '```',
    '```bash',
    'test "$GREETING" = hello && test -d sub',
    'kill $server; wait $server || true',
    '```',
  ].join('\n')), { clone: ROOT });
  try {
    assert.equal(ok.ok, true, ok.problem);
    assert.deepEqual(ok.leftover, []);
  } finally {
    ok.cleanup();
  }

  const wrongExit = await runBlocks(sample('```sh\necho fine\nfalse   # exit 2\necho never\n```\n'), { clone: ROOT });
  wrongExit.cleanup();
  assert.match(wrongExit.problem!, /^README line 3: expected exit 2, got 1 \(block at README line 2\)\n--- output of that block ---\nfine$/);

  const failing = await runBlocks(sample('text\n\n```sh\necho before\nls /no/such/dir\necho after\n```\n'), { clone: ROOT });
  failing.cleanup();
  assert.match(failing.problem!, /^README line 5: exit 2 \(block at README line 4\)\n--- output of that block ---\nbefore\nls: cannot access/);
  assert.doesNotMatch(failing.log, /after/);

  const early = await runBlocks(sample('```sh\nsh -c "exit 3" &\necho unreachable\n```\n'), { clone: ROOT });
  early.cleanup();
  assert.match(early.problem!, /^README line 2: the background command exited before it was ready/);

  const left = await runBlocks(sample('```sh\nnode -e "require(\'net\').createServer().listen(0, \'127.0.0.1\')" &\n```\n'), { clone: ROOT });
  left.cleanup();
  assert.equal(left.ok, true, left.problem);
  assert.equal(left.leftover.length, 1, 'the server the block left running is reported');
});

test('a block marked "needs postgres" gets a throwaway cluster, its URL in QTM_STORE', async (t) => {
  if (!postgresBin() || !requireTool(t, 'psql', 'apt-get install postgresql')) {
    if (process.env.CI) throw new Error('PostgreSQL is required in CI (apt-get install postgresql)');
    return t.skip('PostgreSQL not found; install with: apt-get install postgresql');
  }
  const r = await runBlocks(sample('<!-- readme-test: needs postgres -->\n```sh\ntest "$(psql "$QTM_STORE" -tAc "select 40 + 2")" = 42\n```\n'), { clone: ROOT });
  r.cleanup();
  assert.equal(r.ok, true, r.problem);
});

test('the README runs as written, block by block, in a fresh directory', { timeout: 600_000 }, async (t) => {
  if (!(await requirePcscd(t))) return;
  for (const [tool, pkg] of [['openssl', 'openssl'], ['jq', 'jq'], ['opensc-tool', 'opensc'], ['ss', 'iproute2'], ['pgrep', 'procps'], ['softhsm2-util', 'softhsm2'], ['pkcs11-tool', 'opensc'], ['npm', 'npm']] as const) {
    if (!requireTool(t, tool, `apt-get install ${pkg}`)) return;
  }
  if (!requireSoftHsm(t)) return;
  const blocks = extractBlocks(README);
  const skipped = blocks.filter((b) => b.skip);
  assert.ok(skipped.length <= 3, `skipped blocks are rare: ${skipped.map((b) => `line ${b.line} (${b.skip})`).join(', ')}`);
  const r = await runBlocks(blocks, { clone: ROOT, npmPrefix: true, env: process.env.CI ? { CI: process.env.CI } : {} });
  try {
    const slowest = [...r.blockSeconds].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([l, s]) => `line ${l}: ${s.toFixed(1)} s`);
    if (process.env.QTM_README_LOG) writeFileSync(process.env.QTM_README_LOG, r.log); // to read what each block printed
    t.diagnostic(`${blocks.length - skipped.length} blocks ran in ${r.seconds.toFixed(1)} s; slowest: ${slowest.join(', ')}`);
    assert.equal(r.ok, true, r.problem);
    assert.deepEqual(r.leftover, [], 'every process the README starts in the background, it also stops');
  } finally {
    r.cleanup();
  }
});
