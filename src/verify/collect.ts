/**
 * Expands the BUNDLE arguments of `qtm verify`: files as given, directories recursively (every
 * *.json inside), and quoted glob patterns with * and ? in the last path segment (the shell
 * expands unquoted ones itself).
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

function walk(dir: string, into: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, into);
    else if (entry.isFile() && entry.name.endsWith('.json')) into.push(path);
  }
}

export function collectBundleFiles(args: readonly string[]): string[] {
  const files: string[] = [];
  for (const arg of args) {
    if (arg === '-') {
      if (files.includes('-')) throw new InputError('- (standard input) given twice');
      files.push(arg);
      continue;
    }
    if (/[*?]/.test(basename(arg))) {
      const dir = dirname(arg);
      const re = globToRegExp(basename(arg));
      const matches = readdirSync(dir).filter((n) => re.test(n)).sort().map((n) => join(dir, n));
      if (matches.length === 0) throw new InputError(`no file matches ${arg}`);
      files.push(...matches);
      continue;
    }
    let st;
    try {
      st = statSync(arg);
    } catch {
      throw new InputError(`${arg}: no such file or directory`, 'give bundle files, a directory of them, or a glob');
    }
    if (st.isDirectory()) {
      const before = files.length;
      walk(arg, files);
      if (files.length === before) throw new InputError(`${arg} holds no *.json bundle`);
    } else {
      files.push(arg);
    }
  }
  return files;
}
