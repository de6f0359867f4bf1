/**
 * Keeping witnesses' cosignatures with a checkpoint (C2SP signed-note: a note may carry more
 * signature lines than the verifier knows). Pure text functions, shared by the log in a directory
 * (log-dir.ts: files cosigned/<size>) and the log in a PostgreSQL store (store/pg-tlog.ts: rows).
 */

/** The checkpoint's body (its text up to and including the blank line before the signatures). */
export function noteBody(note: string): string {
  return note.slice(0, note.indexOf('\n\n') + 2);
}

/** The checkpoint with the log's own signature line only: where an archived cosigned copy starts. */
export function withLogSignatureOnly(checkpoint: string, origin: string): string {
  const body = noteBody(checkpoint);
  const logLine = `\u2014 ${origin} `;
  return body + checkpoint.slice(body.length).split('\n').filter((l) => l.startsWith(logLine)).map((l) => `${l}\n`).join('');
}

/** `current` with the signature lines of `lines` it lacks appended, or undefined when it has them all. */
export function addSignatureLines(current: string, lines: string): string | undefined {
  const have = new Set(current.split('\n'));
  const fresh = lines.split('\n').filter((l) => l.length && !have.has(l));
  return fresh.length ? current + fresh.map((l) => `${l}\n`).join('') : undefined;
}
