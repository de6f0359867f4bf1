import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { ROOT, tempDir } from '../helpers.js';

test('kill -9 during card writes never leaves a torn card file', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'card.json');
  FileStorage.create(path, 16);
  const writer = `
    import { FileStorage } from ${JSON.stringify(join(ROOT, 'dist/src/card/virtual/storage.js'))};
    const s = new FileStorage(${JSON.stringify(path)});
    for (let i = 0; ; i++) { const img = s.load(); img.slots[i % 16] = String(i).padStart(100, '0'); s.save(img); if (i === 0) process.stdout.write('go'); }
  `;
  for (let round = 0; round < 12; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((res) => child.stdout!.once('data', res));
    await new Promise((res) => setTimeout(res, 5 + Math.random() * 40));
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const image = new FileStorage(path).load(); // parses: whole old or whole new state
    assert.equal(image.slots.length, 16);
    for (const s of image.slots) assert.ok(s === null || /^0*\d+$/.test(s));
  }
  // Temp files of killed writers may remain beside the card, never in its place.
  assert.ok(readdirSync(dir).includes('card.json'));
});
