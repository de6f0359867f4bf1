/**
 * `qtm demo --fair --lose MESSAGE` (issue 13): both parties honest, one message of the exchange
 * lost; each run ends fair once the TTP settled it, and says who holds what.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qtm } from '../helpers.js';

const expected: Record<string, { y: boolean; x: boolean }> = {
  'first-message': { y: false, x: false },
  'escrow-y': { y: true, x: true },
  x: { y: true, x: true },
  y: { y: true, x: true },
};

for (const [lose, holds] of Object.entries(expected)) {
  test(`qtm demo --fair --lose ${lose} --json: server holds Y ${holds.y}, client holds X ${holds.x}, fair`, () => {
    const r = qtm(['demo', '--fair', '--lose', lose, '--json']);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.holds, { server: { y: holds.y }, client: { x: holds.x } });
    assert.equal(j.fair, true);
    assert.equal(j.lost, lose);
  });
}

test('qtm demo --lose needs --fair and honest parties', () => {
  assert.equal(qtm(['demo', '--lose', 'x']).status, 2);
  assert.equal(qtm(['demo', '--fair', '--lose', 'x', '--cheat', 'client']).status, 2);
  assert.equal(qtm(['demo', '--fair', '--lose', 'z']).status, 2);
});

test('qtm demo --fair --cheat client --json: the cheating client\'s moves at the TTP are each refused by code, and the end is fair', () => {
  const r = qtm(['demo', '--fair', '--cheat', 'client', '--json']);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.cheatMoves.map((m: { refused: string }) => m.refused), ['E_TTP_NOT_SIGNED', 'E_TTP_NOT_SIGNED', 'E_TTP_NOT_SIGNED', 'E_TTP_NOT_SIGNED']);
  assert.match(j.cheatMoves.map((m: { move: string }) => m.move).join('\n'), /bogus escrow of X[\s\S]*squat[\s\S]*abort[\s\S]*resolve as the server/);
  assert.deepEqual(j.fairness, { cheat: 'client', clientHasX: true, serverHasY: true, fair: true });
});
