/**
 * Claim 8 / SPEC 6: what is signed is what the customer read, so content must be plain UTF-8
 * text with nothing that renders differently from its bytes. Refused: invalid UTF-8, C0/C1
 * controls other than newline and tab (escape sequences start with one), bidirectional
 * controls, zero-width, invisible and format characters, byte-order marks, line/paragraph
 * separators, private-use and unassigned code points.
 */
import { RefusedError } from '../errors.js';

/**
 * The most content (an order's text) qtm signs: 64 KiB. One limit for the server that composes
 * an order and the client that decodes it, so the server never offers what a client refuses.
 */
export const MAX_CONTENT_BYTES = 65_536;

export class PlainTextError extends RefusedError {
  constructor(
    readonly reason: string,
    readonly byteOffset: number,
    readonly line: number,
    readonly column: number,
  ) {
    super(`content is not plain text: ${reason} at byte ${byteOffset} (line ${line}, column ${column})`,
      'remove the character; qtm signs only plain UTF-8 text', 'E_PLAIN_TEXT');
  }
}

const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
// Visible-looking-as-nothing characters that are not in the Cf category.
const INVISIBLE = /[\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u3164\uFFA0\uFE00-\uFE0F\u{E0100}-\u{E01EF}]/u;
const DISALLOWED = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u;

function codePointLabel(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function classify(ch: string): string | undefined {
  const cp = ch.codePointAt(0)!;
  if (ch === '\n' || ch === '\t') return undefined;
  if (cp === 0xfeff) return `byte-order mark ${codePointLabel(cp)}`;
  if (cp === 0x1b) return `escape character ${codePointLabel(cp)} (terminal escape sequence)`;
  if (BIDI.test(ch)) return `bidirectional control ${codePointLabel(cp)}`;
  if (cp < 0x20 || cp === 0x7f) return `C0 control character ${codePointLabel(cp)}`;
  if (cp >= 0x80 && cp <= 0x9f) return `C1 control character ${codePointLabel(cp)}`;
  if (INVISIBLE.test(ch)) return `invisible character ${codePointLabel(cp)}`;
  if (DISALLOWED.test(ch)) {
    if (/\p{Cf}/u.test(ch)) return `zero-width or format character ${codePointLabel(cp)}`;
    if (/\p{Co}/u.test(ch)) return `private-use character ${codePointLabel(cp)}`;
    if (/[\p{Zl}\p{Zp}]/u.test(ch)) return `line or paragraph separator ${codePointLabel(cp)}`;
    return `unassigned code point ${codePointLabel(cp)}`;
  }
  return undefined;
}

/**
 * Returns the text if `bytes` is acceptable plain text; throws PlainTextError otherwise.
 *
 * Bytes that are all printable ASCII, newline or tab are accepted without the per-character
 * classification: no ASCII character other than the C0 controls and DEL is refused above (none
 * is bidirectional, invisible, a format, private-use, unassigned or separator character). Any
 * other byte takes the full path, which names what is wrong and where. A property test checks
 * the two agree on every ASCII input. (Issue 10: the server checks each order it is given.)
 */
export function checkPlainText(bytes: Uint8Array): string {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if ((b < 0x20 && b !== 0x0a && b !== 0x09) || b >= 0x7f) return checkPlainTextFully(bytes);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** checkPlainText without its ASCII shortcut (exported for the tests). */
export function checkPlainTextFully(bytes: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8Offset(bytes);
    const before = Buffer.from(bytes.subarray(0, offset));
    const lastNewline = before.lastIndexOf(0x0a);
    const line = before.toString('latin1').split('\n').length;
    throw new PlainTextError('invalid UTF-8', offset, line, offset - lastNewline);
  }
  let byteOffset = 0;
  let line = 1;
  let column = 1;
  for (const ch of text) {
    const reason = classify(ch);
    if (reason) throw new PlainTextError(reason, byteOffset, line, column);
    byteOffset += Buffer.byteLength(ch, 'utf8');
    if (ch === '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return text;
}

/** The byte offset of the first byte that is not valid UTF-8 (the length when all is valid). */
export function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  // Decode growing prefixes is quadratic; instead find the first byte where a fatal decode of
  // the prefix up to the next character boundary fails.
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  while (start < bytes.length) {
    const lead = bytes[start]!;
    const len = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    try {
      decoder.decode(bytes.subarray(start, start + len));
    } catch {
      return start;
    }
    start += len;
  }
  return start;
}
