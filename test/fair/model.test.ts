/**
 * The Promela model of the fair exchange (model/fair-exchange.pml), checked with spin: fairness
 * holds with an honest pair and with each party cheating, and each deliberately broken variant
 * of the TTP or a party yields a counterexample, so the model is shown to bite. Each variant
 * names the test that mounts the same case against the code (docs/FAIR-EXCHANGE.md, "The model
 * and the code").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { requireTool, ROOT, tempDir } from '../helpers.js';

const MODEL = join(ROOT, 'model', 'fair-exchange.pml');

function check(dir: string, defines: string[]): { errors: number; output: string } {
  const spin = spawnSync('spin', ['-a', ...defines.map((d) => `-D${d}`), MODEL], { cwd: dir, encoding: 'utf8' });
  assert.equal(spin.status, 0, spin.stderr + spin.stdout);
  const cc = spawnSync('cc', ['-O2', '-DSAFETY', '-o', 'pan', 'pan.c'], { cwd: dir, encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
  const pan = spawnSync('./pan', ['-m20000'], { cwd: dir, encoding: 'utf8' });
  const output = pan.stdout + pan.stderr;
  assert.doesNotMatch(output, /max search depth too small/, 'the search must be exhaustive');
  const errors = Number(/errors: (\d+)/.exec(output)?.[1] ?? NaN);
  assert.ok(Number.isInteger(errors), output);
  return { errors, output };
}

const cases: { name: string; defines: string[]; fair: boolean; violated?: RegExp }[] = [
  { name: 'both honest', defines: [], fair: true },
  { name: 'cheating server', defines: ['CHEAT_SERVER'], fair: true },
  { name: 'cheating client', defines: ['CHEAT_CLIENT'], fair: true },
  { name: 'BROKEN: abort overriding a resolve (lost escrow, both honest)', defines: ['BROKEN_ABORT_OVERRIDES'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  { name: 'BROKEN: abort overriding a resolve, cheating client', defines: ['BROKEN_ABORT_OVERRIDES', 'CHEAT_CLIENT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  { name: 'BROKEN: a failed client resolve not blocking the server', defines: ['BROKEN_FAILED_RESOLVE', 'CHEAT_SERVER'], fair: false, violated: /!\(serverHasY\)\|\|clientHasX/ },
  { name: 'BROKEN: the server skipping the escrow check', defines: ['BROKEN_SKIP_ESCROW_CHECK', 'CHEAT_CLIENT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  // Issue 13: the TTP's answers travel to the parties, which must act on them.
  { name: 'BROKEN: the server drops the Y in the TTP\'s abort answer (both honest)', defines: ['BROKEN_DROP_Y_IN_ABORT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  { name: 'BROKEN: the client may abort (both honest; a late X still arrives)', defines: ['BROKEN_CLIENT_ABORT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  // Issue 17, section 2: what a card holder can send the TTP.
  { name: 'BROKEN: the TTP opens an escrow of X the server did not sign', defines: ['BROKEN_UNSIGNED_ESCROW_X', 'CHEAT_CLIENT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  { name: 'BROKEN: records keyed by transaction ID (a squatting package)', defines: ['BROKEN_KEY_BY_ID', 'CHEAT_CLIENT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
  { name: 'BROKEN: X released for a late escrow after an abort whose answer was lost (both honest)', defines: ['BROKEN_RELEASE_AFTER_ABORT'], fair: false, violated: /!\(clientHasX\)\|\|serverHasY/ },
];

for (const c of cases) {
  test(`spin: ${c.name} -> ${c.fair ? 'fair' : 'counterexample'}`, (t) => {
    if (!requireTool(t, 'spin', 'apt-get install spin') || !requireTool(t, 'cc', 'apt-get install gcc')) return;
    const { errors, output } = check(tempDir(t, 'qtm-spin-'), c.defines);
    const states = /(\d+) states, stored/.exec(output)?.[1];
    const depth = /(?:at depth|depth reached) (\d+)/.exec(output)?.[1];
    t.diagnostic(`${states} states, ${c.fair ? 'depth reached' : 'counterexample at depth'} ${depth}`);
    if (c.fair) {
      assert.equal(errors, 0, output);
    } else {
      assert.ok(errors > 0, `expected a counterexample:\n${output}`);
      assert.match(output, /assertion violated/);
      assert.match(output, c.violated!);
    }
  });
}
