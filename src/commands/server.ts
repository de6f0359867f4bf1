import { Command, Option } from 'commander';
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { examples, parsePort, parsePositiveInt, parseProfile } from '../cli/options.js';
import { diag, out, Progress } from '../cli/output.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { readIdentity } from '../pki/key-files.js';
import { isPkcs11Uri } from '../pkcs11/uri.js';
import { loadCatalogue } from '../server/catalogue.js';
import { startServer } from '../server/run-server.js';
import { signerMarker } from '../server/signer-marker.js';
import { auditStore } from '../server/audit.js';
import { attestProxyBundle } from '../server/attest.js';
import { decodeBundle, encodeBundle } from '../bundle/proof-bundle.js';
import { writeFileAtomic } from '../util/fs.js';
import { LogStore } from '../store/log-store.js';
import { isPostgresUrl, PgStore, redactUrl } from '../store/pg-store.js';
import type { TransactionStore } from '../store/types.js';
import { decodeSignedHead, headSigner, type SignedHead } from '../store/head.js';
import { parseStrictJson } from '../protocol/strict-json.js';
import { loadTrustAnchors } from '../verify/trust.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { PROFILES } from '../protocol/profile.js';
import { InputError } from '../errors.js';
import { WarrantRegistry } from '../warrant/registry.js';
import { TtpClient } from '../fair/ttp-client.js';
import type { FairOptions } from '../server/qtm-service.js';
import { KEY_PASSPHRASE, SAM_PASSPHRASE } from '../cli/secret-sources.js';
import { openSamReference, PKCS11_HELP, pkcs11ModuleOption, preparePkcs11, readSigningIdentity, warrantTokenReferences } from '../cli/pkcs11.js';
import { readNoteKey } from '../tlog/log-key.js';
import { TRAFFIC_HELP, trafficLimitsFrom, trafficOptions, type TrafficFlags } from '../cli/traffic-options.js';
import { ed25519NoteSigner, SIG_TYPE_ED25519 } from '../tlog/note.js';

interface StartOptions extends TrafficFlags {
  config?: string;
  tls?: string;
  signer?: string;
  sam?: string;
  trust?: string;
  store?: string;
  catalogue?: string;
  host?: string;
  port?: number;
  profile?: 'v1' | 'v2';
  warrants?: string;
  onBehalfOf?: string;
  ttp?: string;
  ttpCert?: string;
  fairDeadline?: number;
  anonymousRate?: number;
  pkcs11Module?: string;
  log?: string;
  logKey?: string;
  logWitness?: string[];
  migrate?: boolean;
  workers?: number;
}

const DEFAULT_CATALOGUE = join(import.meta.dirname ?? '.', '..', '..', '..', 'fixtures', 'catalogue.json');

function withConfig(o: StartOptions) {
  let file: Partial<StartOptions> = {};
  if (o.config) {
    try {
      file = JSON.parse(readFileSync(o.config, 'utf8')) as Partial<StartOptions>;
    } catch {
      throw new InputError(`cannot read the config file ${o.config} (JSON with the option names as keys)`);
    }
  }
  const pick = <K extends keyof StartOptions>(k: K) => (o[k] ?? file[k]) as StartOptions[K];
  const merged = {
    tls: pick('tls'), signer: pick('signer'), sam: pick('sam'), trust: pick('trust'), store: pick('store') ?? storeFromEnv(),
    catalogue: pick('catalogue') ?? DEFAULT_CATALOGUE, host: pick('host') ?? '127.0.0.1', port: pick('port') ?? 8443, profile: pick('profile') ?? 'v2',
  };
  for (const k of ['tls', 'signer', 'sam', 'trust', 'store'] as const) {
    if (!merged[k]) throw new InputError(`--${k} is required (on the command line or in --config${k === 'store' ? ', or QTM_STORE' : ''})`);
  }
  const limits = trafficLimitsFrom(o, file as Record<string, unknown>, `the config file ${o.config}`);
  const proxy = { migrate: pick('migrate'), workers: pick('workers'), warrants: pick('warrants'), onBehalfOf: pick('onBehalfOf'), ttp: pick('ttp'), ttpCert: pick('ttpCert'), fairDeadline: pick('fairDeadline'), anonymousRate: pick('anonymousRate'), log: pick('log'), logKey: pick('logKey') };
  // A store directory keeps its log in a directory (--log); a PostgreSQL store in the database.
  if (proxy.log && !proxy.logKey) throw new InputError('--log needs --log-key', 'give the log key made by `qtm log init`');
  if (Boolean(proxy.ttp) !== Boolean(proxy.ttpCert)) throw new InputError('--ttp and --ttp-cert go together', 'give the TTP\'s URL and its escrow certificate (role ttp)');
  if (Boolean(proxy.warrants) !== Boolean(proxy.onBehalfOf)) throw new InputError('--warrants and --on-behalf-of go together', 'give the warrants folder and the certificate of the manager the server signs for');
  if (proxy.workers !== undefined && (!Number.isInteger(proxy.workers) || proxy.workers < 1)) throw new InputError('--workers must be a positive whole number');
  if ((proxy.workers ?? 1) > 1 && !isPostgresUrl(merged.store!)) {
    throw new InputError(`--workers ${proxy.workers} needs a PostgreSQL store: the store directory ${merged.store} has one writer process`, 'use --workers 1, or --store postgres://... (README, "Many instances on PostgreSQL")');
  }
  if (proxy.log && isPostgresUrl(merged.store!)) {
    throw new InputError('a PostgreSQL store keeps its transparency log in the database, which every instance shares: --log names a directory', 'give --log-key without --log');
  }
  if (proxy.logKey && !proxy.log && !isPostgresUrl(merged.store!)) {
    throw new InputError('--log-key with a store directory needs --log DIR, where the log is kept', 'give --log ./tlog (a PostgreSQL store keeps it in the database)');
  }
  if (proxy.migrate && !isPostgresUrl(merged.store!)) throw new InputError('--migrate is for a PostgreSQL store (--store postgres://...)', 'a store directory needs no migration');
  return { ...merged, ...proxy, limits } as { limits: typeof limits } & Required<Omit<StartOptions, keyof TrafficFlags | 'config' | 'warrants' | 'onBehalfOf' | 'ttp' | 'ttpCert' | 'fairDeadline' | 'anonymousRate' | 'log' | 'logKey' | 'migrate' | 'workers'>> & Pick<StartOptions, 'warrants' | 'onBehalfOf' | 'ttp' | 'ttpCert' | 'fairDeadline' | 'anonymousRate' | 'log' | 'logKey' | 'migrate' | 'workers'>;
}

/** QTM_STORE: the store when --store and --config give none (a directory or a postgres:// URL). */
function storeFromEnv(): string | undefined {
  return process.env.QTM_STORE || undefined;
}

/** A store for reading (audit, attest): the log store read-only beside its server, or PostgreSQL. */
async function openForReading(store: string, heads?: ReturnType<typeof headSigner>): Promise<TransactionStore & { findingsFor(minHeadSeq?: number): Promise<import('../store/log-store.js').LogFindings> }> {
  if (isPostgresUrl(store)) {
    const s = await PgStore.open(store, { readOnly: true, ...(heads ? { heads } : {}) });
    return Object.assign(s, { findingsFor: (seq?: number) => s.findings(seq) });
  }
  const s = LogStore.open(store, { readOnly: true, ...(heads ? { heads } : {}) });
  return Object.assign(s, { findingsFor: async () => s.findings });
}

/**
 * `--workers N` (N > 1, PostgreSQL only): this process migrates when asked, reads the
 * passphrases once, and forks N workers (node:cluster) that run the same command and share the
 * port; the passphrases reach them in their environment, never on a command line. A worker
 * that dies is replaced; SIGINT/SIGTERM stop them all.
 */
async function runWorkers(c: ReturnType<typeof withConfig>, o: StartOptions): Promise<void> {
  if (c.migrate) await PgStore.migrate(c.store);
  const env: Record<string, string> = {};
  if (!isPkcs11Uri(c.tls) || !isPkcs11Uri(c.signer)) env.QTM_KEY_PASSPHRASE = await readSecret(KEY_PASSPHRASE, o);
  if (!isPkcs11Uri(c.sam)) env.QTM_SAM_PASSPHRASE = await readSecret(SAM_PASSPHRASE, o);
  let stopping = false;
  const fork = () => cluster.fork(env);
  for (let i = 0; i < c.workers!; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'worker-exit', worker: worker.id, code, signal }));
    // One that cannot start (a bad option, the port taken) would fail again at once: stop then.
    if (code === 2) {
      stopping = true;
      process.exitCode = 2;
      for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
      return;
    }
    fork();
  });
  diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'workers', workers: c.workers, store: redactUrl(c.store) }));
  await new Promise<void>((r) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => r());
    cluster.on('exit', () => {
      if (stopping && Object.keys(cluster.workers ?? {}).length === 0) r();
    });
  });
  stopping = true;
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  await Promise.all(workers.map((w) => new Promise<void>((r) => {
    w!.once('exit', () => r());
    w!.kill('SIGTERM');
  })));
  diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'stopped' }));
}

/** The server's side of the fair exchange: the TTP it offers, reached over HTTPS. */
function fairOptions(url: string, certFile: string, trustFile: string, deadlineSeconds: number): FairOptions {
  const certificates = certificatesFromPemBundle(readFileSync(certFile, 'utf8'), certFile);
  // A 429 from the TTP is waited out (src/fair/ttp-client.ts), each wait one line in the server's log.
  const client = new TtpClient(url, readFileSync(trustFile, 'utf8'), {
    retry: { onWait: (w) => diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'ttp-busy', path: w.path, seconds: w.seconds, retry: w.retry, of: w.maxRetries, message: w.message })) },
  });
  return { ttp: { url, certificates, request: (e, r) => client.request(e, r) }, deadlineSeconds };
}

export function serverCommand(): Command {
  const server = new Command('server').description('the merchant server: orders, QTM service, store');

  trafficOptions(secretOptions(server.command('start'), [KEY_PASSPHRASE, SAM_PASSPHRASE]))
    .description('serve HTTPS (TLS 1.3) orders and transactions until stopped')
    .option('--config <file>', 'JSON file with any of the options below as keys')
    .option('--tls <prefix>', 'TLS identity (PREFIX.pem, PREFIX-key.pem; role server)')
    .option('--signer <prefix|uri>', 'receipt-signing identity, separate from TLS (role signer), or its key\'s PKCS#11 URI')
    .option('--sam <file|uri>', 'SAM keystore (passphrase QTM_SAM_PASSPHRASE), or the PKCS#11 URI of its master key')
    .option('--trust <ca.pem>', 'CA that issued the customers\' cards')
    .option('--store <dir|url>', 'transaction store: a directory (embedded, one process), or postgres://USER@HOST/DB shared by many instances (default: QTM_STORE)')
    .option('--migrate', 'with a PostgreSQL store: apply missing schema migrations first (as qtm server migrate)')
    .option('--workers <n>', 'serve with N processes sharing the port (node:cluster; default 1); N > 1 needs a PostgreSQL store', parsePositiveInt)
    .option('--catalogue <file>', 'catalogue JSON (default: the shipped sample)')
    .option('--host <address>', 'bind address (default 127.0.0.1)')
    .option('--port <n>', 'TCP port (default 8443; 0 picks a free one)', parsePort)
    .addOption(new Option('--profile <profile>', 'v2 (default) or v1').argParser(parseProfile))
    .option('--warrants <dir>', 'sign as party A by proxy, under the warrants in this folder (qtm warrant)')
    .option('--on-behalf-of <x.pem>', 'with --warrants: the manager whose warrants the server signs under')
    .option('--ttp <url>', 'offer the fair exchange (qtm sign --fair) through this TTP (qtm ttp start)')
    .option('--ttp-cert <ttp.pem>', 'with --ttp: the TTP\'s escrow certificate (role ttp)')
    .option('--fair-deadline <seconds>', 'with --ttp: time for a fair exchange before it is settled at the TTP (default 300)', parsePositiveInt)
    .option('--first-id <n>', 'the first transaction ID of an empty store, when the receipt key signed in another store before', parsePositiveInt)
    .option('--anonymous-rate <n>', 'requests a second per source address before a card login (default 20, bursts of 10 times it); beyond: 429 E_RATE_LIMITED', parsePositiveInt)
    .option('--log <dir>', 'with a store directory: keep a transparency log of every signed transaction here; DIR/www is its C2SP tlog-tiles prefix for any static web server')
    .option('--log-key <prefix>', 'keep a transparency log signed with this key (qtm log init; passphrase QTM_KEY_PASSPHRASE): in --log DIR, or in the PostgreSQL store')
    .option('--log-witness <url>', 'with --log-key: push each checkpoint to this C2SP witness (qtm log witness-serve) and serve its cosignatures (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addOption(pkcs11ModuleOption())
    .addHelpText('after', PKCS11_HELP + TRAFFIC_HELP + `
Key passphrases come from QTM_KEY_PASSPHRASE, the SAM's from QTM_SAM_PASSPHRASE (or prompts).
Logs one JSON line per request on stderr. With --warrants, a customer no valid warrant of the
manager covers is refused (HTTP 403 naming both), and nothing is signed for the manager without
the manager's current signed revocation list (a NAME.crl in the folder, \`qtm warrant revoke\`).
A first message more than 120 s after its record's time is refused (409 E_RECORD_EXPIRED).
Stores: a directory is the embedded log store, written by one process: --workers must stay 1 and
one server runs on it. A postgres:// URL (or QTM_STORE) is shared: many \`qtm server start\`
instances, on one machine or many, and --workers N processes each, serve any step of any
transaction; they need the same --signer, --sam and --tls files (docs/SCALING.md). Migrate the
database once with \`qtm server migrate\` (or --migrate). With a PostgreSQL store the transparency
log is in the database too: give --log-key (the same key to every instance) and no --log; every
instance appends to it and serves it under /log/.
` + examples(
      'qtm server start --tls keys/tls --signer keys/receipts --sam shop.sam --trust ca/ca.pem --store ./store',
      'qtm server start --config server.json --store postgres://qtm@db.example/qtm --workers 4',
      'QTM_STORE=postgres://qtm@db.example/qtm qtm server start --config server.json --port 8444',
      'qtm server start --config server.json --warrants ./warrants --on-behalf-of keys/xavier.pem',
      'qtm server start --config server.json --port 9443',
      'qtm server start --config server.json --rate 20 --max-connections-per-client 16 --request-timeout 20',
      'qtm server start --config server.json --log ./tlog --log-key keys/log',
      'qtm server start --config server.json --store postgres://qtm@db.example/qtm --log-key keys/log',
      'QTM_PKCS11_PIN=... qtm server start --tls keys/tls --signer "pkcs11:token=shop;object=receipts" --sam "pkcs11:token=shop;object=master" --trust ca/ca.pem --store ./store --pkcs11-module /usr/lib/softhsm/libsofthsm2.so'))
    .action(async (o: StartOptions & { firstId?: number }) => {
      const c = withConfig(o);
      if ((c.workers ?? 1) > 1 && cluster.isPrimary) return runWorkers(c, o);
      if (o.logWitness?.length && !c.logKey) throw new InputError('--log-witness needs --log-key (and --log with a store directory)');
      if (isPkcs11Uri(c.tls)) throw new InputError('the TLS key cannot be in a PKCS#11 token', 'keep --tls a key file (PREFIX.pem, PREFIX-key.pem); the receipt key (--signer) and the SAM (--sam) may be in the token');
      await preparePkcs11([c.signer, c.sam, ...(c.warrants ? warrantTokenReferences(c.warrants) : [])], o.pkcs11Module);
      const keyPass = await readSecret(KEY_PASSPHRASE, o);
      // The marker of a receipt key lives beside it: beside its files, or in its token.
      const marker = signerMarker(c.signer);
      const running = await startServer({
        tls: readIdentity(c.tls, keyPass),
        signer: isPkcs11Uri(c.signer) ? await readSigningIdentity(c.signer) : readIdentity(c.signer, keyPass),
        sam: await openSamReference(c.sam, o),
        trustAnchors: loadTrustAnchors([c.trust]),
        storeDir: c.store,
        // Under --workers the primary migrated already.
        ...(c.migrate && cluster.isPrimary ? { migrate: true } : {}),
        catalogue: loadCatalogue(c.catalogue),
        profile: PROFILES[c.profile],
        host: c.host,
        port: c.port,
        limits: c.limits,
        ...(c.anonymousRate ? { anonymousRate: { perSecond: c.anonymousRate, burst: 10 * c.anonymousRate } } : {}),
        ...(c.logKey ? { transparency: { ...(c.log ? { dir: c.log } : {}), signer: ed25519NoteSigner(readNoteKey(c.logKey, keyPass, SIG_TYPE_ED25519)), ...(o.logWitness?.length ? { witnesses: o.logWitness } : {}) } } : {}),
        ...(c.ttp && c.ttpCert ? { fair: fairOptions(c.ttp, c.ttpCert, c.trust, c.fairDeadline ?? 300) } : {}),
        ...(marker.read() ? { signedBefore: marker.read()! } : {}),
        ...(o.firstId !== undefined ? { firstTransactionId: o.firstId } : {}),
        markSigned: (last) => marker.write(c.store, last),
        ...(c.warrants && c.onBehalfOf ? {
          proxy: { registry: WarrantRegistry.open(c.warrants, keyPass), manager: certificatesFromPemBundle(readFileSync(c.onBehalfOf, 'utf8'), c.onBehalfOf) },
        } : {}),
      });
      diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'listening', url: running.url, ...(cluster.isWorker ? { worker: cluster.worker!.id } : {}), serverId: running.service.serverId.toString('hex'), stored: await running.store.lastTransactionId(), ...(running.transparency ? { log: running.transparency.label, logSize: running.transparency.size } : {}) }));
      await new Promise<void>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
      });
      await running.close();
      diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'stopped', ...(cluster.isWorker ? { worker: cluster.worker!.id } : {}) }));
      // A worker's channel to the primary would keep it alive.
      if (cluster.isWorker) cluster.worker!.disconnect();
    });

  server.command('migrate')
    .description('create or update the schema of a PostgreSQL store (safe to run again, and from two places at once)')
    .option('--store <url>', 'postgres://USER@HOST/DATABASE (default: QTM_STORE)')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Applies, each in its own transaction and under an advisory lock, the schema migrations the
database lacks, recorded in its schema_migrations table. Running it again changes nothing. The
role needs CREATE on the database. Also makes the concept-order key every instance shares
(settings table; never printed).
Exit codes: 0 migrated (or already up to date), 2 unusable URL or unreachable database.
` + examples(
      'qtm server migrate --store postgres://qtm@localhost/qtm',
      'QTM_STORE=postgres://qtm@db.example/qtm qtm server migrate --json'))
    .action(async (o: { store?: string; json?: boolean }) => {
      const url = o.store ?? storeFromEnv();
      if (!url) throw new InputError('--store is required (or QTM_STORE)', 'give postgres://USER@HOST/DATABASE');
      if (!isPostgresUrl(url)) throw new InputError(`--store ${url} is not a postgres:// URL`, 'a store directory needs no migration; give postgres://USER@HOST/DATABASE');
      const applied: { version: number; name: string }[] = [];
      await PgStore.migrate(url, (version, name) => applied.push({ version, name }));
      if (o.json) out.json({ store: redactUrl(url), applied });
      else out.line(applied.length ? applied.map((m) => `applied migration ${m.version}: ${m.name}`).join('\n') : `${redactUrl(url)} is up to date`);
    });

  secretOptions(server.command('attest'), [KEY_PASSPHRASE])
    .description('attest, from the store, a package version 2 proof signed by proxy (its signature does not bind the warrant)')
    .argument('<bundle>', 'the proof bundle (.json) to attest')
    .requiredOption('--store <dir|url>', 'the transaction store of the server that signed it (a directory or postgres:// URL)')
    .requiredOption('--signer <prefix|uri>', 'the receipt-signing identity (key passphrase from QTM_KEY_PASSPHRASE), or its key\'s PKCS#11 URI')
    .option('--out <file>', 'write the attested bundle here (default: stdout)')
    .addOption(pkcs11ModuleOption())
    .addHelpText('after', `
Refuses (exit 1) unless the store holds this exact package, signed under this exact warrant.
Reads the store without locking it, so it can run beside the server.
` + examples('qtm server attest old-proxy-receipt.json --store ./store --signer keys/receipts --out attested.json'))
    .action(async (file: string, o: { store: string; signer: string; out?: string; pkcs11Module?: string }) => {
      await preparePkcs11([o.signer], o.pkcs11Module);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        throw new InputError(`cannot read ${file}`);
      }
      const bundle = decodeBundle(text);
      const signer = await readSigningIdentity(o.signer, o);
      const store = await openForReading(o.store);
      try {
        const attested = encodeBundle(await attestProxyBundle(store, bundle, signer));
        if (o.out) writeFileAtomic(o.out, attested);
        else out.line(attested.trimEnd());
      } finally {
        await store.close();
      }
    });

  server.command('audit')
    .description('re-verify every stored transaction and the store\'s chain; tampering in the store is reported')
    .option('--store <dir|url>', 'transaction store: a directory, or postgres://USER@HOST/DB (default: QTM_STORE)')
    .requiredOption('--signer-cert <file>', 'the receipt-signing certificate (PREFIX.pem): checks records and the signed heads')
    .requiredOption('--trust <ca.pem>', 'trusted CA')
    .option('--sam <file>', 'the SAM (passphrase QTM_SAM_PASSPHRASE): also check every storage proof W')
    .option('--min-head <file>', 'a store head a customer kept (archive heads/*.json): the store must still hold that history')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Reads the store without locking it, so it can run beside the server. Checks every record as an
auditor would, and the log itself: the chain of entries (an entry edited, removed or inserted),
the signed heads (entries after the last one were never acknowledged), one prepared entry per
transaction, no gaps in the IDs, no entry for a transaction never prepared, none delivered
unsigned. A customer's saved head (--min-head) shows a store that was cut back or rewritten.
On a PostgreSQL store the entries table is checked the same way (every row's line hashed again,
the chain and the signed head), and the transactions table against what its entries fold to: a
row edited with psql, in either table, is a finding.
Card serials stored with more than one card key (a second card made with a known serial) are
listed and count as findings.
Exit codes: 0 everything verifies, 1 some record or the log is tampered with, or a serial has two
keys, 2 unusable input.
` + examples(
      'qtm server audit --store ./store --signer-cert keys/receipts.pem --trust ca/ca.pem',
      'qtm server audit --store ./store --signer-cert keys/receipts.pem --trust ca/ca.pem --sam shop.sam --json',
      'qtm server audit --store postgres://auditor@db.example/qtm --signer-cert keys/receipts.pem --trust ca/ca.pem',
      'qtm server audit --store ./store --signer-cert keys/receipts.pem --trust ca/ca.pem --min-head ~/.local/share/qtm/archive/heads/b78bba247f98010f.json'))
    .action(async (o: { store?: string; signerCert: string; trust: string; sam?: string; minHead?: string; json?: boolean }) => {
      const storeRef = o.store ?? storeFromEnv();
      if (!storeRef) throw new InputError('--store is required (or QTM_STORE)');
      const signerCerts = certificatesFromPemBundle(readFileSync(o.signerCert, 'utf8'), o.signerCert);
      const signer = signerCerts.map((c) => c.toString());
      const heads = headSigner(signerCerts[0]!.publicKey);
      let minHead: SignedHead | undefined;
      if (o.minHead) {
        let json: unknown;
        try {
          json = parseStrictJson(readFileSync(o.minHead, 'utf8'), o.minHead);
        } catch (err) {
          throw new InputError(`cannot read the head ${o.minHead}: ${(err as Error).message}`);
        }
        minHead = decodeSignedHead(json, o.minHead);
      }
      const sam = o.sam ? await openSamReference(o.sam, o) : undefined;
      // Read-only: safe beside a running server, and damaged lines are reported, not fatal.
      const store = await openForReading(storeRef, heads);
      const findings = await store.findingsFor(minHead?.seq);
      const trust = loadTrustAnchors([o.trust]);
      const counts = await store.countByState();
      const progress = new Progress(counts.prepared + counts.confirmed + counts.delivered, 'auditing');
      const report = await auditStore(store, signer, trust, (done) => progress.tick(done), {
        findings, verifyHead: heads.verify, ...(sam ? { sam } : {}), ...(minHead ? { minHead } : {}),
      });
      progress.done();
      await store.close();
      const bad = report.tampered.length + report.damagedLines.length + report.logProblems.length + report.sharedSerials.length;
      if (o.json) out.json(report);
      else {
        out.line(`${report.total} transactions: ${report.byState.delivered} delivered, ${report.byState.confirmed} signed but not acknowledged, ${report.byState.prepared} prepared only`);
        if (report.head) out.line(`signed head: entry ${report.head.seq}, ${report.head.hash}`);
        out.line(bad ? out.colour.red(`${bad} TAMPERED:`) : out.colour.green('every stored record verifies'));
        for (const line of report.damagedLines) out.line(`  line ${line} of the log is not a readable entry`);
        for (const p of report.logProblems) out.line(`  log: ${p}`);
        for (const n of report.notes) diag.line(`note: ${n}`);
        for (const t of report.tampered) out.line(`  transaction ${t.transactionId} (${t.state}): ${t.problems.join('; ')}`);
        for (const c of report.sharedSerials) {
          out.line(`  card serial ${c.serial} was used with ${c.keys.length} card keys (a second card made with its serial): ${c.keys.map((k) => `key ${k.cardKey.slice(0, 16)}… transactions ${k.transactions.join(',')}`).join('; ')}`);
        }
      }
      process.exitCode = bad ? 1 : 0;
    });
  return server;
}
