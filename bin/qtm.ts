#!/usr/bin/env node
/**
 * qtm: mutually signed, card-backed proof of online transactions (WO 01/22373 A1).
 * Exit codes: 0 ok / valid, 1 invalid proof or refused, 2 unusable input or usage, 3 internal error.
 */
import { Command, CommanderError } from 'commander';
import { caCommand } from '../src/commands/ca.js';
import { packageCommand } from '../src/commands/package.js';
import { verifyCommand } from '../src/commands/verify.js';
import { cardCommand } from '../src/commands/card.js';
import { receiptsCommand } from '../src/commands/receipts.js';
import { samCommand } from '../src/commands/sam.js';
import { serverCommand } from '../src/commands/server.js';
import { warrantCommand } from '../src/commands/warrant.js';
import { ttpCommand } from '../src/commands/ttp.js';
import { signCommand } from '../src/commands/sign.js';
import { demoCommand } from '../src/commands/demo.js';
import { keyCommand } from '../src/commands/key.js';
import { logCommand } from '../src/commands/log.js';
import { reportError } from '../src/cli/run.js';
import { ExitCode } from '../src/errors.js';
import { examples } from '../src/cli/options.js';

const program = new Command('qtm')
  .description('qtm: both sides of an online transaction end with signed, verifiable proof of it')
  .version('0.1.0')
  .option('--debug', 'print stack traces with errors')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText('after', `
Exit codes: 0 ok/valid, 1 invalid proof or refused operation, 2 unusable input or usage, 3 internal error.
Environment: QTM_CA_PASSPHRASE, QTM_KEY_PASSPHRASE, QTM_SAM_PASSPHRASE, QTM_PIN, QTM_PUK, QTM_NEW_PIN,
  QTM_READER, QTM_CARD, NO_COLOR, QTM_DEBUG=1.
` + examples('qtm demo', 'qtm package sizes --profile v1', 'qtm verify fixtures/bundles/sample-v2.json --trust fixtures/ca/ca.pem'));

for (const cmd of [demoCommand(), caCommand(), keyCommand(), samCommand(), cardCommand(), serverCommand(), warrantCommand(), ttpCommand(), signCommand(), receiptsCommand(), verifyCommand(), logCommand(), packageCommand()]) program.addCommand(cmd);

// Every subcommand reports usage errors with exit code 2 instead of commander's default 1.
function applyExitOverride(cmd: Command): void {
  cmd.exitOverride();
  cmd.commands.forEach(applyExitOverride);
}
applyExitOverride(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
    process.exitCode = ok ? ExitCode.ok : ExitCode.usage;
  } else {
    process.exitCode = reportError(err);
  }
}
