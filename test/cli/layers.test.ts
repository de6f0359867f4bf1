import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from '../helpers.js';

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('the library never imports the terminal UI: only src/cli/ and src/commands/ import src/cli/, inquirer or chalk', () => {
  const offenders: string[] = [];
  for (const file of tsFiles(join(ROOT, 'src'))) {
    const rel = relative(join(ROOT, 'src'), file);
    if (rel.startsWith('cli/') || rel.startsWith('commands/')) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (/(^|\/)cli\//.test(spec) || /^(inquirer|@inquirer\/|chalk)/.test(spec)) offenders.push(`${rel} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('commands take shared secrets and options from src/cli/, not from each other', () => {
  const offenders: string[] = [];
  for (const file of tsFiles(join(ROOT, 'src', 'commands'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/import\s*\{([^}]*)\}\s*from\s*'\.\/[^']+'/g)) {
      for (const name of m[1]!.split(',').map((s) => s.trim())) if (/^[A-Z][A-Z_]+$/.test(name) || name === 'cardOptions') offenders.push(`${relative(ROOT, file)}: ${name}`);
    }
  }
  assert.deepEqual(offenders, []);
});
