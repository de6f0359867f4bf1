/**
 * Exclusive lock files across processes (Node has no flock). The mechanism:
 *
 * - Taking: create the lock file with O_CREAT|O_EXCL (`wx`); it holds "PID START", where START
 *   is the process's start time (field 22 of /proc/PID/stat, clock ticks since boot; `-` where
 *   /proc is missing), or "PID" alone (the transaction store's LOCK, whose format predates the
 *   start time). Whoever creates it holds the lock. Releasing unlinks it.
 * - Stale rule: a lock is stale when its process no longer runs (`process.kill(pid, 0)` fails
 *   with ESRCH), or runs with another start time (the PID was reused after a kill -9), or the
 *   file stays unreadable or empty for more than EMPTY_GRACE_MS (its creator died between
 *   creating and writing it). A stale lock is removed, then taken by exclusive create as above.
 * - Removing a stale lock is itself serialised by a short-lived breaker file (`LOCK.break`,
 *   exclusive create), and the lock is read again under it and removed only if it is still the
 *   same stale file (same inode and content): two waiters that both judged it stale never remove
 *   a fresh lock the other took. A breaker older than BREAKER_STALE_MS (its holder died in the
 *   microseconds of removing) is removed.
 *
 * A killed process therefore never blocks the next one: the next taker finds its PID gone.
 * The lock works between processes of one host (PIDs mean nothing on another machine).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';

const EMPTY_GRACE_MS = 2_000;
const BREAKER_STALE_MS = 10_000;

export interface LockHolder {
  readonly pid: number;
  readonly start?: string;
}

/** This process's start time, from /proc (Linux); undefined elsewhere. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall: starttime
  } catch {
    return undefined;
  }
}

let ownStart: string | undefined | null = null;
function ownStartTime(): string | undefined {
  if (ownStart === null) ownStart = processStartTime(process.pid);
  return ownStart;
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the holder named in a lock file is alive: same PID running, same start time. */
export function holderAlive(h: LockHolder): boolean {
  if (!isRunning(h.pid)) return false;
  if (h.start === undefined) return true;
  const now = processStartTime(h.pid);
  return now === undefined || now === h.start;
}

function parseHolder(text: string): LockHolder | undefined {
  const m = /^(\d+)(?: (\d+|-))?\n?$/.exec(text);
  if (!m) return undefined;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, ...(m[2] && m[2] !== '-' ? { start: m[2] } : {}) };
}

/** Who holds a lock file now, if a live process does (read-only: for a reader beside a writer). */
export function liveHolder(path: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const h = parseHolder(text);
  return h && holderAlive(h) ? h : undefined;
}

interface Snapshot {
  readonly ino: number;
  readonly text: string;
  readonly mtimeMs: number;
}

function snapshot(path: string): Snapshot | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return { ino: st.ino, text: buf.subarray(0, n).toString('latin1'), mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

function isStale(s: Snapshot): boolean {
  const holder = parseHolder(s.text);
  if (!holder) return Date.now() - s.mtimeMs > EMPTY_GRACE_MS;
  return !holderAlive(holder);
}

export interface LockOptions {
  /** Write the start time beside the PID (default true), so a reused PID is not taken for the holder. */
  readonly startTime?: boolean;
}

/** One attempt at the exclusive create. */
function tryCreate(path: string, o: LockOptions = {}): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, o.startTime === false ? `${process.pid}\n` : `${process.pid} ${ownStartTime() ?? '-'}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Removes the lock if it is still exactly the stale file seen; serialised by the breaker. */
function breakStale(path: string, seen: Snapshot): void {
  const breaker = `${path}.break`;
  if (!tryCreate(breaker)) {
    try {
      if (Date.now() - statSync(breaker).mtimeMs > BREAKER_STALE_MS) unlinkSync(breaker);
    } catch {
      // gone already: someone finished breaking
    }
    return;
  }
  try {
    const now = snapshot(path);
    if (now && now.ino === seen.ino && now.text === seen.text && isStale(now)) unlinkSync(path);
  } finally {
    unlinkSync(breaker);
  }
}

export type LockAttempt = { readonly taken: true } | { readonly taken: false; readonly holder?: LockHolder };

/** Takes the lock now if it is free or stale; otherwise reports who holds it. */
export function tryLock(path: string, o: LockOptions = {}): LockAttempt {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(path, o)) return { taken: true };
    const seen = snapshot(path);
    if (!seen) continue; // released between the two calls
    if (!isStale(seen)) {
      const holder = parseHolder(seen.text);
      return { taken: false, ...(holder ? { holder } : {}) };
    }
    breakStale(path, seen);
  }
  return { taken: false };
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Takes the lock, waiting (synchronously: the virtual card answers APDUs synchronously) up to
 * `timeoutMs` while a live process holds it. Returns undefined on success, else the holder.
 */
export function lockWait(path: string, timeoutMs: number): { holder?: LockHolder } | undefined {
  const deadline = Date.now() + timeoutMs;
  let pause = 1;
  for (;;) {
    const r = tryLock(path);
    if (r.taken) return undefined;
    if (Date.now() >= deadline) return r.holder ? { holder: r.holder } : {};
    sleepSync(pause + Math.random() * pause);
    pause = Math.min(pause * 2, 4);
  }
}

/** Releases a lock this process holds. */
export function unlock(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
