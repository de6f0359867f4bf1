import { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter } from 'node:path';
import { examples, parseNonNegativeInt, parseTime } from '../cli/options.js';
import { diag, getVerbosity, out, Progress } from '../cli/output.js';
import { debugEnabled, INTERNAL_ERROR_EXIT } from '../cli/run.js';
import { MAX_BUNDLE_BYTES } from '../bundle/proof-bundle.js';
import { InputError } from '../errors.js';
import { collectBundleFiles } from '../verify/collect.js';
import { readCrlFile } from '../warrant/crl.js';
import { loadTrustAnchors } from '../verify/trust.js';
import { exitCodeFor, summarise, verifyFile, type FileResult } from '../verify/verify-files.js';
import { readVkeyFile } from '../tlog/log-key.js';
import { SIG_TYPE_COSIGNATURE_V1 } from '../tlog/note.js';
import type { LogTrust } from '../tlog/bundle-proof.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function short(hex: string | undefined): string {
  return hex ? `${hex.slice(0, 16)}…` : '?';
}

function printReport(r: FileResult, many: boolean): void {
  const c = out.colour;
  if (r.status === 'unusable') {
    out.line(`${c.yellow('UNUSABLE')} ${r.file}: ${r.error}`);
    return;
  }
  const head = r.status === 'valid' ? c.green('VALID') : c.red('INVALID');
  const legacy = r.legacy ? c.yellow(' [legacy v1 profile]') : '';
  // Without a decodable package there is no transaction to name: say so rather than "undefined".
  const what = r.transactionId !== undefined
    ? `transaction ${r.transactionId} at ${r.time ?? '?'} on server ${short(r.serverId)}`
    : 'no transaction can be named (the package does not decode)';
  out.line(`${head} ${r.file}: ${what}${legacy}`);
  if (r.status === 'invalid') {
    for (const f of r.failures) out.line(`  ${c.red('✘')} ${f.name}: ${f.detail}`);
    return;
  }
  if (many) return;
  out.line(`  server   ${r.server?.subject} signed ${r.packageVersion === 3 ? 'fields 1-7 and the warrant digest' : 'fields 1-5'} (the receipt)`);
  if (r.warrant) {
    const proxy = r.checks.find((x) => x.name === 'warrant');
    out.line(`  party A  ${proxy?.detail ?? `by proxy for ${r.warrant.onBehalfOf}`}; signed fields 1-7`);
  } else {
    out.line(`  party A  ${r.partyA?.subject} signed fields 1-7`);
  }
  out.line(`  party B  ${r.partyB?.subject} signed fields 1-7`);
  out.line(`  content  ${r.profile === 'v1' ? 'sha1' : 'sha256'} ${r.contentId}`);
  for (const l of r.checks.filter((x) => x.name.startsWith('log-') && !x.warning)) out.line(`  ${l.name.padEnd(8)} ${l.detail}`);
  out.line(`  checked  ${r.checks.length} checks; certificates valid at ${r.evaluatedAt}`);
  for (const w of r.checks.filter((x) => x.warning)) out.line(`  ${c.yellow('!')} ${w.detail}`);
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description('verify proof bundles offline against trust anchors (no network)')
    .argument('<bundle...>', 'bundle files, directories of *.json bundles, quoted globs, or - for standard input')
    .option('--trust <ca.pem|dir>', 'trusted root CA certificate(s), or a directory of them; repeatable (or QTM_TRUST)', collect, [])
    .option('--content <file>', 'the content, for bundles that do not carry it (- for standard input)')
    .option('--at <time>', 'check certificate validity at this time instead of the transaction time', parseTime)
    .option('--revocations <X.crl>', 'the warrant issuer X\'s revocation list (X.509 CRL from X, PEM or DER, signed by X): a proxy signature dated later than a revocation minus T fails')
    .option('--clock-tolerance <seconds>', 'T: how far a signing client let the record time differ from its clock (default 120, as qtm sign)', parseNonNegativeInt)
    .option('--log-key <vkey>', 'the server\'s transparency log key (.vkey file or text): the bundle must prove its inclusion (checks log-checkpoint, log-inclusion)')
    .option('--witness <vkey>', 'with --log-key: a witness key (cosignature/v1) whose cosignature counts (repeatable; check log-witnesses)', collect, [])
    .option('--witness-quorum <k>', 'with --witness: cosignatures required (default: all given witnesses)')
    .option('--json', 'print results as JSON')
    .addHelpText('after', `
Exit codes: 0 all valid, 1 at least one invalid, 2 at least one unusable (unreadable, not a bundle),
3 internal error on some file (every other file is still checked and reported).
Revocation: only X's own list counts (ask X for it: \`qtm warrant revoke\` writes it). A server may
have backdated a record by up to T seconds unnoticed, so a proxy signature dated within T before a
revocation fails too. The report gives the list's number and thisUpdate, and says "revocation
status unknown" when the list is older than the transaction.
A file over ${MAX_BUNDLE_BYTES / 1024} KiB is unusable without being read: no genuine bundle is that large
(content at most 64 KiB, at most 8 certificates of 8 KiB per list; docs/FORMATS.md "Size caps").
` + examples(
      'qtm verify receipt.json --trust ca.pem',
      'qtm verify archive/ --trust ca.pem --json > report.json',
      'qtm verify order.json --content order.txt --trust ca.pem',
      'jq .bundle response.json | qtm verify - --trust /etc/qtm/anchors/',
      'QTM_TRUST=ca.pem qtm verify receipt.json',
      "qtm verify 'proofs/*.json' --trust ca.pem --trust old-ca.pem",
      'qtm verify proxy-receipt.json --trust ca.pem --revocations xavier.crl',
      'qtm verify receipt-logged.json --trust ca.pem --log-key shop-log.vkey',
      'qtm verify receipt-logged.json --trust ca.pem --log-key shop-log.vkey --witness w1.vkey --witness w2.vkey --witness-quorum 1'))
    .action((bundles: string[], o: { trust: string[]; content?: string; at?: Date; revocations?: string; clockTolerance?: number; json?: boolean; logKey?: string; witness: string[]; witnessQuorum?: string }) => {
      // QTM_TRUST is honoured here as by sign: one path, or several joined with ':'.
      const trust = o.trust.length ? o.trust : (process.env.QTM_TRUST ?? '').split(delimiter).filter(Boolean);
      const trustAnchors = loadTrustAnchors(trust);
      if (o.content === '-' && bundles.includes('-')) throw new InputError('only one of the bundle and --content can come from standard input');
      if ((o.witness.length || o.witnessQuorum) && !o.logKey) throw new InputError('--witness and --witness-quorum need --log-key');
      const quorum = o.witnessQuorum === undefined ? o.witness.length : Number(o.witnessQuorum);
      if ((o.witness.length || o.witnessQuorum) && (!Number.isInteger(quorum) || quorum < 1 || quorum > o.witness.length)) {
        throw new InputError(`--witness-quorum must be 1 to ${o.witness.length}`);
      }
      const log: LogTrust | undefined = o.logKey
        ? { logKey: readVkeyFile(o.logKey), ...(o.witness.length ? { witnesses: o.witness.map((w) => readVkeyFile(w, [SIG_TYPE_COSIGNATURE_V1])), quorum } : {}) }
        : undefined;
      if (o.revocations && !existsSync(o.revocations)) throw new InputError(`no revocation list at ${o.revocations}`);
      if (o.revocations && /^\s*\{/.test(readFileSync(o.revocations).subarray(0, 64).toString('latin1'))) {
        throw new InputError(`${o.revocations}: an unsigned JSON revocation list is no longer accepted`, 'ask the warrant issuer for its signed list (`qtm warrant revoke --import-json` signs an old one in)', 'E_CRL');
      }
      const revocations = o.revocations ? readCrlFile(o.revocations) : undefined;
      let content: Buffer | undefined;
      if (o.content) {
        try {
          content = readFileSync(o.content === '-' ? 0 : o.content);
        } catch {
          throw new InputError(`cannot read content file ${o.content}`);
        }
      }
      const files = collectBundleFiles(bundles);
      const progress = new Progress(files.length, 'verifying');
      const results: FileResult[] = [];
      const many = files.length > 1;
      let internal = 0;
      for (const file of files) {
        let r: FileResult;
        try {
          r = verifyFile(file, { trustAnchors, ...(content ? { content } : {}), ...(o.at ? { at: o.at } : {}), ...(revocations ? { revocations } : {}), ...(o.clockTolerance !== undefined ? { clockToleranceSeconds: o.clockTolerance } : {}), ...(log ? { log } : {}) });
        } catch (err) {
          // A bug met on one file must not hide the verdicts on the others: report it, go on, exit 3.
          internal++;
          if (debugEnabled()) diag.line((err as Error)?.stack ?? String(err));
          r = { file, status: 'unusable', error: `internal error: ${(err as Error)?.message ?? String(err)} (run again with --debug and report the output)` };
        }
        results.push(r);
        progress.tick(results.length);
        // -q: only what is wrong (and the summary); -v: every check of every proof.
        if (!o.json && !(getVerbosity() === 'quiet' && r.status === 'valid')) {
          if (many) progress.done();
          printReport(r, many);
          if (getVerbosity() === 'verbose' && r.status !== 'unusable') for (const ch of r.checks) out.line(`  ${ch.ok ? out.colour.green('✔') : out.colour.red('✘')} ${ch.name}: ${ch.detail}`);
        }
      }
      progress.done();
      const summary = summarise(results);
      if (o.json) {
        out.json({ summary, results });
      } else if (many || summary.total > 1) {
        out.line(`${summary.total} bundles: ${summary.valid} valid, ${summary.invalid} invalid, ${summary.unusable} unusable${summary.legacy ? `, ${summary.legacy} legacy v1` : ''}`);
      }
      process.exitCode = internal > 0 ? INTERNAL_ERROR_EXIT : exitCodeFor(summary);
    });
}
