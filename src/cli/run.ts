/**
 * Turns any error into one line on stderr and a documented exit code:
 *   0 ok / valid, 1 invalid proof or refused operation, 2 unusable input or usage,
 *   3 internal error (a bug: please report it with the --debug output).
 */
import { QtmError, ExitCode } from '../errors.js';
import { diag } from './output.js';

export const INTERNAL_ERROR_EXIT = 3;

export function debugEnabled(argv: readonly string[] = process.argv): boolean {
  return argv.includes('--debug') || process.env.QTM_DEBUG === '1';
}

export function reportError(err: unknown): number {
  const c = diag.colour;
  if (err instanceof QtmError) {
    diag.line(`${c.red('qtm: error:')} ${err.message}${err.hint ? ` (${err.hint})` : ''}`);
    if (debugEnabled()) diag.line(err.stack ?? '');
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR' || e.code === 'ENOTDIR')) {
    diag.line(`${c.red('qtm: error:')} cannot read or write ${e.path ?? 'a file'}: ${e.code} (check the path and permissions)`);
    return ExitCode.usage;
  }
  diag.line(`${c.red('qtm: internal error:')} ${e?.message ?? String(err)} (run again with --debug and report the output)`);
  if (debugEnabled()) diag.line(e?.stack ?? '');
  return INTERNAL_ERROR_EXIT;
}
