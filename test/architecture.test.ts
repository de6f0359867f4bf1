/**
 * The layers of docs/ARCHITECTURE.md, checked on the sources: a folder of src/ imports only
 * itself and the folders below it, and only the terminal UI (src/cli, src/commands) imports the
 * terminal libraries. A new folder must be given its place here and in the document.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { ROOT } from './helpers.js';

/** Bottom first. Each folder may import the ones before it, never one after it. */
export const LAYERS = [
  'errors.ts', 'protocol', 'util', 'crypto', 'tlog', 'http', 'store', 'sam', 'pkcs11', 'pki', 'card', 'bundle', 'warrant', 'verify', 'proof', 'fair',
  'client', 'server', 'demo', 'cli', 'commands',
] as const;
const TERMINAL = new Set(['cli', 'commands']);
const TERMINAL_PACKAGES = ['inquirer', '@inquirer/', 'chalk', 'commander'];

const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

const topOf = (file: string) => relative(SRC, file).split(sep)[0]!.replace(/\.js$/, '.ts');

/** Every module a source text imports: static imports, re-exports and dynamic import() of string literals. */
function importSpecifiers(text: string): string[] {
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => (m[1] ?? m[2])!);
}

const importsOf = (file: string) => importSpecifiers(readFileSync(file, 'utf8'));

test('no folder of src/ imports a folder above its own (docs/ARCHITECTURE.md)', () => {
  const rank = new Map<string, number>(LAYERS.map((l, i) => [l, i]));
  const upward: string[] = [];
  const unplaced = new Set<string>();
  for (const file of sources(SRC)) {
    const from = topOf(file);
    if (!rank.has(from)) unplaced.add(from);
    for (const spec of importsOf(file)) {
      if (!spec.startsWith('.')) continue;
      const to = topOf(resolve(dirname(file), spec));
      if (to === from) continue;
      if (!rank.has(to)) unplaced.add(to);
      else if (rank.get(to)! > rank.get(from)!) upward.push(`${relative(ROOT, file)} imports ${spec} (${from} -> ${to})`);
    }
  }
  assert.deepEqual([...unplaced], [], 'folders without a place in LAYERS (and docs/ARCHITECTURE.md)');
  assert.deepEqual(upward, []);
});

test('only the terminal UI (src/cli, src/commands) imports the terminal libraries', () => {
  const offenders = sources(SRC)
    .filter((file) => !TERMINAL.has(topOf(file)))
    .flatMap((file) => importsOf(file).filter((s) => TERMINAL_PACKAGES.some((p) => s === p || s.startsWith(p))).map((s) => `${relative(ROOT, file)} imports ${s}`));
  assert.deepEqual(offenders, []);
});

test('commands take shared secrets and options from src/cli/, not from each other', () => {
  const offenders: string[] = [];
  for (const file of sources(join(SRC, 'commands'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/import\s*\{([^}]*)\}\s*from\s*'\.\/[^']+'/g)) {
      for (const name of m[1]!.split(',').map((s) => s.trim())) if (/^[A-Z][A-Z_]+$/.test(name) || name === 'cardOptions') offenders.push(`${relative(ROOT, file)}: ${name}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('the import scanner sees static, multi-line, re-exported and dynamic imports, and the server sits above the card', () => {
  // The same rule over a made-up import: a card module reaching up into the server.
  const rank = new Map<string, number>(LAYERS.map((l, i) => [l, i]));
  assert.ok(rank.get('server')! > rank.get('card')!);
  const text = "import { x } from '../server/qtm-service.js';\nimport type {\n  A,\n  B,\n} from '../protocol/bytes.js';\nexport { y } from './sibling.js';\nconst z = await import('../cli/output.js');";
  assert.deepEqual(importSpecifiers(text), ['../server/qtm-service.js', '../protocol/bytes.js', './sibling.js', '../cli/output.js']);
});
