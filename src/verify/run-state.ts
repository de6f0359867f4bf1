/**
 * The state file of a resumable archive run (`qtm verify DIR --state FILE`): how far the run got in
 * its deterministic walk order, and the running counts, so that a run interrupted (Ctrl-C, kill,
 * power loss) goes on where it stopped and its final summary covers the whole run.
 *
 * The position is the contiguous-completed count: bundles 0..done-1 of the walk order have all
 * been verified and reported, whatever order the workers finished them in; a bundle after it may
 * have been verified too, and is then verified again on resume (never skipped). `last` is the path
 * of bundle done-1, checked on resume so that a tree changed before the position is refused rather
 * than silently skipping a different bundle.
 *
 * {
 *   "format": "qtm-verify-state", "version": 1,
 *   "run": hex SHA-256 of what decides the verdicts (the bundle arguments as absolute paths, the
 *          anchors, --content, --at, --revocations, --clock-tolerance, --log-key, --witness...),
 *   "done": count, "last": path of bundle done-1 | null when done is 0,
 *   "counts": { "valid", "invalid", "unusable", "legacy", "internal" },
 *   "seconds": wall time of the runs so far, "runs": how many runs wrote it,
 *   "updated": ISO time of the write
 * }
 * Written with write-temp, fsync, rename, fsync-folder (src/util/fs.ts): a crash leaves the old or
 * the new state, never a torn one. Decoded strictly: every field named when wrong.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { DecodeError, InputError } from '../errors.js';
import { checkFields, parseStrictJson } from '../protocol/strict-json.js';
import { writeFileAtomic } from '../util/fs.js';

export const STATE_FORMAT = 'qtm-verify-state';
export const STATE_VERSION = 1;
const FIELDS = ['format', 'version', 'run', 'done', 'last', 'counts', 'seconds', 'runs', 'updated'] as const;
const COUNT_FIELDS = ['valid', 'invalid', 'unusable', 'legacy', 'internal'] as const;
const MAX_PATH_CHARS = 65536;

export interface RunCounts {
  valid: number;
  invalid: number;
  unusable: number;
  legacy: number;
  /** Bundles whose check met a bug (reported unusable, exit 3). */
  internal: number;
}

export interface RunState {
  readonly run: string;
  readonly done: number;
  readonly last: string | null;
  readonly counts: RunCounts;
  readonly seconds: number;
  readonly runs: number;
  readonly updated: string;
}

export function emptyCounts(): RunCounts {
  return { valid: 0, invalid: 0, unusable: 0, legacy: 0, internal: 0 };
}

const WHAT = 'verify state';

function fail(message: string): never {
  throw new DecodeError(WHAT, message);
}

function count(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`"${field}" must be a non-negative integer`);
  return v;
}

/** The run key: a digest of everything that decides the verdicts, in a fixed order. */
export function runKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(Object.entries(parts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))).digest('hex');
}

export function encodeState(s: RunState): string {
  return JSON.stringify({ format: STATE_FORMAT, version: STATE_VERSION, run: s.run, done: s.done, last: s.last, counts: s.counts, seconds: s.seconds, runs: s.runs, updated: s.updated }) + '\n';
}

/** Strict: every field present, of its type, no other field, and counts that add up to `done`. */
export function decodeState(text: string): RunState {
  const json = checkFields(WHAT, parseStrictJson(text, WHAT), FIELDS, '');
  for (const f of FIELDS) if (!Object.hasOwn(json, f)) fail(`missing field "${f}"`);
  if (json.format !== STATE_FORMAT) fail(`"format" must be "${STATE_FORMAT}"`);
  if (json.version !== STATE_VERSION) fail(`unsupported "version" ${JSON.stringify(json.version)} (this qtm reads ${STATE_VERSION})`);
  if (typeof json.run !== 'string' || !/^[0-9a-f]{64}$/.test(json.run)) fail('"run" must be 64 lowercase hex digits');
  const done = count(json.done, 'done');
  if (json.last !== null && (typeof json.last !== 'string' || json.last.length === 0 || json.last.length > MAX_PATH_CHARS)) fail('"last" must be a path or null');
  if ((json.last === null) !== (done === 0)) fail(done === 0 ? '"last" must be null when "done" is 0' : '"last" must name bundle "done" - 1');
  const c = checkFields(WHAT, json.counts, COUNT_FIELDS, 'counts');
  for (const f of COUNT_FIELDS) if (!Object.hasOwn(c, f)) fail(`missing field "counts.${f}"`);
  const counts: RunCounts = {
    valid: count(c.valid, 'counts.valid'), invalid: count(c.invalid, 'counts.invalid'), unusable: count(c.unusable, 'counts.unusable'),
    legacy: count(c.legacy, 'counts.legacy'), internal: count(c.internal, 'counts.internal'),
  };
  if (counts.valid + counts.invalid + counts.unusable !== done) fail('"counts" valid + invalid + unusable must equal "done"');
  if (counts.legacy > counts.valid + counts.invalid) fail('"counts.legacy" counts verified bundles only: at most valid + invalid');
  if (counts.internal > counts.unusable) fail('"counts.internal" is part of "counts.unusable": at most it');
  if (typeof json.seconds !== 'number' || !Number.isFinite(json.seconds) || json.seconds < 0) fail('"seconds" must be a non-negative number');
  const runs = count(json.runs, 'runs');
  if (runs < 1) fail('"runs" must be at least 1');
  if (typeof json.updated !== 'string' || Number.isNaN(Date.parse(json.updated))) fail('"updated" must be an ISO time');
  return { run: json.run, done, last: json.last as string | null, counts, seconds: json.seconds, runs, updated: json.updated };
}

/** The state in `file`, or undefined when there is none yet (a fresh run). Damaged: exit 2, named. */
export function readState(file: string): RunState | undefined {
  if (!existsSync(file)) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${file}: cannot read the verify state (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'give another --state file');
  }
  try {
    return decodeState(text);
  } catch (err) {
    if (err instanceof DecodeError) {
      throw new InputError(`${file}: ${err.message}`, 'the run cannot be resumed from it: remove it to verify from the start', 'E_FILE_DAMAGED');
    }
    throw err;
  }
}

export function writeState(file: string, s: RunState): void {
  writeFileAtomic(file, encodeState(s), 0o600);
}

export function removeState(file: string): void {
  rmSync(file, { force: true });
}
