import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { cardOptions, examples, parseNonNegativeInt, parsePositiveInt } from '../cli/options.js';
import { diag, getVerbosity, out } from '../cli/output.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { withCard, type CardChoice } from '../card/open-card.js';
import { QtmApi, type RateLimitWait } from '../client/api.js';
import { TtpClient } from '../fair/ttp-client.js';
import { Archive } from '../client/archive.js';
import { askToAccept, renderContent } from '../cli/dialog.js';
import { runTransaction, STEP_LABEL, type Step, type TransactionHooks } from '../client/transaction.js';
import { fetchReceipts } from '../client/fetch-receipts.js';
import { loadTrustAnchors } from '../verify/trust.js';
import { InputError } from '../errors.js';
import { PIN } from '../cli/secret-sources.js';
import { decodeConceptOrder, type ConceptOrder, type OrderItem } from '../protocol/messages.js';
import { parseStrictJson } from '../protocol/strict-json.js';

export interface ClientOptions extends CardChoice {
  server?: string;
  trust?: string;
  archive?: string;
  pinStdin?: boolean;
  json?: boolean;
}

export function parseItems(v: string): OrderItem[] {
  return v.split(',').map((part) => {
    const m = /^\s*([A-Za-z0-9_-]{1,40})(?::(\d{1,3}))?\s*$/.exec(part);
    if (!m) throw new InputError(`--items "${v}": write SKU:QUANTITY,SKU:QUANTITY (e.g. PAPER-A4:2,PEN-BLUE:1)`);
    return { sku: m[1]!, quantity: Number(m[2] ?? 1) };
  });
}

export function clientContext(o: ClientOptions) {
  const server = o.server ?? process.env.QTM_SERVER;
  const trust = o.trust ?? process.env.QTM_TRUST;
  if (!server) throw new InputError('no server given', 'pass --server https://HOST:PORT or set QTM_SERVER');
  if (!trust) throw new InputError('no trust anchor given', 'pass --trust CA.pem or set QTM_TRUST');
  const trustAnchors = loadTrustAnchors([trust]);
  const trustPem = trustAnchors.map((a) => a.toString()).join('');
  return {
    api: new QtmApi(server, trustPem, { retry: { onWait: sayWaiting('server') } }),
    trustAnchors,
    /** The fair exchange's TTP, its 429s waited out and said as the server's are. */
    ttp: (url: string) => new TtpClient(url, trustPem, { retry: { onWait: sayWaiting('TTP') } }),
  };
}

/** A 429 the client waits out (src/client/api.ts and src/fair/ttp-client.ts: the requests it may repeat, 30 s in all at most), said on stderr. */
function sayWaiting(who: 'server' | 'TTP') {
  return (w: RateLimitWait): void => {
    // diag.info: left out under --quiet. Past a progress line left open ("  … step") on a terminal.
    diag.info(`${process.stderr.isTTY ? '\n' : ''}  ${who} busy (429 E_RATE_LIMITED: ${w.message}): waiting ${w.seconds} s, then ${w.method} ${w.path} again (retry ${w.retry} of ${w.maxRetries})`);
  };
}

export function progressPrinter(enabled: boolean) {
  return (step: Step, phase: 'start' | 'done', ms?: number) => {
    if (!enabled || step === 'accept' || getVerbosity() === 'quiet') return;
    const c = diag.colour;
    if (phase === 'start') process.stderr.write(`  … ${STEP_LABEL[step]}`);
    else process.stderr.write(`\r  ${c.green('✔')} ${STEP_LABEL[step]} ${c.dim(`(${ms!.toFixed(0)} ms)`)}\n`);
  };
}

const withClientOptions = (cmd: Command) => cardOptions(cmd
  .option('--server <url>', 'qtm server, e.g. https://127.0.0.1:8443 (or QTM_SERVER)')
  .option('--trust <ca.pem>', 'CA the server certificate must chain to (or QTM_TRUST)'))
  .option('--archive <dir>', 'client archive of proofs (default: QTM_ARCHIVE or ~/.local/share/qtm/archive)')
  .option('--pin-stdin', 'read the PIN from the first line of standard input')
  .option('--pin-file <file>', 'read the PIN from the first line of FILE (or QTM_PIN, or a prompt)')
  .option('--json', 'print the result as JSON');

/** A concept order in a file, as POST /orders answered it: the server keeps none (docs/FORMATS.md). */
function readConceptOrder(file: string): ConceptOrder {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new InputError(`cannot read the concept order ${file}`, 'save the answer of POST /orders ({"orderId": ..., "content": ...}) to a file');
  }
  return decodeConceptOrder(parseStrictJson(text, `concept order ${file}`));
}

export function signCommand(): Command {
  return withClientOptions(new Command('sign'))
    .description('sign an order with the card: see the exact text, accept, PIN, receipt on the card, proof archived')
    .option('--order <file>', 'a concept order composed earlier, as POST /orders answered it (JSON: orderId, content)')
    .option('--items <list>', 'compose a new order: SKU:QTY,SKU:QTY')
    .option('--priority <n>', 'receipt priority on the card, 0 (replaced first) to 255', parsePositiveInt)
    .option('-y, --yes', 'accept the order without asking (for scripts; the text is still checked)')
    .option('--fair', 'exchange signatures fairly through the server\'s TTP: escrows first, Y only after a valid X')
    .option('--clock-tolerance <seconds>', 'T: refuse a record dated more than this from this computer\'s clock (default 120)', parseNonNegativeInt)
    .addHelpText('after', `
The PIN comes from QTM_PIN, --pin-file, --pin-stdin, or a masked prompt. Without --yes the order
is shown in a text-only dialog and nothing is signed unless you accept. With --fair the card's signature
leaves the client only once the server's is in hand (or the TTP aborts the exchange for both).
The record's time is the server's: one more than T seconds (default 120) from this computer's
clock is refused before the card signs (E_CLOCK_SKEW); the time and T are in the output.
A server that answers 429 (too many requests) with a Retry-After is waited out, up to 30 s in all
and 3 retries per request, saying so on stderr; a longer wait fails at once (E_RATE_LIMITED, exit 1).
Exit codes: 0 signed and delivered, 1 refused or declined, 2 unusable input or unreachable.
` + examples(
      'qtm sign --server https://127.0.0.1:8443 --trust ca/ca.pem --card alice.card.json --items PAPER-A4:2,PEN-BLUE:1',
      'qtm sign --server https://shop.example:8443 --trust ca.pem --reader "Virtual PCD 00 00" --order order.json',
      'echo "$PIN" | qtm sign --yes --pin-stdin --json --card alice.card.json --items NOTEBOOK:3 --server ... --trust ...',
      'qtm sign --fair --server https://127.0.0.1:8443 --trust ca/ca.pem --card alice.card.json --items PAPER-A4:1',
      'qtm sign --clock-tolerance 30 --server https://127.0.0.1:8443 --trust ca/ca.pem --card alice.card.json --items PAPER-A4:1'))
    .action(async (o: ClientOptions & { order?: string; items?: string; priority?: number; yes?: boolean; fair?: boolean; clockTolerance?: number }) => {
      if (!o.order === !o.items) throw new InputError('give exactly one of --order FILE or --items SKU:QTY,...');
      const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY);
      if (!o.yes && !interactive) throw new InputError('not on a terminal: nobody can read and accept the order', 'pass --yes for an unattended run');
      const order = o.order ? { concept: readConceptOrder(o.order) } : { items: parseItems(o.items!) };
      const { api, trustAnchors, ttp } = clientContext(o);
      const archive = await Archive.open(o.archive);
      const hooks: TransactionHooks = {
        accept: async (content) => {
          if (!o.yes) return askToAccept(content);
          if (interactive && !o.json) process.stderr.write(renderContent(content) + '\n(accepted with --yes)\n');
          return true;
        },
        pin: () => readSecret(PIN, o),
        onStep: progressPrinter(Boolean(process.stderr.isTTY) && !o.json),
        onRecordTime: (r) => {
          if (!o.json) diag.info(`  record dated ${r.recordTime}, ${Math.abs(r.skewSeconds)} s ${r.skewSeconds >= 0 ? 'ahead of' : 'behind'} this computer's clock (tolerance ${r.clockToleranceSeconds} s)`);
        },
      };
      try {
        const result = await withCard(o, (card) => runTransaction({ api, card, trustAnchors, archive, order, hooks, ttp, ...(o.priority !== undefined ? { priority: o.priority } : {}), ...(o.fair ? { fair: true } : {}), ...(o.clockTolerance !== undefined ? { clockToleranceSeconds: o.clockTolerance } : {}) }));
        const summary = { transactionId: result.transactionId, serverId: result.serverId, slot: result.slot, proof: result.bundleFile, apdus: result.apdus, replaced: result.replaced?.record?.transactionId ?? null, ...(result.fair ? { fair: result.fair } : {}), recordTime: result.recordTime, clockToleranceSeconds: result.clockToleranceSeconds, ms: Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [k, Number(v.toFixed(1))])) };
        if (o.json) return out.json(summary);
        out.line(`signed: transaction ${result.transactionId} on server ${result.serverId.slice(0, 16)}…, receipt in card slot ${result.slot}, proof ${result.bundleFile}`);
      } finally {
        api.close();
      }
    });
}

export function fetchCommand(): Command {
  return withClientOptions(new Command('fetch'))
    .description('write to the card any receipt the server signed but never saw acknowledged (fresh card challenge)')
    .addHelpText('after', examples('qtm receipts fetch --server https://127.0.0.1:8443 --trust ca/ca.pem --card alice.card.json'))
    .action(async (o: ClientOptions) => {
      const { api, trustAnchors } = clientContext(o);
      const archive = await Archive.open(o.archive);
      const pin = await readSecret(PIN, o);
      try {
        const done = await withCard(o, (card) => fetchReceipts({ api, card, trustAnchors, archive, pin }));
        if (o.json) return out.json({ delivered: done });
        if (!done.length) return out.line('no receipts waiting');
        for (const d of done) out.line(`delivered transaction ${d.transactionId} to slot ${d.slot}${d.rewritten ? ' (was already on the card; proof renewed)' : ''}`);
      } finally {
        api.close();
      }
    });
}
