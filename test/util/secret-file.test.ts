import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecretFile, readSecretFile } from '../../src/util/secret-file.js';
import { tempDir } from '../helpers.js';

test('a secret file is made once (0600, 32 bytes), kept by a second maker, and refused when damaged or missing', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'order-key');
  assert.equal(readSecretFile(path), undefined, 'missing');
  createSecretFile(path);
  const first = readSecretFile(path)!;
  assert.equal(first.length, 32);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  createSecretFile(path);
  assert.deepEqual(readSecretFile(path), first, 'a second maker keeps the first secret');
  for (const damaged of ['', 'zz'.repeat(32), 'ab'.repeat(31), 'ab'.repeat(33), `${'ab'.repeat(32)} trailing`]) {
    writeFileSync(path, damaged);
    assert.equal(readSecretFile(path), undefined, JSON.stringify(damaged));
  }
});
