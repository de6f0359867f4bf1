/**
 * Choosing a card: --reader NAME (PC/SC) or --card FILE (virtual card in this process), also
 * from QTM_READER / QTM_CARD. Flags win over the environment.
 */
import { existsSync } from 'node:fs';
import { CardClient } from './client.js';
import type { CardTransport } from './transport.js';
import { InProcessTransport } from './transports/in-process.js';
import { PcscTransport } from './transports/pcsc.js';
import { FileStorage } from './virtual/storage.js';
import { InputError } from '../errors.js';

export interface CardChoice {
  /** A reader's exact name, its number in the list, or a unique case-insensitive part of its name. */
  reader?: string;
  card?: string;
  /** With a reader: wait for a card to be inserted instead of failing after 3 s. */
  wait?: boolean;
}

export function resolveCardChoice(o: CardChoice): { reader: string } | { card: string } {
  if (o.reader && o.card) throw new InputError('give either --reader or --card, not both');
  if (o.reader) return { reader: o.reader };
  if (o.card) return { card: o.card };
  if (process.env.QTM_READER) return { reader: process.env.QTM_READER };
  if (process.env.QTM_CARD) return { card: process.env.QTM_CARD };
  throw new InputError('no card chosen', 'pass --reader NAME (PC/SC) or --card FILE (virtual card), or set QTM_READER / QTM_CARD');
}

export async function openTransport(o: CardChoice, opts: { createSlots?: number } = {}): Promise<CardTransport> {
  const choice = resolveCardChoice(o);
  if ('reader' in choice) {
    return PcscTransport.connect(choice.reader, 3000, {
      ...(o.wait ? { wait: true } : {}),
      onWaiting: (name) => process.stderr.write(`waiting for a card in "${name}" (Ctrl-C to stop)\n`),
    });
  }
  if (o.wait) throw new InputError('--wait is for a card inserted into a PC/SC reader', 'use it with --reader, or drop it with --card FILE');
  if (opts.createSlots !== undefined && !existsSync(choice.card)) FileStorage.create(choice.card, opts.createSlots);
  return InProcessTransport.forFile(choice.card);
}

/** Opens the card, runs `use`, and always closes the transport. */
export async function withCard<T>(o: CardChoice, use: (client: CardClient) => Promise<T>, opts: { createSlots?: number } = {}): Promise<T> {
  const transport = await openTransport(o, opts);
  try {
    return await use(new CardClient(transport));
  } finally {
    await transport.close();
  }
}
