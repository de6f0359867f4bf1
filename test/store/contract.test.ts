/**
 * One contract, every store: the same tests run against the embedded log store and the
 * PostgreSQL store (issue 10), so the server may rely on the TransactionStore interface alone.
 * "Two instances" are two PgStore objects on one database (two connections' worth of state, as
 * two server processes have); for the log store, which has one writer, the same object twice.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { LogStore } from '../../src/store/log-store.js';
import { PgStore } from '../../src/store/pg-store.js';
import { PgCardKeyRegister } from '../../src/server/card-keys.js';
import { headSigner, headStatement, type HeadSigner } from '../../src/store/head.js';
import type { ConfirmedEntry, PreparedEntry, TransactionStore } from '../../src/store/types.js';
import { collect, ROOT, tempDir } from '../helpers.js';
import { startPgCluster, type PgCluster } from '../pg-cluster.js';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const heads: HeadSigner = headSigner(publicKey, privateKey);
const KEY_A = 'a'.repeat(64);
const KEY_B = 'b'.repeat(64);

const prepared = (transactionId: number, o: Partial<PreparedEntry> = {}): PreparedEntry => ({
  type: 'prepared', transactionId, orderId: `order-${transactionId}`, time: Math.floor(Date.now() / 1000), content: 'YQ==', header: 'AA==',
  clientCertificate: '', cardSerial: '00000000000000AA', cardKey: KEY_A, ...o,
});
const confirmed = (transactionId: number, signatureB = 'AA=='): ConfirmedEntry => ({
  type: 'confirmed', transactionId, firstMessage: { signatureB, challenge: 'AA==', slot: 1, priority: 0 },
  package: Buffer.from(`package ${transactionId} ${signatureB}`).toString('base64'), cardRecord: 'AA==', envelope: 'AA==',
});

/** A store under test: open it (twice, as two instances), and reopen it after closing. */
interface Subject {
  open(): Promise<TransactionStore>;
  /** A second instance on the same store (log store: the same object). */
  second(first: TransactionStore): Promise<TransactionStore>;
  /** Closes both and opens the store again. */
  reopen(stores: TransactionStore[]): Promise<TransactionStore>;
}

type T = { skip(msg: string): void; after(fn: () => void | Promise<void>): void };

let cluster: PgCluster | undefined | null = null;
after(async () => {
  await cluster?.stop();
});

const SUBJECTS: Record<string, (t: T) => Promise<Subject | undefined>> = {
  log: async (t) => {
    const dir = tempDir(t);
    const open = async () => LogStore.open(dir, { heads });
    return {
      open,
      second: async (first) => first,
      reopen: async (stores) => {
        await Promise.all([...new Set(stores)].map((s) => s.close()));
        return open();
      },
    };
  },
  postgres: async (t) => {
    if (cluster === null) cluster = await startPgCluster(t);
    if (!cluster) {
      t.skip('PostgreSQL not installed');
      return undefined;
    }
    const url = await cluster.database();
    await PgStore.migrate(url);
    const opened: PgStore[] = [];
    const open = async () => {
      const s = await PgStore.open(url, { heads });
      opened.push(s);
      return s;
    };
    t.after(async () => {
      await Promise.all(opened.map((s) => s.close()));
    });
    return {
      open,
      second: async () => open(),
      reopen: async (stores) => {
        await Promise.all(stores.map((s) => s.close()));
        return open();
      },
    };
  },
};

for (const [name, make] of Object.entries(SUBJECTS)) {
  describe(`store contract: ${name}`, () => {
    test('append, get and fold round trip; all() in ID order; countByState; durable across close and reopen', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const s = await subject.open();
      for (const id of [3, 1, 2]) await s.append(prepared(id));
      await s.appendSigned(confirmed(1));
      await s.appendSigned(confirmed(2));
      await s.append({ type: 'delivered', transactionId: 2, proof: 'AAAA', at: 'now' });
      await s.append({ type: 'redelivery', transactionId: 1, challenge: 'BB==', slot: 2, envelope: 'CC==' });
      const one = (await s.get(1))!;
      assert.equal(one.state, 'confirmed');
      assert.deepEqual(one.offer, { challenge: 'BB==', slot: 2, envelope: 'CC==' });
      assert.deepEqual(one.prepared, prepared(1, { time: one.prepared.time }));
      assert.equal((await s.get(2))!.delivered!.proof, 'AAAA');
      assert.equal(await s.get(4), undefined);
      assert.deepEqual((await collect(s.all())).map((r) => r.transactionId), [1, 2, 3]);
      assert.deepEqual(await s.countByState(), { prepared: 1, confirmed: 1, delivered: 1 });
      assert.equal(await s.lastTransactionId(), 3);
      const r = await subject.reopen([s]);
      assert.deepEqual((await collect(r.all())).map((x) => [x.transactionId, x.state]), [[1, 'confirmed'], [2, 'delivered'], [3, 'prepared']]);
      assert.deepEqual((await r.get(1))!.offer, one.offer);
      assert.equal(await r.lastTransactionId(), 3);
    });

    test('an entry for a transaction never prepared, or a second prepared entry, is refused', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const s = await subject.open();
      await s.append(prepared(1));
      if (name === 'postgres') {
        // The log store takes any entry in its one writer's log (its audit reports an orphan); the database refuses it.
        await assert.rejects(s.append({ type: 'delivered', transactionId: 9, proof: 'AA==', at: 'now' }), /never prepared/);
      }
      await assert.rejects(s.append(prepared(1)), /prepared already/);
      assert.equal((await s.get(1))!.state, 'prepared');
    });

    test('pendingFor is by card key, not serial; openFairExchanges lists the open ones with deadlines', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const s = await subject.open();
      await s.append(prepared(1, { cardKey: KEY_A }));
      await s.append(prepared(2, { cardKey: KEY_B })); // same serial, another key: a second card
      await s.append(prepared(3, { cardKey: KEY_A }));
      for (const id of [1, 2, 3]) await s.appendSigned(confirmed(id));
      await s.append({ type: 'delivered', transactionId: 3, proof: 'AA==', at: 'now' });
      assert.deepEqual(await s.pendingFor(KEY_A), [1]);
      assert.deepEqual(await s.pendingFor(KEY_B), [2]);
      assert.deepEqual(await s.pendingFor('00000000000000AA'), []);
      const fair = (deadline: number) => ({ deadline, x: 'AA==', escrowX: 'AA==' });
      await s.append(prepared(4, { fair: fair(1000) }));
      await s.append(prepared(5, { fair: fair(2000) }));
      await s.append(prepared(6, { fair: fair(3000) }));
      await s.append({ type: 'escrowed', transactionId: 4, escrowY: 'AA==' });
      assert.deepEqual([...(await s.openFairExchanges())], [[4, 1000], [5, 2000], [6, 3000]]);
      await s.append({ type: 'fair-aborted', transactionId: 5, reason: 'test' });
      await s.appendSigned({ type: 'resolved', transactionId: 6, signatureB: 'AA==', package: 'AA==', cardRecord: 'AA==' });
      const second = await subject.second(s);
      assert.deepEqual([...(await second.openFairExchanges())], [[4, 1000]]);
      assert.deepEqual(await second.pendingFor(KEY_A), [1, 6]);
    });

    test('appendPrepared: IDs from the store, consecutive from --first-id; one transaction per order, also racing through two instances', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const a = await subject.open();
      const b = await subject.second(a);
      const orders = Array.from({ length: 12 }, (_, i) => `order-${i}`);
      const calls = orders.flatMap((orderId, i) => [a, b].map((s) => s.appendPrepared((id) => prepared(id, { orderId, cardSerial: `00000000000000${String(10 + i)}` }), { orderId, firstId: 500 })));
      const results = await Promise.all(calls);
      for (let i = 0; i < orders.length; i++) {
        const [x, y] = [results[2 * i]!, results[2 * i + 1]!];
        assert.equal(x.transactionId, y.transactionId, `order ${i} got two transactions`);
        assert.equal(Number(x.created) + Number(y.created), 1, `order ${i}: exactly one call creates it`);
      }
      const ids = results.filter((r) => r.created).map((r) => r.transactionId).sort((p, q) => p - q);
      assert.deepEqual(ids, Array.from({ length: 12 }, (_, i) => 500 + i));
      assert.equal(await a.lastTransactionId(), 511);
      // A retried order later, through either instance, still gets its transaction.
      assert.deepEqual(await b.appendPrepared(() => assert.fail('build must not run for a known order'), { orderId: 'order-3' }), { transactionId: results[6]!.transactionId, created: false });
      const next = await a.appendPrepared((id) => prepared(id, { orderId: 'fresh' }), { orderId: 'fresh', firstId: 500 });
      assert.deepEqual(next, { transactionId: 512, created: true });
    });

    test('appendSigned: exactly one of many concurrent signings wins, through two instances; the others get the entry that stands', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const a = await subject.open();
      const b = await subject.second(a);
      await a.append(prepared(1));
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).appendSigned(confirmed(1, Buffer.from(`sig${i}`).toString('base64')))));
      const winners = results.filter((r) => r.stored);
      assert.equal(winners.length, 1);
      const stood = (await a.get(1))!.confirmed!;
      for (const r of results) if (!r.stored) assert.deepEqual(r.existing, stood);
      assert.deepEqual((await b.get(1))!.confirmed, stood);
      // A resolve at the TTP after the confirm does not sign a second time.
      const late = await b.appendSigned({ type: 'resolved', transactionId: 1, signatureB: 'AA==', package: 'AA==', cardRecord: 'AA==' });
      assert.equal(late.stored, false);
    });

    test('exclusive: one task at a time per transaction, across two instances; other transactions run meanwhile', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const a = await subject.open();
      const b = await subject.second(a);
      let inside = 0;
      let most = 0;
      const order: number[] = [];
      const task = (n: number) => async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 5));
        order.push(n);
        inside--;
        return n;
      };
      const done = await Promise.all(Array.from({ length: 8 }, (_, n) => (n % 2 ? a : b).exclusive(7, task(n))));
      assert.deepEqual(done, [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.equal(most, 1, 'two tasks for one transaction ran at once');
      // Transaction 8's task waits for transaction 9's: it can only finish if 9 runs while 8 holds its turn.
      let release!: () => void;
      const nine = new Promise<void>((r) => (release = r));
      const eight = a.exclusive(8, async () => {
        await nine;
        return 'eight';
      });
      const other = b.exclusive(9, async () => {
        release();
        return 'nine';
      });
      assert.deepEqual(await Promise.all([eight, other]), ['eight', 'nine']);
      // A task that throws releases its turn.
      await assert.rejects(a.exclusive(7, async () => {
        throw new Error('boom');
      }), /boom/);
      assert.equal(await b.exclusive(7, async () => 'after'), 'after');
    });

    test('an append resolves only after it is visible to another connection; the head covers it and verifies', async (t) => {
      const subject = await make(t);
      if (!subject) return;
      const a = await subject.open();
      const b = await subject.second(a);
      for (let id = 1; id <= 5; id++) {
        await a.append(prepared(id));
        assert.ok(await b.get(id), `transaction ${id} acknowledged but not visible to another instance`);
        assert.deepEqual(await b.pendingFor(KEY_A), []);
        // A commit without a receipt may wait for its head (the log store signs those within
        // HEAD_INTERVAL_MS: docs/THREATS.md, "The unsigned window"; the PostgreSQL store likewise); any head verifies.
        const head = await b.head();
        if (head) assert.ok(heads.verify(headStatement(head), head.sig));
      }
      await a.appendSigned(confirmed(3));
      assert.deepEqual(await b.pendingFor(KEY_A), [3]);
      assert.equal((await b.head())!.seq, 6);
    });
  });
}

describe('store contract: postgres only', () => {
  const twoStores = async (t: T) => {
    if (cluster === null) cluster = await startPgCluster(t);
    if (!cluster) return undefined;
    const url = await cluster.database();
    await PgStore.migrate(url);
    const a = await PgStore.open(url, { heads });
    const b = await PgStore.open(url, { heads });
    t.after(async () => {
      await a.close();
      await b.close();
    });
    return { url, a, b };
  };

  test('the card-key register: of two instances binding one serial with two keys at once, exactly one key stands', async (t) => {
    const s = await twoStores(t);
    if (!s) return;
    const ra = new PgCardKeyRegister(s.a);
    const rb = new PgCardKeyRegister(s.b);
    for (let round = 0; round < 5; round++) {
      const serial = `00000000000000${String(10 + round)}`;
      const results = await Promise.allSettled([ra.bind(serial, KEY_A), rb.bind(serial, KEY_B)]);
      assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.match(String(lost.reason), /registered on this server with another card key/);
      const winner = results[0]!.status === 'fulfilled' ? KEY_A : KEY_B;
      // The standing key logs in again through either instance; the other never does.
      await ra.bind(serial, winner);
      await rb.bind(serial, winner);
      await assert.rejects(new PgCardKeyRegister(s.a).bind(serial, winner === KEY_A ? KEY_B : KEY_A), /another card key/);
    }
  });

  test('claim (the fair-exchange sweeper): one instance settles an exchange, the other is told busy', async (t) => {
    const s = await twoStores(t);
    if (!s) return;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const first = s.a.claim(5, async () => {
      entered();
      await held;
      return 'settled';
    });
    await inside;
    assert.equal(await s.b.claim(5, async () => assert.fail('a second settlement ran')), 'busy');
    assert.equal(await s.b.claim(6, async () => 'other exchange'), 'other exchange');
    release();
    assert.equal(await first, 'settled');
    assert.equal(await s.b.claim(5, async () => 'later'), 'later', 'the claim ends with its task');
  });

  test('kill -9 of a writing process: every append it acknowledged is in the store, once', async (t) => {
    if (cluster === null) cluster = await startPgCluster(t);
    if (!cluster) return;
    const url = await cluster.database();
    await PgStore.migrate(url);
    const writer = `
      const { PgStore } = await import(${JSON.stringify(join(ROOT, 'dist/src/store/pg-store.js'))});
      const { headSigner } = await import(${JSON.stringify(join(ROOT, 'dist/src/store/head.js'))});
      const { createPrivateKey, createPublicKey } = await import('node:crypto');
      const key = createPrivateKey(${JSON.stringify(privateKey.export({ type: 'pkcs8', format: 'pem' }))});
      const s = await PgStore.open(${JSON.stringify(url)}, { heads: headSigner(createPublicKey(key), key) });
      let n = 0;
      const one = async () => {
        const orderId = process.pid + '-' + (++n);
        const r = await s.appendPrepared((id) => ({ type: 'prepared', transactionId: id, orderId, time: 1, content: 'YQ==', header: 'AA==', clientCertificate: '', cardSerial: '00', cardKey: 'k' }), { orderId });
        process.stdout.write(r.transactionId + '\\n');
      };
      for (;;) await Promise.all([one(), one(), one(), one()]);
    `;
    const acknowledged: number[] = [];
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
      child.stdout!.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach((x) => acknowledged.push(Number(x))));
      await new Promise((r) => child.stdout!.once('data', r));
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    assert.ok(acknowledged.length > 20, `only ${acknowledged.length} appends happened`);
    assert.equal(new Set(acknowledged).size, acknowledged.length, 'an ID was acknowledged twice');
    // The last one killed left prepared entries without their head (they wait HEAD_INTERVAL_MS):
    // the next instance to start signs them.
    await (await PgStore.open(url, { heads })).close();
    const s = await PgStore.open(url, { readOnly: true, heads: headSigner(publicKey) });
    t.after(() => s.close());
    for (const id of acknowledged) assert.ok(await s.get(id), `acknowledged transaction ${id} is lost`);
    const counts = cluster.psql(url, 'SELECT count(*), count(DISTINCT transaction_id), max(transaction_id) FROM entries').stdout.trim().split('|').map(Number);
    assert.equal(counts[0], counts[1], 'a transaction has two prepared entries');
    assert.equal(counts[2], counts[0], 'the IDs have a gap: the counter handed one out without its entry');
    const f = await s.findings();
    assert.deepEqual(f.problems, []);
    assert.deepEqual(f.notes, [], 'nothing is left unsigned');
  });

  test('heads as the log store signs them: with each receipt\'s commit, within the interval of the instance that wrote other entries, at open and at close; an audit notes a young unsigned tail and reports an old one', async (t) => {
    if (cluster === null) cluster = await startPgCluster(t);
    if (!cluster) return;
    const url = await cluster.database();
    await PgStore.migrate(url);
    const a = await PgStore.open(url, { heads, headIntervalMs: 200 });
    const b = await PgStore.open(url, { heads, headIntervalMs: 600_000 });
    const audit = await PgStore.open(url, { readOnly: true, heads: headSigner(publicKey) });
    t.after(async () => {
      await a.close();
      await b.close();
      await audit.close();
    });
    const chainHead = () => cluster!.psql(url, 'SELECT coalesce(head_seq, 0) FROM qtm_chain').stdout.trim();
    const until = async (seq: string) => {
      // Waits on the store's own timer, not on a speed.
      for (let i = 0; i < 200 && chainHead() !== seq; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(chainHead(), seq);
    };

    await b.append(prepared(1));
    assert.equal(chainHead(), '0', 'a prepare alone waits for its head');
    let f = await audit.findings();
    assert.deepEqual(f.problems, []);
    assert.match(f.notes.join('\n'), /^1 entries after the last signed head \(from entry 1\), none a receipt, the oldest \d+ ms old: a running instance signs them within 1000 ms$/);

    await a.appendSigned(confirmed(1));
    assert.equal(chainHead(), '2', 'the receipt\'s commit carries a head, over the other instance\'s entry too');
    assert.equal((await b.head())!.seq, 2);
    assert.ok(heads.verify(headStatement((await b.head())!), (await b.head())!.sig));

    // Unsigned for longer than the interval and the grace: no instance is signing them.
    await b.append({ type: 'delivered', transactionId: 1, proof: 'AAAAAAAAAAA=', at: new Date().toISOString() });
    cluster.psql(url, `ALTER TABLE entries DISABLE TRIGGER entries_append_only; UPDATE entries SET written_at = now() - interval '1 minute' WHERE seq = 3; ALTER TABLE entries ENABLE TRIGGER entries_append_only`);
    f = await audit.findings();
    assert.match(f.problems.join('\n'), /^1 entries after the last signed head \(from entry 3\), none a receipt, unsigned for 60 s: no instance signed them/);

    // A's timer signs its own entry, and with it the chain before it.
    await a.append(prepared(2));
    await until('4');
    f = await audit.findings();
    assert.deepEqual([f.problems, f.notes], [[], []]);

    // A clean stop signs what is left; an open signs what a killed instance left.
    await b.append(prepared(3));
    await b.close();
    assert.equal(chainHead(), '5');
    await a.append(prepared(4));
    const c = await PgStore.open(url, { heads, headIntervalMs: 600_000 });
    assert.equal(chainHead(), '6');
    await c.close();
    f = await audit.findings();
    assert.deepEqual([f.problems, f.notes], [[], []]);
  });
});
