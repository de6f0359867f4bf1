/**
 * The transparency log in a PostgreSQL store (store/pg-tlog.ts): several instances (PgLog
 * objects, as several server processes hold) append to one log with dense indices, serve the same
 * tiles, continue the same tree after a restart, forget a batch whose commit failed, and refuse a
 * log changed behind their back. A real PostgreSQL (test/pg-cluster.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import pg from 'pg';
import { PgLog } from '../../src/store/pg-tlog.js';
import { PgStore } from '../../src/store/pg-store.js';
import { headSigner } from '../../src/store/head.js';
import type { ConfirmedEntry, PreparedEntry } from '../../src/store/types.js';
import { encodeCheckpointBody, openCheckpoint } from '../../src/tlog/checkpoint.js';
import { cardTag } from '../../src/tlog/card-tag.js';
import { leafHash } from '../../src/tlog/hash.js';
import { commitment, encodeEntry } from '../../src/tlog/leaf.js';
import { MemoryTree, treeRoot, verifyConsistency, verifyInclusion, consistencyProof } from '../../src/tlog/merkle.js';
import { decodeSkey, decodeVkey, ed25519NoteSigner, ed25519NoteVerifier, encodeSkey, encodeVkey } from '../../src/tlog/note.js';
import { withTiles } from '../../src/tlog/tile-source.js';
import { tilePath, tilesForSize } from '../../src/tlog/tiles.js';
import { startPgCluster, type PgCluster } from '../pg-cluster.js';

const skey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 9) }));
const signer = ed25519NoteSigner(skey);
const verifier = ed25519NoteVerifier(decodeVkey(encodeVkey(skey)));
const otherKey = ed25519NoteSigner(decodeSkey(encodeSkey({ name: 'shop.example/log', type: 1, seed: Buffer.alloc(32, 10) })));
const CARD = 'c'.repeat(64);
const leaf = (i: number, pkg = `package ${i}`) => ({ transactionId: i + 1, package: Buffer.from(pkg), cardKey: CARD });

let cluster: PgCluster | undefined;
before(async (t) => {
  cluster = await startPgCluster(t as never);
});
after(async () => {
  await cluster?.stop();
});

async function freshLogDb(): Promise<string> {
  const url = await cluster!.database();
  await PgStore.migrate(url);
  return url;
}

/** Checks a proof as `qtm verify --log-key` does: the checkpoint's signature, then inclusion. */
function checkProof(p: Awaited<ReturnType<PgLog['append']>>, l: ReturnType<typeof leaf>, log: PgLog): void {
  const cp = openCheckpoint(p.checkpoint, verifier).checkpoint;
  const entry = encodeEntry({ ...l, tag: cardTag(log.monitorKeyFor(CARD), commitment(l)) });
  assert.deepEqual(p.tag, entry.subarray(33));
  verifyInclusion(p.index, cp.size, leafHash(entry), p.proof, cp.root);
}

test('two instances append to one log: dense indices in commit order, every proof verifies, both serve the same tree', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const [a, b] = [await PgLog.open(url, signer), await PgLog.open(url, signer)];
  try {
    // Interleaved and concurrent: each instance's batches take the sequencer lock in turn.
    const proofs = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? b : a).append(leaf(i)).then((p) => ({ p, i }))));
    assert.deepEqual(proofs.map((x) => x.p.index).sort((x, y) => x - y), Array.from({ length: 300 }, (_, i) => i));
    for (const { p, i } of proofs) checkProof(p, leaf(i), a);
    // A transaction keeps its index, through either instance.
    const again = await Promise.all([a.append(leaf(17)), b.append(leaf(17))]);
    assert.equal(again[0].index, proofs.find((x) => x.i === 17)!.p.index);
    assert.equal(again[1].index, again[0].index);
    // Both serve the database's checkpoint and tiles that rebuild its root.
    const cpText = (await a.source.checkpoint()).toString();
    assert.equal((await b.source.checkpoint()).toString(), cpText);
    const cp = openCheckpoint(cpText, verifier).checkpoint;
    assert.equal(cp.size, 300);
    for (const src of [a.source, b.source]) assert.deepEqual(await withTiles(src, 300, (r) => Buffer.from(treeRoot(r))), cp.root);
    for (const tile of tilesForSize(300)) assert.deepEqual(await b.source.tile(tile), await a.source.tile(tile), tilePath(tile));
    // A tile beyond the tree is not served.
    assert.equal(await a.source.tile({ level: 0, index: 1, width: 45 }), undefined);
    // The card tags come from one secret in the database: the same monitoring key in both.
    assert.deepEqual(a.monitorKeyFor(CARD), b.monitorKeyFor(CARD));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  // A restarted instance continues the same tree: consistent with what was published.
  const c = await PgLog.open(url, signer);
  try {
    const before = openCheckpoint((await c.source.checkpoint()).toString(), verifier).checkpoint;
    const p = await c.append(leaf(300));
    assert.equal(p.index, 300);
    checkProof(p, leaf(300), c);
    const now = openCheckpoint(p.checkpoint, verifier).checkpoint;
    const tree = await withTiles(c.source, now.size, (r) => consistencyProof(r, before.size, now.size));
    verifyConsistency(before.size, now.size, tree, before.root, now.root);
  } finally {
    await c.close();
  }
});

test('a batch whose commit fails is forgotten by the tree: the next append gets the next index and a proof that verifies', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const log = await PgLog.open(url, signer);
  try {
    for (let i = 0; i < 5; i++) await log.append(leaf(i));
    // The same transaction ID with another package: the database's UNIQUE (transaction_id) refuses
    // the INSERT (the store never signs a transaction twice; here the test forces it).
    await assert.rejects(log.append(leaf(2, 'another package for transaction 3')), /duplicate key value violates unique constraint/);
    assert.equal(log.size, 5);
    const p = await log.append(leaf(5));
    assert.equal(p.index, 5);
    checkProof(p, leaf(5), log);
    assert.equal(cluster.psql(url, 'SELECT count(*), max(idx) FROM tlog_entries').stdout.trim(), '6|5');
  } finally {
    await log.close();
  }
});

test('another key or another origin is refused; entries edited behind qtm\'s back stop the log', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const log = await PgLog.open(url, signer);
  for (let i = 0; i < 3; i++) await log.append(leaf(i));
  await log.close();
  await assert.rejects(PgLog.open(url, otherKey), /signed by another key than the one given/);
  await assert.rejects(PgLog.open(url, signer, 'other.example/log'), /keeps the log of shop.example\/log, not other.example\/log/);
  // The table refuses changes; its owner can drop the guard, and the signed root shows the edit.
  const refused = cluster.psql(url, `UPDATE tlog_entries SET entry = entry WHERE idx = 1`);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /append-only/);
  assert.equal(cluster.psql(url, `ALTER TABLE tlog_entries DISABLE TRIGGER tlog_entries_append_only;
    UPDATE tlog_entries SET entry = set_byte(entry, 40, get_byte(entry, 40) # 1) WHERE idx = 1`).status, 0);
  await assert.rejects(PgLog.open(url, signer), /tlog_entries does not rebuild the signed root/);
  // A removed entry (a shrink) is refused too.
  assert.equal(cluster.psql(url, `DELETE FROM tlog_entries WHERE idx = 2`).status, 0);
  await assert.rejects(PgLog.open(url, signer), /tlog_entries lacks entries between 0 and 2 \(it has 2\)/);
});

test('catchUp appends the signed transactions of the store that have no leaf, once, whichever instance runs it', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const store = await PgStore.open(url, { heads: headSigner(publicKey, privateKey) });
  const [a, b] = [await PgLog.open(url, signer), await PgLog.open(url, signer)];
  try {
    for (let id = 1; id <= 4; id++) {
      const p: PreparedEntry = { type: 'prepared', transactionId: id, orderId: `order-${id}`, time: 1, content: 'YQ==', header: 'AA==', clientCertificate: '', cardSerial: '00000000000000AA', cardKey: CARD };
      await store.append(p);
      if (id === 4) continue; // prepared, never signed: no leaf
      const c: ConfirmedEntry = { type: 'confirmed', transactionId: id, firstMessage: { signatureB: 'AA==', challenge: 'AA==', slot: 1, priority: 0 }, package: Buffer.from(`package ${id}`).toString('base64'), cardRecord: 'AA==', envelope: 'AA==' };
      await store.appendSigned(c);
    }
    // Transaction 2 was logged by its confirm; 1 and 3 were cut short by a crash.
    await a.append({ transactionId: 2, package: Buffer.from('package 2'), cardKey: CARD });
    const added = await Promise.all([a.catchUp(), b.catchUp()]);
    assert.equal(added[0] + added[1] >= 2, true);
    assert.equal(cluster.psql(url, 'SELECT string_agg(transaction_id::text, \',\' ORDER BY transaction_id) FROM tlog_entries').stdout.trim(), '1,2,3');
    assert.equal(await a.catchUp(), 0);
  } finally {
    await Promise.all([a.close(), b.close(), store.close()]);
  }
});

test('cosignatures are kept per checkpoint size and served with the latest checkpoint by every instance', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const [a, b] = [await PgLog.open(url, signer), await PgLog.open(url, signer)];
  try {
    await a.append(leaf(0));
    const cp1 = a.signedCheckpoint;
    assert.equal(await b.addCosignatures(cp1, '\u2014 witness.example/w1 AAAA'), true);
    assert.match((await a.source.checkpoint()).toString(), /— witness.example\/w1 AAAA\n$/);
    await b.append(leaf(1));
    // A cosignature for the older size is archived, not served with the newer checkpoint.
    assert.equal(await a.addCosignatures(cp1, '\u2014 witness.example/w2 BBBB'), false);
    const archived = (await b.source.cosigned!(1))!.toString();
    assert.match(archived, /w1 AAAA\n.*w2 BBBB\n$/s);
    assert.equal((await a.source.cosigned!('latest'))!.toString(), archived);
    assert.doesNotMatch((await a.source.checkpoint()).toString(), /witness/);
    // A checkpoint this log never signed is refused.
    const forged = cp1.replace(/\n1\n/, '\n2\n');
    await assert.rejects(a.addCosignatures(forged, '\u2014 witness.example/w1 CCCC'), /did not sign/);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('an append of a leaf whose batch is still committing waits for that commit: a failed COMMIT hands out no proof of a checkpoint the log never published', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const log = await PgLog.open(url, signer);
  const watch = new pg.Client({ connectionString: url });
  await watch.connect();
  try {
    // The first COMMIT that changes tlog_meta waits for the test's advisory lock, then fails (a
    // deferred trigger: the COMMIT itself fails, as on a lost connection or a full disk).
    assert.equal(cluster.psql(url, `CREATE SEQUENCE fail_once;
      CREATE FUNCTION fail_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF nextval('fail_once') = 1 THEN PERFORM pg_advisory_xact_lock(4242); RAISE EXCEPTION 'commit refused by the test'; END IF; RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER fail_commit AFTER UPDATE ON tlog_meta DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_first_commit();`).status, 0);
    await watch.query('SELECT pg_advisory_lock(4242)');
    const first = log.append(leaf(0)).then((p) => ({ p }), (err: Error) => ({ err }));
    // Until the batch's COMMIT is under way (waiting for the lock inside the deferred trigger).
    for (;;) {
      const r = await watch.query(`SELECT 1 FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event_type = 'Lock'`);
      if (r.rowCount) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    // The same transaction again (a client's retry, or catch-up) while the commit is in flight.
    const retry = log.append(leaf(0));
    // Nor is its entry served as a tile before it is committed (it may never be).
    let early: Buffer | undefined | 'waiting' = 'waiting';
    const tile = log.source.tile({ level: 'entries', index: 0, width: 1 }).then((b) => { early = b; });
    await new Promise((r) => setImmediate(r));
    assert.equal(early, 'waiting');
    await watch.query('SELECT pg_advisory_unlock(4242)');
    const outcome = await first;
    assert.match(String((outcome as { err?: Error }).err?.message), /commit refused by the test/);
    const p = await retry;
    await tile;
    // Served once committed (by the retry's batch), or not at all.
    if (early !== undefined) assert.deepEqual(early, await log.source.tile({ level: 'entries', index: 0, width: 1 }));
    // The retry's proof is of a checkpoint the database holds, and its leaf is there.
    const meta = cluster.psql(url, `SELECT signed FROM tlog_meta`).stdout.trim();
    assert.equal(p.checkpoint.trim(), meta);
    checkProof(p, leaf(0), log);
    assert.equal(cluster.psql(url, 'SELECT string_agg(idx::text || \':\' || transaction_id::text, \',\') FROM tlog_entries').stdout.trim(), `${p.index}:1`);
  } finally {
    await watch.end();
    await log.close();
  }
});

test('a checkpoint in tlog_meta that the log key did not sign is refused: an administrator cannot rewrite an entry and the root beside it', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const log = await PgLog.open(url, signer);
  for (let i = 0; i < 3; i++) await log.append(leaf(i));
  const monitor = log.monitorKeyFor(CARD);
  const genuine = log.signedCheckpoint;
  await log.close();
  // The owner drops the guard, swaps transaction 2's leaf for another package, and writes a
  // checkpoint of the new root beside it, keeping the log's signature line (name and key ID right).
  const entries = [0, 1, 2].map((i) => {
    const l = i === 1 ? leaf(1, 'a package the customer never signed') : leaf(i);
    return encodeEntry({ ...l, tag: cardTag(monitor, commitment(l)) });
  });
  const tree = new MemoryTree();
  for (const e of entries) tree.append(leafHash(e));
  const body = encodeCheckpointBody({ origin: 'shop.example/log', size: 3, root: Buffer.from(treeRoot(tree, 3)), extensions: [] });
  const forged = `${body}\n${genuine.slice(genuine.indexOf('\n\n') + 2)}`;
  assert.equal(cluster.psql(url, `ALTER TABLE tlog_entries DISABLE TRIGGER tlog_entries_append_only;
    UPDATE tlog_entries SET entry = '\\x${entries[1]!.toString('hex')}', commitment = '\\x${entries[1]!.subarray(1, 33).toString('hex')}' WHERE idx = 1;
    UPDATE tlog_meta SET signed = '${forged}', served = '${forged}'`).status, 0);
  // Every instance (re)started on it refuses, before signing anything over the rewritten tree.
  await assert.rejects(PgLog.open(url, signer), /not signed by this log key|signed by another key/);
  assert.equal(cluster.psql(url, 'SELECT signed FROM tlog_meta').stdout.trim(), forged.trim());
});

test('two instances with different keys of one name starting on an empty log at once: the second is refused, not signing beside the first', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const opened = await Promise.allSettled([PgLog.open(url, signer), PgLog.open(url, otherKey)]);
  try {
    assert.equal(opened.filter((o) => o.status === 'fulfilled').length, 1, 'only one key may keep the log');
    assert.match(String((opened.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason), /not signed by this log key|signed by another key/);
  } finally {
    for (const o of opened) if (o.status === 'fulfilled') await o.value.close();
  }
});

test('an instance starting on a published log reads it without the sequencer lock: the other instances\' appends do not wait for its rebuild', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const a = await PgLog.open(url, signer);
  await Promise.all(Array.from({ length: 50 }, (_, i) => a.append(leaf(i))));
  await a.close();
  // Another instance's append batch holds the tlog_meta row lock (as it does for every batch; the
  // rebuild of a large log takes seconds, all of which the shop's confirms would wait).
  const holder = new pg.Client({ connectionString: url });
  await holder.connect();
  const watch = new pg.Client({ connectionString: url });
  await watch.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM tlog_meta FOR UPDATE');
    let done = false;
    const opening = PgLog.open(url, signer).finally(() => { done = true; });
    const waitsForLock = (async () => {
      while (!done) {
        const r = await watch.query(`SELECT 1 FROM pg_stat_activity WHERE query LIKE '%FROM tlog_meta FOR UPDATE' AND wait_event_type = 'Lock'`);
        if (r.rowCount) return true;
        await new Promise((r) => setTimeout(r, 5));
      }
      return false;
    })();
    const blocked = await Promise.race([opening.then(() => false), waitsForLock]);
    await holder.query('COMMIT');
    const b = await opening;
    try {
      assert.equal(blocked, false, 'the opening instance waited for the sequencer lock');
      assert.equal(b.size, 50);
      checkProof(await b.append(leaf(50)), leaf(50), b);
    } finally {
      await b.close();
    }
  } finally {
    await holder.end();
    await watch.end();
  }
});

test('a tile request that arrives while another reader\'s look at the database is under way gets the tile its checkpoint counts, not a 404', async (t) => {
  if (!cluster) return t.skip('PostgreSQL not installed');
  const url = await freshLogDb();
  const [a, b] = [await PgLog.open(url, signer), await PgLog.open(url, signer)];
  try {
    await b.append(leaf(0));
    // Instance a's next read of entries is held until the test lets it go (the database's latency,
    // widened): its look at tlog_meta is then done, and counts one entry.
    const pool = (a as unknown as { pool: pg.Pool }).pool;
    const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
    let reached!: () => void;
    const atGate = new Promise<void>((r) => { reached = r; });
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let armed = true;
    (pool as unknown as { query: unknown }).query = async (...args: unknown[]) => {
      if (armed && String(args[0]).includes('string_agg')) {
        armed = false;
        reached();
        await gate;
      }
      return query(...args);
    };
    const first = a.source.tile({ level: 'entries', index: 0, width: 1 });
    await atGate;
    // Meanwhile another instance commits a second entry, and a reader gets that checkpoint from a.
    await b.append(leaf(1));
    const cp = openCheckpoint((await a.source.checkpoint()).toString(), verifier).checkpoint;
    assert.equal(cp.size, 2);
    const second = a.source.tile({ level: 'entries', index: 0, width: 2 });
    release();
    assert.ok(await first);
    assert.ok(await second, 'the tile of the checkpoint a served was missing');
    assert.deepEqual(await withTiles(a.source, 2, (r) => Buffer.from(treeRoot(r))), cp.root);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
