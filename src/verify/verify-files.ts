/**
 * Verifying bundle files: read, decode, verify; one result per file. A file that cannot be
 * read or decoded is "unusable" (exit 2) rather than "invalid" (exit 1).
 */
import { readFileSync, readSync, statSync } from 'node:fs';
import { decodeBundle, MAX_BUNDLE_BYTES } from '../bundle/proof-bundle.js';
import { QtmError } from '../errors.js';
import { verifyBundle, type VerificationReport, type VerifyOptions } from './verify-bundle.js';

export type FileResult =
  | ({ file: string; status: 'valid' | 'invalid' } & VerificationReport)
  | { file: string; status: 'unusable'; error: string };

export function verifyFile(file: string, options: VerifyOptions): FileResult {
  let text: string;
  if (file === STDIN) return verifyText(file, readStdinCapped(), options);
  try {
    // The cap comes before reading: a huge file costs one stat, not its parsing.
    const size = statSync(file).size;
    if (size > MAX_BUNDLE_BYTES) return { file, status: 'unusable', error: `proof bundle: ${size} bytes, over the ${MAX_BUNDLE_BYTES}-byte cap (no genuine bundle is that large): not read` };
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { file, status: 'unusable', error: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  return verifyText(file, text, options);
}

/** `-` names standard input, as in `qtm verify -` or `jq ... | qtm verify - --trust ca.pem`. */
export const STDIN = '-';

/** Reads stdin up to the bundle cap: a bundle over it is unusable, as a file over it is. */
function readStdinCapped(): string | { error: string } {
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

function verifyText(file: string, input: string | { error: string }, options: VerifyOptions): FileResult {
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
