import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import {
  MAX_SIGNATURES, NoteSignatureError, decodeNote, decodeSkey, decodeVkey, ed25519NoteSigner, ed25519NoteVerifier,
  encodeNote, encodeSkey, encodeVkey, keyId, signNote, verifyNote,
} from '../../src/tlog/note.js';
import { fixtureText } from '../helpers.js';

const go = JSON.parse(fixtureText('tlog', 'signed-note-go.json'));

test('Go sumdb/note vector: the skey signs the text into the exact signed note', () => {
  const skey = decodeSkey(go.ed25519.skey);
  assert.equal(skey.name, 'PeterNeumann');
  assert.equal(skey.keyId, 0xc74f20a3);
  assert.equal(signNote(go.text, [ed25519NoteSigner(skey)]), go.signedNote);
  assert.equal(encodeSkey(skey), go.ed25519.skey);
  assert.equal(encodeVkey(skey), go.ed25519.vkey);
});

test('Go sumdb/note vector: the vkey verifies the signed note; the other key\'s line is ignored or verified', () => {
  const peter = ed25519NoteVerifier(decodeVkey(go.ed25519.vkey));
  const enoch = ed25519NoteVerifier(decodeVkey(go.ed25519.otherVkey));
  const note = decodeNote(go.signedNote);
  assert.equal(note.text, go.text);
  assert.deepEqual(verifyNote(note, [peter]), [peter]);
  const both = decodeNote(go.signedNote + go.otherSignatureLine);
  assert.deepEqual(verifyNote(both, [peter]), [peter]);
  assert.deepEqual(verifyNote(both, [peter, enoch]), [peter, enoch]);
  assert.equal(encodeNote(both), go.signedNote + go.otherSignatureLine);
  assert.throws(() => verifyNote(note, [enoch]), (e) => e instanceof NoteSignatureError && /no signature by a known key \(EnochRoot\+af0cfe78\)/.test(e.message));
});

test('C2SP signed-note example: the example vkey verifies the example note', () => {
  const v = ed25519NoteVerifier(decodeVkey('example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'));
  const msg = 'This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';
  assert.deepEqual(verifyNote(decodeNote(Buffer.from(msg, 'utf8')), [v]), [v]);
});

test('a signature line with a changed byte fails with the Go error text', () => {
  const peter = ed25519NoteVerifier(decodeVkey(go.ed25519.vkey));
  const line = go.signedNote.split('\n\n')[1] as string;
  const sigB64 = line.split(' ')[2]!.trim();
  const raw = Buffer.from(sigB64, 'base64');
  for (const at of [4, 20, 67]) {
    const bad = Buffer.from(raw);
    bad[at]! ^= 0x01;
    const forged = go.signedNote.replace(sigB64, bad.toString('base64'));
    assert.throws(() => verifyNote(decodeNote(forged), [peter]), /^NoteSignatureError: invalid signature for key PeterNeumann\+c74f20a3$/);
  }
  // A changed note text fails too.
  assert.throws(() => verifyNote(decodeNote(go.signedNote.replace('cryptography', 'cryptographY')), [peter]), /invalid signature/);
});

test('every single-character change and every substring of the vkey and skey is refused as a key', () => {
  const alphabet = 'ABab019+/=_x';
  for (const [key, decode] of [[go.ed25519.vkey, decodeVkey], [go.ed25519.skey, decodeSkey]] as const) {
    for (let i = 0; i < key.length; i++) {
      for (const c of alphabet) {
        if (c === key[i]) continue;
        const changed = key.slice(0, i) + c + key.slice(i + 1);
        assert.throws(() => decode(changed), DecodeError, `${changed}`);
      }
    }
    for (let a = 0; a < key.length; a++) {
      for (let b = a + 1; b <= key.length; b++) {
        if (a === 0 && b === key.length) continue;
        assert.throws(() => decode(key.slice(a, b)), DecodeError, key.slice(a, b));
      }
    }
  }
});

test(`more than ${MAX_SIGNATURES} signature lines are refused`, () => {
  const line = go.signedNote.split('\n\n')[1] as string;
  assert.doesNotThrow(() => decodeNote(go.text + '\n' + line.repeat(MAX_SIGNATURES)));
  assert.throws(() => decodeNote(go.text + '\n' + line.repeat(MAX_SIGNATURES + 1)), /more than 100 signatures/);
});

for (const [name, msg, pattern] of [
  ['no blank line', 'hello\n\u2014 a AAAAAAA=\n', /no blank line/],
  ['no final newline', `${go.signedNote.slice(0, -1)}`, /end with a newline/],
  ['a tab', go.signedNote.replace('If you', 'If\tyou'), /control character/],
  ['a CR', go.signedNote.replace('\n\n', '\r\n\n'), /control character/],
  ['a hyphen for the em dash', go.signedNote.replace('\u2014', '-'), /signature line 1/],
  ['non-canonical base64', go.signedNote.replace('AM=\n', 'AN=\n'), /canonical base64/],
  ['an empty text', '\n\u2014 a AAAAAAA=\n', /no blank line/],
  ['a signature of only a key ID', `${go.text}\n\u2014 a AAAAAA==\n`, /shorter than a key ID/],
] as const) {
  test(`note decoder refuses ${name}`, () => {
    assert.throws(() => decodeNote(msg), (e) => e instanceof DecodeError && pattern.test(e.message));
  });
}

test('note decoder refuses invalid UTF-8 bytes', () => {
  const bytes = Buffer.concat([Buffer.from('caf'), Buffer.from([0xc3]), Buffer.from('\n\n\u2014 a AAAAAAA=\n')]);
  assert.throws(() => decodeNote(bytes), /not valid UTF-8/);
});

test('a key with the same name but another ID, or another name with the same ID, is ignored, not trusted', () => {
  const skey = decodeSkey(go.ed25519.skey);
  const signer = ed25519NoteSigner(skey);
  const peter = ed25519NoteVerifier(decodeVkey(go.ed25519.vkey));
  const sameNameOtherId = signNote(go.text, [{ ...signer, keyId: (signer.keyId ^ 1) >>> 0 }]);
  assert.throws(() => verifyNote(decodeNote(sameNameOtherId), [peter]), /no signature by a known key/);
  const otherNameSameId = signNote(go.text, [{ ...signer, name: 'PeterNeumann2' }]);
  assert.throws(() => verifyNote(decodeNote(otherNameSameId), [peter]), /no signature by a known key/);
});

test('key IDs follow SHA-256(name || 0x0A || type || key)[:4]', () => {
  const v = decodeVkey(go.ed25519.vkey);
  assert.equal(keyId(v.name, 0x01, v.publicKey), 0xc74f20a3);
  assert.notEqual(keyId(v.name, 0x04, v.publicKey), 0xc74f20a3);
});

test('property: the note decoder only ever returns or throws DecodeError, and re-encodes what it accepts byte for byte', () => {
  const line = fc.tuple(fc.stringMatching(/^[a-z.\/]{1,12}$/), fc.uint8Array({ minLength: 5, maxLength: 80 }))
    .map(([n, b]) => `\u2014 ${n} ${Buffer.from(b).toString('base64')}\n`);
  const valid = fc.tuple(fc.array(fc.stringMatching(/^[^\u0000-\u001f]{0,20}$/), { minLength: 1, maxLength: 4 }), fc.array(line, { minLength: 1, maxLength: 4 }))
    .map(([ls, sigs]) => `${ls.join('\n')}\n\n${sigs.join('')}`)
    .filter((s) => !s.startsWith('\n'));
  fc.assert(fc.property(valid, (msg) => {
    let n;
    try { n = decodeNote(msg); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); return; }
    assert.equal(encodeNote(n), msg);
  }), { numRuns: 500 });
  fc.assert(fc.property(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 200 })), (x) => {
    try { decodeNote(x); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
    try { decodeVkey(typeof x === 'string' ? x : Buffer.from(x).toString('latin1')); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
    try { decodeSkey(typeof x === 'string' ? x : Buffer.from(x).toString('latin1')); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
  }), { numRuns: 1000 });
});

test('property: a signed note made with any key name verifies with the matching vkey only', () => {
  fc.assert(fc.property(fc.stringMatching(/^[a-z0-9.\/]{1,20}$/), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.string({ minLength: 1, maxLength: 30 }), (name, seed, t) => {
    const text = `${t.replace(/[\u0000-\u001f]/g, ' ')}\n`;
    const skey = { name, type: 1, seed: Buffer.from(seed) };
    const s = decodeSkey(encodeSkey(skey));
    const msg = signNote(text, [ed25519NoteSigner(s)]);
    const v = ed25519NoteVerifier(decodeVkey(encodeVkey(s)));
    assert.equal(verifyNote(decodeNote(msg), [v]).length, 1);
  }), { numRuns: 100 });
});
