/**
 * Secrets (passphrases, PINs) come from an environment variable, from stdin when asked, or
 * from a masked prompt on a terminal; never from a command-line flag, which any user can read
 * in `ps`. They are never printed or logged.
 */
import { InputError } from '../errors.js';

export interface SecretSource {
  readonly env: string;
  readonly prompt: string;
  /** Ask twice and require both to match (for a new passphrase). */
  readonly confirm?: boolean;
  readonly minLength?: number;
  /** Read one line from stdin instead of prompting. */
  readonly fromStdin?: boolean;
}

let stdinLines: string[] | undefined;

async function readStdinLine(): Promise<string | undefined> {
  if (!stdinLines) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    stdinLines = Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  }
  return stdinLines.shift();
}

export async function readSecret(src: SecretSource): Promise<string> {
  let value: string | undefined = process.env[src.env];
  if (value === undefined && src.fromStdin) {
    value = await readStdinLine();
    if (value === undefined || value === '') throw new InputError(`no ${src.prompt} on standard input`);
  }
  if (value === undefined) {
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw new InputError(`${src.prompt} needed`, `set ${src.env} or run on a terminal to be prompted`);
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

async function promptMasked(message: string): Promise<string> {
  const { createPromptModule } = (await import('inquirer')).default;
  // Prompts go to stderr so stdout carries only results.
  const prompt = createPromptModule({ output: process.stderr });
  const answer = await prompt<{ secret: string }>([{ type: 'password', name: 'secret', message, mask: '*' }]);
  return answer.secret;
}
