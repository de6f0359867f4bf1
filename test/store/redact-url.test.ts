import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { redactUrl } from '../../src/store/pg-store.js';
import { startPgCluster, type PgCluster } from '../pg-cluster.js';
import { qtm } from '../helpers.js';

test('a store URL is shown without its password, in the forms pg takes that WHATWG URL refuses too', () => {
  assert.equal(redactUrl('postgres://qtm:s3cret@db.example:5432/qtm'), 'postgres://qtm:***@db.example:5432/qtm');
  assert.equal(redactUrl('postgresql://qtm:s3cret@/qtm?host=%2Frun%2Fpostgresql'), 'postgresql://qtm:***@/qtm?host=%2Frun%2Fpostgresql');
  assert.equal(redactUrl('postgresql://postgres@/postgres?host=%2Ftmp%2Fx'), 'postgresql://postgres@/postgres?host=%2Ftmp%2Fx');
  assert.equal(redactUrl('postgres://db.example/qtm'), 'postgres://db.example/qtm');
  for (const url of ['postgres://qtm:p@ss@db/qtm', 'postgresql://u:pw%40x@/db?host=/s']) assert.doesNotMatch(redactUrl(url), /pw|p@ss|ss@/);
});

test('a password given as a query parameter (pg takes ?password=) is hidden too, and any parameter named so', () => {
  assert.equal(redactUrl('postgres://qtm@db.example/qtm?password=s3cret'), 'postgres://qtm@db.example/qtm?password=***');
  assert.equal(redactUrl('postgres://qtm@db.example/qtm?sslmode=require&sslpassword=s3cret&password=s3cret'), 'postgres://qtm@db.example/qtm?sslmode=require&sslpassword=***&password=***');
  // Forms WHATWG URL refuses: the parameter is hidden all the same.
  for (const url of ['postgresql://u@/db?host=/s&password=pw%40x', 'postgresql://u:a@b@/db?password=pw%40x&host=/s', 'postgresql://u@/db?PassWord=pw%40x']) {
    assert.doesNotMatch(redactUrl(url), /pw|40x/, url);
  }
});

let cluster: PgCluster | undefined;
before(async (t) => {
  cluster = await startPgCluster(t as never);
});
after(async () => {
  await cluster?.stop();
});

test('qtm server migrate does not print a password given as ?password=', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  // The throwaway cluster trusts local connections: the password is sent but not needed.
  const url = `${await cluster.database()}&password=hunter2`;
  for (const args of [['server', 'migrate', '--store', url], ['server', 'migrate', '--store', url], ['server', 'migrate', '--store', url, '--json']]) {
    const r = qtm(args);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /hunter2/);
  }
});
