import { Command, Option } from 'commander';
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cardOptions, examples, parsePositiveInt, parseProfile } from '../cli/options.js';
import { diag, out, Progress } from '../cli/output.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { CA_PASSPHRASE, NEW_PIN, PIN, PUK, SAM_PASSPHRASE } from '../cli/secret-sources.js';
import { caReferences, openCaReference, openSamReference, PKCS11_HELP, pkcs11ModuleOption, preparePkcs11 } from '../cli/pkcs11.js';
import { DEFAULT_SLOTS, MAX_SLOTS } from '../card/app-spec.js';
import { withCard, type CardChoice } from '../card/open-card.js';
import { issueCard } from '../card/issue.js';
import { IssuanceRegister } from '../card/issuance-register.js';
import { batchReportCsv, issueBatch, readBatchCsv } from '../card/batch.js';
import { listReaders } from '../card/transports/pcsc.js';
import { runVpcdBridge, VPCD_DEFAULT_PORT } from '../card/vpcd-bridge.js';
import { VirtualCard } from '../card/virtual/virtual-card.js';
import { FileStorage } from '../card/virtual/storage.js';
import { hexSw } from '../card/apdu.js';
import { InputError, RefusedError } from '../errors.js';



/**
 * vpcd opens one reader slot per port from its CHANNELID (0x8C7B = 35963 in the packaged
 * reader.conf), and pcscd names slot n "Virtual PCD 00 0n": port 35964 is "Virtual PCD 00 01".
 */
function vpcdReaderLabel(port: number): string {
  const slot = port - VPCD_DEFAULT_PORT;
  if (slot >= 0 && slot < 16) return `reader "Virtual PCD 00 ${slot.toString(16).toUpperCase().padStart(2, '0')}"`;
  return `the vpcd reader slot on port ${port}: see \`qtm card list-readers\``;
}

function parseSlots(v: string): number {
  const n = parsePositiveInt(v);
  if (n > MAX_SLOTS) throw new InputError(`at most ${MAX_SLOTS} slots`);
  return n;
}

function randomDigits(n: number): string {
  return Array.from({ length: n }, () => randomInt(10)).join('');
}

/** PIN and PUK for issuing: environment, prompt, or generated and shown once on the terminal. */
async function issuingSecrets(generate: boolean, flags: object): Promise<{ pin: string; puk: string; generated: boolean }> {
  if (generate) {
    if (!process.stderr.isTTY) throw new InputError('--generate-pin shows the PIN once on the terminal, and stderr is not a terminal', 'set QTM_PIN and QTM_PUK instead');
    return { pin: randomDigits(6), puk: randomDigits(8), generated: true };
  }
  const pin = await readSecret({ ...PIN, confirm: true }, flags);
  const puk = await readSecret({ ...PUK, confirm: true }, flags);
  return { pin, puk, generated: false };
}

export function cardCommand(): Command {
  const card = new Command('card').description('smart cards: readers, the virtual card, issuing, PIN management');

  card.command('list-readers')
    .description('list PC/SC readers and whether a card is present')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Each reader is listed with its number, which -r/--reader takes as opensc-tool -r does.
` + examples('qtm card list-readers', 'qtm card list-readers --json', 'qtm card info -r 1'))
    .action(async (o: { json?: boolean }) => {
      const readers = await listReaders();
      if (o.json) return out.json({ readers });
      if (readers.length === 0) return out.line('no PC/SC readers (is pcscd running?)');
      // The number is what -r/--reader N takes, as opensc-tool -l / -r N.
      readers.forEach((r, i) => out.line(`${i}\t${r.name}\t${r.cardPresent ? `card present, ATR ${r.atr ?? '?'}` : 'no card'}`));
    });

  card.command('emulate')
    .description('plug a virtual card into pcscd through the vsmartcard vpcd driver; serves until stopped (Ctrl-C)')
    .requiredOption('--card <file>', 'virtual card file (created blank if missing, with --create)')
    .option('--create', 'create a blank card file if it does not exist')
    .option('--slots <n>', 'receipt slots of a card created here', parseSlots, DEFAULT_SLOTS)
    .option('--vpcd <host:port>', 'where vpcd listens', `127.0.0.1:${VPCD_DEFAULT_PORT}`)
    .option('--trace', 'log each APDU (command and status word) to stderr')
    .addHelpText('after', `
The card appears in the reader "Virtual PCD 00 00" for pcsc_scan, opensc-tool and qtm --reader
(with --vpcd :35964, in "Virtual PCD 00 01").
` + examples(
      'qtm card emulate --card alice.card.json --create',
      'qtm card emulate --card alice.card.json & qtm card issue --reader "Virtual PCD 00 00" --ca ./ca --sam shop.sam --holder "CN=Alice"'))
    .action(async (o: { card: string; create?: boolean; slots: number; vpcd: string; trace?: boolean }) => {
      const m = /^(.*):(\d+)$/.exec(o.vpcd);
      if (!m) throw new InputError(`--vpcd ${o.vpcd} is not host:port`, 'e.g. --vpcd 127.0.0.1:35964, or --vpcd :35964 for this machine');
      if (!m[1]) m[1] = '127.0.0.1';
      let storage: FileStorage;
      try {
        storage = new FileStorage(o.card);
        storage.load();
      } catch (err) {
        if (!o.create) throw err;
        storage = FileStorage.create(o.card, o.slots);
      }
      const virtualCard = new VirtualCard(storage);
      const controller = new AbortController();
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());
      let lastProblem = '';
      await runVpcdBridge(virtualCard, {
        host: m[1]!,
        port: Number(m[2]),
        signal: controller.signal,
        onConnected: () => {
          lastProblem = '';
          diag.info(`serving ${o.card} to vpcd at ${o.vpcd} (${vpcdReaderLabel(Number(m[2]))}); Ctrl-C to stop`);
        },
        onDisconnected: (reason) => {
          if (reason !== lastProblem) diag.info(`${reason}; retrying (is pcscd with vsmartcard-vpcd running?)`);
          lastProblem = reason;
        },
        ...(o.trace ? { onApdu: (c: Buffer, r: Buffer) => diag.line(`APDU ${c.subarray(0, 4).toString('hex').toUpperCase()} … -> ${hexSw(r.readUInt16BE(r.length - 2))}`) } : {}),
      });
      diag.info('stopped');
    });

  secretOptions(cardOptions(card.command('issue')), [CA_PASSPHRASE, SAM_PASSPHRASE, PIN, PUK])
    .description('personalise a card: on-card key pair, CA certificate, diversified keys, PIN/PUK, LOCK')
    .requiredOption('--ca <dir>', 'CA directory (passphrase from QTM_CA_PASSPHRASE, or none when its key is in a token)')
    .requiredOption('--sam <file|uri>', 'SAM keystore (passphrase from QTM_SAM_PASSPHRASE), or the PKCS#11 URI of its master key')
    .addOption(pkcs11ModuleOption())
    .option('--holder <dn>', 'card holder, e.g. "CN=Alice Example,O=Customer"; serialNumber=<card serial> is added')
    .addOption(new Option('--profile <profile>', 'card profile (default: the CA\'s)').argParser(parseProfile))
    .option('--slots <n>', 'receipt slots', parseSlots, DEFAULT_SLOTS)
    .option('--days <n>', 'certificate validity in days', parsePositiveInt, 730)
    .addOption(new Option('--role <role>', 'card (a customer\'s, default) or manager (its key issues warrants: qtm warrant issue --issuer-card)').choices(['card', 'manager']).default('card'))
    .option('--may-delegate', 'a customer card that may also issue warrants, so the server can sign for its holder (reverse auctions)')
    .option('--generate-pin', 'generate PIN and PUK and show them once on the terminal')
    .option('--batch <holders.csv>', 'issue one virtual card per CSV row (header: holder)')
    .option('--out-dir <dir>', 'with --batch: where the card files and report.csv/report.json go')
    .option('--register <dir>', 'issuance register (default: CA/register); one folder per SAM master key inside, shared by every CA that uses the SAM')
    .option('--retry', 'take over a serial reserved by an issuing run that failed (its certificate is recorded void)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Every card serial is tied to one card key for good in the issuance register (docs/CARD.md,
"The issuance register"): a blank card whose serial was issued to another key is refused
(exit 1, E_SERIAL_TAKEN), and nothing is signed for it.
PIN (4-8 digits) and PUK (8 digits) come from QTM_PIN / QTM_PUK, a prompt, or --generate-pin.
With --batch every card gets the same transport PIN and PUK, which holders change with
\`qtm card pin change\`; the report never contains them.
` + PKCS11_HELP + examples(
      'qtm card issue --ca ./ca --sam shop.sam --holder "CN=Alice Example" --card alice.card.json',
      'qtm card issue --ca ./ca --sam shop.sam --holder "CN=Alice Example" --reader "Virtual PCD 00 00"',
      'qtm card issue --ca ./ca --sam shop.sam --holder "CN=Xavier Sales,O=Shop" --role manager --card xavier.card.json',
      'QTM_PIN=123456 QTM_PUK=12345678 qtm card issue --ca ./ca --sam shop.sam --batch holders.csv --out-dir cards/',
      'QTM_PKCS11_PIN=... qtm card issue --ca ./ca --sam "pkcs11:token=personaliser;object=master" --holder "CN=Alice Example" --card alice.card.json'))
    .action(async (o: CardChoice & { ca: string; sam: string; pkcs11Module?: string; register?: string; retry?: boolean; holder?: string; profile?: 'v1' | 'v2'; slots: number; days: number; role: 'card' | 'manager'; mayDelegate?: boolean; generatePin?: boolean; batch?: string; outDir?: string; json?: boolean }) => {
      if (o.batch) {
        if (!o.outDir) throw new InputError('--batch needs --out-dir');
        if (o.reader || o.card || o.holder) throw new InputError('--batch issues new virtual cards from the CSV: drop --reader, --card and --holder');
      } else if (!o.holder) {
        throw new InputError('--holder is required', 'e.g. --holder "CN=Alice Example"');
      }
      const rows = o.batch ? readBatchCsv(o.batch) : [];
      await preparePkcs11([...caReferences(o.ca), o.sam], o.pkcs11Module);
      const ca = await openCaReference(o.ca, o);
      const sam = await openSamReference(o.sam, o);
      const { pin, puk, generated } = await issuingSecrets(Boolean(o.generatePin), o);
      if (o.mayDelegate && o.role !== 'card') throw new InputError('--may-delegate is for customer cards (--role card); a manager card issues warrants already');
      const register = IssuanceRegister.open(o.register ?? join(o.ca, 'register'), sam.kcv);
      const common = { ca, sam, register, ...(o.retry ? { retry: true } : {}), pin, puk, slots: o.slots, days: o.days, role: o.role, ...(o.mayDelegate ? { mayDelegate: true } : {}), ...(o.profile ? { profile: o.profile } : {}) };

      if (o.batch) {
        mkdirSync(o.outDir!, { recursive: true });
        const progress = new Progress(rows.length, 'issuing');
        const results = await issueBatch(rows, o.outDir!, common, (done, r) => {
          progress.tick(done);
          if (r.status === 'failed') {
            progress.done();
            diag.line(`line ${r.line} (${r.holder || 'no holder'}): ${r.error}`);
          }
        });
        progress.done();
        writeFileSync(join(o.outDir!, 'report.csv'), batchReportCsv(results));
        writeFileSync(join(o.outDir!, 'report.json'), JSON.stringify(results, null, 2) + '\n');
        const failed = results.filter((r) => r.status === 'failed').length;
        const summary = { total: results.length, issued: results.length - failed, failed, report: join(o.outDir!, 'report.csv') };
        if (o.json) out.json({ summary, results });
        else out.line(`${summary.total} cards: ${summary.issued} issued, ${failed} failed; report in ${summary.report}`);
        if (failed) process.exitCode = 1;
        return;
      }

      const issued = await withCard(o, (client) => issueCard(client, { ...common, holder: o.holder! }), { createSlots: o.slots });
      if (generated) process.stderr.write(`\nPIN ${pin}   PUK ${puk}\nWrite them down now: they are shown only this once and stored nowhere.\n\n`);
      const result = { serial: issued.serial, subject: issued.subject, profile: issued.profile, slots: issued.slots, certificateSerial: issued.certificate.serialNumber, validTo: issued.certificate.validTo };
      if (o.json) return out.json(result);
      out.line(`issued card ${issued.serial} to "${issued.subject}" (profile ${issued.profile}, ${issued.slots} slots); locked`);
    });

  cardOptions(card.command('info'))
    .description('show the card serial, life cycle, PIN tries left and slot usage (no PIN needed)')
    .option('--json', 'print as JSON')
    .option('--pem', 'print only the card\'s certificate (PEM), e.g. for a manager\'s `qtm warrant issue --customer`')
    .addHelpText('after', examples('qtm card info --card alice.card.json', 'qtm card info --reader "Virtual PCD 00 00" --json', 'qtm card info --card alice.card.json --pem > alice-card.pem'))
    .action(async (o: CardChoice & { json?: boolean; pem?: boolean }) => {
      const info = await withCard(o, async (client) => {
        await client.select();
        const s = await client.status();
        const cert = s.certificatePresent ? await client.readCertificate() : undefined;
        const used = s.recordLength ? (await client.readAllRecords(s.recordLength)).filter(Boolean).length : 0;
        return {
          serial: s.serial.toString('hex').toUpperCase(),
          lifecycle: s.lifecycle,
          profile: s.profileVersion ? `v${s.profileVersion}` : null,
          slots: s.slotCount,
          slotsUsed: used,
          recordLength: s.recordLength,
          pinTriesLeft: s.pinTriesLeft ?? null,
          pukTriesLeft: s.pukTriesLeft ?? null,
          holder: cert ? cert.subject.replace(/\n/g, ', ') : null,
          certificateValidTo: cert?.validTo ?? null,
          certificate: cert?.toString() ?? null,
        };
      });
      if (o.pem) {
        if (!info.certificate) throw new RefusedError(`card ${info.serial} has no certificate yet`, 'issue it first with `qtm card issue`');
        return out.line(info.certificate.trimEnd());
      }
      if (o.json) return out.json(info);
      out.line(`card ${info.serial} (${info.lifecycle}${info.profile ? `, profile ${info.profile}` : ''})`);
      if (info.holder) out.line(`  holder       ${info.holder}, certificate valid to ${info.certificateValidTo}`);
      out.line(`  receipts     ${info.slotsUsed} of ${info.slots} slots used`);
      if (info.pinTriesLeft !== null) out.line(`  PIN          ${info.pinTriesLeft === 0 ? 'BLOCKED' : `${info.pinTriesLeft} tries left`}; PUK ${info.pukTriesLeft === 0 ? 'BLOCKED' : `${info.pukTriesLeft} tries left`}`);
    });

  const pin = card.command('pin').description('change or unblock the card PIN');
  secretOptions(cardOptions(pin.command('change')), [PIN, NEW_PIN])
    .description('change the PIN (old PIN from QTM_PIN, new from QTM_NEW_PIN, or prompts)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('qtm card pin change --card alice.card.json', 'QTM_PIN=1234 QTM_NEW_PIN=246810 qtm card pin change --reader "Virtual PCD 00 00"'))
    .action(async (o: CardChoice & { json?: boolean }) => {
      const oldPin = await readSecret(PIN, o);
      const newPin = await readSecret({ ...NEW_PIN, confirm: true }, o);
      await withCard(o, async (client) => {
        await client.select();
        await client.changePin(oldPin, newPin);
      });
      if (o.json) return out.json({ changed: true });
      out.line('PIN changed');
    });
  secretOptions(cardOptions(pin.command('unblock')), [PUK, NEW_PIN])
    .description('unblock the PIN with the PUK and set a new PIN (QTM_PUK, QTM_NEW_PIN, or prompts)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('qtm card pin unblock --card alice.card.json'))
    .action(async (o: CardChoice & { json?: boolean }) => {
      const puk = await readSecret(PUK, o);
      const newPin = await readSecret({ ...NEW_PIN, confirm: true }, o);
      await withCard(o, async (client) => {
        await client.select();
        await client.unblockPin(puk, newPin);
      });
      if (o.json) return out.json({ unblocked: true });
      out.line('PIN unblocked and set');
    });
  return card;
}
