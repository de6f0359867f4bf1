/**
 * The text-only dialog of claim 8: the content is shown as the exact bytes that will be hashed
 * (it has already passed the plain-text check, so what the terminal shows is what is signed),
 * with its size and SHA-256, and the user accepts or declines. Everything goes to stderr so
 * stdout keeps only the result.
 */
import { createHash } from 'node:crypto';
import { colourFor } from './output.js';

export function renderContent(content: Buffer, stream: NodeJS.WriteStream = process.stderr, title = 'Order to sign'): string {
  const c = colourFor(stream);
  const text = content.toString('utf8');
  const lines = text.split('\n');
  const trailingNewline = text.endsWith('\n');
  if (trailingNewline) lines.pop();
  const width = Math.min(100, Math.max(40, ...lines.map((l) => [...l].length)) + 2);
  const sha = createHash('sha256').update(content).digest('hex');
  return [
    c.bold(`${title}: ${content.length} bytes, SHA-256 ${sha}`),
    `┌${'─'.repeat(width)}┐`,
    ...lines.map((l) => `│ ${l}`),
    `└${'─'.repeat(width)}┘`,
    trailingNewline ? '(ends with a newline; tabs shown as-is)' : '(no final newline)',
  ].join('\n');
}

export async function askToAccept(content: Buffer): Promise<boolean> {
  process.stderr.write(renderContent(content) + '\n');
  const { createPromptModule } = (await import('inquirer')).default;
  const prompt = createPromptModule({ output: process.stderr });
  const { accept } = await prompt<{ accept: boolean }>([{ type: 'confirm', name: 'accept', message: 'Sign this order with your card?', default: false }]);
  return accept;
}
