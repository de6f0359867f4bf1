import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { decodeCheckpointBody, decodeSignedCheckpoint, encodeCheckpointBody, openCheckpoint, signCheckpoint } from '../../src/tlog/checkpoint.js';
import {
  cosignatureVerifier, cosignedMessage, cosigner, decodeTimestampedSignature, encodeTimestampedSignature,
} from '../../src/tlog/cosignature.js';
import { NoteSignatureError, decodeNote, decodeSkey, decodeVkey, ed25519NoteSigner, ed25519NoteVerifier, encodeNote, encodeSkey, encodeVkey, keyId, verifyNote } from '../../src/tlog/note.js';

// The C2SP tlog-checkpoint v1.0.0 and tlog-cosignature v1.0.1 examples, verbatim.
const BODY = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const LOG_LINE = '\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n';
const WITNESS_LINE = '\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n';

test('C2SP checkpoint example decodes and re-encodes byte for byte', () => {
  const sc = decodeSignedCheckpoint(`${BODY}\n${LOG_LINE}${WITNESS_LINE}`);
  assert.equal(sc.checkpoint.origin, 'example.com/behind-the-sofa');
  assert.equal(sc.checkpoint.size, 20852163);
  assert.equal(sc.checkpoint.root.toString('base64'), 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=');
  assert.equal(encodeCheckpointBody(sc.checkpoint), BODY);
  assert.equal(encodeNote(sc.note), `${BODY}\n${LOG_LINE}${WITNESS_LINE}`);
});

test('C2SP cosignature example: key ID, timestamp and signed message as the spec shows them', () => {
  const note = decodeNote(`${BODY}\n${LOG_LINE}${WITNESS_LINE}`);
  const w = note.signatures[1]!;
  assert.equal(w.name, 'witness.example.com/w1');
  const t = decodeTimestampedSignature(w.sig);
  assert.equal(t.timestamp, 1679315147);
  assert.equal(cosignedMessage(BODY, t.timestamp).toString(),
    'cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n');
  assert.deepEqual(encodeTimestampedSignature(t), w.sig);
});

const seed = (n: number) => Buffer.alloc(32, n);
const logSkey = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 0x01, seed: seed(1) }));
const logSigner = ed25519NoteSigner(logSkey);
const logVerifier = ed25519NoteVerifier(decodeVkey(encodeVkey(logSkey)));
const root = Buffer.alloc(32, 7);

test('a checkpoint signed by the log opens with the log key; another key or origin is refused', () => {
  const signed = signCheckpoint({ origin: 'shop.example/log', size: 5, root, extensions: [] }, logSigner);
  assert.equal(openCheckpoint(signed, logVerifier).checkpoint.size, 5);
  const other = decodeSkey(encodeSkey({ name: 'shop.example/log', type: 0x01, seed: seed(2) }));
  const forged = signCheckpoint({ origin: 'shop.example/log', size: 5, root, extensions: [] }, ed25519NoteSigner(other));
  assert.throws(() => openCheckpoint(forged, logVerifier), NoteSignatureError);
  const wrongOrigin = signCheckpoint({ origin: 'evil.example/log', size: 5, root, extensions: [] }, logSigner);
  assert.throws(() => openCheckpoint(wrongOrigin, logVerifier), /origin "evil.example\/log" is not the log's/);
});

for (const [name, body, pattern] of [
  ['two lines', 'o\n5\n', /needs origin, size and root/],
  ['an empty origin', '\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n', /origin is empty/],
  ['a size with a leading zero', 'o\n05\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n', /tree size/],
  ['a negative size', 'o\n-5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n', /tree size/],
  ['a size past 2^53', 'o\n9007199254740993\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n', /tree size/],
  ['a 31-byte root', 'o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw==\n', /31 bytes/],
  ['an empty extension line', 'o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\next\n', /extension line is empty/],
  ['no final newline', 'o\n5\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=', /newline/],
] as const) {
  test(`checkpoint decoder refuses ${name}`, () => {
    assert.throws(() => decodeCheckpointBody(body), (e) => e instanceof DecodeError && /^checkpoint: /.test(e.message) && pattern.test(e.message));
  });
}

test('property: checkpoint bodies round-trip, and arbitrary text only ever gives DecodeError', () => {
  fc.assert(fc.property(fc.stringMatching(/^[a-z.\/]{1,20}$/), fc.nat(), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.array(fc.stringMatching(/^[ -~]{1,10}$/), { maxLength: 3 }), (origin, size, r, ext) => {
    const c = { origin, size, root: Buffer.from(r), extensions: ext };
    assert.deepEqual(decodeCheckpointBody(encodeCheckpointBody(c)), c);
  }));
  fc.assert(fc.property(fc.string(), (s) => {
    try { decodeCheckpointBody(s); } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
  }), { numRuns: 1000 });
});

const witnessSkey = decodeSkey(encodeSkey({ name: 'witness.example/w1', type: 0x04, seed: seed(3) }), [0x04]);
const witnessVkey = decodeVkey(encodeVkey(witnessSkey), [0x04]);

test('a cosignature verifies under the witness key (type 0x04) and nothing else', () => {
  const body = encodeCheckpointBody({ origin: 'shop.example/log', size: 5, root, extensions: [] });
  const w = cosigner(witnessSkey, () => 1700000000);
  assert.equal(w.keyId, keyId('witness.example/w1', 0x04, witnessVkey.publicKey));
  const signed = `${body}\n${encodeNote({ text: body, signatures: [{ name: w.name, keyId: w.keyId, sig: Buffer.from(logSigner.sign(body)) }] }).split('\n\n')[1]}`;
  const full = signed + encodeNote({ text: body, signatures: [{ name: w.name, keyId: w.keyId, sig: Buffer.from(w.sign(body)) }] }).split('\n\n')[1];
  const v = cosignatureVerifier(witnessVkey);
  const note = decodeNote(full);
  assert.throws(() => verifyNote(note, [v]), /invalid signature/); // the first line claims the witness's name and ID but is the log's signature
  const good = decodeNote(`${body}\n${encodeNote({ text: body, signatures: [{ name: w.name, keyId: w.keyId, sig: Buffer.from(w.sign(body)) }] }).split('\n\n')[1]}`);
  assert.deepEqual(verifyNote(good, [v]), [v]);
  assert.equal(v.lastTimestamp, 1700000000);
  // The same seed as an Ed25519 (0x01) note key has another key ID: its plain note signature is not a cosignature.
  assert.throws(() => decodeVkey(encodeVkey(witnessSkey)), /type 0x04 is not accepted/);
  // A changed timestamp breaks the signature.
  const t = decodeTimestampedSignature(good.signatures[0]!.sig);
  const moved = encodeTimestampedSignature({ ...t, timestamp: t.timestamp + 1 });
  assert.throws(() => verifyNote({ text: body, signatures: [{ ...good.signatures[0]!, sig: moved }] }, [v]), /invalid signature/);
  // A cosignature dated far in the future is refused when the verifier bounds it.
  const future = cosigner(witnessSkey, () => 4000000000);
  const fv = cosignatureVerifier(witnessVkey, { now: () => 1700000000, maxFuture: 600 });
  assert.throws(() => verifyNote({ text: body, signatures: [{ name: w.name, keyId: w.keyId, sig: Buffer.from(future.sign(body)) }] }, [fv]), /invalid signature/);
});

test('property: timestamped signatures decode only from exactly 72 bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
    try {
      const t = decodeTimestampedSignature(b);
      assert.equal(b.length, 72);
      assert.deepEqual(encodeTimestampedSignature(t), Buffer.from(b));
    } catch (e) { assert.ok(e instanceof DecodeError, String(e)); }
  }), { numRuns: 500 });
});
