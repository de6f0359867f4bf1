/**
 * Turns any error into one line on stderr and a documented exit code:
 *   0 ok / valid, 1 invalid proof or refused operation, 2 unusable input or usage,
 *   3 internal error (a bug: please report it with the --debug output), 130 cancelled (Ctrl-C).
 * Every line starts with the one prefix `qtm: error:`. Under --json the same error is also
 * printed on stdout as {"error":{"code","message","exitCode"}}, so scripts read one format.
 */
import { QtmError, ExitCode } from '../errors.js';
import { diag, out } from './output.js';

export const INTERNAL_ERROR_EXIT = 3;
/** What shells report for a process ended by SIGINT (128 + 2). */
export const CANCELLED_EXIT = 130;

/** The user pressed Ctrl-C (or closed the terminal) at a prompt: nothing was done after it. */
export class CancelledError extends Error {
  readonly code = 'E_CANCELLED';
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

/** inquirer rejects a prompt closed with Ctrl-C with an ExitPromptError. */
export function isPromptCancel(err: unknown): boolean {
  return err instanceof CancelledError || (err instanceof Error && err.name === 'ExitPromptError');
}

export function debugEnabled(argv: readonly string[] = process.argv): boolean {
  return argv.includes('--debug') || process.env.QTM_DEBUG === '1';
}

export function jsonRequested(argv: readonly string[] = process.argv): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

export interface ErrorReport {
  readonly code: string;
  readonly message: string;
  readonly exitCode: number;
}

/** Classifies an error: its stable code, the one line that says what was wrong and what to do, the exit code. */
export function describeError(err: unknown): ErrorReport {
  if (isPromptCancel(err)) return { code: 'E_CANCELLED', message: 'cancelled: nothing was signed or changed', exitCode: CANCELLED_EXIT };
  if (err instanceof QtmError) return { code: err.code, message: `${err.message}${err.hint ? ` (${err.hint})` : ''}`, exitCode: err.exitCode };
  const e = err as NodeJS.ErrnoException;
  if (e && (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR' || e.code === 'ENOTDIR')) {
    return { code: 'E_FILE', message: `cannot read or write ${e.path ?? 'a file'}: ${e.code} (check the path and permissions)`, exitCode: ExitCode.usage };
  }
  return { code: 'E_INTERNAL', message: `internal error: ${e?.message ?? String(err)} (run again with --debug and report the output)`, exitCode: INTERNAL_ERROR_EXIT };
}

export function printError(report: ErrorReport, json = jsonRequested()): void {
  diag.line(`${diag.colour.red('qtm: error:')} ${report.message}`);
  if (json) out.json({ error: report });
}

export function reportError(err: unknown): number {
  const report = describeError(err);
  printError(report);
  diag.verbose(`  (code ${report.code}, exit ${report.exitCode})`);
  if (debugEnabled() && report.code !== 'E_CANCELLED') diag.line((err as Error)?.stack ?? '');
  return report.exitCode;
}

/**
 * A reader that stops reading (`qtm verify ... | head`) closes the pipe: end quietly with 0,
 * as the output it wanted was written, instead of an EPIPE stack trace that reads as "invalid".
 */
export function endQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.ok);
    throw err;
  });
}
