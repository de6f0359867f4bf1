/**
 * The README's shell blocks, as a bash script that runs them in order (test/e2e/readme.test.ts).
 *
 * Conventions, for whoever edits README.md:
 * - Every fenced block whose info string is `sh` or `bash` runs, in order, in one bash process
 *   (so `export`s, `cd` and background jobs carry from one block to the next) with
 *   `set -e -o pipefail`: a command that exits non-zero fails the test with its README line.
 * - A command expected to fail ends with a comment `# exit N` (or `# exit N: why`): it must exit
 *   with exactly N. It must be one command on one line.
 * - A command ending in `&` (a server, an emulated card) is waited for until it listens on a TCP
 *   port or is connected to vpcd (127.0.0.1:3596x); if it exits before that, the test fails.
 *   Stop it in a later block (`kill $server; wait $server`): every process the README started is
 *   ended when the test ends, but a section's server must not outlive its section.
 * - An HTML comment on the line just before the opening fence (several may be stacked):
 *     <!-- readme-test: skip: REASON -->   not run; the reason is required. Keep these rare.
 *     <!-- readme-test: in the clone -->   run in the checkout (e.g. `npm link`), then back.
 *     <!-- readme-test: needs postgres --> a throwaway PostgreSQL cluster is started for the
 *                                          test and its URL exported as QTM_STORE first.
 *   Any other `readme-test:` comment is an error, so a typo cannot silently skip a block.
 */

export type Need = 'postgres';

export interface ReadmeBlock {
  /** 1-based README line of the block's first code line. */
  readonly line: number;
  readonly lines: readonly string[];
  readonly skip?: string;
  readonly inClone: boolean;
  readonly needs: readonly Need[];
}

/** The variable a block marked `needs postgres` finds the database's URL in. */
export const POSTGRES_URL_ENV = 'QTM_STORE';

const FENCE = /^(`{3,}|~{3,})\s*([\w-]*)/;
const DIRECTIVE = /^<!--\s*readme-test:\s*(.*?)\s*-->\s*$/;

export function extractBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith(fence[0]!.repeat(fence.length))) end++;
    if (end >= lines.length) throw new Error(`README line ${i + 1}: the code block is never closed`);
    const lang = open[2]!;
    const directives: string[] = [];
    for (let j = i - 1; j >= 0; j--) {
      const d = DIRECTIVE.exec(lines[j]!);
      if (!d) break;
      directives.unshift(d[1]!);
    }
    if (lang === 'sh' || lang === 'bash') {
      let skip: string | undefined;
      let inClone = false;
      const needs: Need[] = [];
      for (const d of directives) {
        const s = /^skip:\s*(\S.*)$/.exec(d);
        if (s) skip = s[1]!;
        else if (d === 'in the clone') inClone = true;
        else if (d === 'needs postgres') needs.push('postgres');
        else throw new Error(`README line ${i}: unknown directive "readme-test: ${d}" (skip: REASON, in the clone, needs postgres)`);
      }
      blocks.push({ line: i + 2, lines: lines.slice(i + 1, end), ...(skip ? { skip } : {}), inClone, needs });
    } else if (directives.length) {
      throw new Error(`README line ${i + 1}: a readme-test directive before a block that is not sh or bash`);
    }
    i = end;
  }
  return blocks;
}

/** Splits a shell line into its code and its trailing comment (a `#` after a blank, outside quotes). */
export function splitComment(line: string): { code: string; comment: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '\\') {
      i++;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return { code: line.slice(0, i).trimEnd(), comment: line.slice(i) };
    }
  }
  return { code: line.trimEnd(), comment: '' };
}

export interface Script {
  readonly text: string;
  /** For each script line (index 0 is line 1), the README line it came from, or 0. */
  readonly readmeLine: readonly number[];
}

const PRELUDE = String.raw`set -e -o pipefail
trap 'echo "::readme-fail $LINENO $?"' ERR
__readme_expect() { # want got readme-line
  if [ "$2" != "$1" ]; then echo "::readme-expect $3 $1 $2"; exit 1; fi
}
__readme_ready() { # pid readme-line: listening on TCP, or connected to vpcd
  local i
  for i in $(seq 1 600); do
    if ! kill -0 "$1" 2>/dev/null; then echo "::readme-bg-exited $2"; exit 1; fi
    if ss -Htanp 2>/dev/null | grep -F "pid=$1," | grep -qE '^LISTEN|:3596[3-9][[:space:]]'; then return 0; fi
    sleep 0.1
  done
  echo "::readme-bg-timeout $2"; exit 1
}`;

export function buildScript(blocks: readonly ReadmeBlock[], opts: { clone: string; postgresUrl?: string }): Script {
  const text: string[] = [];
  const map: number[] = [];
  const emit = (l: string, readme = 0) => {
    text.push(l);
    map.push(readme);
  };
  for (const l of PRELUDE.split('\n')) emit(l);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  for (const b of blocks) {
    if (b.skip) continue;
    emit(`echo "::readme-block ${b.line} $EPOCHREALTIME"`);
    if (b.needs.includes('postgres')) {
      if (!opts.postgresUrl) throw new Error(`README line ${b.line}: the block needs PostgreSQL and none was started`);
      emit(`export ${POSTGRES_URL_ENV}=${q(opts.postgresUrl)}`);
    }
    if (b.inClone) emit(`pushd ${q(opts.clone)} >/dev/null`);
    let logical = '';
    let logicalStart = 0;
    b.lines.forEach((raw, k) => {
      const readme = b.line + k;
      const { code, comment } = splitComment(raw);
      const continued = code.endsWith('\\');
      if (!logical) logicalStart = readme;
      logical += (logical ? ' ' : '') + code.replace(/\\$/, '');
      const expect = /^#\s*exit\s+(\d+)\b/.exec(comment);
      if (expect) {
        if (continued || logicalStart !== readme) throw new Error(`README line ${readme}: "# exit N" must end a command on one line`);
        emit(`${code} && __readme_rc=0 || __readme_rc=$?; __readme_expect ${expect[1]} $__readme_rc ${readme}`, readme);
      } else {
        emit(raw, readme);
      }
      if (!continued) {
        if (/[^&]&$/.test(logical.trimEnd())) emit(`__readme_ready $! ${logicalStart}`, logicalStart);
        logical = '';
      }
    });
    if (b.inClone) emit('popd >/dev/null');
  }
  emit('echo "::readme-done $EPOCHREALTIME"');
  return { text: text.join('\n') + '\n', readmeLine: map };
}
