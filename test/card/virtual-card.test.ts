import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, verify } from 'node:crypto';
import fc from 'fast-check';
import { CardStatusError, PinBlockedError, SW, WrongPinError } from '../../src/card/status-words.js';
import { AUTH_PREFIX, INS, QTM_AID } from '../../src/card/app-spec.js';
import { decodeResponse, encodeCommand } from '../../src/card/apdu.js';
import { sealRecord, storageProof } from '../../src/crypto/secure-write.js';
import { cardRecordFor, headerFor } from '../../src/proof/make-proof.js';
import { encodeHeader } from '../../src/protocol/qtm-package.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { memorySigner } from '../../src/proof/sample.js';
import { authority, blankCard, issuedCard, PIN, PUK } from './card-helpers.js';

const swOf = (e: unknown) => (e instanceof CardStatusError ? e.sw : undefined);

function recordFor(serverCertOwner: ReturnType<typeof authority>, cardCertificates: import('node:crypto').X509Certificate[], txid: number, priority = 0) {
  const server = memorySigner(serverCertOwner.ca, 'v2', 'signer', 'CN=Receipts', 'rsa2048');
  const header = headerFor({ profile: PROFILES.v2, transactionId: txid, time: 1795521600 + txid, content: Buffer.from(`order ${txid}\n`), server, partyA: server, partyB: { certificates: cardCertificates } });
  return { header, record: cardRecordFor(header, priority), server };
}

test('issuing: 14 APDUs, locked, certificate for the on-card key with the card serial in its subject and a random certificate serial', async () => {
  const c = await issuedCard();
  assert.ok(c.client.apduCount <= 14, `issuing took ${c.client.apduCount} APDUs`);
  const status = await c.client.status();
  assert.equal(status.lifecycle, 'operational');
  // Issue 18: the certificate serial is the CA's (16 random bytes), the card serial is in the subject.
  assert.match(c.issued.certificate.serialNumber, /^[0-9A-F]{32}$/);
  assert.notEqual(c.issued.certificate.serialNumber, c.issued.serial);
  assert.match(c.issued.certificate.subject, new RegExp(`serialNumber=${c.issued.serial}`));
  assert.ok(c.issued.certificate.publicKey.equals(await c.client.readPublicKey()));
  assert.deepEqual((await c.client.readCertificate()).raw, c.issued.certificate.raw);
});

test('after LOCK no personalisation command works, and a card cannot be re-issued', async () => {
  const c = await issuedCard();
  await assert.rejects(c.client.generateKeyPair(), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
  await assert.rejects(c.client.setPinAndPuk('0000', '00000000'), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
  await assert.rejects(c.client.putCardKeys({ kEnc: Buffer.alloc(16), kMac: Buffer.alloc(16) }), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
  await assert.rejects(c.client.lock(), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
});

test('before LOCK no operational command works; LOCK needs a complete card', async () => {
  const c = blankCard();
  await c.client.select();
  await assert.rejects(c.client.lock(), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
  await assert.rejects(c.client.getChallenge(), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
  await assert.rejects(c.client.verifyPin(PIN), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED);
  await c.client.setLayout(2, 4);
  await assert.rejects(c.client.generateKeyPair(), (e) => swOf(e) === SW.CONDITIONS_NOT_SATISFIED); // PIN first
});

test('the card refuses a certificate for another key', async () => {
  const c = blankCard();
  const { ca } = authority();
  await c.client.select();
  await c.client.setLayout(2, 4);
  await c.client.setPinAndPuk(PIN, PUK);
  await c.client.generateKeyPair();
  const other = memorySigner(ca, 'v2', 'card', 'CN=Other', 'rsa2048');
  await assert.rejects(c.client.putCertificate(other.certificates[0]!), (e) => swOf(e) === SW.WRONG_DATA);
});

test('PIN: 3 tries then blocked; PUK unblocks and sets a new PIN; PUK blocks after 5', async () => {
  const c = await issuedCard();
  await c.client.select();
  await assert.rejects(c.client.verifyPin('1111'), (e) => e instanceof WrongPinError && e.triesLeft === 2);
  await assert.rejects(c.client.verifyPin('1111'), (e) => e instanceof WrongPinError && e.triesLeft === 1);
  await c.client.verifyPin(PIN); // a right PIN resets the counter
  assert.equal((await c.client.status()).pinTriesLeft, 3);
  for (const left of [2, 1, 0]) await assert.rejects(c.client.verifyPin('9999'), (e) => e instanceof WrongPinError && e.triesLeft === left);
  await assert.rejects(c.client.verifyPin(PIN), PinBlockedError); // even the right PIN
  assert.equal(await c.client.pinTriesLeft(), 0);
  await assert.rejects(c.client.internalAuthenticate(randomBytes(16)), (e) => swOf(e) === SW.SECURITY_STATUS);
  await assert.rejects(c.client.unblockPin('87654321', '5678'), (e) => e instanceof WrongPinError && e.which === 'PUK' && e.triesLeft === 4);
  await c.client.unblockPin(PUK, '5678');
  await assert.rejects(c.client.internalAuthenticate(randomBytes(16)), (e) => swOf(e) === SW.SECURITY_STATUS); // not verified yet
  await c.client.verifyPin('5678');
  const challenge = randomBytes(32);
  const sig = await c.client.internalAuthenticate(challenge);
  assert.ok(verify('sha256', Buffer.concat([AUTH_PREFIX, challenge]), c.issued.certificate.publicKey, sig), 'keys survive the unblock');
  for (let i = 0; i < 5; i++) await c.client.unblockPin('00000000', '1111').catch(() => {});
  await assert.rejects(c.client.unblockPin(PUK, '1111'), (e) => e instanceof PinBlockedError && e.which === 'PUK');
});

test('PIN change: needs the old PIN; the new one works, the old one no longer', async () => {
  const c = await issuedCard();
  await c.client.select();
  await assert.rejects(c.client.changePin('0000', '4321'), WrongPinError);
  await c.client.changePin(PIN, '4321');
  await assert.rejects(c.client.verifyPin(PIN), WrongPinError);
  await c.client.verifyPin('4321');
});

test('PSO signs only a pre-QTM package of its profile naming this card as party B, and only after VERIFY', async () => {
  const c = await issuedCard();
  const { header } = recordFor(authority(), [c.issued.certificate], 1);
  const bytes = encodeHeader(header);
  await c.client.select();
  await assert.rejects(c.client.signHeader(bytes), (e) => swOf(e) === SW.SECURITY_STATUS);
  await c.client.verifyPin(PIN);
  const sig = await c.client.signHeader(bytes);
  assert.ok(verify('sha256', bytes, c.issued.certificate.publicKey, sig));
  const notMine = encodeHeader({ ...header, fingerprintB: Buffer.alloc(32, 7) });
  await assert.rejects(c.client.signHeader(notMine), (e) => swOf(e) === SW.WRONG_DATA);
  await assert.rejects(c.client.signHeader(randomBytes(137)), (e) => swOf(e) === SW.WRONG_DATA);
  await assert.rejects(c.client.signHeader(Buffer.concat([bytes, Buffer.of(0)])), (e) => swOf(e) === SW.WRONG_DATA);
});

test('secure write: stored, W proves it; replayed, altered and misaddressed writes change nothing', async () => {
  const c = await issuedCard();
  const { record } = recordFor(authority(), [c.issued.certificate], 7);
  await c.client.select();
  await c.client.verifyPin(PIN);
  const before = JSON.stringify(c.storage.load().slots);

  // No challenge yet.
  await assert.rejects(c.client.secureWrite(1, Buffer.alloc(72)), (e) => swOf(e) === SW.REFERENCE_DATA_UNUSABLE);
  // Altered: one bit.
  let r = await c.client.getChallenge();
  const altered = sealRecord(c.keys, r, 1, record);
  altered[5]! ^= 0x01;
  await assert.rejects(c.client.secureWrite(1, altered), (e) => swOf(e) === SW.SM_DATA_INCORRECT);
  // The failed attempt consumed R: the right envelope for that R is now refused too.
  await assert.rejects(c.client.secureWrite(1, sealRecord(c.keys, r, 1, record)), (e) => swOf(e) === SW.REFERENCE_DATA_UNUSABLE);
  // Misaddressed: sealed for slot 1, sent to slot 2.
  r = await c.client.getChallenge();
  await assert.rejects(c.client.secureWrite(2, sealRecord(c.keys, r, 1, record)), (e) => swOf(e) === SW.SM_DATA_INCORRECT);
  // Another card's keys (the SAM's keys for another serial).
  r = await c.client.getChallenge();
  const otherKeys = authority().sam.cardKeys(Buffer.from('0102030405060708', 'hex'));
  await assert.rejects(c.client.secureWrite(1, sealRecord(otherKeys, r, 1, record)), (e) => swOf(e) === SW.SM_DATA_INCORRECT);
  assert.equal(JSON.stringify(c.storage.load().slots), before, 'nothing written by refused writes');

  // The real one.
  r = await c.client.getChallenge();
  const envelope = sealRecord(c.keys, r, 1, record);
  const w = await c.client.secureWrite(1, envelope);
  assert.deepEqual(w, storageProof(c.keys, r, record));
  assert.deepEqual(await c.client.readRecord(1), record);
  // Replayed: same envelope again, with or without a new challenge.
  await assert.rejects(c.client.secureWrite(1, envelope), (e) => swOf(e) === SW.REFERENCE_DATA_UNUSABLE);
  await c.client.getChallenge();
  await assert.rejects(c.client.secureWrite(1, envelope), (e) => swOf(e) === SW.SM_DATA_INCORRECT);
  assert.deepEqual(await c.client.readRecord(1), record);
});

test('secure write needs a verified PIN and a record of the card\'s profile', async () => {
  const c = await issuedCard();
  const { record } = recordFor(authority(), [c.issued.certificate], 8);
  await c.client.select();
  let r = await c.client.getChallenge();
  await assert.rejects(c.client.secureWrite(1, sealRecord(c.keys, r, 1, record)), (e) => swOf(e) === SW.SECURITY_STATUS);
  await c.client.verifyPin(PIN);
  r = await c.client.getChallenge();
  const v1Record = Buffer.concat([Buffer.of(1), Buffer.alloc(8), Buffer.alloc(20, 1)]);
  await assert.rejects(c.client.secureWrite(1, sealRecord(c.keys, r, 1, v1Record)), (e) => swOf(e) === SW.WRONG_DATA);
  r = await c.client.getChallenge();
  await assert.rejects(c.client.secureWrite(9, sealRecord(c.keys, r, 9, record)), (e) => swOf(e) === SW.WRONG_P1P2);
});

test('responses over 256 bytes chain with 61xx and GET RESPONSE; reading needs no PIN', async () => {
  const c = await issuedCard({ slots: 8 });
  await c.client.select();
  await c.client.verifyPin(PIN);
  for (let slot = 1; slot <= 8; slot++) {
    const r = await c.client.getChallenge();
    await c.client.secureWrite(slot, sealRecord(c.keys, r, slot, recordFor(authority(), [c.issued.certificate], slot).record));
  }
  c.card.reset(); // new session: no PIN
  await c.client.select();
  const before = c.client.apduCount;
  const all = await c.client.readAllRecords(50);
  assert.equal(all.length, 8);
  assert.equal(c.client.apduCount - before, 2, '400 bytes = one READ RECORD + one GET RESPONSE');
  assert.ok(all.every(Boolean));
});

test('no command returns key material, and the card file holds no secret in clear', async () => {
  const c = await issuedCard();
  const image = JSON.stringify(c.storage.load());
  for (const secret of [c.keys.kEnc, c.keys.kMac]) {
    for (const enc of ['hex', 'base64'] as const) assert.ok(!image.toLowerCase().includes(secret.toString(enc).toLowerCase()));
  }
  assert.doesNotMatch(image, /PRIVATE KEY|"privateKey"|"kEnc"|"kMac"|"pin"/);
  // Every INS with every P1 of interest after VERIFY: the keys never appear in a response.
  await c.client.select();
  await c.client.verifyPin(PIN);
  const secrets = [c.keys.kEnc, c.keys.kMac];
  for (let ins = 0; ins < 256; ins++) {
    for (const [cla, p1, p2] of [[0, 0, 0], [0, 0x80, 0], [0, 0x81, 0], [0, 1, 4], [0, 1, 5], [0, 2, 2], [0x80, 1, 0]] as const) {
      const resp = c.card.transmit(encodeCommand({ cla, ins, p1, p2, data: new Uint8Array(0), le: 256 }));
      for (const s of secrets) assert.equal(resp.indexOf(s.subarray(0, 8)), -1, `INS ${ins.toString(16)} leaked a key`);
    }
  }
});

test('property: any APDU yields a status word, never a crash, and never changes a slot', async () => {
  const c = await issuedCard();
  await c.client.select();
  await c.client.verifyPin(PIN);
  const r = await c.client.getChallenge();
  await c.client.secureWrite(1, sealRecord(c.keys, r, 1, recordFor(authority(), [c.issued.certificate], 1).record));
  const slots = JSON.stringify(c.storage.load().slots);
  const interesting = fc.record({
    cla: fc.constantFrom(0x00, 0x10, 0x80, 0x90, 0xff),
    ins: fc.constantFrom(...Object.values(INS), 0x00, 0xff),
    p1: fc.nat({ max: 255 }),
    p2: fc.nat({ max: 255 }),
    data: fc.uint8Array({ maxLength: 255 }),
  });
  await fc.assert(fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }), interesting.map((x) => encodeCommand(x))), fc.boolean(), async (apdu, challenge) => {
    if (challenge) c.card.transmit(encodeCommand({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, data: new Uint8Array(0), le: 16 }));
    const resp = c.card.transmit(apdu);
    assert.ok(resp.length >= 2);
    const { sw } = decodeResponse(resp);
    assert.ok(sw >= 0x6000 && sw <= 0x9fff, `status word ${sw.toString(16)}`);
    assert.equal(JSON.stringify(c.storage.load().slots), slots);
  }), { numRuns: 3000 });
  // And the card still works afterwards.
  c.card.reset();
  await c.client.select();
  assert.equal((await c.client.status()).lifecycle, 'operational');
});

test('SELECT of another application keeps ours selected; wrong CLA and unknown INS are refused', async () => {
  const c = await issuedCard();
  await c.client.select();
  const sel = (aid: Buffer) => decodeResponse(c.card.transmit(encodeCommand({ cla: 0, ins: INS.SELECT, p1: 4, p2: 0, data: aid }))).sw;
  assert.equal(sel(Buffer.from('A000000003000000', 'hex')), SW.FILE_NOT_FOUND);
  await c.client.status();
  assert.equal(sel(QTM_AID), SW.OK);
  assert.equal(decodeResponse(c.card.transmit(Buffer.from('A0CA010000', 'hex'))).sw, SW.CLA_NOT_SUPPORTED);
  assert.equal(decodeResponse(c.card.transmit(Buffer.from('00FF000000', 'hex'))).sw, SW.INS_NOT_SUPPORTED);
  assert.equal(decodeResponse(c.card.transmit(Buffer.from('80CA0100', 'hex'))).sw, SW.INS_NOT_SUPPORTED);
});
