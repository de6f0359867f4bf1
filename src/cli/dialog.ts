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
  const nonAscii = [...text].filter((ch) => ch.charCodeAt(0) >= 0x80).length;
  return [
    c.bold(`${title}: ${content.length} bytes, SHA-256 ${sha}`),
    `┌${'─'.repeat(width)}┐`,
    ...lines.flatMap((l) => [`│ ${l}`, ...codePointNotes(l).map((n) => c.dim(`┆ ${n}`))]),
    `└${'─'.repeat(width)}┘`,
    (trailingNewline ? '(ends with a newline; tabs shown as-is)' : '(no final newline)') +
      (nonAscii ? `; ${nonAscii} non-ASCII character${nonAscii === 1 ? '' : 's'}, each named by its code point on a ┆ line below its own` : '; plain ASCII'),
  ].join('\n');
}

/**
 * What you see is what you sign: every non-ASCII character of a line is named by its code point
 * and column on the ┆ lines under it (not in the line, where a note could be taken for text the
 * order holds: an order line cannot start with ┆ after the box's │).
 */
export function codePointNotes(line: string, perLine = 6): string[] {
  const notes: string[] = [];
  let column = 0;
  for (const ch of line) {
    column++;
    if (ch.charCodeAt(0) < 0x80) continue;
    const shown = /^[\p{M}]$/u.test(ch) ? `◌${ch}` : ch;
    notes.push(`col ${column} U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} ${shown}`);
  }
  const out: string[] = [];
  for (let i = 0; i < notes.length; i += perLine) out.push(notes.slice(i, i + perLine).join(', '));
  return out;
}

export async function askToAccept(content: Buffer): Promise<boolean> {
  process.stderr.write(renderContent(content) + '\n');
  const { createPromptModule } = (await import('inquirer')).default;
  const prompt = createPromptModule({ output: process.stderr });
  const { accept } = await prompt<{ accept: boolean }>([{ type: 'confirm', name: 'accept', message: 'Sign this order with your card?', default: false }]);
  return accept;
}
