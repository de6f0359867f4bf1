import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { withCardKeys, type Sam } from '../../src/sam/sam.js';
import type { CardKeys } from '../../src/crypto/diversify.js';

function recordingSam(): { sam: Sam; given: CardKeys[] } {
  const given: CardKeys[] = [];
  return { given, sam: { kcv: '000000', cardKeys: () => { const k = { kEnc: randomBytes(16), kMac: randomBytes(16) }; given.push(k); return k; } } };
}
const zero = Buffer.alloc(16);

test('per-card keys are zeroed after a synchronous use, and the use saw them whole', () => {
  const { sam, given } = recordingSam();
  const seen = withCardKeys(sam, Buffer.alloc(8), (k) => Buffer.concat([k.kEnc, k.kMac]));
  assert.notDeepEqual(seen.subarray(0, 16), zero);
  assert.deepEqual(given[0]!.kEnc, zero);
  assert.deepEqual(given[0]!.kMac, zero);
});

test('per-card keys are zeroed when the use throws', () => {
  const { sam, given } = recordingSam();
  assert.throws(() => withCardKeys(sam, Buffer.alloc(8), () => { throw new Error('boom'); }), /boom/);
  assert.deepEqual(given[0]!.kEnc, zero);
  assert.deepEqual(given[0]!.kMac, zero);
});

test('per-card keys are zeroed only once an asynchronous use settles (resolved or rejected)', async () => {
  const { sam, given } = recordingSam();
  let release!: () => void;
  const pending = withCardKeys(sam, Buffer.alloc(8), () => new Promise<void>((r) => { release = r; }));
  assert.notDeepEqual(given[0]!.kEnc, zero, 'still in use');
  release();
  await pending;
  assert.deepEqual(given[0]!.kEnc, zero);
  await assert.rejects(withCardKeys(sam, Buffer.alloc(8), async () => { throw new Error('late'); }), /late/);
  assert.deepEqual(given[1]!.kMac, zero);
});
