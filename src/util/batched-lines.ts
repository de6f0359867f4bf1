/**
 * A line log that writes once per turn of the event loop: the lines of all requests answered in
 * one turn go out in one write(2), instead of one system call per line (stderr is written
 * synchronously when it is a pipe or a file). Lines still pending when the process exits are
 * written then; only a kill -9 in the same turn loses them.
 */
export function batchedLines(write: (text: string) => void): (line: string) => void {
  let pending: string[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    write(text);
  };
  process.once('exit', flush);
  return (line: string) => {
    if (pending.push(line.endsWith('\n') ? line : line + '\n') === 1) setImmediate(flush);
  };
}

let stderr: ((line: string) => void) | undefined;

/** One batched writer for the process's stderr, shared so lines keep their order. */
export function stderrLines(): (line: string) => void {
  stderr ??= batchedLines((text) => process.stderr.write(text));
  return stderr;
}
