import { Command } from 'commander';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, resolve } from 'node:path';
import { examples, parseNonNegativeInt, parsePositiveInt, parseTime } from '../cli/options.js';
import { diag, getVerbosity, out } from '../cli/output.js';
import { CANCELLED_EXIT, debugEnabled, INTERNAL_ERROR_EXIT } from '../cli/run.js';
import { MAX_BUNDLE_BYTES } from '../bundle/proof-bundle.js';
import { InputError } from '../errors.js';
import { ArchiveRun, type RunOutcome, type RunProgress } from '../verify/archive-run.js';
import { bundleRoots, isSingleBundle } from '../verify/collect.js';
import { walkBundles } from '../verify/walk.js';
import { readState, removeState, runKey, type RunCounts } from '../verify/run-state.js';
import { readCrlFile } from '../warrant/crl.js';
import { loadTrustAnchors } from '../verify/trust.js';
import { exitCodeFor, readStdinCapped, STDIN, summarise, verifyFile, type FileResult } from '../verify/verify-files.js';
import type { VerifyOptions } from '../verify/verify-bundle.js';
import { setupOf, type BatchResult } from '../verify/worker-setup.js';
import { encodeVkey } from '../tlog/note.js';
import { removeStaleTemps } from '../util/fs.js';
import { readVkeyFile } from '../tlog/log-key.js';
import { SIG_TYPE_COSIGNATURE_V1 } from '../tlog/note.js';
import type { LogTrust } from '../tlog/bundle-proof.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function short(hex: string | undefined): string {
  return hex ? `${hex.slice(0, 16)}…` : '?';
}

/** The report of one bundle as lines: one line when `many`, the parties and checks for one proof. */
function reportLines(r: FileResult, many: boolean): string[] {
  const c = out.colour;
  const lines: string[] = [];
  if (r.status === 'unusable') return [`${c.yellow('UNUSABLE')} ${r.file}: ${r.error}`];
  const head = r.status === 'valid' ? c.green('VALID') : c.red('INVALID');
  const legacy = r.legacy ? c.yellow(' [legacy v1 profile]') : '';
  // Without a decodable package there is no transaction to name: say so rather than "undefined".
  const what = r.transactionId !== undefined
    ? `transaction ${r.transactionId} at ${r.time ?? '?'} on server ${short(r.serverId)}`
    : 'no transaction can be named (the package does not decode)';
  lines.push(`${head} ${r.file}: ${what}${legacy}`);
  if (r.status === 'invalid') {
    for (const f of r.failures) lines.push(`  ${c.red('✘')} ${f.name}: ${f.detail}`);
  } else if (!many) {
    lines.push(`  server   ${r.server?.subject} signed ${r.packageVersion === 3 ? 'fields 1-7 and the warrant digest' : 'fields 1-5'} (the receipt)`);
    if (r.warrant) {
      const proxy = r.checks.find((x) => x.name === 'warrant');
      lines.push(`  party A  ${proxy?.detail ?? `by proxy for ${r.warrant.onBehalfOf}`}; signed fields 1-7`);
    } else {
      lines.push(`  party A  ${r.partyA?.subject} signed fields 1-7`);
    }
    lines.push(`  party B  ${r.partyB?.subject} signed fields 1-7`);
    lines.push(`  content  ${r.profile === 'v1' ? 'sha1' : 'sha256'} ${r.contentId}`);
    for (const l of r.checks.filter((x) => x.name.startsWith('log-') && !x.warning)) lines.push(`  ${l.name.padEnd(8)} ${l.detail}`);
    lines.push(`  checked  ${r.checks.length} checks; certificates valid at ${r.evaluatedAt}`);
    for (const w of r.checks.filter((x) => x.warning)) lines.push(`  ${c.yellow('!')} ${w.detail}`);
  }
  // -v: every check of every proof.
  if (getVerbosity() === 'verbose') for (const ch of r.checks) lines.push(`  ${ch.ok ? c.green('✔') : c.red('✘')} ${ch.name}: ${ch.detail}`);
  return lines;
}

function countsLine(c: RunCounts, total: number): string {
  return `${total} bundles: ${c.valid} valid, ${c.invalid} invalid, ${c.unusable} unusable${c.legacy ? `, ${c.legacy} legacy v1` : ''}`;
}

function group(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Quotes one argument for a POSIX shell, for the "resume with" line. */
function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * The progress line of an archive run on a TTY (stderr): bundles done, of how many (a counting walk
 * runs beside the run; until it ends the total is "at least"), the rate, and what is wrong so far.
 * No colour, redrawn at most every 100 ms, erased before results are printed.
 */
class ArchiveProgress {
  private drawn = false;
  private lastDraw = 0;
  total: number | undefined;
  found = 0;
  constructor(readonly enabled: boolean) {}

  clear(): void {
    if (this.drawn) process.stderr.write('\r\x1b[2K');
    this.drawn = false;
  }

  draw(p: RunProgress, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const total = this.total ?? Math.max(this.found, p.done);
    const width = 24;
    const filled = total ? Math.min(width, Math.round((p.done / total) * width)) : 0;
    const rate = p.seconds > 0 ? p.thisRun / p.seconds : 0;
    const wrong = p.counts.invalid + p.counts.unusable ? `  ${group(p.counts.invalid)} invalid, ${group(p.counts.unusable)} unusable` : '';
    const line = `verifying [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${group(p.done)}/${this.total === undefined ? '≥' : ''}${group(total)}  ${group(rate)}/s${wrong}`;
    process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns || 80) - 1)}`);
    this.drawn = true;
  }
}

interface VerifyCliOptions {
  trust: string[]; content?: string; at?: Date; revocations?: string; clockTolerance?: number; json?: boolean;
  logKey?: string; witness: string[]; witnessQuorum?: string; jobs?: number; state?: string;
}

/** One bundle file (or -): the report as it always was, and {summary, results:[one]} under --json. */
function verifySingle(file: string, options: VerifyOptions, json: boolean): void {
  bundleRoots([file]); // a missing file: one line, exit 2, before anything else
  let r: FileResult;
  let internal = false;
  try {
    r = verifyFile(file, options);
  } catch (err) {
    // A bug: report it as this file's result and exit 3, as an archive run does per bundle.
    internal = true;
    if (debugEnabled()) diag.line((err as Error)?.stack ?? String(err));
    r = { file, status: 'unusable', error: `internal error: ${(err as Error)?.message ?? String(err)} (run again with --debug and report the output)` };
  }
  const summary = summarise([r]);
  if (json) out.json({ summary, results: [r] });
  else if (!(getVerbosity() === 'quiet' && r.status === 'valid')) for (const l of reportLines(r, false)) out.line(l);
  process.exitCode = internal ? INTERNAL_ERROR_EXIT : exitCodeFor(summary);
}

/** What decides the verdicts of a run: a state file saved under other options is not resumed. */
function runIdentity(bundles: readonly string[], o: VerifyOptions): string {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  return runKey({
    bundles: bundles.map((b) => resolve(b)),
    anchors: o.trustAnchors.map((a) => sha(a.raw)),
    content: o.content ? sha(o.content) : null,
    at: o.at ? o.at.toISOString() : null,
    revocations: o.revocations ? sha(o.revocations.der) : null,
    clockTolerance: o.clockToleranceSeconds ?? null,
    log: o.log ? { key: encodeVkey(o.log.logKey), witnesses: (o.log.witnesses ?? []).map((w) => encodeVkey(w)), quorum: o.log.quorum ?? null } : null,
  });
}

async function verifyArchive(bundles: string[], options: VerifyOptions, o: VerifyCliOptions): Promise<void> {
  const roots = bundleRoots(bundles);
  const json = Boolean(o.json);
  const quiet = getVerbosity() === 'quiet';
  const jobs = o.jobs ?? availableParallelism();
  let state: { file: string; run: string; previous?: NonNullable<ReturnType<typeof readState>> } | undefined;
  if (o.state) {
    if (bundles.includes(STDIN)) throw new InputError('--state cannot resume standard input', 'give bundle files or directories');
    const run = runIdentity(bundles, options);
    // A run killed while it wrote its state left a temp copy beside it: not a state, remove it.
    removeStaleTemps(dirname(resolve(o.state)), resolve(o.state));
    const previous = readState(o.state);
    if (previous && previous.run !== run) {
      throw new InputError(`${o.state}: the state of another verification (other bundles or options)`, 'give the bundles and options of the interrupted run, or another --state file', 'E_VERIFY_STATE');
    }
    state = { file: o.state, run, ...(previous ? { previous } : {}) };
    if (previous) diag.info(`resuming after ${group(previous.done)} bundles (${o.state}, saved ${previous.updated})`);
  }
  const stdoutIsTerminal = Boolean(process.stdout.isTTY);
  // Never drawn under -q, nor where it would mix with JSON lines on one terminal.
  const progress = new ArchiveProgress(Boolean(process.stderr.isTTY) && !quiet && !(json && stdoutIsTerminal));
  const exclude = new Set(o.state ? [resolve(o.state)] : []);
  const controller = new AbortController();
  const hold = process.env.QTM_TEST_VERIFY_HOLD_AFTER;
  const debug = debugEnabled();
  const run = new ArchiveRun({
    roots, jobs, exclude,
    setup: setupOf(options, json ? 'json' : getVerbosity() === 'verbose' ? 'verbose' : quiet ? 'quiet' : 'line', debug),
    readStdin: readStdinCapped,
    ...(state ? { state } : {}),
    signal: controller.signal,
    ...(hold !== undefined && /^\d+$/.test(hold) ? { holdAfter: Number(hold) } : {}),
    onResults: (b: BatchResult) => {
      for (const s of b.stacks ?? []) diag.line(s);
      if (b.text) {
        progress.clear();
        process.stdout.write(b.text);
        return;
      }
      let text = '';
      for (const r of b.results ?? []) text += `${reportLines(r, true).join('\n')}\n`;
      if (!text) return;
      progress.clear();
      process.stdout.write(text);
    },
    onProgress: (p) => progress.draw(p),
  });

  if (progress.enabled) {
    // The total, for the bar: a second walk that only counts, beside the run (never held in full).
    void (async () => {
      let n = 0;
      for await (const _ of walkBundles(roots, { skipped: 0 }, exclude)) {
        if (controller.signal.aborted) return;
        progress.found = ++n;
      }
      progress.total = n;
    })().catch(() => undefined);
  }

  const resumeHint = () => o.state
    ? `resume with: qtm ${process.argv.slice(2).map(shellWord).join(' ')}`
    : 'nothing was saved: give --state FILE to be able to resume an interrupted run';
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1) {
      controller.abort();
      return;
    }
    // A second Ctrl-C: stop now, at the position already reported.
    run.saveNow();
    progress.clear();
    diag.line(`qtm: interrupted after ${group(run.done)} bundles; ${resumeHint()}`);
    process.exit(CANCELLED_EXIT);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let outcome: RunOutcome;
  try {
    outcome = await run.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress.clear();
  }
  const c = outcome.counts;
  if (outcome.interrupted) {
    const message = `interrupted after ${group(outcome.done)} bundles (${countsLine(c, outcome.done).replace(/^\d+ bundles: /, '')}); ${resumeHint()}`;
    diag.line(`qtm: ${message}`);
    if (json) out.line(JSON.stringify({ error: { code: 'E_CANCELLED', message, exitCode: CANCELLED_EXIT } }));
    process.exitCode = CANCELLED_EXIT;
    return;
  }
  if (state) removeState(state.file);
  const rate = outcome.totalSeconds > 0 ? outcome.done / outcome.totalSeconds : 0;
  if (json) {
    out.line(JSON.stringify({
      summary: {
        total: outcome.done, valid: c.valid, invalid: c.invalid, unusable: c.unusable, legacy: c.legacy, internal: c.internal,
        skipped: outcome.skipped, seconds: Number(outcome.totalSeconds.toFixed(3)), bundlesPerSecond: Math.round(rate), runs: outcome.runs, jobs,
      },
    }));
  } else {
    const skipped = outcome.skipped ? `; ${group(outcome.skipped)} other ${outcome.skipped === 1 ? 'file' : 'files'} skipped` : '';
    const runs = outcome.runs > 1 ? ` over ${outcome.runs} runs` : '';
    out.line(`${countsLine(c, outcome.done)}${skipped}; ${outcome.totalSeconds.toFixed(1)} s${runs}, ${group(rate)} bundles/s with ${jobs} ${jobs === 1 ? 'worker' : 'workers'}`);
  }
  const summary = { total: outcome.done, valid: c.valid, invalid: c.invalid, unusable: c.unusable, legacy: c.legacy };
  process.exitCode = c.internal > 0 ? INTERNAL_ERROR_EXIT : exitCodeFor(summary);
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
    .option('--json', 'print results as JSON: one document for one bundle, JSON Lines for several (see below)')
    .option('-j, --jobs <n>', `worker threads verifying an archive run (default: the number of cores, ${availableParallelism()} here)`, parsePositiveInt)
    .option('--state <file>', 'make an archive run resumable: save the position reached in FILE; the same command given the same FILE goes on where it stopped (FILE is removed when the run ends)')
    .addHelpText('after', `
One bundle file (or -) gets the full report. A directory, a glob or several arguments make an
archive run: each directory is walked in a fixed order (names sorted per directory, depth first),
and every file whose name ends in .json is a bundle; names starting with "." are not looked at,
other files are counted as skipped, and symbolic links are never followed into directories. The
bundles are verified by --jobs worker threads and reported in walk order, one line each, then a
summary line with the rate; memory stays flat however large the tree. On a terminal a progress
line is drawn on stderr.
--json: for one bundle, one document {"summary":{...},"results":[{...}]} (as always); for an archive
run, JSON Lines: one result object per bundle (the same object as in "results"), then one line
{"summary":{...}} with the counts, skipped, seconds and bundlesPerSecond.
--state FILE: the position (bundles done in walk order) and the counts are saved every second and on
Ctrl-C or SIGTERM; rerun the same command to go on: only the rest is verified and the summary covers
the whole run. After a kill -9 or a power loss, up to the last second's bundles are verified and
reported again. A state saved for other bundles or options, or a tree changed before the position,
is refused (E_VERIFY_STATE).
Ctrl-C: the bundles in flight are finished and reported, the state saved, and the command to resume
printed; exit 130. A second Ctrl-C stops at once.
Exit codes: 0 all valid, 1 at least one invalid, 2 at least one unusable (unreadable, not a bundle,
a directory that cannot be read or holds no bundle), 3 internal error on some file (every other file
is still checked and reported), 130 interrupted.
Revocation: only X's own list counts (ask X for it: \`qtm warrant revoke\` writes it). A server may
have backdated a record by up to T seconds unnoticed, so a proxy signature dated within T before a
revocation fails too. The report gives the list's number and thisUpdate, and says "revocation
status unknown" when the list is older than the transaction.
A file over ${MAX_BUNDLE_BYTES / 1024} KiB is unusable without being read: no genuine bundle is that large
(content at most 64 KiB, at most 8 certificates of 8 KiB per list; docs/FORMATS.md "Size caps").
` + examples(
      'qtm verify receipt.json --trust ca.pem',
      'qtm verify archive/ --trust ca.pem --json > report.jsonl',
      'qtm verify archive/2026/ --trust ca.pem --jobs 2 --state 2026.verify-state -q',
      'qtm verify order.json --content order.txt --trust ca.pem',
      'jq .bundle response.json | qtm verify - --trust /etc/qtm/anchors/',
      'QTM_TRUST=ca.pem qtm verify receipt.json',
      "qtm verify 'proofs/*.json' --trust ca.pem --trust old-ca.pem",
      'qtm verify proxy-receipt.json --trust ca.pem --revocations xavier.crl',
      'qtm verify receipt-logged.json --trust ca.pem --log-key shop-log.vkey',
      'qtm verify receipt-logged.json --trust ca.pem --log-key shop-log.vkey --witness w1.vkey --witness w2.vkey --witness-quorum 1'))
    .action(async (bundles: string[], o: VerifyCliOptions) => {
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
      const options: VerifyOptions = {
        trustAnchors, ...(content ? { content } : {}), ...(o.at ? { at: o.at } : {}), ...(revocations ? { revocations } : {}),
        ...(o.clockTolerance !== undefined ? { clockToleranceSeconds: o.clockTolerance } : {}), ...(log ? { log } : {}),
      };
      if (isSingleBundle(bundles)) {
        if (o.state) throw new InputError('--state is for a run over a directory or several bundles', 'verify one file again from the start: it is one bundle');
        verifySingle(bundles[0]!, options, Boolean(o.json));
        return;
      }
      await verifyArchive(bundles, options, o);
    });
}
