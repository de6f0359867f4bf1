/**
 * Verifying bundle files: read, decode, verify; one result per file. A file that cannot be
 * read or decoded is "unusable" (exit 2) rather than "invalid" (exit 1).
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { decodeBundle, MAX_BUNDLE_BYTES } from '../bundle/proof-bundle.js';
import { QtmError } from '../errors.js';
import { verifyBundle, type VerificationReport, type VerifyOptions } from './verify-bundle.js';

export type FileResult =
  | ({ file: string; status: 'valid' | 'invalid' } & VerificationReport)
  | { file: string; status: 'unusable'; error: string };

export function verifyFile(file: string, options: VerifyOptions): FileResult {
  return verifyText(file, file === STDIN ? readStdinCapped() : readBundleFile(file), options);
}

/** What a read error means, for the one line that reports it. */
const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file, or a symbolic link to nothing',
  ELOOP: 'a loop of symbolic links',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'a directory',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

function kindOf(st: Stats): string {
  return st.isDirectory() ? 'a directory (reached through a symbolic link, which is not followed into)'
    : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'not a file';
}

let scratch: Buffer | undefined;

function readError(err: unknown): { error: string } {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  return { error: `cannot read: ${code}${READ_ERRORS[code] ? ` (${READ_ERRORS[code]})` : ''}` };
}

/**
 * Reads one bundle file, refusing before reading anything that is not a regular file or is over the
 * cap: a huge file costs one fstat, not its parsing, and a FIFO named *.json never blocks the run
 * (it is opened non-blocking and refused by its type).
 */
export function readBundleFile(file: string): string | { error: string } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return readError(err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { error: `cannot read: not a regular file (${kindOf(st)})` };
    if (st.size > MAX_BUNDLE_BYTES) return { error: `proof bundle: ${st.size} bytes, over the ${MAX_BUNDLE_BYTES}-byte cap (no genuine bundle is that large): not read` };
    // Into one buffer of the cap plus a byte, reused by every read of this thread: a file that grew
    // since fstat is still refused at the cap, never read whole. Asking for one byte more than
    // fstat said makes the usual case one read: all fstat promised, and a short read, is the end.
    const buf = (scratch ??= Buffer.allocUnsafe(MAX_BUNDLE_BYTES + 1));
    let n = 0;
    let want = Math.min(buf.length, st.size + 1);
    while (n < buf.length) {
      const got = readSync(fd, buf, n, want - n, null);
      if (got === 0) break;
      n += got;
      if (n >= st.size && n < want) break;
      if (n === want) want = buf.length; // it grew since fstat: read on, up to the cap
    }
    if (n > MAX_BUNDLE_BYTES) return { error: `proof bundle: over the ${MAX_BUNDLE_BYTES}-byte cap (no genuine bundle is that large): not read` };
    return buf.toString('utf8', 0, n);
  } catch (err) {
    return readError(err);
  } finally {
    closeSync(fd);
  }
}

/** `-` names standard input, as in `qtm verify -` or `jq ... | qtm verify - --trust ca.pem`. */
export const STDIN = '-';

/** Reads stdin up to the bundle cap: a bundle over it is unusable, as a file over it is. */
export function readStdinCapped(): string | { error: string } {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EOF') break;
      return { error: `cannot read standard input: ${code ?? String(err)}` };
    }
    if (n === 0) break;
    total += n;
    if (total > MAX_BUNDLE_BYTES) return { error: `proof bundle: over the ${MAX_BUNDLE_BYTES}-byte cap (no genuine bundle is that large): not read` };
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function verifyText(file: string, input: string | { error: string }, options: VerifyOptions): FileResult {
  if (typeof input !== 'string') return { file, status: 'unusable', error: input.error };
  const text = input;
  try {
    const report = verifyBundle(decodeBundle(text), options);
    return { file, status: report.valid ? 'valid' : 'invalid', ...report };
  } catch (err) {
    if (err instanceof QtmError) return { file, status: 'unusable', error: err.message };
    throw err;
  }
}

export interface Summary {
  total: number;
  valid: number;
  invalid: number;
  unusable: number;
  legacy: number;
}

export function summarise(results: readonly FileResult[]): Summary {
  const s: Summary = { total: results.length, valid: 0, invalid: 0, unusable: 0, legacy: 0 };
  for (const r of results) {
    s[r.status]++;
    if (r.status !== 'unusable' && r.legacy) s.legacy++;
  }
  return s;
}

/** Exit code for a run: 2 if anything was unusable, else 1 if anything was invalid, else 0. */
export function exitCodeFor(s: Summary): 0 | 1 | 2 {
  return s.unusable > 0 ? 2 : s.invalid > 0 ? 1 : 0;
}
