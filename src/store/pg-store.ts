/**
 * The transaction store on PostgreSQL (issue 10): many `qtm server start` instances, on one
 * machine or many, share one database; any instance serves any step of any transaction. The
 * schema and its migrations are in ./pg-migrations.ts; docs/SCALING.md explains the design.
 *
 * Source of truth: the append-only `entries` table. Each row is one StoreEntry as the exact JSON
 * line `{"seq":N,"prev":HASH,...entry}`, chained as the log store's lines are (./head.ts): `hash`
 * is SHA-256 of the line and the next line's `prev`. A record is the fold() of its entries, so the
 * two stores cannot disagree on what a sequence of entries means. The `transactions` table is a
 * projection kept by a trigger (state, card key, order, fair deadline, package, delivery...), for
 * the indexes a request needs and for an auditor's psql; the audit folds the entries again and
 * compares it.
 *
 * Writes: each instance has one writer connection that commits in groups, as the log store does.
 * Appends made while a commit runs are written together in the next one, in one database
 * transaction that
 *   1. locks the single `qtm_chain` row (SELECT ... FOR UPDATE): every writer of every instance
 *      takes turns here, so the chain has one order and the checks below see every commit before;
 *   2. checks what must be unique under that lock: an order prepared already (its transaction
 *      comes back, created: false), a transaction signed already (appendSigned: exactly one wins),
 *      an entry for a transaction never prepared (refused);
 *   3. takes transaction IDs from the counter in that row (`last_id`), so IDs have no gaps: a
 *      rolled-back commit hands none out (a sequence would leave holes, and the audit reads a hole
 *      in the IDs as a removed transaction);
 *   4. inserts the entries (one statement), and, when the commit holds a receipt (a confirmed or
 *      resolved entry), stores the head (last seq and hash) signed with the receipt key in the
 *      chain row, then commits.
 * A promise resolves only after COMMIT returned: the entry is durable and visible to every other
 * connection before any reply goes out. Heads follow the log store's policy (./log-store.ts):
 * a receipt is never acknowledged outside a signed head (its head is in the same database
 * transaction); other entries (prepared, delivered...) get theirs within HEAD_INTERVAL_MS (a
 * timer of the instance that wrote them commits a head), or sooner from any instance's next
 * receipt, since the chain is one line and a head covers everything before it; an instance also
 * signs whatever is unsigned when it opens and when it closes (what one killed with SIGKILL
 * left). One RSA signature per transaction instead of one per commit, taken while holding the
 * chain row's lock that every instance waits on. docs/THREATS.md, "The unsigned window", says
 * what an entry waiting for its head is exposed to; the audit notes such a tail while it is
 * young and reports it as a problem once no head came for it.
 *
 * exclusive(id, task): an in-process queue per transaction, then a session-level
 * pg_advisory_lock(EXCLUSIVE_NS + id) on a connection checked out of a separate small pool for
 * the length of the task (not a transaction-scoped lock: the task waits on the TTP over the
 * network, and an open transaction would sit idle holding a snapshot). The task's own reads and
 * appends use the other connections. A crashed instance's session ends, and its locks with it.
 */
import pg from 'pg';
import type { PoolClient, QueryConfig, QueryResultRow } from 'pg';
import { GENESIS_HASH, headStatement, lineHash, type HeadSigner, type SignedHead } from './head.js';
import { cardKeyOfEntry, fold, type AlreadySigned, type ConfirmedEntry, type PrepareOptions, type PreparedEntry, type ResolvedEntry, type StoreEntry, type TransactionRecord, type TransactionState, type TransactionStore } from './types.js';
import { checkVersion, migrate } from './pg-migrations.js';
import { InputError } from '../errors.js';
import { HEAD_INTERVAL_MS, type LogFindings } from './log-store.js';

/** Advisory lock keys of exclusive(): this prefix ("qtmx" in ASCII) in the high 32 bits, the transaction ID in the low. */
const EXCLUSIVE_NS = 0x71746d78n << 32n;
/** pg_try_advisory_lock keys of claim(): "qtms" in the high 32 bits. */
const CLAIM_NS = 0x71746d73n << 32n;

/**
 * An audit notes entries after the last head that hold no receipt while the oldest is younger
 * than the head interval and this much more (a commit, a busy writer); older, no instance is
 * signing them, and they are a problem.
 */
export const AUDIT_HEAD_GRACE_MS = 4000;

/** Entries that sign a transaction: their commit carries a signed head. */
const SIGNING = new Set(['confirmed', 'resolved']);

/** int8 as a JavaScript number: every bigint qtm stores (IDs, seq, Unix seconds) is below 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format ?? 'text'))) as typeof pg.types.getTypeParser,
};

export function isPostgresUrl(store: string): boolean {
  return /^postgres(ql)?:\/\//i.test(store);
}

/** A URL fit for a log line or an error: the password replaced. */
export function redactUrl(url: string): string {
  // pg takes a password in the query too (?password=...): hidden whichever form the rest has.
  const query = (s: string) => s.replace(/([?&][^=&#]*password=)[^&#]*/gi, '$1***');
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return query(u.toString());
  } catch {
    // pg also takes forms WHATWG URL refuses (postgres://user@/db?host=/socket): hide a password
    // between the user name and the @ all the same, and keep the rest readable.
    return query(url.replace(/^([a-z]+:\/\/[^:@/]*):[^@]*@/i, '$1:***@'));
  }
}

export interface PgOpenOptions {
  /** The receipt key (a writer signs the head of each commit), or its certificate (an audit checks it). */
  readonly heads?: HeadSigner;
  /** For audits and `qtm server attest`: nothing is written. */
  readonly readOnly?: boolean;
  /** Apply missing migrations first (`qtm server start --migrate`). */
  readonly migrate?: boolean;
  /** Connections for reads (default 10) and for exclusive() (default 10). */
  readonly poolSize?: number;
  /** How soon a commit without a receipt gets a signed head (default HEAD_INTERVAL_MS). */
  readonly headIntervalMs?: number;
}

type Job =
  | { readonly kind: 'append'; readonly entry: StoreEntry; resolve(v: void): void; reject(e: Error): void }
  | { readonly kind: 'signed'; readonly entry: ConfirmedEntry | ResolvedEntry; resolve(v: boolean): void; reject(e: Error): void }
  | { readonly kind: 'prepared'; readonly build: (id: number) => PreparedEntry; readonly options: PrepareOptions; resolve(v: { transactionId: number; created: boolean }): void; reject(e: Error): void };

interface Row {
  readonly seq: number;
  readonly transactionId: number;
  readonly type: string;
  readonly line: string;
  readonly prev: string;
  readonly hash: string;
  readonly cardKey: string | null;
}

/**
 * The statements of every transaction, prepared once per connection (named statements of the
 * extended protocol, pg's `name`): PostgreSQL then parses and plans each once per connection, not
 * once per query. Parsing and planning them each time cost it about a fifth of its CPU per
 * transaction (`npm run bench -- load --store postgres`). A name stands for one text for good.
 */
const STATEMENTS = {
  chainForUpdate: 'SELECT seq, hash, last_id, head_seq FROM qtm_chain FOR UPDATE',
  signedOf: 'SELECT id, signed_by IS NOT NULL AS signed FROM transactions WHERE id = ANY($1::bigint[])',
  orderTransactions: 'SELECT id, order_id FROM transactions WHERE order_id = ANY($1::text[])',
  insertEntries: `INSERT INTO entries (seq, transaction_id, type, line, prev, hash, card_key_hint)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
  updateChain: `UPDATE qtm_chain SET seq = $1, hash = $2, last_id = $3, head_seq = CASE WHEN $4::bytea IS NULL THEN head_seq ELSE $1 END,
         head_hash = CASE WHEN $4::bytea IS NULL THEN head_hash ELSE $2 END, head_sig = COALESCE($4::bytea, head_sig),
         head_at = CASE WHEN $4::bytea IS NULL THEN head_at ELSE now() END`,
  head: 'SELECT head_seq, head_hash, head_sig FROM qtm_chain',
  entriesOf: 'SELECT line FROM entries WHERE transaction_id = $1 ORDER BY seq',
  pendingFor: `SELECT id FROM transactions WHERE card_key = $1 AND state = 'confirmed' ORDER BY id`,
} as const;

function statement(name: keyof typeof STATEMENTS, values: unknown[] = []): QueryConfig {
  return { name: `qtm-${name}`, text: STATEMENTS[name], values };
}

export class PgStore implements TransactionStore {
  /** Commits this instance made, and entries in them (for `commits per transaction`). */
  readonly stats = { commits: 0, entries: 0 };
  private queue: Job[] = [];
  private flushing: Promise<void> | undefined;
  private writer: pg.Client | undefined;
  private closed = false;
  private readonly turns = new Map<number, Promise<unknown>>();
  /** A head is due (this instance's timer, open, close) though no receipt waits. */
  private headWanted = false;
  private headTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly lockPool: pg.Pool,
    private readonly url: string,
    private readonly options: PgOpenOptions,
  ) {}

  /** Connects and checks the schema version (or migrates, when asked). Refuses a database not migrated. */
  static async open(url: string, options: PgOpenOptions = {}): Promise<PgStore> {
    const size = options.poolSize ?? 10;
    const pool = new pg.Pool({ connectionString: url, max: size, types: TYPES });
    const lockPool = new pg.Pool({ connectionString: url, max: size, types: TYPES });
    // An idle connection that dies (the database restarted) is dropped from the pool, not fatal.
    pool.on('error', () => {});
    lockPool.on('error', () => {});
    const store = new PgStore(pool, lockPool, url, options);
    try {
      const c = await connect(pool, url);
      try {
        if (options.migrate && !options.readOnly) await migrate(c);
        await checkVersion(c, redactUrl(url));
      } finally {
        c.release();
      }
      // What an instance stopped with SIGKILL left unsigned (entries without a receipt) is signed now.
      if (options.heads && !options.readOnly) await store.signHeadNow();
    } catch (err) {
      await store.end();
      throw err;
    }
    return store;
  }

  /** `qtm server migrate`: applies what is missing, returns the versions applied now. */
  static async migrate(url: string, onApplied?: (version: number, name: string) => void): Promise<number[]> {
    const pool = new pg.Pool({ connectionString: url, max: 1, types: TYPES });
    pool.on('error', () => {});
    try {
      const c = await connect(pool, url);
      try {
        return await migrate(c, (m) => onApplied?.(m.version, m.name));
      } finally {
        c.release();
      }
    } finally {
      await pool.end();
    }
  }

  private async rows<T extends QueryResultRow>(text: string | QueryConfig, values: unknown[] = []): Promise<T[]> {
    return (typeof text === 'string' ? await this.pool.query<T>(text, values) : await this.pool.query<T>(text)).rows;
  }

  // ---- writes: group commit on one connection ----

  append(entry: StoreEntry): Promise<void> {
    return this.enqueue<void>((resolve, reject) => ({ kind: 'append', entry, resolve, reject }));
  }

  async appendSigned(entry: ConfirmedEntry | ResolvedEntry): Promise<{ readonly stored: true } | AlreadySigned> {
    const stored = await this.enqueue<boolean>((resolve, reject) => ({ kind: 'signed', entry, resolve, reject }));
    if (stored) return { stored: true };
    const existing = (await this.get(entry.transactionId))?.confirmed;
    if (!existing) throw new Error(`transaction ${entry.transactionId} is signed in the store but its signing entry cannot be read`);
    return { stored: false, existing };
  }

  appendPrepared(build: (transactionId: number) => PreparedEntry, options: PrepareOptions = {}): Promise<{ readonly transactionId: number; readonly created: boolean }> {
    return this.enqueue((resolve, reject) => ({ kind: 'prepared', build, options, resolve, reject }));
  }

  private enqueue<T>(make: (resolve: (v: T) => void, reject: (e: Error) => void) => Job): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    if (this.options.readOnly) return Promise.reject(new Error('store is open read-only'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push(make(resolve as never, reject));
      this.flushing ??= this.flush();
    });
  }

  private async writerClient(): Promise<pg.Client> {
    if (this.writer) return this.writer;
    const c = new pg.Client({ connectionString: this.url, types: TYPES });
    c.on('error', () => {
      if (this.writer === c) this.writer = undefined;
    });
    try {
      await c.connect();
    } catch (err) {
      throw connectError(err as Error, this.url);
    }
    this.writer = c;
    return c;
  }

  /** A head over whatever is unsigned, on the next commit (one with no entries if none waits). */
  private signHeadNow(): Promise<void> {
    this.headWanted = true;
    this.flushing ??= this.flush();
    return this.flushing;
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0 || this.headWanted) {
      // Let appends made in the same tick join this commit.
      await new Promise((r) => setImmediate(r));
      const batch = this.queue;
      this.queue = [];
      const headWanted = this.headWanted;
      this.headWanted = false;
      let client: pg.Client | undefined;
      try {
        client = await this.writerClient();
        const done = await this.commit(client, batch, headWanted);
        for (const d of done) d();
      } catch (err) {
        // The commit's outcome may be unknown (the connection broke during COMMIT): nothing in it
        // is acknowledged; a retried request finds what was stored (orders and signings are
        // idempotent). The connection is replaced.
        if (client) {
          await client.query('ROLLBACK').catch(() => {});
          if (this.writer === client) {
            this.writer = undefined;
            await client.end().catch(() => {});
          }
        }
        for (const j of batch) j.reject(err as Error);
        // A head asked for and not made: the timer asks again (a new one, as an unsigned commit would start).
        if (headWanted) this.startHeadTimer();
      }
    }
    this.flushing = undefined;
  }

  /** Within the interval, a head covers this instance's commits that had none (unless a receipt's commit did first). */
  private startHeadTimer(): void {
    if (!this.options.heads || this.headTimer || this.closed) return;
    this.headTimer = setTimeout(() => {
      this.headTimer = undefined;
      if (!this.closed) void this.signHeadNow().catch(() => {});
    }, this.options.headIntervalMs ?? HEAD_INTERVAL_MS);
    this.headTimer.unref();
  }

  /** One group commit; returns what to call once it committed (resolutions and per-job refusals). */
  private async commit(c: pg.Client, batch: Job[], headWanted = false): Promise<(() => void)[]> {
    await c.query('BEGIN');
    const chain = (await c.query<{ seq: number; hash: string; last_id: number; head_seq: number | null }>(statement('chainForUpdate'))).rows[0];
    if (!chain) throw new Error('the qtm_chain row is missing: the database was not migrated by qtm, or it was tampered with');
    // What the checks need, read under the lock: every commit before this one is visible.
    const ids = [...new Set(batch.flatMap((j) => (j.kind === 'prepared' ? [] : [j.entry.transactionId])))];
    const orders = [...new Set(batch.flatMap((j) => (j.kind === 'prepared' && j.options.orderId !== undefined ? [j.options.orderId] : [])))];
    const known = new Map<number, { signed: boolean }>();
    const orderTx = new Map<string, number>();
    if (ids.length) {
      for (const r of (await c.query<{ id: number; signed: boolean }>(statement('signedOf', [ids]))).rows) known.set(r.id, { signed: r.signed });
    }
    if (orders.length) {
      for (const r of (await c.query<{ id: number; order_id: string }>(statement('orderTransactions', [orders]))).rows) orderTx.set(r.order_id, r.id);
    }
    let seq = chain.seq;
    let hash = chain.hash;
    let lastId = chain.last_id;
    const rows: Row[] = [];
    const after: (() => void)[] = [];
    const add = (entry: StoreEntry) => {
      const line = JSON.stringify({ seq: seq + 1, prev: hash, ...entry });
      const h = lineHash(Buffer.from(line, 'utf8'));
      rows.push({ seq: seq + 1, transactionId: entry.transactionId, type: entry.type, line, prev: hash, hash: h, cardKey: entry.type === 'prepared' ? cardKeyOfEntry(entry) : null });
      seq++;
      hash = h;
    };
    for (const j of batch) {
      try {
        if (j.kind === 'prepared') {
          const orderId = j.options.orderId;
          const existing = orderId === undefined ? undefined : orderTx.get(orderId);
          if (existing !== undefined) {
            after.push(() => j.resolve({ transactionId: existing, created: false }));
            continue;
          }
          const id = Math.max(lastId, (j.options.firstId ?? 1) - 1) + 1;
          if (id > 0xffffffff) throw new Error('transaction IDs are exhausted (they are 32-bit)');
          const entry = j.build(id);
          if (entry.transactionId !== id) throw new Error(`prepared entry for transaction ${id} names ${entry.transactionId}`);
          if (orderId !== undefined && entry.orderId !== orderId) throw new Error(`prepared entry for order ${orderId} names order ${entry.orderId}`);
          if (orderTx.has(entry.orderId)) throw new Error(`order ${entry.orderId} is prepared already, as transaction ${orderTx.get(entry.orderId)}`);
          add(entry);
          lastId = id;
          known.set(id, { signed: false });
          orderTx.set(entry.orderId, id);
          after.push(() => j.resolve({ transactionId: id, created: true }));
          continue;
        }
        const id = j.entry.transactionId;
        const at = known.get(id);
        if (j.entry.type === 'prepared') {
          // A prepared entry with its own ID (tests, tools): never a second one for an ID.
          if (at) throw new Error(`transaction ${id} is prepared already`);
          if (orderTx.has(j.entry.orderId)) throw new Error(`order ${j.entry.orderId} is prepared already, as transaction ${orderTx.get(j.entry.orderId)}`);
          const entry = j.entry;
          add(entry);
          lastId = Math.max(lastId, id);
          known.set(id, { signed: false });
          orderTx.set(entry.orderId, id);
          after.push(() => (j as { resolve(v: void): void }).resolve());
          continue;
        }
        if (!at) throw new Error(`transaction ${id} was never prepared: no ${j.entry.type} entry for it`);
        if (j.kind === 'signed') {
          if (at.signed) {
            after.push(() => j.resolve(false));
            continue;
          }
          at.signed = true;
          add(j.entry);
          after.push(() => j.resolve(true));
          continue;
        }
        add(j.entry);
        after.push(() => j.resolve());
      } catch (err) {
        after.push(() => j.reject(err as Error));
      }
    }
    // A receipt's commit carries its head; others wait for the timer, or a head asked for now.
    const signHead = this.options.heads !== undefined && seq > (chain.head_seq ?? 0) && (headWanted || rows.some((r) => SIGNING.has(r.type)));
    if (rows.length === 0 && !signHead) {
      await c.query('COMMIT');
      return after;
    }
    if (rows.length) await c.query(statement('insertEntries',
      [rows.map((r) => r.seq), rows.map((r) => r.transactionId), rows.map((r) => r.type), rows.map((r) => r.line), rows.map((r) => r.prev), rows.map((r) => r.hash), rows.map((r) => r.cardKey)],
    ));
    const sig = signHead ? this.options.heads!.sign(headStatement({ seq, hash })) : null;
    await c.query(statement('updateChain', [seq, hash, lastId, sig]));
    await c.query('COMMIT');
    this.stats.commits++;
    this.stats.entries += rows.length;
    if (sig) {
      clearTimeout(this.headTimer);
      this.headTimer = undefined;
    } else if (rows.length) {
      this.startHeadTimer();
    }
    return after;
  }

  // ---- exclusive sections across instances ----

  exclusive<T>(transactionId: number, task: () => Promise<T>): Promise<T> {
    const turn = (this.turns.get(transactionId) ?? Promise.resolve()).then(() => this.locked(EXCLUSIVE_NS + BigInt(transactionId), task));
    const settled = turn.catch(() => undefined);
    this.turns.set(transactionId, settled);
    void settled.then(() => {
      if (this.turns.get(transactionId) === settled) this.turns.delete(transactionId);
    });
    return turn;
  }

  private async locked<T>(key: bigint, task: () => Promise<T>): Promise<T> {
    const c = await connect(this.lockPool, this.url);
    let broken = false;
    try {
      await c.query('SELECT pg_advisory_lock($1::bigint)', [key.toString()]);
      try {
        return await task();
      } finally {
        await c.query('SELECT pg_advisory_unlock($1::bigint)', [key.toString()]).catch(() => {
          broken = true; // the session is gone, and its locks with it; never reuse the connection
        });
      }
    } finally {
      c.release(broken);
    }
  }

  /**
   * Runs `task` unless another caller (any instance) runs one under the same claim: for work
   * every instance offers to do but one is enough (the fair-exchange sweeper). 'busy' otherwise.
   */
  async claim<T>(transactionId: number, task: () => Promise<T>): Promise<T | 'busy'> {
    // Try-locks on one dedicated session: they never wait, so they never hold a pooled connection
    // an exclusive() inside the task needs. If that session dies its claims end; exclusive() and
    // the re-read inside it still keep a settlement from happening twice.
    const key = (CLAIM_NS + BigInt(transactionId)).toString();
    const c = await this.claimClient();
    const got = (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key])).rows[0]!.ok;
    if (!got) return 'busy';
    try {
      return await task();
    } finally {
      await c.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => {});
    }
  }

  private claimer: Promise<pg.Client> | undefined;

  private claimClient(): Promise<pg.Client> {
    this.claimer ??= (async () => {
      const c = new pg.Client({ connectionString: this.url, types: TYPES });
      c.on('error', () => {
        this.claimer = undefined;
      });
      try {
        await c.connect();
      } catch (err) {
        this.claimer = undefined;
        throw connectError(err as Error, this.url);
      }
      return c;
    })();
    return this.claimer;
  }

  // ---- reads ----

  async head(): Promise<SignedHead | undefined> {
    // Read from the database: a later head (another instance's commit) covers this one's entries too.
    const r = (await this.rows<{ head_seq: number | null; head_hash: string | null; head_sig: Buffer | null }>(statement('head')))[0];
    if (!r || r.head_seq === null || r.head_hash === null || r.head_sig === null) return undefined;
    return { seq: r.head_seq, hash: r.head_hash, sig: r.head_sig };
  }

  async get(transactionId: number): Promise<TransactionRecord | undefined> {
    if (!Number.isSafeInteger(transactionId) || transactionId < 1 || transactionId > 0xffffffff) return undefined;
    const lines = await this.rows<{ line: string }>(statement('entriesOf', [transactionId]));
    return foldLines(lines.map((l) => l.line));
  }

  async lastTransactionId(): Promise<number> {
    return (await this.rows<{ last_id: number }>('SELECT last_id FROM qtm_chain'))[0]?.last_id ?? 0;
  }

  async *all(): AsyncIterable<TransactionRecord> {
    // A page of transactions at a time, each folded from its entries.
    let from = 0;
    for (;;) {
      const page = await this.rows<{ transaction_id: number; line: string }>(
        `SELECT e.transaction_id, e.line FROM entries e
          WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM entries WHERE transaction_id > $1 ORDER BY transaction_id LIMIT 200)
          ORDER BY e.transaction_id, e.seq`, [from]);
      if (page.length === 0) return;
      let i = 0;
      while (i < page.length) {
        const id = page[i]!.transaction_id;
        const lines: string[] = [];
        for (; i < page.length && page[i]!.transaction_id === id; i++) lines.push(page[i]!.line);
        const rec = foldLines(lines);
        if (rec) yield rec;
        from = id;
      }
    }
  }

  async pendingFor(cardKey: string): Promise<number[]> {
    return (await this.rows<{ id: number }>(statement('pendingFor', [cardKey]))).map((r) => r.id);
  }

  async openFairExchanges(): Promise<ReadonlyMap<number, number>> {
    return new Map((await this.rows<{ id: number; fair_deadline: number }>('SELECT id, fair_deadline FROM transactions WHERE fair_open ORDER BY id')).map((r) => [r.id, r.fair_deadline]));
  }

  async countByState(): Promise<Record<TransactionState, number>> {
    const counts = { prepared: 0, confirmed: 0, delivered: 0 };
    for (const r of await this.rows<{ state: TransactionState; n: number }>('SELECT state, count(*)::int8 AS n FROM transactions GROUP BY state')) counts[r.state] = r.n;
    return counts;
  }

  // ---- shared state of all instances ----

  /** The concept-order key every instance shares (made at migrate; never logged). */
  async orderKey(): Promise<Buffer> {
    const r = (await this.rows<{ value: string }>(`SELECT value FROM settings WHERE name = 'order-key'`))[0];
    const key = r ? Buffer.from(r.value, 'hex') : Buffer.alloc(0);
    if (key.length !== 32) throw new InputError(`the settings row 'order-key' of ${redactUrl(this.url)} is missing or not 64 hex digits`, 'run `qtm server migrate`; a changed key refuses orders composed before');
    return key;
  }

  /**
   * The card-key register: the key a serial stands registered with after this call, which is
   * `cardKey` if the serial had none (INSERT ... ON CONFLICT DO NOTHING, then read: atomic across
   * instances).
   */
  async bindCardKey(serial: string, cardKey: string, now: Date): Promise<string> {
    await this.pool.query('INSERT INTO card_keys (serial, card_key, first_seen) VALUES ($1, $2, $3) ON CONFLICT (serial) DO NOTHING', [serial, cardKey, now]);
    const r = (await this.rows<{ card_key: string }>('SELECT card_key FROM card_keys WHERE serial = $1', [serial]))[0];
    if (!r) throw new Error(`card serial ${serial} is not in the register after it was added`);
    return r.card_key;
  }

  // ---- audit ----

  /**
   * What the audit learns beyond the records: the chain (every line's seq, prev and hash
   * recomputed), the signed head, entries after it, and the transactions table against the fold
   * of the entries. `wantSeq`: keep that entry's hash (a customer's saved head, --min-head).
   */
  async findings(wantSeq?: number): Promise<LogFindings> {
    const f: LogFindings = { problems: [], notes: [], legacyEntries: 0, heads: 0, hashes: new Map() };
    const chain = (await this.rows<{ seq: number; hash: string; head_seq: number | null; head_hash: string | null; head_sig: Buffer | null }>('SELECT seq, hash, head_seq, head_hash, head_sig FROM qtm_chain'))[0];
    if (!chain) {
      f.problems.push('the qtm_chain row is missing (removed?)');
      return f;
    }
    let seq = 0;
    let prev = GENESIS_HASH;
    for (let from = 0; ;) {
      const page = await this.rows<{ seq: number; transaction_id: number; type: string; line: string; prev: string; hash: string }>(
        'SELECT seq, transaction_id, type, line, prev, hash FROM entries WHERE seq > $1 ORDER BY seq LIMIT 2000', [from]);
      if (page.length === 0) break;
      for (const r of page) {
        from = r.seq;
        let parsed: { seq?: unknown; prev?: unknown; type?: unknown; transactionId?: unknown } | undefined;
        try {
          parsed = JSON.parse(r.line) as typeof parsed;
        } catch {
          f.problems.push(`entry ${r.seq} is not readable JSON (edited)`);
        }
        if (r.seq !== seq + 1) f.problems.push(`the chain is broken before entry ${r.seq}: entries ${seq + 1}..${r.seq - 1} are missing (removed)`);
        else if (parsed && (parsed.seq !== r.seq || parsed.prev !== prev || r.prev !== prev)) {
          f.problems.push(`the chain is broken at entry ${r.seq}: expected entry ${seq + 1} after hash ${prev.slice(0, 16)}…, found entry ${String(parsed.seq)} after ${String(parsed.prev).slice(0, 16)}… (an entry was edited, removed or inserted)`);
        }
        const h = lineHash(Buffer.from(r.line, 'utf8'));
        if (h !== r.hash) f.problems.push(`entry ${r.seq} (transaction ${r.transaction_id}) was edited: its line no longer hashes to its stored hash`);
        if (parsed && (parsed.type !== r.type || parsed.transactionId !== r.transaction_id)) f.problems.push(`entry ${r.seq}: its columns (type ${r.type}, transaction ${r.transaction_id}) differ from its line`);
        if (wantSeq === r.seq) f.hashes.set(r.seq, h);
        seq = r.seq;
        prev = h;
      }
    }
    if (chain.seq !== seq || chain.hash !== prev) f.problems.push(`the chain row names entry ${chain.seq} ${chain.hash.slice(0, 16)}…, but the entries end at ${seq} ${prev.slice(0, 16)}…`);
    if (chain.head_seq !== null && chain.head_hash !== null && chain.head_sig !== null) {
      const head: SignedHead = { seq: chain.head_seq, hash: chain.head_hash, sig: chain.head_sig };
      f.heads = 1;
      f.lastHead = head;
      const at = chain.head_seq === seq ? prev : (await this.rows<{ line: string }>('SELECT line FROM entries WHERE seq = $1', [chain.head_seq])).map((r) => lineHash(Buffer.from(r.line, 'utf8')))[0];
      if (at !== head.hash) f.problems.push(`the signed head names entry ${head.seq} ${head.hash.slice(0, 16)}…, but the chain there is ${at === undefined ? 'missing' : `${at.slice(0, 16)}…`} (entries before it were changed or removed)`);
      else if (this.options.heads && !this.options.heads.verify(headStatement(head), head.sig)) f.problems.push('the signed head does not verify with the receipt key');
    }
    const headSeq = f.lastHead?.seq ?? 0;
    if (seq > headSeq) await this.unsignedTail(f, headSeq, seq - headSeq);
    await this.checkProjection(f);
    return f;
  }

  /**
   * Entries after the last head: a receipt there was never acknowledged (its head commits with
   * it); others wait up to the head interval for theirs, so a young tail is a note, an old one a
   * problem (no instance signed it: the one that wrote it was killed and none has started since,
   * or someone without the key inserted it).
   */
  private async unsignedTail(f: LogFindings, headSeq: number, n: number): Promise<void> {
    const r = (await this.rows<{ receipts: number; age_ms: number | null }>(
      `SELECT count(*) FILTER (WHERE type = ANY($2::text[]))::int8 AS receipts, (extract(epoch FROM now() - min(written_at)) * 1000)::float8 AS age_ms
         FROM entries WHERE seq > $1`, [headSeq, [...SIGNING]]))[0]!;
    const what = `${n} entries after the last signed head (from entry ${headSeq + 1})`;
    const wait = (this.options.headIntervalMs ?? HEAD_INTERVAL_MS) + AUDIT_HEAD_GRACE_MS;
    if (r.receipts > 0) f.problems.push(`${what}, ${r.receipts} of them a receipt: the server never acknowledged them (inserted by someone without its key)`);
    else if ((r.age_ms ?? 0) <= wait) f.notes.push(`${what}, none a receipt, the oldest ${Math.round(r.age_ms ?? 0)} ms old: a running instance signs them within ${this.options.headIntervalMs ?? HEAD_INTERVAL_MS} ms`);
    else f.problems.push(`${what}, none a receipt, unsigned for ${Math.round((r.age_ms ?? 0) / 1000)} s: no instance signed them (the one that wrote them stopped with SIGKILL and none started since, or someone without the key inserted them); starting an instance signs them`);
  }

  /** The transactions table must be what the entries fold to: an edit there is a finding too. */
  private async checkProjection(f: LogFindings): Promise<void> {
    for (let from = 0; ;) {
      const page = await this.rows<Record<string, unknown> & { id: number }>('SELECT * FROM transactions WHERE id > $1 ORDER BY id LIMIT 500', [from]);
      if (page.length === 0) break;
      from = page[page.length - 1]!.id;
      const recs = new Map<number, TransactionRecord>();
      const lines = await this.rows<{ transaction_id: number; line: string }>('SELECT transaction_id, line FROM entries WHERE transaction_id = ANY($1::bigint[]) ORDER BY transaction_id, seq', [page.map((r) => r.id)]);
      const by = new Map<number, string[]>();
      for (const l of lines) by.set(l.transaction_id, [...(by.get(l.transaction_id) ?? []), l.line]);
      for (const [id, ls] of by) {
        const rec = foldLines(ls);
        if (rec) recs.set(id, rec);
      }
      for (const r of page) {
        const rec = recs.get(r.id);
        if (!rec) {
          f.problems.push(`transactions row ${r.id} has no prepared entry (inserted)`);
          continue;
        }
        const diff = projectionDiff(r, rec);
        if (diff.length) f.problems.push(`transactions row ${r.id} differs from its entries (edited): ${diff.join(', ')}`);
      }
    }
    const orphans = await this.rows<{ transaction_id: number }>('SELECT DISTINCT transaction_id FROM entries e WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = e.transaction_id) ORDER BY 1 LIMIT 20');
    for (const o of orphans) f.problems.push(`transaction ${o.transaction_id} has entries but no transactions row (removed)`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Nothing left unsigned behind a clean stop (this instance's entries, or a killed one's).
    if (this.options.heads && !this.options.readOnly) await this.signHeadNow().catch(() => {});
    this.closed = true;
    clearTimeout(this.headTimer);
    await this.flushing;
    await this.end();
  }

  private async end(): Promise<void> {
    const claimer = this.claimer;
    this.claimer = undefined;
    await claimer?.then((c) => c.end()).catch(() => {});
    await this.writer?.end().catch(() => {});
    this.writer = undefined;
    await this.pool.end().catch(() => {});
    await this.lockPool.end().catch(() => {});
  }
}

function foldLines(lines: readonly string[]): TransactionRecord | undefined {
  let rec: TransactionRecord | undefined;
  for (const line of lines) {
    const { seq: _seq, prev: _prev, ...entry } = JSON.parse(line) as StoreEntry & { seq?: number; prev?: string };
    rec = fold(rec, entry as StoreEntry);
  }
  return rec;
}

/** Which columns of a transactions row differ from the record its entries fold to. */
function projectionDiff(r: Record<string, unknown>, rec: TransactionRecord): string[] {
  const p = rec.prepared;
  const b64 = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v === null ? undefined : String(v));
  const expect: [string, unknown, unknown][] = [
    ['order_id', r.order_id, p.orderId],
    ['card_serial', r.card_serial, p.cardSerial],
    ['card_key', r.card_key, cardKeyOfEntry(p)],
    ['time', r.time, p.time],
    ['state', r.state, rec.state],
    ['content', b64(r.content), p.content],
    ['header', b64(r.header), p.header],
    ['client_certificate', r.client_certificate, p.clientCertificate],
    ['fair_deadline', r.fair_deadline ?? undefined, p.fair?.deadline],
    ['fair_open', r.fair_open, Boolean(p.fair) && !rec.confirmed && !rec.fairAborted],
    ['package', b64(r.package), rec.confirmed?.package],
    ['card_record', b64(r.card_record), rec.confirmed?.cardRecord],
    ['delivery_proof', b64(r.delivery_proof), rec.delivered?.proof],
  ];
  return expect.filter(([, got, want]) => got !== want).map(([name]) => name);
}

async function connect(pool: pg.Pool, url: string): Promise<PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw connectError(err as Error, url);
  }
}

/** A connection refused, as one line naming the store (its password hidden) and what to check. */
export function connectError(err: Error & { code?: string }, url: string): Error {
  return new InputError(`cannot connect to the PostgreSQL store ${redactUrl(url)}: ${err.message}`, 'check the URL (postgres://USER@HOST/DATABASE), that PostgreSQL runs, and that the role may log in');
}
