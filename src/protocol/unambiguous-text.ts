/**
 * What you see is what you sign (claim 8, issue 14): beyond plain text (plain-text.ts), the text
 * of an order must not look like, or be drawn the same as, another text that hashes differently.
 * Applied by the server when it composes an order and by the client before it shows one; a
 * verifier does not apply it to proofs already signed (they stay valid as they were).
 *
 * The Unicode security mechanisms (UTS #39), with maintained data only:
 * - Scripts: each character's Script_Extensions from the runtime's ICU data (\p{scx=...}), with
 *   the augmented sets of UTS #39 section 5.1 (Han with Japanese, Korean, Bopomofo).
 * - Restriction level "moderately restrictive" (UTS #39 section 5.2) for every word: one script,
 *   or Latin with Han/Japanese/Korean, or Latin with one other recommended script other than
 *   Cyrillic and Greek. Characters of scripts not recommended for general use (UAX #31 table 5:
 *   e.g. Braille, whose U+2800 draws as a space) are refused.
 * - Confusables: the skeleton of UTS #39 section 4 (NFD, the confusables.txt mapping from the
 *   `unhomoglyph` package, NFD). A non-ASCII character that is drawn as ASCII (fullwidth p,
 *   mathematical bold p, one-dot leader, multiplication sign) and a word of another script that
 *   is drawn as an ASCII word (whole-script confusable, Cyrillic "рау" for "pay") are refused.
 * - NFC required (UAX #15): a letter and a combining accent beside its precomposed twin differ in
 *   bytes only. Marks (UTS #39 section 5.4): at most 4 in a row, never the same twice, only on a
 *   letter of the mark's script; on Latin, Greek and Cyrillic letters only marks that compose
 *   into one character (so no U+0336 long stroke drawn over digits or letters).
 * - Spaces: U+0020 only; any other space character looks like it and hashes differently.
 */
import unhomoglyph from 'unhomoglyph';
import { checkPlainText, PlainTextError } from './plain-text.js';

/** UAX #31 table 5, Recommended Scripts (Common and Inherited are handled apart). */
const RECOMMENDED = ['Latin', 'Arabic', 'Armenian', 'Bengali', 'Bopomofo', 'Cyrillic', 'Devanagari', 'Ethiopic', 'Georgian', 'Greek', 'Gujarati', 'Gurmukhi',
  'Han', 'Hangul', 'Hebrew', 'Hiragana', 'Kannada', 'Katakana', 'Khmer', 'Lao', 'Malayalam', 'Myanmar', 'Oriya', 'Sinhala', 'Tamil', 'Telugu', 'Thaana', 'Thai', 'Tibetan'] as const;
const SCRIPT_RE = new Map(RECOMMENDED.map((s) => [s, new RegExp(`^\\p{scx=${s}}$`, 'u')]));
const NEUTRAL = /^[\p{scx=Zyyy}\p{scx=Zinh}]$/u; // Common or Inherited only
const MARK = /^[\p{Mn}\p{Me}]$/u;
const LETTER = /^\p{L}$/u;
const WORD_CHAR = /^[\p{L}\p{M}\p{N}]$/u;
/** UTS #39 5.1: Han is used with Japanese, Korean and Bopomofo writing. */
const AUGMENT: Record<string, string[]> = { Han: ['Japanese', 'Korean', 'HanBopomofo'], Hiragana: ['Japanese'], Katakana: ['Japanese'], Hangul: ['Korean'], Bopomofo: ['HanBopomofo'] };
const MAX_MARKS = 4;

export const cp = (ch: string) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
const shown = (ch: string) => (MARK.test(ch) ? `"◌${ch}"` : `"${ch}"`);

/** Script_Extensions of a character restricted to recommended scripts, augmented; undefined for Common/Inherited. */
function scriptSet(ch: string): Set<string> | undefined {
  if (NEUTRAL.test(ch)) return undefined;
  const set = new Set<string>();
  for (const [name, re] of SCRIPT_RE) if (re.test(ch)) set.add(name);
  for (const s of [...set]) for (const a of AUGMENT[s] ?? []) set.add(a);
  return set;
}

/** The UTS #39 skeleton: NFD, each character mapped by confusables.txt, NFD again. */
export function skeleton(text: string): string {
  return unhomoglyph(text.normalize('NFD')).normalize('NFD');
}

const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

export class AmbiguousTextError extends PlainTextError {}

/**
 * Throws a PlainTextError (an AmbiguousTextError) naming the first character that makes the text
 * ambiguous to a reader, and where it is; returns the text otherwise.
 *
 * Plain text that is all ASCII is returned as it is, without the checks below, because none of
 * them can refuse it: plain text admits no ASCII controls but newline and tab, ASCII holds no
 * combining marks and is its own NFC, every check per character starts at U+0080, and a word of
 * ASCII letters and digits is Latin (letters) and Common (digits), which mixes no scripts and is
 * no whole-script confusable. The test suite checks this against the full path on random ASCII.
 * (The server's own orders are ASCII when the catalogue is: issue 10, the hot path.)
 */
export function checkUnambiguousText(bytes: Uint8Array): string {
  const text = checkPlainText(bytes);
  // One UTF-16 unit per byte exactly when every byte is below 0x80 (a longer UTF-8 sequence gives fewer units than bytes).
  if (text.length === bytes.length) return text;
  return checkUnambiguousCharacters(text);
}

/** The checks of checkUnambiguousText on text that already passed checkPlainText, ASCII or not (exported for the tests). */
export function checkUnambiguousCharacters(text: string): string {
  const chars = [...text];
  // Where the i-th character is: worked out only for the one refused.
  const fail = (i: number, reason: string): never => {
    let byteOffset = 0, line = 1, column = 1;
    for (let k = 0; k < i; k++) {
      const ch = chars[k]!;
      byteOffset += Buffer.byteLength(ch, 'utf8');
      if (ch === '\n') (line++, (column = 1));
      else column++;
    }
    throw new AmbiguousTextError(reason, byteOffset, line, column);
  };

  // Per cluster (a character and the marks after it), before anything else: the marks' count and
  // repetition (UTS #39 5.4), then NFC (a letter and a combining accent beside its precomposed twin
  // differ in bytes only).
  for (let start = 0, i = 1; i <= chars.length; i++) {
    if (i < chars.length && MARK.test(chars[i]!)) {
      const marks = chars.slice(start + 1, i + 1);
      if (marks.length > MAX_MARKS) fail(i, `${marks.length} or more combining marks stacked on one character (at most ${MAX_MARKS}, UTS #39 section 5.4)`);
      if (marks.indexOf(chars[i]!) !== marks.length - 1) fail(i, `combining mark ${cp(chars[i]!)} repeated on one character (UTS #39 section 5.4)`);
      continue;
    }
    const cluster = chars.slice(start, i).join('');
    if (cluster.normalize('NFC') !== cluster) {
      fail(start, `not in Unicode NFC: ${[...cluster].map(cp).join(' ')} is ${[...cluster.normalize('NFC')].map(cp).join(' ')} in NFC, which looks the same and hashes differently`);
    }
    start = i;
  }
  if (text.normalize('NFC') !== text) fail(0, 'not in Unicode NFC (a sequence that composes across characters)');

  // Per character: spaces, scripts, marks, confusable with ASCII.
  let base = -1; // index of the character the current marks sit on
  let marks: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch.charCodeAt(0) < 0x80) {
      base = i;
      marks = [];
      continue;
    }
    if (/^\p{Zs}$/u.test(ch)) fail(i, `space character ${cp(ch)} other than U+0020: it looks like a space and hashes differently`);
    const set = scriptSet(ch);
    if (set && set.size === 0) fail(i, `${cp(ch)} ${shown(ch)} is not in a script recommended for text (UAX #31, UTS #39)`);
    if (MARK.test(ch)) {
      marks.push(ch);
      const b = base >= 0 ? chars[base]! : undefined;
      if (b === undefined || !LETTER.test(b)) fail(i, `combining mark ${cp(ch)} ${shown(ch)} on ${b === undefined ? 'nothing' : `${cp(b)} ${JSON.stringify(b)}, not a letter`}: it draws over or beside another character`);
      const baseSet = scriptSet(b!);
      if (set && baseSet && ![...set].some((s) => baseSet.has(s))) fail(i, `combining mark ${cp(ch)} ${shown(ch)} of another script than the letter ${cp(b!)} it sits on`);
      if (baseSet && ['Latin', 'Greek', 'Cyrillic'].some((s) => baseSet.has(s))) {
        fail(i, `combining mark ${cp(ch)} ${shown(ch)} on ${JSON.stringify(b)} does not compose into one character: it draws over or beside the letter (write the precomposed letter, or leave the mark out)`);
      }
      continue;
    }
    base = i;
    marks = [];
    const sk = skeleton(ch);
    if ((!set || set.has('Latin')) && PRINTABLE_ASCII.test(sk)) fail(i, `${cp(ch)} ${shown(ch)} is drawn like the ASCII ${JSON.stringify(sk)} (UTS #39 confusable): write ${JSON.stringify(sk)}`);
  }
  // Per word: mixed scripts (moderately restrictive) and whole-script confusables.
  for (let i = 0; i < chars.length; ) {
    if (!WORD_CHAR.test(chars[i]!)) {
      i++;
      continue;
    }
    const start = i;
    while (i < chars.length && WORD_CHAR.test(chars[i]!)) i++;
    checkWord(chars, start, i, fail);
  }
  return text;
}

function checkWord(chars: string[], start: number, end: number, fail: (i: number, reason: string) => never): void {
  const word = chars.slice(start, end).join('');
  const latin: number[] = [];
  const other: number[] = [];
  let resolved: Set<string> | undefined; // the scripts every letter outside Latin shares
  for (let i = start; i < end; i++) {
    const set = scriptSet(chars[i]!);
    if (!set) continue;
    if (set.has('Latin')) {
      latin.push(i);
      continue;
    }
    other.push(i);
    const next = resolved ? new Set([...resolved].filter((s) => set.has(s))) : set;
    if (next.size === 0) fail(i, `the word ${JSON.stringify(word)} mixes the ${[...resolved!][0]} and ${[...set][0]} scripts at ${cp(chars[i]!)} ${shown(chars[i]!)} (UTS #39 mixed-script detection)`);
    resolved = next;
  }
  if (!resolved) return;
  if (latin.length && [...resolved].every((s) => s === 'Cyrillic' || s === 'Greek')) {
    const at = other.length <= latin.length ? other[0]! : latin[0]!;
    fail(at, `the word ${JSON.stringify(word)} mixes Latin and ${[...resolved][0]} letters: ${cp(chars[at]!)} ${shown(chars[at]!)} is ${other.includes(at) ? [...resolved][0] : 'Latin'} (UTS #39 "moderately restrictive" forbids Latin with Cyrillic or Greek)`);
  }
  if (!latin.length) {
    const sk = skeleton(word);
    if (/^[A-Za-z0-9]+$/.test(sk) && /[A-Za-z]/.test(sk)) fail(start, `the ${[...resolved][0]} word ${JSON.stringify(word)} is drawn like the Latin ${JSON.stringify(sk)} (UTS #39 whole-script confusable)`);
  }
}
