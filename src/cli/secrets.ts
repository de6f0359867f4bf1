/**
 * Secrets (passphrases, PINs) come from a file named by a flag (`--pin-file`, `--ca-passphrase-file`,
 * or `--passphrase-file` on a command that reads one passphrase), from stdin when asked
 * (`--pin-stdin`), from an environment variable, or from a masked prompt on a terminal; never
 * from a flag holding the secret itself, which any user can read in `ps`. A flag given on the
 * command line wins over the environment. Secrets are never printed or logged.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { CancelledError, isPromptCancel } from './run.js';
import type { SecretKind } from './secret-sources.js';

export interface SecretSource {
  readonly env: string;
  readonly prompt: string;
  readonly flag?: string;
  readonly card?: boolean;
  /** Ask twice and require both to match (for a new passphrase). */
  readonly confirm?: boolean;
  readonly minLength?: number;
  /** Read one line from stdin instead of prompting. */
  readonly fromStdin?: boolean;
}

/** The parsed options of a command that declared its secrets with secretOptions(). */
export type SecretFlags = object;

let stdinLines: string[] | undefined;

async function readStdinLine(): Promise<string | undefined> {
  if (!stdinLines) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    stdinLines = Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  }
  return stdinLines.shift();
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function fileFlagValue(src: SecretSource, given: SecretFlags | undefined): { option: string; file: string } | undefined {
  const flags = given as Record<string, unknown> | undefined;
  if (!flags || !src.flag) return undefined;
  const own = flags[`${camel(src.flag)}File`];
  if (typeof own === 'string') return { option: `--${src.flag}-file`, file: own };
  // --passphrase-file exists only on commands that read one passphrase: it is that one.
  const generic = flags.passphraseFile;
  if (typeof generic === 'string' && !src.card) return { option: '--passphrase-file', file: generic };
  return undefined;
}

/** The first line of a secret file, as step and cosign read --password-file. */
function readSecretFile(option: string, file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${option} ${file}: cannot read the ${what}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the path and its permissions');
  }
  const value = text.split(/\r?\n/)[0] ?? '';
  if (value === '') throw new InputError(`${option} ${file}: the first line is empty, no ${what} in it`);
  return value;
}

export async function readSecret(src: SecretSource, flags?: SecretFlags): Promise<string> {
  let value: string | undefined;
  const file = fileFlagValue(src, flags);
  const fromStdin = src.fromStdin || Boolean(src.card && (flags as { pinStdin?: boolean } | undefined)?.pinStdin);
  if (file) {
    value = readSecretFile(file.option, file.file, src.prompt);
  } else if (fromStdin) {
    value = await readStdinLine();
    if (value === undefined || value === '') throw new InputError(`no ${src.prompt} on standard input`, 'give one per line, in the order the command asks for them');
  } else {
    value = process.env[src.env];
  }
  if (value === undefined) {
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw new InputError(`${src.prompt} needed`, `set ${src.env}${src.flag ? `, pass --${src.flag}-file FILE` : ''}${src.card ? ', or --pin-stdin' : ''}, or run on a terminal to be prompted`);
    }
    value = await promptMasked(src.prompt);
    if (src.confirm && value !== (await promptMasked(`${src.prompt} (again)`))) {
      throw new InputError(`the two ${src.prompt} entries differ`, 'run the command again');
    }
  }
  if (src.minLength && value.length < src.minLength) {
    throw new InputError(`${src.prompt} must be at least ${src.minLength} characters`);
  }
  return value;
}

/**
 * Declares the secrets a command reads: `--<kind>-file FILE` for each, `--passphrase-file FILE`
 * when it reads exactly one passphrase, and `--pin-stdin` when it reads card secrets.
 */
export function secretOptions(cmd: Command, kinds: SecretKind[], opts: { onePassphrase?: boolean } = {}): Command {
  for (const k of kinds) cmd.option(`--${k.flag}-file <file>`, `read the ${k.prompt} from the first line of FILE (or ${k.env}, or a prompt)`);
  const passphrases = kinds.filter((k) => !k.card);
  if (passphrases.length === 1 || (passphrases.length && opts.onePassphrase)) {
    cmd.option('--passphrase-file <file>', `read the passphrase from the first line of FILE (${passphrases.map((k) => `--${k.flag}-file`).join(' or ')})`);
  }
  const cardKinds = kinds.filter((k) => k.card);
  if (cardKinds.length && !cmd.options.some((o) => o.long === '--pin-stdin')) {
    cmd.option('--pin-stdin', `read the ${cardKinds.map((k) => k.prompt.replace('card ', '')).join(', then the ')} from standard input, one per line`);
  }
  return cmd;
}

async function promptMasked(message: string): Promise<string> {
  const { createPromptModule } = (await import('inquirer')).default;
  // Prompts go to stderr so stdout carries only results.
  const prompt = createPromptModule({ output: process.stderr });
  try {
    const answer = await prompt<{ secret: string }>([{ type: 'password', name: 'secret', message, mask: '*' }]);
    return answer.secret;
  } catch (err) {
    if (isPromptCancel(err)) throw new CancelledError();
    throw err;
  }
}
