import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkPlainText, checkPlainTextFully, PlainTextError } from '../../src/protocol/plain-text.js';

test('accepts ordinary multilingual text with newlines and tabs', () => {
  const text = 'Order 42\n\tÄpfel 2 × € 3,50\nΚαλημέρα, 日本語, עברית, emoji 🙂\n';
  assert.equal(checkPlainText(Buffer.from(text)), text);
});

const refused: [string, string, RegExp][] = [
  ['a right-to-left override', 'pay \u202Eeulav', /bidirectional control U\+202E/],
  ['a left-to-right mark', 'a\u200Eb', /bidirectional control U\+200E/],
  ['an isolate', 'a\u2066b', /bidirectional control U\+2066/],
  ['a zero-width space', 'EUR 1\u200B00', /zero-width or format character U\+200B/],
  ['a zero-width joiner', 'a\u200Db', /U\+200D/],
  ['a byte-order mark', '\uFEFFOrder', /byte-order mark U\+FEFF/],
  ['an escape sequence', 'total \x1b[8mhidden', /escape character U\+001B/],
  ['a carriage return', 'a\r\nb', /C0 control character U\+000D/],
  ['a NUL', 'a\x00b', /C0 control character U\+0000/],
  ['DEL', 'a\x7fb', /C0 control character U\+007F/],
  ['a C1 control', 'a\u0085b', /C1 control character U\+0085/],
  ['a soft hyphen', 'pay\u00ADment', /format character U\+00AD/],
  ['a Hangul filler', 'a\u3164b', /invisible character U\+3164/],
  ['a variation selector', 'a\uFE0Fb', /invisible character U\+FE0F/],
  ['a tag character', 'a\u{E0041}b', /U\+E0041/],
  ['a private-use character', 'a\uE000b', /private-use character U\+E000/],
  ['a line separator', 'a\u2028b', /line or paragraph separator U\+2028/],
];

for (const [name, text, pattern] of refused) {
  test(`refuses ${name}, naming the character and its position`, () => {
    assert.throws(() => checkPlainText(Buffer.from(text)), (e: unknown) => e instanceof PlainTextError && pattern.test(e.message));
  });
}

test('the error names the byte offset, line and column of the offending character', () => {
  try {
    checkPlainText(Buffer.from('line one\nprice: €5\u202E0\n'));
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof PlainTextError);
    assert.equal(e.line, 2);
    assert.equal(e.column, 10);
    assert.equal(e.byteOffset, Buffer.byteLength('line one\nprice: €5'));
  }
});

test('invalid UTF-8 is refused at the first bad byte', () => {
  assert.throws(() => checkPlainText(Buffer.from([0x61, 0x0a, 0x62, 0xff, 0x63])), (e: unknown) =>
    e instanceof PlainTextError && e.byteOffset === 3 && e.line === 2 && /invalid UTF-8/.test(e.message));
  assert.throws(() => checkPlainText(Buffer.from([0xc0, 0xaf])), /invalid UTF-8/); // overlong '/'
  assert.throws(() => checkPlainText(Buffer.from([0xed, 0xa0, 0x80])), /invalid UTF-8/); // surrogate
});

test('property: any byte string is either accepted unchanged or refused with PlainTextError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    try {
      assert.deepEqual(Buffer.from(checkPlainText(bytes)), Buffer.from(bytes));
    } catch (e) {
      assert.ok(e instanceof PlainTextError, String(e));
    }
  }), { numRuns: 3000 });
});

test('property: on ASCII bytes (controls and DEL included) the shortcut and the full check agree: the same text, or the same refusal', () => {
  const outcome = (f: () => string) => {
    try {
      return { text: f() };
    } catch (err) {
      assert.ok(err instanceof PlainTextError);
      return { error: (err as Error).message };
    }
  };
  const mostlyPrintable = fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7f }) });
  fc.assert(fc.property(fc.array(mostlyPrintable, { maxLength: 200 }), (codes) => {
    const bytes = Uint8Array.from(codes);
    assert.deepEqual(outcome(() => checkPlainText(bytes)), outcome(() => checkPlainTextFully(bytes)));
  }), { numRuns: 3000 });
  // A view into a larger buffer reads only its own bytes.
  const whole = Buffer.from('xxorder 1\nyy');
  assert.equal(checkPlainText(whole.subarray(2, 10)), 'order 1\n');
});
