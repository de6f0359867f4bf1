import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactUrl } from '../../src/store/pg-store.js';

test('a store URL is shown without its password, in the forms pg takes that WHATWG URL refuses too', () => {
  assert.equal(redactUrl('postgres://qtm:s3cret@db.example:5432/qtm'), 'postgres://qtm:***@db.example:5432/qtm');
  assert.equal(redactUrl('postgresql://qtm:s3cret@/qtm?host=%2Frun%2Fpostgresql'), 'postgresql://qtm:***@/qtm?host=%2Frun%2Fpostgresql');
  assert.equal(redactUrl('postgresql://postgres@/postgres?host=%2Ftmp%2Fx'), 'postgresql://postgres@/postgres?host=%2Ftmp%2Fx');
  assert.equal(redactUrl('postgres://db.example/qtm'), 'postgres://db.example/qtm');
  for (const url of ['postgres://qtm:p@ss@db/qtm', 'postgresql://u:pw%40x@/db?host=/s']) assert.doesNotMatch(redactUrl(url), /pw|p@ss|ss@/);
});
