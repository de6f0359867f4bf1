/**
 * The verifiable escrow of a card signature (issue 6): sound against a cheating client, bound to
 * its transaction label and message, recoverable by the TTP, and built from pieces checked
 * against OpenSSL: the PKCS#1 v1.5 encoding and the seeded OAEP ciphertexts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { constants, createHash, generateKeyPairSync, publicEncrypt, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { spkiDer } from '../../src/crypto/keys.js';
import { decodeEscrow, encodeEscrow, ESCROW_MAGIC } from '../../src/fair/escrow-format.js';
import { transactionLabel } from '../../src/fair/label.js';
import { oaepDecrypt, oaepEncrypt, oaepEncryptWithSeed, oaepKey } from '../../src/fair/oaep.js';
import { emsaPkcs1v15Sha256, invMod, mulMod, powE, rsaPublic } from '../../src/fair/rsa-math.js';
import { toBigInt, toBytes } from '../../src/crypto/integers.js';
import { challengeBits, escrowProblems, extractSignature, makeVerifiableEscrow, MIN_PAIRS } from '../../src/fair/verifiable-escrow.js';
import { DecodeError } from '../../src/errors.js';
import { requireTool, tempDir } from '../helpers.js';

const card = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ttp = generateKeyPairSync('rsa', { modulusLength: 3072 });
const header = Buffer.from('pre-QTM package: transaction 42, 2 x paper');
const signature = sign('sha256', header, card.privateKey);
const label = transactionLabel({ header, ttpFingerprint: createHash('sha256').update(spkiDer(ttp.publicKey)).digest(), deadline: 1_800_000_000 });
const ctx = { cardKey: card.publicKey, ttpKey: ttp.publicKey, label, message: header };
const escrow = makeVerifiableEscrow({ ...ctx, signature });

test('the PKCS#1 v1.5 encoding is the one OpenSSL signs: Y^e mod N == EM', () => {
  const raw = publicEncrypt({ key: card.publicKey, padding: constants.RSA_NO_PADDING }, signature);
  assert.deepEqual(raw, emsaPkcs1v15Sha256(header, 256));
});

test('seeded OAEP makes standard ciphertexts: node and the openssl CLI decrypt them, only under the label', (t) => {
  const seed = randomBytes(32);
  const secret = randomBytes(256);
  const c = oaepEncryptWithSeed(oaepKey(ttp.publicKey), secret, label, seed);
  assert.deepEqual(oaepEncryptWithSeed(oaepKey(ttp.publicKey), secret, label, seed), c, 'deterministic given the seed');
  assert.deepEqual(oaepDecrypt(ttp.privateKey, c, label), secret);
  assert.equal(oaepDecrypt(ttp.privateKey, c, Buffer.alloc(32)), undefined);
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ttp.pem'), ttp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  writeFileSync(join(dir, 'c.bin'), c);
  const r = spawnSync('openssl', ['pkeyutl', '-decrypt', '-inkey', join(dir, 'ttp.pem'), '-in', join(dir, 'c.bin'),
    '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256', '-pkeyopt', `rsa_oaep_label:${label.toString('hex')}`]);
  assert.equal(r.status, 0, r.stderr?.toString());
  assert.deepEqual(r.stdout, secret);
});

test('an honest escrow verifies and the TTP recovers exactly the card\'s signature', () => {
  assert.deepEqual(escrowProblems(escrow, ctx), []);
  assert.deepEqual(extractSignature(escrow, { ...ctx, ttpPrivateKey: ttp.privateKey }), signature);
  const pairLength = 2 * 256 + 2 * 384 + 32;
  assert.equal(escrow.length, 10 + 128 * pairLength);
});

test('an escrow is bound to its label, its message and its TTP', () => {
  assert.equal(escrowProblems(escrow, { ...ctx, label: Buffer.alloc(32, 1) }).length, 128);
  assert.ok(escrowProblems(escrow, { ...ctx, message: Buffer.from('other content') }).length > 0);
  const otherTtp = generateKeyPairSync('rsa', { modulusLength: 3072 });
  assert.ok(escrowProblems(escrow, { ...ctx, ttpKey: otherTtp.publicKey }).length > 0);
  assert.equal(extractSignature(escrow, { ...ctx, ttpPrivateKey: otherTtp.privateKey }), undefined);
  assert.equal(extractSignature(escrow, { ...ctx, ttpPrivateKey: ttp.privateKey, label: Buffer.alloc(32, 1) }), undefined);
});

test('a cheating client is caught: a bad half, a pair from another escrow, a forged split', () => {
  const d = decodeEscrow(escrow);
  // A bad half: one opened value changed.
  const bad = d.pairs.map((p, i) => (i === 5 ? { ...p, opened: Buffer.from(randomBytes(256).fill(0, 0, 1)) } : p));
  assert.match(escrowProblems(encodeEscrow({ ...d, pairs: bad }), ctx).join('\n'), /pair 5: the opened . is not what was encrypted/);
  // A pair taken from another escrow of the same signature changes the challenge.
  const other = decodeEscrow(makeVerifiableEscrow({ ...ctx, signature }));
  const mixed = d.pairs.map((p, i) => (i === 0 ? other.pairs[0]! : p));
  assert.ok(escrowProblems(encodeEscrow({ ...d, pairs: mixed }), ctx).length > 0);
  // Without Y a cheater must decide per pair which half he can open (an honest r with u = r^e, or
  // an s with u = EM * s^-e, whose r he cannot know) before the hash picks: he fails where it differs.
  const forged = cheaterEscrow();
  const problems = escrowProblems(forged.bytes, ctx);
  assert.equal(problems.length, forged.mismatches);
  assert.ok(forged.mismatches > 20, `${forged.mismatches} mismatches`);
  assert.ok(problems.every((p) => /does not (complete the signature|match u)/.test(p)), problems.slice(0, 3).join('\n'));
  assert.equal(extractSignature(forged.bytes, { ...ctx, ttpPrivateKey: ttp.privateKey }), undefined);
  assert.throws(() => makeVerifiableEscrow({ ...ctx, signature: Buffer.from(randomBytes(256).fill(0, 0, 1)) }), /does not verify/, 'the honest maker refuses a wrong signature');
});

function cheaterEscrow(): { bytes: Buffer; mismatches: number } {
  const pub = rsaPublic(card.publicKey);
  const to = oaepKey(ttp.publicKey);
  const em = emsaPkcs1v15Sha256(header, pub.k);
  const random = () => toBigInt(randomBytes(pub.k)) % pub.n;
  const pairs = Array.from({ length: 128 }, () => {
    const guess = randomBytes(1)[0]! & 1;
    const r = random();
    const s = random();
    const u = guess === 0 ? powE(pub, r) : mulMod(toBigInt(em), invMod(powE(pub, s), pub.n)!, pub.n);
    const seedR = randomBytes(32);
    const seedS = randomBytes(32);
    return { guess, r: toBytes(r, pub.k), s: toBytes(s, pub.k), seedR, seedS, u: toBytes(u, pub.k), cR: oaepEncryptWithSeed(to, toBytes(r, pub.k), label, seedR), cS: oaepEncryptWithSeed(to, toBytes(s, pub.k), label, seedS) };
  });
  const bits = challengeBits(ctx, em, pairs);
  return {
    bytes: encodeEscrow({ modulusLength: pub.k, ciphertextLength: 384, pairs: pairs.map((p, i) => ({ u: p.u, cR: p.cR, cS: p.cS, opened: bits[i] ? p.s : p.r, seed: bits[i] ? p.seedS : p.seedR })) }),
    mismatches: pairs.filter((p, i) => p.guess !== bits[i]).length,
  };
}

test('fewer than the minimum pairs is refused; flipped bits never pass', () => {
  const few = makeVerifiableEscrow({ ...ctx, signature, pairs: 8 });
  assert.deepEqual(escrowProblems(few, ctx), [`8 pairs; at least ${MIN_PAIRS} are needed`]);
  for (let i = 0; i < 100; i++) {
    const b = Buffer.from(escrow);
    const bit = Math.floor(Math.random() * b.length * 8);
    b[bit >> 3]! ^= 1 << (bit & 7);
    assert.ok(escrowProblems(b, ctx).length > 0, `bit ${bit}`);
  }
});

test('the escrow format: byte layout, strict decoding, and never a crash on random bytes', () => {
  const one = { modulusLength: 64, ciphertextLength: 96, pairs: [{ u: Buffer.alloc(64, 1), cR: Buffer.alloc(96, 2), cS: Buffer.alloc(96, 3), opened: Buffer.alloc(64, 4), seed: Buffer.alloc(32, 5) }] };
  const bytes = encodeEscrow(one);
  assert.equal(bytes.subarray(0, 10).toString('hex'), `${ESCROW_MAGIC.toString('hex')}000100400060`);
  assert.equal(bytes.length, 10 + 64 + 96 + 96 + 64 + 32);
  assert.deepEqual(decodeEscrow(bytes), one);
  for (const [b, why] of [[bytes.subarray(0, 9), /truncated/], [Buffer.concat([bytes, Buffer.of(0)]), /expected/], [Buffer.from('XXXX' + 'a'.repeat(20)), /magic/]] as const) {
    assert.throws(() => decodeEscrow(b), (e) => e instanceof DecodeError && why.test(e.message));
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => {
    try {
      decodeEscrow(Buffer.concat([ESCROW_MAGIC, b]));
    } catch (e) {
      assert.ok(e instanceof DecodeError);
    }
  }));
});

test('the server\'s plain escrow of X opens only under the transaction\'s label', () => {
  const x = randomBytes(256);
  const c = oaepEncrypt(ttp.publicKey, x, label);
  assert.deepEqual(oaepDecrypt(ttp.privateKey, c, label), x);
  assert.equal(oaepDecrypt(ttp.privateKey, c, transactionLabel({ header, ttpFingerprint: Buffer.alloc(32), deadline: 1_800_000_000 })), undefined);
});
