/**
 * Starting a qtm server from its parts: TLS identity, receipt-signing identity (a separate key,
 * claim 5), SAM, trust anchors for client certificates, store, catalogue.
 */
import type { AddressInfo } from 'node:net';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { sameKey, type SigningKey } from '../crypto/signer.js';
import { createQtmServer, type RateLimit } from './http-server.js';
import type { TrafficLimits } from '../http/server.js';
import { QtmService, type FairOptions } from './qtm-service.js';
import type { Catalogue } from './catalogue.js';
import { LogStore } from '../store/log-store.js';
import { isPostgresUrl, PgStore } from '../store/pg-store.js';
import type { TransactionStore } from '../store/types.js';
import { headSigner } from '../store/head.js';
import { CardKeyRegister, PgCardKeyRegister, type CardKeyBinding } from './card-keys.js';
import { orderKeyFor } from './concept-orders.js';
import type { Sam } from '../sam/sam.js';
import type { Profile } from '../protocol/profile.js';
import { InputError } from '../errors.js';
import type { WarrantRegistry } from '../warrant/registry.js';
import { LogDir } from '../tlog/log-dir.js';
import { PgLog } from '../store/pg-tlog.js';
import { cardKeyOfEntry } from '../store/types.js';
import type { NoteSigner } from '../tlog/note.js';
import { WitnessPusher } from '../tlog/cosigning.js';

export interface ServerParts {
  readonly tls: { privateKey: KeyObject; certificates: X509Certificate[] };
  readonly signer: { privateKey: SigningKey; certificates: X509Certificate[] };
  readonly sam: Sam;
  readonly trustAnchors: X509Certificate[];
  /** A store directory (the embedded log store), or a postgres:// URL (PgStore, shared by many instances). */
  readonly storeDir: string;
  /** With a PostgreSQL store: apply missing schema migrations first (`--migrate`). */
  readonly migrate?: boolean;
  readonly catalogue: Catalogue;
  readonly profile: Profile;
  readonly host: string;
  readonly port: number;
  readonly log?: (line: Record<string, unknown>) => void;
  /** Sign as party A by proxy for a manager, under the warrants in a folder (claims 10-11). */
  readonly proxy?: { readonly registry: WarrantRegistry; readonly manager: X509Certificate[] };
  /** Offer the fair exchange through a TTP (claims 12-14). */
  readonly fair?: FairOptions;
  /**
   * The receipt key signed transactions before (its marker: signer-marker.ts): an empty
   * store would hand their IDs out again, so it is refused unless firstTransactionId is given.
   */
  readonly signedBefore?: { readonly store: string; readonly lastTransactionId: number };
  readonly firstTransactionId?: number;
  /** Told when the receipt key first signs in this store, and at close: keeps its marker. */
  readonly markSigned?: (lastTransactionId: number) => void;
  /** The server's clock (tests inject a skewed one). */
  readonly now?: () => Date;
  /** Requests per source address without a card login (default ANONYMOUS_RATE in http-server.ts). */
  readonly anonymousRate?: RateLimit;
  /** Timeouts and connection and rate limits of the HTTP layer (defaults: DEFAULT_LIMITS in ../http/server.ts). */
  readonly limits?: Partial<TrafficLimits>;
  /**
   * Keep a transparency log of every signed transaction, signed by this key (issue 12): in `dir`
   * beside a store directory, or in the PostgreSQL store itself (no dir: every instance shares it).
   */
  readonly transparency?: { readonly dir?: string; readonly signer: NoteSigner; readonly witnesses?: readonly string[] };
}

export interface RunningServer {
  readonly url: string;
  readonly service: QtmService;
  readonly store: TransactionStore;
  readonly transparency?: LogDir | PgLog;
  close(): Promise<void>;
}

/** How often every instance on PostgreSQL looks for signed transactions without a leaf (a crash between the two commits). */
export const LOG_CATCH_UP_MS = 60_000;

export async function startServer(p: ServerParts): Promise<RunningServer> {
  if (sameKey(p.tls.privateKey, p.signer.privateKey)) {
    throw new InputError('the receipt-signing key must not be the TLS key (claim 5)', 'issue a separate --role signer identity');
  }
  const log = p.log ?? ((line: Record<string, unknown>) => process.stderr.write(JSON.stringify(line) + '\n'));
  // The store's heads are signed with the receipt key, which the store never holds (src/store/head.ts).
  const heads = headSigner(p.signer.certificates[0]!.publicKey, p.signer.privateKey);
  const postgres = isPostgresUrl(p.storeDir);
  if (postgres && p.transparency?.dir) {
    throw new InputError('a PostgreSQL store keeps its transparency log in the database, which every instance shares: --log names a directory', 'give --log-key without --log');
  }
  if (!postgres && p.transparency && !p.transparency.dir) {
    throw new InputError('a store directory keeps its transparency log in a directory of its own', 'give --log DIR with --log-key');
  }
  let store: LogStore | PgStore;
  let cardKeys: CardKeyBinding;
  let orderKey: Buffer;
  if (postgres) {
    // Everything a later request needs (orders, card keys, the order key) is in the database.
    store = await PgStore.open(p.storeDir, { heads, ...(p.migrate ? { migrate: true } : {}) });
    try {
      cardKeys = new PgCardKeyRegister(store);
      orderKey = await store.orderKey();
    } catch (err) {
      await store.close();
      throw err;
    }
  } else {
    store = LogStore.open(p.storeDir, {
      heads,
      onWarning: (message) => log({ time: new Date().toISOString(), event: 'store-warning', message }),
      ...(p.markSigned ? { onFirstSignedCommit: p.markSigned } : {}),
    });
    try {
      cardKeys = await CardKeyRegister.open(p.storeDir, store);
      orderKey = orderKeyFor(p.storeDir);
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  if ((await store.lastTransactionId()) === 0 && p.signedBefore && p.firstTransactionId === undefined) {
    await store.close();
    throw new InputError(
      `this receipt key signed transactions up to at least ${p.signedBefore.lastTransactionId} in the store ${p.signedBefore.store}, and this store is empty: it would hand their IDs out again`,
      `start it on the store it signed them in, or give --first-id ${p.signedBefore.lastTransactionId + 1} (or higher)`);
  }
  let tlog: LogDir | PgLog | undefined;
  try {
    if (p.transparency && postgres) {
      tlog = await PgLog.open(p.storeDir, p.transparency.signer);
      // Transactions signed before a crash cut their log append short get their leaves now.
      await tlog.catchUp();
    } else if (p.transparency?.dir) {
      // A new log tags each leaf with its card's tag (monitoring by card); an older one keeps version 1 entries.
      tlog = LogDir.open(p.transparency.dir, p.transparency.signer, undefined, { tagCards: true });
      await tlog.catchUp(signedLeaves(store));
    }
  } catch (err) {
    await tlog?.close();
    await store.close();
    throw err;
  }
  // Witnesses cosign each checkpoint in the background; a confirm never waits for them.
  const pusher = tlog && p.transparency?.witnesses?.length ? new WitnessPusher(tlog, p.transparency.witnesses, log) : undefined;
  pusher?.poke();
  // On PostgreSQL another instance may have crashed between its two commits and never restart:
  // every instance looks for leaves missing, now and then (the appends are idempotent).
  const pgLog = tlog instanceof PgLog ? tlog : undefined;
  const catchUp = pgLog ? setInterval(() => {
    pgLog.catchUp().then(
      (added) => { if (added) log({ time: new Date().toISOString(), event: 'log-catch-up', added }); },
      (err: Error) => log({ time: new Date().toISOString(), event: 'log-catch-up', error: err.message }),
    );
  }, LOG_CATCH_UP_MS) : undefined;
  catchUp?.unref();
  const service = new QtmService({
    ...(p.firstTransactionId !== undefined ? { firstTransactionId: p.firstTransactionId } : {}),
    store, profile: p.profile, signer: p.signer, sam: p.sam, catalogue: p.catalogue,
    cardKeys, orderKey,
    ...(p.proxy ? { proxy: { ...p.proxy, trustAnchors: p.trustAnchors } } : {}),
    ...(p.fair ? { fair: p.fair } : {}),
    ...(p.now ? { now: p.now } : {}),
    ...(tlog ? { transparency: tlog } : {}),
  });
  // Fair exchanges past their deadline are settled at the TTP: resolved if the client's escrow
  // came, aborted if not (patent blocks 307, 316).
  // The sweeper reports on the server's log (stderr by default, as the requests are).
  // Every instance sweeps; on PostgreSQL one claims an exchange at a time (a try-lock: the others
  // skip it), and the settlement itself is exclusive and re-reads the record, so it happens once.
  const settle = (id: number) => (store instanceof PgStore ? store.claim(id, () => service.resolveAtTtp(id)) : service.resolveAtTtp(id));
  const sweeper = p.fair ? setInterval(() => {
    void service.overdueFair().then((overdue) => overdue.forEach((id) => {
      settle(id).then(
        (outcome) => {
          if (outcome === 'busy') return;
          // An exchange the TTP does not settle is retried after 2, 4, 8 ... s (at most 10 min) and reported each time.
          const retry = service.fair?.retries(id);
          log({ time: new Date().toISOString(), event: retry ? 'fair-unsettled' : 'fair-deadline', tx: id, outcome,
            ...(retry ? { attempts: retry.attempts, nextAttempt: retry.next.toISOString(), problem: retry.problem } : {}) });
        },
        (err: Error) => log({ time: new Date().toISOString(), event: 'fair-deadline', tx: id, error: err.message }),
      );
    }), (err: Error) => log({ time: new Date().toISOString(), event: 'fair-sweep', error: err.message }));
  }, 1000) : undefined;
  sweeper?.unref();
  const server = createQtmServer({ service, tls: p.tls, trustAnchors: p.trustAnchors, ...(p.log ? { log: p.log } : {}), ...(p.anonymousRate ? { anonymousRate: p.anonymousRate } : {}), ...(p.limits ? { limits: p.limits } : {}), ...(tlog ? { logSource: tlog.source } : {}) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      store.close().catch(() => {});
      tlog?.close().catch(() => {});
      reject(err.code === 'EADDRINUSE' ? new InputError(`port ${p.port} on ${p.host} is in use`, 'choose another --port') : err);
    });
    server.listen(p.port, p.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `https://${host}:${addr.port}`,
    service,
    store,
    ...(tlog ? { transparency: tlog } : {}),
    async close() {
      if (sweeper) clearInterval(sweeper);
      if (catchUp) clearInterval(catchUp);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      pusher?.stop();
      await pusher?.settle();
      if (await store.head()) p.markSigned?.(await store.lastTransactionId());
      await store.close();
      await tlog?.close();
    },
  };
}

/** The leaves of every signed transaction in the store (confirmed, or resolved at the TTP), in transaction order. */
export async function* signedLeaves(store: { all(): AsyncIterable<import('../store/types.js').TransactionRecord> }) {
  for await (const rec of store.all()) {
    if (rec.confirmed) yield { transactionId: rec.transactionId, package: Buffer.from(rec.confirmed.package, 'base64'), cardKey: cardKeyOfEntry(rec.prepared) };
  }
}
