/**
 * The PostgreSQL store's schema, as an ordered list of versioned migrations (docs/SCALING.md,
 * "The PostgreSQL schema"). `qtm server migrate --store URL` (or `qtm server start --migrate`)
 * applies the ones a database lacks:
 *
 * - each in its own transaction, recorded in `schema_migrations` in that same transaction, so a
 *   migration is applied entirely or not at all;
 * - under a transaction-scoped advisory lock (MIGRATION_LOCK), so two instances migrating at once
 *   take turns: the second sees the first's rows in `schema_migrations` and applies nothing;
 * - idempotent: running it again on an up-to-date database changes nothing.
 *
 * A migration is never edited once released: a change is a new migration at the end of the list.
 * A database with a version this build does not know is refused (it was migrated by a newer qtm).
 *
 * The tables, for an auditor with psql:
 *   entries        every StoreEntry, append-only, in a hash chain (seq, prev, line, hash): the
 *                  source of truth, folded exactly as the log store folds its lines
 *   transactions   one row per transaction, kept by a trigger from the entries: the record, first
 *                  message, client certificate, package, delivery state and proof, queryable
 *   qtm_chain      one row: the chain's last entry, the next transaction ID's counter and the
 *                  head signed with the receipt key; its row lock serialises every writer
 *   card_keys      the card-key register (issue 18): a serial's first key, for good
 *   settings       shared secrets of all instances (the concept-order key, the transparency
 *                  log's tag secret); never logged
 *   tlog_meta      version 2, the transparency log (store/pg-tlog.ts): its origin, size and
 *                  latest checkpoint; its row lock is the log's one sequencer
 *   tlog_entries   the log's entries in leaf order (idx dense from 0), append-only
 *   tlog_cosigned  each checkpoint a witness cosigned, with every cosignature received for it
 */
import { randomBytes } from 'node:crypto';
import type { PoolClient } from 'pg';
import { InputError } from '../errors.js';

/** pg_advisory_xact_lock key for migrations: "qtmmigr" in ASCII, as a bigint. */
export const MIGRATION_LOCK = (0x71746d6dn << 32n | 0x69677200n).toString();

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly up: (client: PoolClient) => Promise<void>;
}

const V1_SCHEMA = `
CREATE TABLE settings (
  name  text PRIMARY KEY,
  value text NOT NULL
);

-- The one row every writer locks (SELECT ... FOR UPDATE) for the length of its commit: the chain's
-- order, the transaction ID counter and the signed head change together or not at all.
CREATE TABLE qtm_chain (
  one       boolean PRIMARY KEY DEFAULT true CHECK (one),
  seq       bigint  NOT NULL DEFAULT 0,
  hash      text    NOT NULL DEFAULT repeat('0', 64),
  last_id   bigint  NOT NULL DEFAULT 0 CHECK (last_id BETWEEN 0 AND 4294967295),
  head_seq  bigint,
  head_hash text,
  head_sig  bytea,
  head_at   timestamptz
);
INSERT INTO qtm_chain DEFAULT VALUES;

-- Append-only: each line is the JSON {"seq":N,"prev":HASH,...entry} exactly as hashed, as a line
-- of the log store is. hash = SHA-256(line) in hex; prev = the hash of entry seq-1.
CREATE TABLE entries (
  seq            bigint PRIMARY KEY CHECK (seq >= 1),
  transaction_id bigint NOT NULL CHECK (transaction_id BETWEEN 1 AND 4294967295),
  type           text   NOT NULL,
  line           text   NOT NULL,
  prev           text   NOT NULL,
  hash           text   NOT NULL,
  written_at     timestamptz NOT NULL DEFAULT now(),
  -- The card key a prepared entry is bound to (types.ts cardKeyOfEntry), computed by qtm.
  card_key_hint  text,
  entry          jsonb  GENERATED ALWAYS AS (line::jsonb) STORED
);
CREATE INDEX entries_by_transaction ON entries (transaction_id, seq);

-- One row per transaction, derived from the entries by the trigger below. The audit folds the
-- entries again and compares: an edit here is a finding as an edit of an entry is.
CREATE TABLE transactions (
  id                 bigint PRIMARY KEY CHECK (id BETWEEN 1 AND 4294967295),
  order_id           text   NOT NULL UNIQUE,
  card_serial        text   NOT NULL,
  card_key           text   NOT NULL,
  time               bigint NOT NULL,
  state              text   NOT NULL CHECK (state IN ('prepared', 'confirmed', 'delivered')),
  content            bytea  NOT NULL,
  header             bytea  NOT NULL,
  client_certificate text   NOT NULL,
  warrant            jsonb,
  fair_deadline      bigint,
  fair_open          boolean NOT NULL DEFAULT false,
  escrow_y           bytea,
  fair_abort_intent  text,
  fair_aborted       text,
  first_message      jsonb,
  package            bytea,
  card_record        bytea,
  signed_by          text CHECK (signed_by IN ('confirmed', 'resolved')),
  delivery_state     text NOT NULL DEFAULT 'none' CHECK (delivery_state IN ('none', 'offered', 'delivered')),
  delivery_proof     bytea,
  delivered_at       text,
  abandoned          text,
  prepared_seq       bigint NOT NULL
);
CREATE INDEX transactions_pending ON transactions (card_key, id) WHERE state = 'confirmed';
CREATE INDEX transactions_fair_open ON transactions (fair_deadline) WHERE fair_open;

CREATE TABLE card_keys (
  serial     text PRIMARY KEY CHECK (serial ~ '^[0-9A-F]{16}$'),
  card_key   text NOT NULL,
  first_seen timestamptz NOT NULL
);

CREATE FUNCTION qtm_project_entry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  e jsonb := NEW.entry;
  t text := e->>'type';
  tx_id bigint := (e->>'transactionId')::bigint;
BEGIN
  IF t IS DISTINCT FROM NEW.type OR tx_id IS DISTINCT FROM NEW.transaction_id THEN
    RAISE EXCEPTION 'entry % names type % transaction %, its columns % %', NEW.seq, t, tx_id, NEW.type, NEW.transaction_id;
  END IF;
  IF t = 'prepared' THEN
    INSERT INTO transactions (id, order_id, card_serial, card_key, time, state, content, header, client_certificate,
                              warrant, fair_deadline, fair_open, prepared_seq)
    VALUES (tx_id, e->>'orderId', e->>'cardSerial', NEW.card_key_hint, (e->>'time')::bigint, 'prepared',
            decode(e->>'content', 'base64'), decode(e->>'header', 'base64'), e->>'clientCertificate',
            e->'warrant', (e->'fair'->>'deadline')::bigint, e ? 'fair', NEW.seq);
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM transactions WHERE transactions.id = tx_id) THEN
    RAISE EXCEPTION 'a % entry for transaction %, which was never prepared', t, tx_id;
  END IF;
  CASE t
    WHEN 'confirmed' THEN
      UPDATE transactions SET state = CASE WHEN state = 'delivered' THEN 'delivered' ELSE 'confirmed' END,
        first_message = e->'firstMessage', package = decode(e->>'package', 'base64'), card_record = decode(e->>'cardRecord', 'base64'),
        signed_by = 'confirmed', fair_open = false,
        delivery_state = CASE WHEN delivery_state = 'delivered' THEN 'delivered' ELSE 'offered' END
      WHERE transactions.id = tx_id;
    WHEN 'resolved' THEN
      UPDATE transactions SET state = CASE WHEN state = 'delivered' THEN 'delivered' ELSE 'confirmed' END,
        first_message = jsonb_build_object('signatureB', e->>'signatureB', 'challenge', '', 'slot', 0, 'priority', 0),
        package = decode(e->>'package', 'base64'), card_record = decode(e->>'cardRecord', 'base64'),
        signed_by = 'resolved', fair_open = false
      WHERE transactions.id = tx_id;
    WHEN 'redelivery' THEN
      UPDATE transactions SET delivery_state = CASE WHEN delivery_state = 'delivered' THEN 'delivered' ELSE 'offered' END WHERE transactions.id = tx_id;
    WHEN 'delivered' THEN
      UPDATE transactions SET state = 'delivered', delivery_state = 'delivered', delivery_proof = decode(e->>'proof', 'base64'), delivered_at = e->>'at'
      WHERE transactions.id = tx_id;
    WHEN 'escrowed' THEN
      UPDATE transactions SET escrow_y = decode(e->>'escrowY', 'base64') WHERE transactions.id = tx_id;
    WHEN 'fair-abort-intent' THEN
      UPDATE transactions SET fair_abort_intent = e->>'reason' WHERE transactions.id = tx_id;
    WHEN 'fair-aborted' THEN
      UPDATE transactions SET fair_aborted = e->>'reason', fair_open = false WHERE transactions.id = tx_id;
    WHEN 'abandoned' THEN
      UPDATE transactions SET abandoned = e->>'reason' WHERE transactions.id = tx_id;
    ELSE
      RAISE EXCEPTION 'unknown entry type %', t;
  END CASE;
  RETURN NULL;
END $$;
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'entries chain, transactions, card keys, settings',
    up: async (c) => {
      await c.query(V1_SCHEMA);
      await c.query(`CREATE TRIGGER entries_project AFTER INSERT ON entries FOR EACH ROW EXECUTE FUNCTION qtm_project_entry()`);
      // Entries are never changed nor removed by qtm: refuse it in the database too (an owner
      // can drop the trigger; the chain and the signed head still show the edit).
      await c.query(`CREATE FUNCTION qtm_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the entries table is append-only (qtm server audit shows every change)'; END $$`);
      await c.query(`CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON entries FOR EACH STATEMENT EXECUTE FUNCTION qtm_append_only()`);
      // The concept-order key shared by every instance (server/concept-orders.ts).
      await c.query(`INSERT INTO settings (name, value) VALUES ('order-key', $1) ON CONFLICT (name) DO NOTHING`, [randomBytes(32).toString('hex')]);
    },
  },
  {
    version: 2,
    name: 'transparency log: entries, checkpoint, cosignatures',
    up: async (c) => {
      await c.query(`
CREATE TABLE tlog_meta (
  one    boolean PRIMARY KEY DEFAULT true CHECK (one),
  origin text   NOT NULL,
  size   bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
  -- The latest checkpoint with the log's signature only (what a reply's proof is made against),
  -- and the same with the witnesses' cosignatures received for it (what /log/checkpoint serves).
  signed text,
  served text
);

-- The log's entries (src/tlog/leaf.ts: version, commitment, card tag), written in the same
-- transaction as the tlog_meta row that counts them: idx is dense, 0 .. size - 1.
CREATE TABLE tlog_entries (
  idx            bigint PRIMARY KEY CHECK (idx >= 0),
  transaction_id bigint NOT NULL UNIQUE CHECK (transaction_id BETWEEN 1 AND 4294967295),
  commitment     bytea  NOT NULL UNIQUE CHECK (octet_length(commitment) = 32),
  entry          bytea  NOT NULL
);

CREATE TABLE tlog_cosigned (
  size bigint PRIMARY KEY CHECK (size >= 0),
  text text   NOT NULL
);`);
      await c.query(`CREATE FUNCTION qtm_tlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the tlog_entries table is append-only (qtm log audit and every witness see a change)'; END $$`);
      await c.query(`CREATE TRIGGER tlog_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON tlog_entries FOR EACH STATEMENT EXECUTE FUNCTION qtm_tlog_append_only()`);
    },
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Which versions are applied; none when schema_migrations does not exist yet. */
async function appliedVersions(c: PoolClient): Promise<number[]> {
  const exists = await c.query(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!exists.rows[0].present) return [];
  const r = await c.query(`SELECT version FROM schema_migrations ORDER BY version`);
  return r.rows.map((row: { version: string | number }) => Number(row.version));
}

/** Applies every migration the database lacks; returns the versions applied now. */
export async function migrate(client: PoolClient, onApplied?: (m: Migration) => void): Promise<number[]> {
  const applied: number[] = [];
  await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    .catch(async (err: Error & { code?: string }) => {
      // Two instances creating it at the same moment: the loser's unique violation means it exists.
      if (err.code !== '23505' && err.code !== '42P07') throw err;
    });
  for (const m of MIGRATIONS) {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK]);
      const done = await client.query(`SELECT 1 FROM schema_migrations WHERE version = $1`, [m.version]);
      if (done.rowCount === 0) {
        await m.up(client);
        await client.query(`INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        applied.push(m.version);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
    if (applied.includes(m.version)) onApplied?.(m);
  }
  await checkVersion(client);
  return applied;
}

/** Refuses a database that is not migrated to this build's version (too old, or newer). */
export async function checkVersion(client: PoolClient, url = 'the database'): Promise<void> {
  const versions = await appliedVersions(client);
  const newest = versions.length ? Math.max(...versions) : 0;
  if (newest > LATEST_VERSION) {
    throw new InputError(`${url} has schema version ${newest}, newer than this qtm knows (${LATEST_VERSION})`, 'run the qtm version that migrated it');
  }
  const missing = MIGRATIONS.filter((m) => !versions.includes(m.version));
  if (missing.length) {
    throw new InputError(`${url} is not migrated (${missing.length} of ${MIGRATIONS.length} migrations missing)`, 'run `qtm server migrate --store URL` once, or start with --migrate');
  }
}
