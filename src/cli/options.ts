import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';

export function parseProfile(value: string): 'v1' | 'v2' {
  if (value !== 'v1' && value !== 'v2') throw new InvalidArgumentError('expected v1 or v2');
  return value;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number, 0 or more');
  return n;
}

/** Accepts ISO 8601 ("2026-11-24T12:00:00Z") or Unix seconds. */
export function parseTime(value: string): Date {
  const d = /^\d+$/.test(value) ? new Date(Number(value) * 1000) : new Date(value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('expected an ISO 8601 time or Unix seconds');
  return d;
}

export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

/** 0 asks the system for a free port (the listening line says which). */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number, 0 to 65535');
  return n;
}

/** Where the card is: a PC/SC reader, or a virtual card file used in this process. */
export const cardOptions = (cmd: Command) =>
  cmd
    .option('-r, --reader <name>', 'PC/SC reader: exact name, number as in `qtm card list-readers` (0 is the first), or a unique part of its name (or QTM_READER)')
    .option('--card <file>', 'virtual card file, used in this process (or QTM_CARD)')
    .option('--wait', 'with a reader: wait for a card to be inserted');
