/**
 * The BUNDLE arguments of `qtm verify`, as the sources of a run: files as given, directories (walked
 * later, streaming, by ./walk.ts), and quoted glob patterns with * and ? in the last path segment
 * (the shell expands unquoted ones itself; a quoted one is expanded here, in name order).
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import type { WalkRoot } from './walk.js';
import { STDIN } from './verify-files.js';

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

function isGlob(arg: string): boolean {
  return /[*?]/.test(basename(arg));
}

/**
 * One argument naming one file (or `-`): the run is the single-proof report, with the JSON document
 * `{summary, results: [one]}` under --json. Anything that can stand for several bundles (a
 * directory, a glob, several arguments) is a streamed archive run (JSON Lines under --json).
 */
export function isSingleBundle(args: readonly string[]): boolean {
  if (args.length !== 1) return false;
  const arg = args[0]!;
  if (arg === STDIN) return true;
  if (isGlob(arg)) return false;
  try {
    return !statSync(arg).isDirectory();
  } catch {
    return true; // reported as missing by bundleRoots
  }
}

export function bundleRoots(args: readonly string[]): WalkRoot[] {
  const roots: WalkRoot[] = [];
  let stdin = false;
  for (const arg of args) {
    if (arg === STDIN) {
      if (stdin) throw new InputError('- (standard input) given twice');
      stdin = true;
      roots.push({ kind: 'file', path: arg });
      continue;
    }
    if (isGlob(arg)) {
      const dir = dirname(arg);
      const re = globToRegExp(basename(arg));
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        throw new InputError(`${arg}: cannot list ${dir}`, 'give bundle files, a directory of them, or a glob');
      }
      const matches = names.filter((n) => re.test(n)).sort();
      if (matches.length === 0) throw new InputError(`no file matches ${arg}`);
      // As the shell would pass them: a matching directory is walked, like one given by name.
      for (const n of matches) {
        const path = join(dir, n);
        let isDir = false;
        try {
          isDir = statSync(path).isDirectory();
        } catch {
          // gone or a dangling link: reported as unreadable when its turn comes
        }
        roots.push({ kind: isDir ? 'directory' : 'file', path });
      }
      continue;
    }
    let st;
    try {
      st = statSync(arg);
    } catch {
      throw new InputError(`${arg}: no such file or directory`, 'give bundle files, a directory of them, or a glob');
    }
    roots.push({ kind: st.isDirectory() ? 'directory' : 'file', path: arg });
  }
  return roots;
}
