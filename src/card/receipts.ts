/**
 * Reading receipts from a card and choosing the slot for the next one (claim 6 and the patent:
 * "the oldest QTM or the QTM with the lowest priority"). Reading needs no PIN.
 */
import type { CardClient } from './client.js';
import type { CardStatus } from './app-spec.js';
import { decodeCardRecord, type CardRecord } from '../protocol/card-record.js';

export interface SlotView {
  readonly slot: number;
  readonly record?: CardRecord;
  readonly raw?: Buffer;
  /** Set when the slot holds bytes that are not a valid record. */
  readonly error?: string;
}

export async function readSlots(client: CardClient, status: CardStatus): Promise<SlotView[]> {
  if (!status.recordLength) return [];
  const raws = await client.readAllRecords(status.recordLength);
  return raws.map((raw, i) => {
    if (!raw) return { slot: i + 1 };
    try {
      return { slot: i + 1, raw, record: decodeCardRecord(raw) };
    } catch (err) {
      return { slot: i + 1, raw, error: (err as Error).message };
    }
  });
}

export interface SlotChoice {
  readonly slot: number;
  /** The record that will be overwritten (archive it first), when the card is full. */
  readonly replaces?: SlotView;
}

/**
 * The first free slot; when all are full, the lowest priority, and among equals the oldest
 * (v1 records have no priority and count as priority 0, so the oldest goes first).
 */
export function chooseSlot(slots: readonly SlotView[]): SlotChoice | undefined {
  if (slots.length === 0) return undefined;
  const free = slots.find((s) => !s.raw);
  if (free) return { slot: free.slot };
  const unreadable = slots.find((s) => s.error);
  if (unreadable) return { slot: unreadable.slot, replaces: unreadable };
  const sorted = [...slots].sort((a, b) =>
    (a.record!.priority ?? 0) - (b.record!.priority ?? 0) || a.record!.time - b.record!.time || a.slot - b.slot);
  return { slot: sorted[0]!.slot, replaces: sorted[0]! };
}
