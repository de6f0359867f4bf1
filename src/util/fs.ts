import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, writeSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isRunning } from './lock-file.js';

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content, never
 * a torn mix: write a temp file beside it, fsync it, rename over the target, fsync the folder.
 * The temp file is `<target>.<pid>.<ms>.tmp`; one left by a killed writer is removed by
 * removeStaleTemps() when its owner opens the folder again.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, opts: { readonly syncDirectory?: boolean } = {}): void {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  // A writer of many files in one folder fsyncs the folder once, after the last (opts.syncDirectory false).
  if (opts.syncDirectory !== false) fsyncDirectory(dirname(path));
}

export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** For files a user names on creation (`--out keys/receipts`): make the folder, private. */
export function ensureParentDir(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
}

const TEMP_NAME = /^(.+)\.(\d+)\.(\d+)\.tmp$/;

/**
 * Removes the temp files of writeFileAtomic that a killed writer left in `dir` (a whole copy of
 * what it was writing: a card's state, a proof bundle): those whose writer process no longer
 * runs. `target`, when given, limits it to the temp files of that one file. Returns the names
 * removed.
 */
export function removeStaleTemps(dir: string, target?: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  const only = target === undefined ? undefined : basename(target);
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || (only !== undefined && m[1] !== only)) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || isRunning(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      // removed by another process meanwhile
    }
  }
  return removed;
}
