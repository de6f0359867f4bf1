/**
 * A 32-byte secret kept in a file of its own (64 hex digits, mode 0600): the server's concept-order
 * key, the log's card-tag secret. Made once by exclusive create and fsync'd, so two processes
 * starting together end up with the same one; read as is afterwards.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';

export const SECRET_BYTES = 32;

/** Makes the secret file unless it exists already (exclusive create: a concurrent maker wins once). */
export function createSecretFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    writeSync(fd, randomBytes(SECRET_BYTES).toString('hex') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The secret, or undefined when the file is missing or does not hold 64 hex digits (the caller says what to do). */
export function readSecretFile(path: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) return undefined;
  return Buffer.from(text, 'hex');
}
