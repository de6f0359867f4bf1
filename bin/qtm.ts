#!/usr/bin/env node
/**
 * qtm: mutually signed, card-backed proof of online transactions (WO 01/22373 A1).
 * Exit codes: 0 ok / valid, 1 invalid proof or refused, 2 unusable input or usage, 3 internal error,
 * 130 cancelled at a prompt.
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
import { inspectCommand } from '../src/commands/inspect.js';
import { hsmCommand } from '../src/commands/hsm.js';
import { logCommand } from '../src/commands/log.js';
import { endQuietlyOnClosedStdout, jsonRequested, reportError } from '../src/cli/run.js';
import { out } from '../src/cli/output.js';
import { ExitCode, InputError } from '../src/errors.js';
import { examples } from '../src/cli/options.js';
import { addGroupExamples, ENVIRONMENT_HELP, EXIT_CODES_HELP } from '../src/cli/help.js';
import { completionCommand, manCommand } from '../src/cli/completion.js';
import { setVerbosity } from '../src/cli/output.js';

const program = new Command('qtm')
  .description('qtm: both sides of an online transaction end with signed, verifiable proof of it')
  .version('0.1.0')
  .option('--debug', 'print stack traces with errors')
  .showHelpAfterError('(run with --help for usage)')
  .option('-q, --quiet', 'print results and errors only: no progress or notes on stderr')
  .option('-v, --verbose', 'say more: every check of a verified proof, the error code with each error')
  .addHelpText('after', `
Exit codes: ${EXIT_CODES_HELP.replace(/\n/g, '\n  ')}
Environment (a flag on the command line wins):
  ${ENVIRONMENT_HELP.replace(/\n/g, '\n  ')}
` + examples('qtm demo', 'qtm package sizes --profile v1', 'qtm verify fixtures/bundles/sample-v2.json --trust fixtures/ca/ca.pem'));

for (const cmd of [demoCommand(), caCommand(), keyCommand(), samCommand(), hsmCommand(), cardCommand(), serverCommand(), warrantCommand(), ttpCommand(), signCommand(), receiptsCommand(), verifyCommand(), logCommand(), inspectCommand(), packageCommand(),
  completionCommand(() => program), manCommand(() => program, { exitCodes: EXIT_CODES_HELP, environment: ENVIRONMENT_HELP })]) program.addCommand(cmd);
addGroupExamples(program);
program.hook('preAction', () => {
  const o = program.opts<{ quiet?: boolean; verbose?: boolean }>();
  if (o.quiet && o.verbose) throw new InputError('give -q/--quiet or -v/--verbose, not both');
  setVerbosity(o.quiet ? 'quiet' : o.verbose ? 'verbose' : 'normal');
});

// Every subcommand reports usage errors with exit code 2 instead of commander's default 1, and
// with the one prefix `qtm: error:` (commander's own messages start with "error:").
function applyExitOverride(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({ outputError: (str, write) => write(`qtm: ${str}`) });
  cmd.commands.forEach(applyExitOverride);
}
applyExitOverride(program);
endQuietlyOnClosedStdout();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
    process.exitCode = ok ? ExitCode.ok : ExitCode.usage;
    // commander printed its line on stderr already; under --json scripts get the same on stdout.
    if (!ok && jsonRequested()) out.json({ error: { code: 'E_USAGE', message: err.message.replace(/^error: /, ''), exitCode: ExitCode.usage } });
  } else {
    process.exitCode = reportError(err);
  }
}
