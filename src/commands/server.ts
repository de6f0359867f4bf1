import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { examples, parsePort, parsePositiveInt, parseProfile } from '../cli/options.js';
import { diag, out, Progress } from '../cli/output.js';
import { readSecret } from '../cli/secrets.js';
import { readIdentity } from '../pki/key-files.js';
import { openSam } from '../sam/sam.js';
import { loadCatalogue } from '../server/catalogue.js';
import { startServer } from '../server/run-server.js';
import { auditStore } from '../server/audit.js';
import { attestProxyBundle } from '../server/attest.js';
import { decodeBundle, encodeBundle } from '../bundle/proof-bundle.js';
import { writeFileAtomic } from '../util/fs.js';
import { LogStore } from '../store/log-store.js';
import { loadTrustAnchors } from '../verify/trust.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { PROFILES } from '../protocol/profile.js';
import { InputError } from '../errors.js';
import { WarrantRegistry } from '../warrant/registry.js';
import { TtpClient } from '../fair/ttp-server.js';
import type { FairOptions } from '../server/qtm-service.js';
import { KEY_PASSPHRASE } from './ca.js';
import { readNoteKey } from '../tlog/log-key.js';
import { ed25519NoteSigner, SIG_TYPE_ED25519 } from '../tlog/note.js';
import { SAM_PASSPHRASE } from './sam.js';

interface StartOptions {
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
  log?: string;
  logKey?: string;
  logWitness?: string[];
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
    tls: pick('tls'), signer: pick('signer'), sam: pick('sam'), trust: pick('trust'), store: pick('store'),
    catalogue: pick('catalogue') ?? DEFAULT_CATALOGUE, host: pick('host') ?? '127.0.0.1', port: pick('port') ?? 8443, profile: pick('profile') ?? 'v2',
  };
  for (const k of ['tls', 'signer', 'sam', 'trust', 'store'] as const) {
    if (!merged[k]) throw new InputError(`--${k} is required (on the command line or in --config)`);
  }
  const proxy = { warrants: pick('warrants'), onBehalfOf: pick('onBehalfOf'), ttp: pick('ttp'), ttpCert: pick('ttpCert'), fairDeadline: pick('fairDeadline'), log: pick('log'), logKey: pick('logKey') };
  if (Boolean(proxy.log) !== Boolean(proxy.logKey)) throw new InputError('--log and --log-key go together', 'give the log directory and the log key made by `qtm log init`');
  if (Boolean(proxy.ttp) !== Boolean(proxy.ttpCert)) throw new InputError('--ttp and --ttp-cert go together', 'give the TTP\'s URL and its escrow certificate (role ttp)');
  if (Boolean(proxy.warrants) !== Boolean(proxy.onBehalfOf)) throw new InputError('--warrants and --on-behalf-of go together', 'give the warrants folder and the certificate of the manager the server signs for');
  return { ...merged, ...proxy } as Required<Omit<StartOptions, 'config' | 'warrants' | 'onBehalfOf' | 'ttp' | 'ttpCert' | 'fairDeadline' | 'log' | 'logKey'>> & Pick<StartOptions, 'warrants' | 'onBehalfOf' | 'ttp' | 'ttpCert' | 'fairDeadline' | 'log' | 'logKey'>;
}

/** The server's side of the fair exchange: the TTP it offers, reached over HTTPS. */
function fairOptions(url: string, certFile: string, trustFile: string, deadlineSeconds: number): FairOptions {
  const certificates = certificatesFromPemBundle(readFileSync(certFile, 'utf8'), certFile);
  const client = new TtpClient(url, readFileSync(trustFile, 'utf8'));
  return { ttp: { url, certificates, request: (e, r) => client.request(e, r) }, deadlineSeconds };
}

export function serverCommand(): Command {
  const server = new Command('server').description('the merchant server: orders, QTM service, store');

  server.command('start')
    .description('serve HTTPS (TLS 1.3) orders and transactions until stopped')
    .option('--config <file>', 'JSON file with any of the options below as keys')
    .option('--tls <prefix>', 'TLS identity (PREFIX.pem, PREFIX-key.pem; role server)')
    .option('--signer <prefix>', 'receipt-signing identity, separate from TLS (role signer)')
    .option('--sam <file>', 'SAM keystore (passphrase QTM_SAM_PASSPHRASE)')
    .option('--trust <ca.pem>', 'CA that issued the customers\' cards')
    .option('--store <dir>', 'transaction store directory')
    .option('--catalogue <file>', 'catalogue JSON (default: the shipped sample)')
    .option('--host <address>', 'bind address (default 127.0.0.1)')
    .option('--port <n>', 'TCP port (default 8443; 0 picks a free one)', parsePort)
    .addOption(new Option('--profile <profile>', 'v2 (default) or v1').argParser(parseProfile))
    .option('--warrants <dir>', 'sign as party A by proxy, under the warrants in this folder (qtm warrant)')
    .option('--on-behalf-of <x.pem>', 'with --warrants: the manager whose warrants the server signs under')
    .option('--ttp <url>', 'offer the fair exchange (qtm sign --fair) through this TTP (qtm ttp start)')
    .option('--ttp-cert <ttp.pem>', 'with --ttp: the TTP\'s escrow certificate (role ttp)')
    .option('--fair-deadline <seconds>', 'with --ttp: time for a fair exchange before it is settled at the TTP (default 300)', parsePositiveInt)
    .option('--log <dir>', 'keep a transparency log of every signed transaction here; DIR/www is its C2SP tlog-tiles prefix for any static web server')
    .option('--log-key <prefix>', 'with --log: the log\'s signing key (qtm log init; passphrase QTM_KEY_PASSPHRASE)')
    .option('--log-witness <url>', 'with --log: push each checkpoint to this C2SP witness (qtm log witness-serve) and serve its cosignatures (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addHelpText('after', `
Key passphrases come from QTM_KEY_PASSPHRASE, the SAM's from QTM_SAM_PASSPHRASE (or prompts).
Logs one JSON line per request on stderr. With --warrants, a customer no valid warrant of the
manager covers is refused (HTTP 403 naming both).
` + examples(
      'qtm server start --tls keys/tls --signer keys/receipts --sam shop.sam --trust ca/ca.pem --store ./store',
      'qtm server start --config server.json --warrants ./warrants --on-behalf-of keys/xavier.pem',
      'qtm server start --config server.json --port 9443',
      'qtm server start --config server.json --log ./tlog --log-key keys/log'))
    .action(async (o: StartOptions) => {
      const c = withConfig(o);
      if (o.logWitness?.length && !c.log) throw new InputError('--log-witness needs --log and --log-key');
      const keyPass = await readSecret(KEY_PASSPHRASE);
      const running = await startServer({
        tls: readIdentity(c.tls, keyPass),
        signer: readIdentity(c.signer, keyPass),
        sam: openSam(c.sam, await readSecret(SAM_PASSPHRASE)),
        trustAnchors: loadTrustAnchors([c.trust]),
        storeDir: c.store,
        catalogue: loadCatalogue(c.catalogue),
        profile: PROFILES[c.profile],
        host: c.host,
        port: c.port,
        ...(c.log && c.logKey ? { transparency: { dir: c.log, signer: ed25519NoteSigner(readNoteKey(c.logKey, keyPass, SIG_TYPE_ED25519)), ...(o.logWitness?.length ? { witnesses: o.logWitness } : {}) } } : {}),
        ...(c.ttp && c.ttpCert ? { fair: fairOptions(c.ttp, c.ttpCert, c.trust, c.fairDeadline ?? 300) } : {}),
        ...(c.warrants && c.onBehalfOf ? {
          proxy: { registry: WarrantRegistry.open(c.warrants, keyPass), manager: certificatesFromPemBundle(readFileSync(c.onBehalfOf, 'utf8'), c.onBehalfOf) },
        } : {}),
      });
      diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'listening', url: running.url, serverId: running.service.serverId.toString('hex'), stored: running.store.lastTransactionId(), ...(running.transparency ? { log: running.transparency.www, logSize: running.transparency.size } : {}) }));
      await new Promise<void>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
      });
      await running.close();
      diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'stopped' }));
    });

  server.command('attest')
    .description('attest, from the store, a package version 2 proof signed by proxy (its signature does not bind the warrant)')
    .argument('<bundle>', 'the proof bundle (.json) to attest')
    .requiredOption('--store <dir>', 'the transaction store of the server that signed it')
    .requiredOption('--signer <prefix>', 'the receipt-signing identity (key passphrase from QTM_KEY_PASSPHRASE)')
    .option('--out <file>', 'write the attested bundle here (default: stdout)')
    .addHelpText('after', `
Refuses (exit 1) unless the store holds this exact package, signed under this exact warrant.
Reads the store without locking it, so it can run beside the server.
` + examples('qtm server attest old-proxy-receipt.json --store ./store --signer keys/receipts --out attested.json'))
    .action(async (file: string, o: { store: string; signer: string; out?: string }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        throw new InputError(`cannot read ${file}`);
      }
      const bundle = decodeBundle(text);
      const signer = readIdentity(o.signer, await readSecret(KEY_PASSPHRASE));
      const store = LogStore.open(o.store, { readOnly: true });
      try {
        const attested = encodeBundle(attestProxyBundle(store, bundle, signer));
        if (o.out) writeFileAtomic(o.out, attested);
        else out.line(attested.trimEnd());
      } finally {
        await store.close();
      }
    });

  server.command('audit')
    .description('re-verify every stored transaction; tampering in the store is reported')
    .requiredOption('--store <dir>', 'transaction store directory')
    .requiredOption('--signer-cert <file>', 'the receipt-signing certificate (PREFIX.pem)')
    .requiredOption('--trust <ca.pem>', 'trusted CA')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Reads the store without locking it, so it can run beside the server.
Exit codes: 0 everything verifies, 1 some record is tampered with, 2 unusable input.
` + examples('qtm server audit --store ./store --signer-cert keys/receipts.pem --trust ca/ca.pem'))
    .action(async (o: { store: string; signerCert: string; trust: string; json?: boolean }) => {
      const signer = certificatesFromPemBundle(readFileSync(o.signerCert, 'utf8'), o.signerCert).map((c) => c.toString());
      // Read-only: safe beside a running server, and damaged lines are reported, not fatal.
      const store = LogStore.open(o.store, { readOnly: true });
      const trust = loadTrustAnchors([o.trust]);
      const counts = store.countByState();
      const progress = new Progress(counts.prepared + counts.confirmed + counts.delivered, 'auditing');
      const report = auditStore(store, signer, trust, (done) => progress.tick(done));
      progress.done();
      await store.close();
      const bad = report.tampered.length + report.damagedLines.length;
      if (o.json) out.json(report);
      else {
        out.line(`${report.total} transactions: ${report.byState.delivered} delivered, ${report.byState.confirmed} signed but not acknowledged, ${report.byState.prepared} prepared only`);
        out.line(bad ? out.colour.red(`${bad} TAMPERED:`) : out.colour.green('every stored record verifies'));
        for (const line of report.damagedLines) out.line(`  line ${line} of the log is not a readable entry`);
        for (const t of report.tampered) out.line(`  transaction ${t.transactionId} (${t.state}): ${t.problems.join('; ')}`);
      }
      process.exitCode = bad ? 1 : 0;
    });
  return server;
}
