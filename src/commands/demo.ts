import { Command, Option } from 'commander';
import { join } from 'node:path';
import { examples } from '../cli/options.js';
import { diag, out } from '../cli/output.js';
import { askToAccept, renderContent } from '../cli/dialog.js';
import { progressPrinter } from './sign.js';
import { readSecret } from '../cli/secrets.js';
import { DEMO_PIN, runDemo } from '../demo/demo.js';
import { InputError } from '../errors.js';
import type { LostMessage } from '../demo/lossy-api.js';

const CATALOGUE = join(import.meta.dirname ?? '.', '..', '..', '..', 'fixtures', 'catalogue.json');

export function demoCommand(): Command {
  return new Command('demo')
    .description('one transaction end to end on this machine: CA, SAM, virtual card, server, signing, receipt, offline verification')
    .option('--interactive', `show the order and ask to accept it and for the PIN (the demo card's PIN is ${DEMO_PIN})`)
    .option('--pcsc', 'reach the card through pcscd and the vpcd driver, like a real reader')
    .option('--proxy', 'the server signs by proxy for a sales manager under a warrant; a customer the warrant does not name is refused')
    .option('--fair', 'exchange signatures fairly through a trusted third party (claims 12-14)')
    .addOption(new Option('--cheat <party>', 'with --fair: let the server or the client cheat, and watch the TTP restore fairness').choices(['server', 'client']))
    .addOption(new Option('--lose <message>', 'with --fair: both parties honest, this message of the exchange is lost; watch the TTP settle it fairly').choices(['escrow-y', 'x', 'y', 'first-message']))
    .option('--pkcs11', 'every long-term key (SAM master key, CA, receipt and proxy keys) in a PKCS#11 token: a throwaway SoftHSM2 one, or a new token in the SoftHSM2 of SOFTHSM2_CONF')
    .option('--fork', 'after the transaction the shop rewrites its transparency log\'s history: watch the witness refuse to cosign it')
    .option('--keep <dir>', 'keep every file the demo makes (CA, keys, card, store, archive) in this directory')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('qtm demo', 'qtm demo --interactive', 'qtm demo --proxy', 'qtm demo --fair', 'qtm demo --fair --cheat client', 'qtm demo --fair --lose escrow-y --json', 'qtm demo --pcsc --keep ./demo-files', 'qtm demo --pkcs11', 'qtm demo --pkcs11 --proxy --keep ./demo-hsm', 'qtm demo --fork'))
    .action(async (o: { interactive?: boolean; pcsc?: boolean; pkcs11?: boolean; proxy?: boolean; fair?: boolean; cheat?: 'server' | 'client'; lose?: LostMessage; fork?: boolean; keep?: string; json?: boolean }) => {
      if (o.cheat && !o.fair) throw new InputError('--cheat goes with --fair', 'run qtm demo --fair --cheat server');
      if (o.lose && !o.fair) throw new InputError('--lose goes with --fair', 'run qtm demo --fair --lose escrow-y');
      if (o.fork && (o.cheat || o.lose)) throw new InputError('--fork shows the transparency log after an ordinary transaction: it does not go with --cheat or --lose');
      if (o.lose && o.cheat) throw new InputError('--lose shows honest parties: it does not go with --cheat');
      if (o.interactive && !(process.stdin.isTTY && process.stderr.isTTY)) throw new InputError('--interactive needs a terminal');
      const tty = Boolean(process.stderr.isTTY) && !o.json;
      if (tty) diag.line(diag.colour.bold('qtm demo: one transaction, end to end, on this machine only\n'));
      let n = 0;
      const result = await runDemo({
        catalogue: CATALOGUE,
        ...(o.keep ? { keepDir: o.keep } : {}),
        ...(o.pcsc ? { pcsc: true } : {}),
        ...(o.proxy ? { proxy: true } : {}),
        ...(o.pkcs11 ? { pkcs11: true } : {}),
        ...(o.fair ? { fair: true } : {}),
        ...(o.cheat ? { cheat: o.cheat } : {}),
        ...(o.lose ? { lose: o.lose } : {}),
        ...(o.fork ? { fork: true } : {}),
        onStage: (s) => {
          if (!o.json) out.line(`${String(++n).padStart(2)}. ${s}`);
        },
        hooks: (pin) => ({
          accept: async (content) => {
            if (o.interactive) return askToAccept(content);
            if (tty) diag.line(renderContent(content) + '\n(accepted automatically; run with --interactive to decide yourself)\n');
            return true;
          },
          pin: async () => (o.interactive ? readSecret({ env: 'QTM_DEMO_PIN_UNUSED', prompt: `card PIN (demo: ${DEMO_PIN})` }) : pin),
          onStep: progressPrinter(tty),
        }),
      });
      if (o.json) {
        out.json(result);
      } else {
        const f = result.fairness;
        const verdict = result.holds
          ? (result.fair ? out.colour.green(`Fairness held after losing the ${result.lost} message: server holds Y ${result.holds.server.y ? 'yes' : 'no'}, client holds X ${result.holds.client.x ? 'yes' : 'no'}.`) : out.colour.red('FAIRNESS BROKEN.'))
          : f?.cheat
          ? (f.fair ? out.colour.green(`Fairness held: client holds X ${f.clientHasX ? 'yes' : 'no'}, server holds Y ${f.serverHasY ? 'yes' : 'no'}.`) : out.colour.red('FAIRNESS BROKEN.'))
          : result.log?.forkRefused
          ? (result.valid ? out.colour.green('The rewritten history was caught: the witness refused to cosign it.') : out.colour.red('The proof did not verify.'))
          : (result.valid ? out.colour.green('Both sides now hold proof of the same record, and it is in the shop\'s public log.') : out.colour.red('The proof did not verify.'));
        out.line(`\n${verdict} ${(result.ms / 1000).toFixed(1)} s in all.`);
        if (result.dir && result.bundleFile) {
          const logArgs = result.log ? ` --log-key ${join(result.dir, 'log.vkey')} --witness ${join(result.dir, 'witness.vkey')}` : '';
          out.line(`Files kept in ${result.dir}; verify again with: qtm verify ${result.bundleFile} --trust ${join(result.dir, 'ca', 'ca.pem')}${logArgs}`);
        }
      }
      process.exitCode = result.valid ? 0 : 1;
    });
}
