import { Command, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { examples } from '../cli/options.js';
import { diag, out, Progress } from '../cli/output.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { decodeBundle, encodeBundle } from '../bundle/proof-bundle.js';
import { InputError } from '../errors.js';
import { LogStore } from '../store/log-store.js';
import { isPostgresUrl, PgStore } from '../store/pg-store.js';
import { signedLeaves } from '../server/run-server.js';
import { writeFileAtomic } from '../util/fs.js';
import { auditStoreAgainstLog, monitor, proveInclusion, upgradeProof, witness } from '../tlog/client-ops.js';
import { decodeMonitorKeyFile } from '../tlog/card-tag.js';
import { cosigner } from '../tlog/cosignature.js';
import { readNoteKey, readVkeyFile, writeNewNoteKey } from '../tlog/log-key.js';
import { decodeNote, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519 } from '../tlog/note.js';
import { sourceFor } from '../tlog/tile-source.js';
import { mirror } from '../tlog/mirror.js';
import { KEY_PASSPHRASE } from '../cli/secret-sources.js';

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new InputError(`cannot read ${file}`);
  }
}

function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d{1,15}$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Where the log and witness keys' passphrase comes from (the same as for every other key: src/cli/secrets.ts). */
const KEY_PASSPHRASE_HELP = 'The key passphrase comes from --passphrase-file FILE (its first line; or --key-passphrase-file),\nQTM_KEY_PASSPHRASE, or a masked prompt on a terminal.';

export function logCommand(): Command {
  const log = new Command('log').description('the transparency log: keys, inclusion proofs, witnesses, monitors, audits, mirrors (C2SP tlog-tiles)');

  secretOptions(log.command('init'), [KEY_PASSPHRASE])
    .description('create the log\'s own Ed25519 signing key (separate from the receipt and TLS keys)')
    .requiredOption('--out <prefix>', 'write PREFIX-key.pem (encrypted with the key passphrase) and PREFIX.vkey')
    .requiredOption('--origin <name>', 'the log\'s name, the checkpoint origin (a schema-less URL: shop.example/log)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
The .vkey is public: give it to auditors (qtm verify --log-key) and witnesses. The private key
is never printed.
${KEY_PASSPHRASE_HELP}
` + examples('qtm log init --out keys/log --origin shop.example/log', 'qtm log init --out keys/log --origin shop.example/log --passphrase-file ~/.config/qtm/key.pass',
      'qtm server start --config server.json --log ./tlog --log-key keys/log'))
    .action(async (o: { out: string; origin: string; json?: boolean }) => {
      const pass = await readSecret({ ...KEY_PASSPHRASE, confirm: true, minLength: 8 }, o);
      const r = writeNewNoteKey(o.out, o.origin, SIG_TYPE_ED25519, pass);
      if (o.json) out.json({ vkey: r.vkey, files: r.paths });
      else out.line(`log key ${r.vkey}\n  private ${r.paths.key} (encrypted)\n  public  ${r.paths.vkey}`);
    });

  secretOptions(log.command('witness-key'), [KEY_PASSPHRASE])
    .description('create a witness\'s cosigning key (C2SP cosignature/v1, type 0x04)')
    .requiredOption('--out <prefix>', 'write PREFIX-key.pem (encrypted with the key passphrase) and PREFIX.vkey')
    .requiredOption('--name <name>', 'the witness\'s name (a schema-less URL: witness.example/w1)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
${KEY_PASSPHRASE_HELP}
` + examples('qtm log witness-key --out keys/w1 --name witness.example/w1', 'qtm log witness-key --out keys/w1 --name witness.example/w1 --passphrase-file w1.pass'))
    .action(async (o: { out: string; name: string; json?: boolean }) => {
      const pass = await readSecret({ ...KEY_PASSPHRASE, confirm: true, minLength: 8 }, o);
      const r = writeNewNoteKey(o.out, o.name, SIG_TYPE_COSIGNATURE_V1, pass);
      if (o.json) out.json({ vkey: r.vkey, files: r.paths });
      else out.line(`witness key ${r.vkey}\n  private ${r.paths.key} (encrypted)\n  public  ${r.paths.vkey}`);
    });

  log.command('prove')
    .description('add to a proof bundle the inclusion proof of its transaction in the log, or move its proof to a newer (witnessed) checkpoint')
    .argument('<bundle>', 'the proof bundle (.json)')
    .requiredOption('--log <dir-or-url>', 'the log\'s served prefix: its www/ directory or https://.../log/')
    .requiredOption('--log-key <vkey>', 'the log\'s public key (.vkey file or vkey text)')
    .option('--witness <vkey>', 'prove against the log\'s latest witnessed checkpoint (cosigned/latest), which must carry this witness\'s cosignature (repeatable)', collect, [])
    .option('--witness-quorum <k>', 'with --witness: cosignatures required (default: all given witnesses)', parseNonNegativeInt)
    .option('--checkpoint <file>', 'prove against this checkpoint (e.g. one witnesses cosigned) instead of the log\'s latest')
    .option('--index <n>', 'the leaf index, if the bundle has none (otherwise the entry bundles are scanned: ~5 s at 1M entries)', parseNonNegativeInt)
    .option('--out <file>', 'write the bundle here (default: stdout)')
    .option('--json', 'print the leaf and checkpoint as JSON instead of the bundle (with --out)')
    .addHelpText('after', `
A receipt from a server with a log already carries its proof against the log's own checkpoint of
the commit that stored it (log-signed only). Later, once witnesses cosigned a checkpoint, run this
with --witness to move the proof there: the new checkpoint must extend the bundle's (consistency),
and the leaf index the bundle has is kept.
Exit codes: 0 proven, 1 the transaction is not in the log, the log forked, or too few witnesses
cosigned (nothing is written), 2 unusable input.
` + examples('qtm log prove receipt.json --log ./tlog/www --log-key keys/log.vkey --out receipt-logged.json',
      'qtm log prove receipt.json --log https://shop.example/log/ --log-key shop-log.vkey --witness w1.vkey --witness w2.vkey --witness-quorum 1 --out receipt.json',
      'qtm log prove receipt.json --log ./tlog/www --log-key keys/log.vkey --checkpoint cosigned.txt --out r.json'))
    .action(async (file: string, o: { log: string; logKey: string; witness: string[]; witnessQuorum?: number; checkpoint?: string; index?: number; out?: string; json?: boolean }) => {
      const bundle = decodeBundle(readText(file));
      const { decodePackage } = await import('../protocol/qtm-package.js');
      const pkg = decodePackage(bundle.package);
      const leaf = { transactionId: pkg.transactionId, package: bundle.package };
      const logKey = readVkeyFile(o.logKey);
      if (o.witness.length && o.checkpoint) throw new InputError('give --witness or --checkpoint, not both');
      if (o.witnessQuorum !== undefined && (!o.witness.length || o.witnessQuorum < 1 || o.witnessQuorum > o.witness.length)) throw new InputError(`--witness-quorum must be 1 to ${o.witness.length} and needs --witness`);
      const had = bundle.transparency && o.index === undefined ? bundle.transparency : undefined;
      let t, status = 'proven';
      if (o.witness.length || (had && !o.checkpoint)) {
        const witnesses = o.witness.length ? { keys: o.witness.map((w) => readVkeyFile(w, [SIG_TYPE_COSIGNATURE_V1])), quorum: o.witnessQuorum ?? o.witness.length } : undefined;
        ({ proof: t, status } = await upgradeProof(sourceFor(o.log), logKey, leaf, had, witnesses));
      } else {
        t = await proveInclusion(sourceFor(o.log), logKey, leaf,
          { ...(o.checkpoint ? { checkpoint: readText(o.checkpoint) } : {}), ...(o.index !== undefined ? { index: o.index } : had ? { index: had.index } : {}) });
      }
      const text = encodeBundle({ ...bundle, transparency: t });
      if (o.out) writeFileAtomic(o.out, text);
      const cosignatures = decodeNote(t.checkpoint).signatures.length - 1;
      if (o.json) out.json({ transactionId: pkg.transactionId, index: t.index, proofHashes: t.proof.length, size: Number(t.checkpoint.split('\n')[1]), cosignatures, status, checkpoint: t.checkpoint });
      else if (!o.out) out.line(text.trimEnd());
      else diag.line(`transaction ${pkg.transactionId}: leaf ${t.index} of the tree of size ${t.checkpoint.split('\n')[1]}, ${cosignatures ? `${cosignatures} cosignature(s)` : 'log-signed only'}; ${status}`);
    });

  secretOptions(log.command('witness'), [KEY_PASSPHRASE])
    .description('cosign the log\'s checkpoint after checking it extends the last one this witness cosigned; refuse a fork or a shrink')
    .requiredOption('--log <dir-or-url>', 'the log\'s served prefix')
    .requiredOption('--log-key <vkey>', 'the log\'s public key')
    .requiredOption('--key <prefix>', 'the witness key (PREFIX-key.pem, PREFIX.vkey)')
    .requiredOption('--state <file>', 'the last cosigned checkpoint (size and root), created on first use')
    .option('--out <file>', 'write the cosigned checkpoint here (default: stdout)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Run it on a schedule.
${KEY_PASSPHRASE_HELP}
Exit codes: 0 cosigned, 1 REFUSED (the log forked or shrank: nothing is signed and the state is
kept) or a wrong passphrase, 2 unusable input (an unreadable passphrase file included).
` + examples('qtm log witness --log https://shop.example/log/ --log-key shop-log.vkey --key keys/w1 --state w1-state.json --out cosigned.txt',
      'qtm log witness --log https://shop.example/log/ --log-key shop-log.vkey --key keys/w1 --state w1-state.json --passphrase-file /etc/qtm/w1.pass'))
    .action(async (o: { log: string; logKey: string; key: string; state: string; out?: string; json?: boolean }) => {
      const w = cosigner(readNoteKey(o.key, await readSecret(KEY_PASSPHRASE, o), SIG_TYPE_COSIGNATURE_V1));
      const r = await witness(sourceFor(o.log), readVkeyFile(o.logKey), w, o.state);
      if (o.out) writeFileAtomic(o.out, r.cosigned);
      if (o.json) out.json({ origin: r.checkpoint.origin, size: r.checkpoint.size, root: r.checkpoint.root.toString('base64'), status: r.status, cosigned: r.cosigned });
      else if (o.out) out.line(`cosigned ${r.checkpoint.origin} at size ${r.checkpoint.size}: ${r.status}`);
      else out.line(r.cosigned.trimEnd());
    });

  secretOptions(log.command('witness-serve'), [KEY_PASSPHRASE])
    .description('run a C2SP tlog-witness: POST /add-checkpoint cosigns a checkpoint whose consistency proof extends the last one it cosigned')
    .requiredOption('--key <prefix>', 'the witness key (PREFIX-key.pem, PREFIX.vkey)')
    .requiredOption('--log-key <vkey>', 'a log this witness follows (repeatable)', collect, [])
    .requiredOption('--state-dir <dir>', 'where the last cosigned checkpoint of each log is kept')
    .option('--host <address>', 'bind address', '127.0.0.1')
    .option('--port <n>', 'TCP port (0: a free one, printed)', '0')
    .addHelpText('after', `
Prints one JSON line {"event":"listening","url":...} on stderr, and one per request.
Answers as C2SP tlog-witness v1.0.0: 200 cosignature lines, 409 with the last cosigned size or on a
fork, 422 for a consistency proof that does not verify, 403/404 for unknown keys or logs.
${KEY_PASSPHRASE_HELP}
` + examples('qtm log witness-serve --key keys/w1 --log-key shop-log.vkey --state-dir ./w1-state --port 8450',
      'qtm log witness-serve --key keys/w1 --log-key shop-log.vkey --state-dir ./w1-state --passphrase-file /etc/qtm/w1.pass'))
    .action(async (o: { key: string; logKey: string[]; stateDir: string; host: string; port: string }) => {
      const { createWitnessServer } = await import('../tlog/witness-server.js');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
      const w = cosigner(readNoteKey(o.key, await readSecret(KEY_PASSPHRASE, o), SIG_TYPE_COSIGNATURE_V1));
      const server = createWitnessServer({ logs: o.logKey.map((k) => readVkeyFile(k)), cosigner: w, stateDir: o.stateDir, log: (l) => process.stderr.write(`${JSON.stringify(l)}\n`) });
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(Number(o.port), o.host, () => resolve()); });
      const addr = server.address() as import('node:net').AddressInfo;
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'listening', url: `http://${o.host}:${addr.port}/`, witness: w.name })}\n`);
      await new Promise<void>((resolve) => { for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve()); });
      await new Promise<void>((r) => server.close(() => r()));
    });

  log.command('push')
    .description('send the log\'s checkpoint with a consistency proof to a witness (C2SP tlog-witness add-checkpoint) and keep its cosignature')
    .requiredOption('--log <dir-or-url>', 'the log\'s served prefix')
    .requiredOption('--log-key <vkey>', 'the log\'s public key')
    .requiredOption('--witness <url>', 'the witness\'s submission prefix (http://host:port/)')
    .option('--out <file>', 'write the cosigned checkpoint here (default: stdout); give it to qtm log prove --checkpoint')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Exit codes: 0 cosigned, 1 the witness refused (a fork, a shrink, a proof that does not verify),
2 unusable input or an unreachable witness.
` + examples('qtm log push --log ./tlog/www --log-key keys/log.vkey --witness http://witness.example:8450/ --out cosigned.txt'))
    .action(async (o: { log: string; logKey: string; witness: string; out?: string; json?: boolean }) => {
      const { pushToWitness } = await import('../tlog/witness-server.js');
      const { fetchCheckpoint } = await import('../tlog/client-ops.js');
      const src = sourceFor(o.log);
      const { text, checkpoint } = await fetchCheckpoint(src, readVkeyFile(o.logKey));
      const cosigned = await pushToWitness(src, text, o.witness);
      if (o.out) writeFileAtomic(o.out, cosigned);
      if (o.json) out.json({ origin: checkpoint.origin, size: checkpoint.size, cosigned });
      else if (o.out) out.line(`${o.witness} cosigned ${checkpoint.origin} at size ${checkpoint.size}`);
      else out.line(cosigned.trimEnd());
    });

  log.command('monitor')
    .description('follow the log: check each checkpoint extends the last, the new entries against it, find given receipts, and list a card\'s leaves')
    .requiredOption('--log <dir-or-url>', 'the log\'s served prefix')
    .requiredOption('--log-key <vkey>', 'the log\'s public key')
    .requiredOption('--state <file>', 'the last checkpoint seen, the tree\'s right edge and the cards\' leaves found, created on first use')
    .option('--watch <bundle>', 'a proof bundle whose transaction must be in the log (repeatable)', collect, [])
    .option('--card-key <file>', 'a card\'s monitoring key (from the client archive\'s monitor-keys/): list every leaf tagged for that card (repeatable)', collect, [])
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Each run reads only the entries added since the last (the state keeps the tree's right edge); a card
key given for the first time reads the log from the start once. A card's leaves are those whose tag
its monitoring key gives: compare them with the receipts you hold (each bundle names its leaf index);
a leaf you hold no receipt for is a transaction made with your card that you did not see.
Exit codes: 0 consistent and every watched transaction found, 1 a fork, a shrink, a bad entry or a
watched transaction missing, 2 unusable input.
` + examples('qtm log monitor --log ./tlog/www --log-key keys/log.vkey --state monitor.json --watch receipts/*.json',
      'qtm log monitor --log https://shop.example/log/ --log-key shop-log.vkey --state monitor.json --card-key ~/.local/share/qtm/archive/monitor-keys/shop.example_log-1a2b3c4d5e6f7a8b.key'))
    .action(async (o: { log: string; logKey: string; state: string; watch: string[]; cardKey: string[]; json?: boolean }) => {
      const { decodePackage } = await import('../protocol/qtm-package.js');
      const watch = o.watch.map((f) => {
        const b = decodeBundle(readText(f));
        return { label: f, leaf: { transactionId: decodePackage(b.package).transactionId, package: b.package, ...(b.transparency?.tag ? { tag: b.transparency.tag } : {}) }, ...(b.transparency ? { index: b.transparency.index } : {}) };
      });
      const cards = o.cardKey.map((f) => ({ label: f, ...decodeMonitorKeyFile(readText(f)) }));
      const r = await monitor(sourceFor(o.log), readVkeyFile(o.logKey), o.state, watch, cards);
      if (o.json) out.json(r);
      else {
        out.line(`${r.origin} at size ${r.size}: ${r.status}; ${r.newEntries} new entries checked`);
        for (const f of r.found) out.line(`  found ${f.label} at leaf ${f.index}`);
        for (const m of r.missing) out.line(out.colour.red(`  MISSING ${m}: its transaction is not in the log`));
        for (const c of r.cards) out.line(`  card ${c.cardKey.slice(0, 16)}… (${c.label}): ${c.leaves.length} leaves${c.leaves.length ? ` [${c.leaves.join(', ')}]` : ''}${c.new.length ? `, new: ${c.new.join(', ')}` : ''}`);
      }
      process.exitCode = r.missing.length ? 1 : 0;
    });

  log.command('mirror')
    .description('copy the log (a directory or a server\'s /log/) into a directory any static web server can serve, checking every tile against the signed checkpoint first')
    .requiredOption('--log <dir-or-url>', 'the log\'s served prefix: its www/ directory or https://.../log/')
    .requiredOption('--log-key <vkey>', 'the log\'s public key (.vkey file or vkey text)')
    .requiredOption('--out <dir>', 'the mirror: serve this directory as the log\'s prefix (created on first use)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Run it on a schedule. The checkpoint must be signed by --log-key and extend the one the mirror
already serves (RFC 9162 consistency proof); every tile fetched must be committed to by it (the
tiles rebuild the signed root, each entry hashes to its tile). Tiles are written first, each by
rename, and the checkpoint last, so the mirror never serves a checkpoint whose tiles are missing.
Tiles the mirror already holds are not fetched again; older partial tiles are kept. The witnessed
checkpoints (cosigned/<size>, cosigned/latest) are copied as they are: verifiers check them.
A PostgreSQL shop's log is served only by its instances (https://HOST:PORT/log/); mirror it to
publish it statically. With a private CA set NODE_EXTRA_CA_CERTS to its certificate.
Exit codes: 0 mirrored (or already up to date), 1 the log misbehaves (a checkpoint not signed by
the key, LOG FORKED, LOG SHRANK, a tile missing or not committed to by the checkpoint: nothing is
written), 2 unusable input (an unreachable log, a --out that mirrors another log).
` + examples('qtm log mirror --log https://shop.example:8443/log/ --log-key keys/log.vkey --out /var/www/log',
      'qtm log mirror --log ./tlog/www --log-key keys/log.vkey --out ./mirror --json',
      'qtm log monitor --log ./mirror --log-key keys/log.vkey --state monitor.json'))
    .action(async (o: { log: string; logKey: string; out: string; json?: boolean }) => {
      let progress: Progress | undefined;
      const r = await mirror(sourceFor(o.log), readVkeyFile(o.logKey), o.out, {
        onProgress: (done, total) => { (progress ??= new Progress(total, 'fetching tiles')).tick(done); },
      });
      progress?.done();
      if (o.json) out.json(r);
      else {
        const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
        out.line(`${r.origin}: mirrored size ${r.size} (was ${r.previousSize}); ${r.status}`);
        out.line(`  fetched ${r.fetched.tiles} tiles (${kib(r.fetched.bytes)}), kept ${r.kept} already mirrored; wrote ${r.written.files.length} files (${r.written.tiles} tiles, ${kib(r.written.bytes)})`);
        if (r.cosigned.written.length) out.line(`  witnessed: ${r.cosigned.written.join(', ')}`);
        for (const s of r.cosigned.skipped) diag.line(`  left out ${s.path}: ${s.reason}`);
      }
    });

  log.command('audit')
    .description('compare the store\'s signed transactions with the log\'s leaves and its signed root')
    .requiredOption('--store <dir-or-url>', 'the server\'s transaction store: a directory (read without locking) or postgres://...')
    .requiredOption('--log <dir-or-url>', 'the log\'s served prefix')
    .requiredOption('--log-key <vkey>', 'the log\'s public key')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Exit codes: 0 same set, 1 a signed transaction missing from the log (dropped), a leaf the store
does not hold, or tiles that do not rebuild the signed root; 2 unusable input.
` + examples('qtm log audit --store ./store --log ./tlog/www --log-key keys/log.vkey',
      'qtm log audit --store postgres://auditor@db.example/qtm --log https://shop.example:8443/log/ --log-key keys/log.vkey'))
    .action(async (o: { store: string; log: string; logKey: string; json?: boolean }) => {
      const store = isPostgresUrl(o.store) ? await PgStore.open(o.store, { readOnly: true }) : LogStore.open(o.store, { readOnly: true });
      try {
        const r = await auditStoreAgainstLog(sourceFor(o.log), readVkeyFile(o.logKey), signedLeaves(store));
        if (o.json) out.json(r);
        else {
          out.line(`${r.origin} at size ${r.size}; store holds ${r.storeSigned} signed transactions`);
          out.line(r.ok ? out.colour.green('the log and the store hold the same transactions') : out.colour.red('THE LOG AND THE STORE DIFFER:'));
          if (r.missingFromLog.length) out.line(`  signed but not in the log: transactions ${r.missingFromLog.join(', ')}`);
          if (r.leavesNotInStore.length) out.line(`  leaves the store does not hold: ${r.leavesNotInStore.join(', ')}`);
          if (r.duplicateLeaves.length) out.line(`  duplicate leaves: ${r.duplicateLeaves.join(', ')}`);
        }
        process.exitCode = r.ok ? 0 : 1;
      } finally {
        await store.close();
      }
    });
  return log;
}
