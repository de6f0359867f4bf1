/**
 * The transparency log of a PostgreSQL store (issue 12 on issue 10's store): the same log as
 * tlog/log-dir.ts (entries, tree, C2SP checkpoints and tiles), durable in the database that every
 * instance shares, so that any instance can append and serve it.
 *
 *   tlog_meta      one row: origin, size, the latest checkpoint (signed, and served with the
 *                  cosignatures received for it). Its row lock (SELECT ... FOR UPDATE) is the
 *                  log's one sequencer: an append batch takes it, reads the entries other
 *                  instances added since its last look, inserts its own at the next indices,
 *                  signs a checkpoint of the new size and commits entries and checkpoint together.
 *                  Indices are therefore dense and in commit order, whichever instance appends.
 *   tlog_entries   idx, transaction_id, commitment, entry (tlog/leaf.ts, version 2: tagged)
 *   tlog_cosigned  size -> the checkpoint of that size with every witness cosignature received
 *   settings       'tlog-tag-secret': the secret every card's monitoring key comes from
 *                  (tlog/card-tag.ts), shared by the instances as the concept-order key is
 *
 * Every instance keeps the tree in memory (tlog/leaf-tree.ts, 65 bytes and a hash per leaf),
 * catches up from tlog_entries under the lock (or before serving a tile) and checks that what it
 * read rebuilds the root of the checkpoint in tlog_meta: a row changed behind qtm's back (the
 * table is append-only by trigger, which an owner can drop) stops the log instead of being signed.
 *
 * The entries are written after the store commits the signed transaction, in a transaction of
 * their own, and the reply waits for both: an acknowledged transaction has its leaf. A crash in
 * between leaves a signed transaction without a leaf; catchUp() appends those (at start, and
 * periodically in every instance: whoever comes first appends, the others find the commitment).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { InputError, RefusedError } from '../errors.js';
import type { TransparencyProof } from '../tlog/bundle-proof.js';
import { cardTag, monitorKey } from '../tlog/card-tag.js';
import { decodeSignedCheckpoint, signCheckpoint } from '../tlog/checkpoint.js';
import { addSignatureLines, noteBody, withLogSignatureOnly } from '../tlog/cosigned.js';
import type { WitnessedLog } from '../tlog/cosigning.js';
import { LeafTree, entryKey } from '../tlog/leaf-tree.js';
import { commitment, encodeEntry, LEAF_VERSION_TAGGED, TAGGED_ENTRY_BYTES } from '../tlog/leaf.js';
import type { SignedLeaf, TransparencyLog } from '../tlog/log-dir.js';
import { decodeNote, signNote, type NoteSigner } from '../tlog/note.js';
import type { TileSource } from '../tlog/tile-source.js';
import { TILE_HEIGHT, TILE_WIDTH, type TileRef } from '../tlog/tiles.js';
import { checkVersion } from './pg-migrations.js';
import { connectError, redactUrl } from './pg-store.js';

const TAG_SECRET_SETTING = 'tlog-tag-secret';
/** Entries read per query when catching up (a page of rows, not the whole table at once). */
const PAGE = 20_000;

/** A checkpoint signed in a transaction: this instance's own once that transaction committed. */
interface Published {
  readonly text: string;
  readonly size: number;
}

interface Pending {
  readonly entry: Buffer;
  readonly transactionId: number;
  resolve(p: TransparencyProof): void;
  reject(e: Error): void;
}

export class PgLog implements TransparencyLog, WitnessedLog {
  private readonly leaves = new LeafTree(TAGGED_ENTRY_BYTES);
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** Every change of `leaves` runs in this chain: an append batch, or a catch-up before serving. */
  private turn: Promise<unknown> = Promise.resolve();
  private signed = '';
  private publishedSize = 0;
  private closed = false;
  private refreshing: Promise<void> | undefined;
  onPublish?: ((checkpoint: string, size: number) => void) | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly signer: NoteSigner,
    readonly origin: string,
    private readonly tagSecret: Buffer,
    readonly label: string,
  ) {}

  /**
   * Opens the store's log (made on first use with this key's origin), reads its entries and
   * checks them against the latest checkpoint. Refuses another origin, another key, and entries
   * that do not rebuild the signed root.
   */
  static async open(url: string, signer: NoteSigner, origin = signer.name): Promise<PgLog> {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    pool.on('error', () => {});
    try {
      let c: pg.PoolClient;
      try {
        c = await pool.connect();
      } catch (err) {
        throw connectError(err as Error, url);
      }
      let tagSecret: Buffer;
      try {
        await checkVersion(c, redactUrl(url));
        await c.query('INSERT INTO tlog_meta (origin) VALUES ($1) ON CONFLICT (one) DO NOTHING', [origin]);
        const meta = (await c.query<{ origin: string; signed: string | null }>('SELECT origin, signed FROM tlog_meta')).rows[0]!;
        if (meta.origin !== origin) throw new InputError(`the store ${redactUrl(url)} keeps the log of ${meta.origin}, not ${origin}`, 'give the log key this log was made with (qtm log init)');
        if (meta.signed && !decodeNote(meta.signed).signatures.some((s) => s.name === signer.name && s.keyId === signer.keyId)) {
          throw new InputError(`the log ${origin} in ${redactUrl(url)} was signed by another key than the one given`, 'give every instance the same log key (qtm log init made one)');
        }
        // Made once with the log, by whichever instance comes first; read by all.
        await c.query('INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [TAG_SECRET_SETTING, randomBytes(32).toString('hex')]);
        const secret = (await c.query<{ value: string }>('SELECT value FROM settings WHERE name = $1', [TAG_SECRET_SETTING])).rows[0];
        tagSecret = Buffer.from(secret?.value ?? '', 'hex');
        if (tagSecret.length !== 32) throw new InputError(`the settings row '${TAG_SECRET_SETTING}' of ${redactUrl(url)} is not 64 hex digits`, 'restore it from a backup of the database: without it no card can find its leaves');
      } finally {
        c.release();
      }
      const log = new PgLog(pool, signer, origin, tagSecret, `tlog_entries in ${redactUrl(url)}`);
      // The log as published, read and checked without the sequencer lock: a large log takes
      // seconds to rebuild, and every instance's appends wait while that lock is held.
      await log.refresh();
      // The first instance signs the empty tree, so the log is published from the start.
      if (!log.signed) await log.serially(async () => {
        let first: Published | undefined;
        await log.inTransaction(async (t) => {
          const meta = await log.lockMeta(t);
          await log.readUpTo(t, meta);
          if (!meta.signed) first = await log.publish(t);
        });
        if (first) log.published(first);
      });
      return log;
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
  }

  get size(): number {
    return this.leaves.size;
  }

  get signedCheckpoint(): string {
    return this.signed;
  }

  monitorKeyFor(cardKey: string): Buffer {
    return monitorKey(this.tagSecret, cardKey);
  }

  private entryFor(leaf: SignedLeaf): Buffer {
    if (!leaf.cardKey) throw new Error(`transaction ${leaf.transactionId}: a log with card tags needs the card key of every leaf`);
    return encodeEntry({ transactionId: leaf.transactionId, package: leaf.package, tag: cardTag(this.monitorKeyFor(leaf.cardKey), commitment(leaf)) });
  }

  append(leaf: SignedLeaf): Promise<TransparencyProof> {
    if (this.closed) return Promise.reject(new Error('the transparency log is closed'));
    let entry: Buffer;
    try {
      entry = this.entryFor(leaf);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const known = this.leaves.indexOf(entry);
    if (known !== undefined && known < this.publishedSize) return Promise.resolve(this.proofOf(known));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, transactionId: leaf.transactionId, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private proofOf(i: number): TransparencyProof {
    return { index: i, proof: this.leaves.inclusionProof(i, this.publishedSize), checkpoint: this.signed, tag: Buffer.from(this.leaves.entryAt(i).subarray(33)) };
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      await new Promise((r) => setImmediate(r)); // appends of this tick join the batch
      const batch = this.queue;
      this.queue = [];
      try {
        await this.serially(() => this.appendBatch(batch));
        for (const b of batch) b.resolve(this.proofOf(this.leaves.indexOf(b.entry)!));
        this.onPublish?.(this.signed, this.publishedSize);
      } catch (err) {
        for (const b of batch) b.reject(err as Error);
      }
    }
    this.flushing = undefined;
  }

  /** One batch in one transaction under the sequencer lock: new entries and their checkpoint. */
  private async appendBatch(batch: readonly Pending[]): Promise<void> {
    let undo: (() => void) | undefined;
    let signed: Published | undefined;
    try {
      await this.inTransaction(async (t) => {
          const meta = await this.lockMeta(t);
          await this.readUpTo(t, meta);
          const fresh: Pending[] = [];
          const seen = new Set<string>();
          for (const b of batch) {
            const k = entryKey(b.entry);
            if (this.leaves.indexOf(b.entry) !== undefined || seen.has(k)) continue;
            seen.add(k);
            fresh.push(b);
          }
          if (!fresh.length) return;
          const before = this.leaves.size;
          undo = () => this.leaves.truncate(before);
          for (const b of fresh) this.leaves.add(b.entry);
          await t.query(
            `INSERT INTO tlog_entries (idx, transaction_id, commitment, entry)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])`,
            [fresh.map((_, i) => before + i), fresh.map((b) => b.transactionId), fresh.map((b) => b.entry.subarray(1, 33)), fresh.map((b) => b.entry)]);
          signed = await this.publish(t);
      });
    } catch (err) {
      // Not committed (the COMMIT itself may have failed): the tree forgets the batch, or it and
      // the table would part. Entries other instances added (read above) stay: they are committed.
      undo?.();
      throw err;
    }
    if (signed) this.published(signed);
  }

  /**
   * Signs a checkpoint of the tree as it is, inside the transaction holding the lock. It becomes
   * this instance's checkpoint (published()) only once that transaction has committed: until then
   * no proof is made against it, nor a tile served past the committed size (a COMMIT that fails,
   * or a crash before it, would leave a reply holding a checkpoint the log never had: a fork).
   */
  private async publish(t: pg.PoolClient): Promise<Published> {
    const size = this.leaves.size;
    const text = signCheckpoint({ origin: this.origin, size, root: this.leaves.root(), extensions: [] }, this.signer);
    await t.query('UPDATE tlog_meta SET size = $1, signed = $2, served = $2', [size, text]);
    return { text, size };
  }

  private published(p: Published): void {
    this.signed = p.text;
    this.publishedSize = p.size;
  }

  private async lockMeta(t: pg.PoolClient): Promise<{ size: number; signed: string | null }> {
    const r = (await t.query<{ size: string; signed: string | null }>('SELECT size, signed FROM tlog_meta FOR UPDATE')).rows[0];
    if (!r) throw new RefusedError('the tlog_meta row is missing: the log was removed behind qtm\'s back', 'restore the database from a backup');
    return { size: Number(r.size), signed: r.signed };
  }

  /**
   * Reads the entries other instances appended, up to the checkpoint in `meta`, and checks that
   * the tree then has that checkpoint's root. Entries are only ever added with their checkpoint
   * in one transaction, so a reader that read tlog_meta first finds every entry it counts.
   */
  private async readUpTo(q: pg.Pool | pg.PoolClient, meta: { size: number; signed: string | null }): Promise<void> {
    if (this.leaves.size > meta.size) {
      throw new RefusedError(`the log ${this.origin} shrank: this instance holds ${this.leaves.size} entries, the database's checkpoint ${meta.size}`, 'restore the database from a backup; never sign a smaller tree');
    }
    while (this.leaves.size < meta.size) {
      // One bytea per page (the entries concatenated in order): one value to decode, not a row each.
      const from = this.leaves.size;
      const to = Math.min(meta.size, from + PAGE);
      const r = (await q.query<{ n: string; lo: string | null; hi: string | null; entries: Buffer | null }>(
        `SELECT count(*) AS n, min(idx) AS lo, max(idx) AS hi, string_agg(entry, ''::bytea ORDER BY idx) AS entries
         FROM tlog_entries WHERE idx >= $1 AND idx < $2`, [from, to])).rows[0]!;
      const n = Number(r.n);
      if (n === 0) throw new RefusedError(`the log ${this.origin} lost entries: its checkpoint counts ${meta.size}, tlog_entries has none from ${from}`, 'restore the database from a backup');
      if (n !== to - from || Number(r.lo) !== from || Number(r.hi) !== to - 1) throw new RefusedError(`tlog_entries lacks entries between ${from} and ${to - 1} (it has ${n})`, 'restore the database from a backup');
      if (r.entries!.length !== n * TAGGED_ENTRY_BYTES) throw new RefusedError(`tlog_entries between ${from} and ${to - 1} holds entries that are not ${TAGGED_ENTRY_BYTES} bytes`, 'restore the database from a backup');
      for (let i = 0; i < n; i++) {
        const e = r.entries!.subarray(i * TAGGED_ENTRY_BYTES, (i + 1) * TAGGED_ENTRY_BYTES);
        if (e[0] !== LEAF_VERSION_TAGGED) throw new RefusedError(`tlog_entries row ${from + i} is not a version 2 log entry`, 'restore the database from a backup');
        this.leaves.add(e);
      }
    }
    if (meta.signed && (meta.size > this.publishedSize || !this.signed)) {
      const { checkpoint: cp, note } = decodeSignedCheckpoint(meta.signed);
      // Its signature, not only its key ID: a row written by hand (a rewritten entry with a root
      // to match) or by an instance holding another key of the same name is not this log's.
      // Ed25519 is deterministic (RFC 8032): signing the same text again gives the same line.
      const mine = signNote(note.text, [this.signer]);
      if (!meta.signed.split('\n').includes(mine.slice(note.text.length + 1).trimEnd())) {
        throw new RefusedError(`the checkpoint of the log ${this.origin} in tlog_meta (size ${cp.size}) is not signed by this log key`, 'give every instance the same log key; if it is the one, the row was written behind qtm\'s back: restore the database from a backup');
      }
      if (cp.size !== meta.size || !this.leaves.root(cp.size).equals(cp.root)) {
        throw new RefusedError(`tlog_entries does not rebuild the signed root of the log ${this.origin} at size ${cp.size}`, 'an entry was changed behind qtm\'s back: restore the database from a backup');
      }
      this.signed = withLogSignatureOnly(meta.signed, this.origin);
      this.publishedSize = cp.size;
    }
  }

  private async inTransaction(task: (t: pg.PoolClient) => Promise<void>): Promise<void> {
    const t = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await t.query('BEGIN');
      await task(t);
      await t.query('COMMIT');
    } catch (err) {
      await t.query('ROLLBACK').catch((e: Error) => { broken = e; });
      throw err;
    } finally {
      t.release(broken);
    }
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.turn.then(task, task);
    this.turn = run.catch(() => {});
    return run;
  }

  /**
   * Brings the tree up to the database's latest checkpoint (before serving what it needs).
   * Concurrent callers share one look (readers asking for tiles past the tree at once cost one
   * query; each client's requests are rate-limited by the HTTP layer besides). A look shared may
   * have begun before its caller came; one begun after a settled one is always later than it.
   */
  private refresh(): Promise<void> {
    this.refreshing ??= this.serially(async () => {
      const r = (await this.pool.query<{ size: string; signed: string | null }>('SELECT size, signed FROM tlog_meta')).rows[0];
      if (r) await this.readUpTo(this.pool, { size: Number(r.size), signed: r.signed });
    }).finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  /**
   * Signed transactions of the store that have no leaf (a crash between the store's commit and
   * the log's): appended now. Returns how many were missing.
   */
  async catchUp(): Promise<number> {
    let added = 0;
    for (;;) {
      const rows = (await this.pool.query<{ id: string; package: Buffer; card_key: string }>(
        `SELECT t.id, t.package, t.card_key FROM transactions t
         WHERE t.signed_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tlog_entries e WHERE e.transaction_id = t.id)
         ORDER BY t.id LIMIT 1000`)).rows;
      if (!rows.length) return added;
      await Promise.all(rows.map((r) => this.append({ transactionId: Number(r.id), package: r.package, cardKey: r.card_key })));
      added += rows.length;
    }
  }

  /** The log as C2SP tlog-tiles, from the database: what the server serves under /log/. */
  get source(): TileSource {
    return {
      label: this.label,
      checkpoint: async () => {
        const r = (await this.pool.query<{ served: string | null }>('SELECT served FROM tlog_meta')).rows[0];
        if (!r?.served) throw new RefusedError(`the log ${this.origin} has no checkpoint yet`);
        return Buffer.from(r.served, 'utf8');
      },
      tile: async (t) => {
        // Committed leaves only: the tree may hold a batch whose commit is under way.
        const need = leavesFor(t);
        if (need > this.publishedSize) await this.refresh();
        // The look shared may have read tlog_meta before this request came (and before the
        // checkpoint its reader holds was committed): one look begun after it, before a 404.
        if (need > this.publishedSize) await this.refresh();
        if (need > this.publishedSize) return undefined;
        return this.leaves.tile(t);
      },
      cosigned: async (which) => {
        const r = which === 'latest'
          ? (await this.pool.query<{ text: string }>('SELECT text FROM tlog_cosigned ORDER BY size DESC LIMIT 1')).rows[0]
          : (await this.pool.query<{ text: string }>('SELECT text FROM tlog_cosigned WHERE size = $1', [which])).rows[0];
        return r ? Buffer.from(r.text, 'utf8') : undefined;
      },
    };
  }

  /**
   * Keeps a witness's cosignature lines for a checkpoint this log signed: in tlog_cosigned for
   * good, and with the served checkpoint while it is still the latest. Returns whether it is.
   */
  async addCosignatures(checkpoint: string, lines: string): Promise<boolean> {
    const { checkpoint: cp } = decodeSignedCheckpoint(checkpoint);
    if (cp.size > this.leaves.size) await this.refresh();
    if (cp.origin !== this.origin || cp.size > this.leaves.size || !this.leaves.root(cp.size).equals(cp.root)) {
      throw new RefusedError(`cosignatures offered for a checkpoint this log did not sign (${cp.origin} at size ${cp.size})`);
    }
    let served = false;
    await this.inTransaction(async (t) => {
      await t.query('INSERT INTO tlog_cosigned (size, text) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING', [cp.size, withLogSignatureOnly(checkpoint, this.origin)]);
      const archived = (await t.query<{ text: string }>('SELECT text FROM tlog_cosigned WHERE size = $1 FOR UPDATE', [cp.size])).rows[0]!.text;
      const next = addSignatureLines(archived, lines);
      if (next) await t.query('UPDATE tlog_cosigned SET text = $2 WHERE size = $1', [cp.size, next]);
      const current = (await t.query<{ served: string | null }>('SELECT served FROM tlog_meta FOR UPDATE')).rows[0]?.served ?? '';
      if (!current.startsWith(noteBody(checkpoint))) return;
      served = true;
      const more = addSignatureLines(current, lines);
      if (more) await t.query('UPDATE tlog_meta SET served = $1', [more]);
    });
    return served;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.turn;
    await this.pool.end().catch(() => {});
  }
}

/** How many leaves the tree must hold for a tile to exist. */
function leavesFor(t: TileRef): number {
  const nodes = t.index * TILE_WIDTH + t.width;
  return t.level === 'entries' ? nodes : nodes * 2 ** (TILE_HEIGHT * t.level);
}
