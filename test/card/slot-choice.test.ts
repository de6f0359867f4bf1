import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseSlot, type SlotView } from '../../src/card/receipts.js';

const used = (slot: number, time: number, priority?: number): SlotView => ({
  slot, raw: Buffer.alloc(1, 1),
  record: { version: priority === undefined ? 1 : 2, transactionId: slot, time, contentId: Buffer.alloc(20), ...(priority !== undefined ? { priority, serverIdPrefix: Buffer.alloc(8) } : {}) },
});

test('first free slot wins', () => {
  assert.deepEqual(chooseSlot([used(1, 5, 1), { slot: 2 }, { slot: 3 }]), { slot: 2 });
});

test('card full: lowest priority first, the oldest among equals', () => {
  const slots = [used(1, 100, 5), used(2, 300, 1), used(3, 200, 1), used(4, 50, 9)];
  const c = chooseSlot(slots)!;
  assert.equal(c.slot, 3);
  assert.equal(c.replaces?.record?.time, 200);
});

test('card full of v1 records (no priority): the oldest', () => {
  assert.equal(chooseSlot([used(1, 300), used(2, 100), used(3, 200)])!.slot, 2);
});

test('an unreadable slot is replaced before any valid receipt; no slots, no choice', () => {
  assert.equal(chooseSlot([used(1, 1, 0), { slot: 2, raw: Buffer.alloc(50, 9), error: 'unknown version 9' }])!.slot, 2);
  assert.equal(chooseSlot([]), undefined);
});
