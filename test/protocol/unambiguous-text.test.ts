/**
 * What you see is what you sign (issue 14): UTS #39 mixed-script and confusable detection at the
 * "moderately restrictive" level, NFC, combining-mark limits, spaces; and the dialog's code points.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AmbiguousTextError, checkUnambiguousCharacters, checkUnambiguousText, skeleton } from '../../src/protocol/unambiguous-text.js';
import { PlainTextError } from '../../src/protocol/plain-text.js';
import { codePointNotes, renderContent } from '../../src/cli/dialog.js';

const refuses = (text: string, pattern: RegExp) =>
  assert.throws(() => checkUnambiguousText(Buffer.from(text)), (e: unknown) => e instanceof AmbiguousTextError && e instanceof PlainTextError && e.code === 'E_PLAIN_TEXT' && pattern.test(e.message), text);

test('Pay \\u0430pple: a Cyrillic a inside a Latin word is refused, named and placed', () => {
  refuses('Order 1\nPay \u0430pple\n', /^content is not plain text: the word "\u0430pple" mixes Latin and Cyrillic letters: U\+0430 "\u0430" is Cyrillic \(UTS #39 "moderately restrictive" forbids Latin with Cyrillic or Greek\) at byte 12 \(line 2, column 5\)$/);
  refuses('paypa\u0409', /mixes Latin and Cyrillic/); // the odd one out at the end
  refuses('\u03BFrder', /mixes Latin and Greek letters: U\+03BF/); // Greek omicron
  refuses('\u0440\u0430\u0443', /the Cyrillic word "\u0440\u0430\u0443" is drawn like the Latin "pay" \(UTS #39 whole-script confusable\)/);
  refuses('\uFF50ay', /U\+FF50 "\uFF50" is drawn like the ASCII "p" \(UTS #39 confusable\)/);
  refuses('\u{1D429}ay', /U\+1D429 .* is drawn like the ASCII "p"/);
  refuses('2 \u00D7 3', /U\+00D7 "\u00D7" is drawn like the ASCII "x"/);
  assert.equal(skeleton('\u0440\u0430\u0443'), 'pay', 'the confusables data maps Cyrillic р а у to p a y');
});

test('plain ASCII text takes the fast path, which the full checks agree with: none of them can refuse it', () => {
  // Printable ASCII, newlines and tabs: what plain text allows below U+0080.
  const asciiText = fc.array(fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.constantFrom(0x0a, 0x09)), { maxLength: 300 }).map((cs) => String.fromCharCode(...cs));
  fc.assert(fc.property(asciiText, (text) => {
    assert.equal(checkUnambiguousText(Buffer.from(text)), text);
    assert.equal(checkUnambiguousCharacters(text), text);
  }), { numRuns: 2000 });
  // One non-ASCII character anywhere leaves the fast path: refused where it stands.
  fc.assert(fc.property(asciiText, asciiText, (a, b) => {
    assert.throws(() => checkUnambiguousText(Buffer.from(`${a}\uFF50${b}`)), (e: unknown) => e instanceof AmbiguousTextError && e.byteOffset === Buffer.byteLength(a));
  }), { numRuns: 300 });
  // ASCII controls other than newline and tab are still refused by the plain-text check first.
  assert.throws(() => checkUnambiguousText(Buffer.from('pay\x1b[2Jnow')), (e: unknown) => e instanceof PlainTextError && /escape character/.test((e as Error).message));
});

test('a combining accent beside its precomposed twin: not NFC, refused', () => {
  refuses('caf\u00E9 or cafe\u0301', /not in Unicode NFC: U\+0065 U\+0301 is U\+00E9 in NFC, which looks the same and hashes differently at byte 12 \(line 1, column 12\)/);
  assert.equal(checkUnambiguousText(Buffer.from('caf\u00E9 or caf\u00E9')), 'caf\u00E9 or caf\u00E9');
});

test('U+0336 (combining long stroke) drawn over the digits of an amount, or over letters, is refused', () => {
  refuses('Total EUR 1\u03360\u03360.00', /combining mark U\+0336 "◌\u0336" on U\+0031 "1", not a letter: it draws over or beside another character at byte 11 \(line 1, column 12\)/);
  refuses('p\u0336ay', /combining mark U\+0336 .* on "p" does not compose into one character/);
});

test('fifty stacked combining marks are refused, the same mark or different ones', () => {
  refuses('a' + '\u0301'.repeat(50), /combining mark U\+0301 repeated on one character \(UTS #39 section 5\.4\)/);
  const many = Array.from({ length: 50 }, (_, i) => String.fromCodePoint(0x0300 + i)).join('');
  refuses('x' + many, /5 or more combining marks stacked on one character \(at most 4, UTS #39 section 5\.4\) at byte 9 /);
});

test('U+2800 (braille blank, drawn as a space) and spaces other than U+0020 are refused', () => {
  refuses('Pay\u2800100', /U\+2800 "\u2800" is not in a script recommended for text \(UAX #31, UTS #39\) at byte 3 /);
  refuses('EUR\u00A0100', /space character U\+00A0 other than U\+0020/);
  refuses('EUR\u2007100', /space character U\+2007/);
  refuses('EUR\u3000100', /space character U\+3000/);
});

test('ordinary text of one script per word is accepted, accents precomposed', () => {
  for (const text of ['Order 42\n\t\u00C4pfel 2 x \u20AC 3,50\n', 'Crème brûlée, naïve café\n', 'Tiếng Việt\n', '\u039A\u03B1\u03BB\u03B7\u03BC\u03AD\u03C1\u03B1\n', '\u041C\u043E\u0441\u043A\u0432\u0430, \u043C\u0430\u0441\u043B\u043E\n',
    '\u65E5\u672C\u8A9E \u30C6\u30B9\u30C8 \u3072\u3089\u304C\u306A\n', '\u0939\u093F\u0928\u094D\u0926\u0940\n', '\u05E2\u05D1\u05E8\u05D9\u05EA\n', 'Tokyo\u6771\u4EAC\n']) {
    assert.equal(checkUnambiguousText(Buffer.from(text)), text, text);
  }
});

test('the plain-text refusals still apply (controls, bidi, zero-width)', () => {
  assert.throws(() => checkUnambiguousText(Buffer.from('pay \u202Eeulav')), /bidirectional control U\+202E/);
  assert.throws(() => checkUnambiguousText(Buffer.from('EUR 1\u200B00')), /zero-width or format character U\+200B/);
});

test('the signing dialog names every non-ASCII character by its code point under its line', () => {
  assert.deepEqual(codePointNotes('plain ASCII'), []);
  assert.deepEqual(codePointNotes('\u00C4pfel \u20AC 3'), ['col 1 U+00C4 \u00C4, col 7 U+20AC \u20AC']);
  const shown = renderContent(Buffer.from('Order 7\n  1 x Cr\u00E8me br\u00FBl\u00E9e   EUR 4.50\n'));
  assert.match(shown, /\n│   1 x Crème brûlée   EUR 4\.50\n┆ col 9 U\+00E8 è, col 15 U\+00FB û, col 17 U\+00E9 é\n/);
  assert.match(shown, /3 non-ASCII characters, each named by its code point on a ┆ line below its own$/);
  assert.match(renderContent(Buffer.from('Order 8\n')), /; plain ASCII$/);
});
