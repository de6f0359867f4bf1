import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { DecodeError } from '../../src/errors.js';
import { PROFILES } from '../../src/protocol/profile.js';
import {
  decodeHeader,
  decodePackage,
  encodeHeader,
  encodePackage,
  encodeServerSigned,
  headerLength,
  NO_WARRANT,
  serverSignedLength,
  warrantDigestOf,
  type QtmPackage,
} from '../../src/protocol/qtm-package.js';
import { X509Certificate } from 'node:crypto';
import { keySigner, makeProof } from '../../src/proof/make-proof.js';
import { fixture, fixtureIdentity } from '../helpers.js';

const vectors = JSON.parse(readFileSync(fixture('vectors', 'vectors.json'), 'utf8'));

test('v1 package is exactly 473 bytes, as the patent computes: 1+20+4+4+20+20+20+3*128', () => {
  const bytes = readFileSync(fixture('vectors', 'package-v1.bin'));
  assert.equal(bytes.length, 473);
  const p = decodePackage(bytes);
  // The measured fields, each as the patent sizes it, add up to the bytes on disk: no slack.
  const measured = [1, p.serverId.length, 4, 4, p.contentId.length, p.fingerprintA.length, p.fingerprintB.length, p.signatureA.length, p.signatureB.length, p.signatureServer.length];
  assert.deepEqual(measured, [1, 20, 4, 4, 20, 20, 20, 128, 128, 128]);
  assert.equal(measured.reduce((a, b) => a + b, 0), bytes.length);
  assert.equal(encodePackage(p).length, 473, 'encoding the decoded package gives 473 bytes again');
  assert.equal(p.version, 1);
  assert.equal(p.serverId.length, 20);
  assert.equal(p.signatureA.length, 128);
  assert.equal(headerLength(PROFILES.v1), 89);
});

for (const profileName of ['v1', 'v2'] as const) {
  test(`${profileName} package vector is rebuilt byte for byte from the fixture keys`, async () => {
    const v = vectors[profileName];
    const profile = PROFILES[profileName];
    const server = fixtureIdentity(`server-${profileName}`);
    const customer = fixtureIdentity(`customer-${profileName}`);
    const proof = await makeProof({
      profile,
      // The frozen v1/v2 vectors are package versions 1 and 2 (the server signs fields 1-5).
      packageVersion: profile.version,
      transactionId: v.transactionId,
      time: v.time,
      priority: v.priority,
      content: readFileSync(fixture(v.content)),
      server: keySigner(profile, server.privateKey, server.certificates),
      partyA: keySigner(profile, server.privateKey, server.certificates),
      partyB: keySigner(profile, customer.privateKey, customer.certificates),
    });
    assert.equal(proof.packageBytes.toString('hex'), v.packageHex);
    assert.equal(proof.bundle.cardRecord!.toString('hex'), v.cardRecordHex);
    assert.deepEqual(readFileSync(fixture('vectors', `package-${profileName}.bin`)), proof.packageBytes);
  });

  test(`${profileName} vector decodes to its fields and re-encodes identically`, () => {
    const bytes = readFileSync(fixture('vectors', `package-${profileName}.bin`));
    const p = decodePackage(bytes);
    assert.equal(p.transactionId, 42);
    assert.equal(p.time, vectors[profileName].time);
    assert.deepEqual(encodePackage(p), bytes);
    const d = PROFILES[profileName].digestLength;
    assert.deepEqual(encodeServerSigned(p), bytes.subarray(0, 9 + 2 * d));
    assert.deepEqual(encodeHeader(p), bytes.subarray(0, 9 + 4 * d));
    const h = decodeHeader(encodeHeader(p));
    assert.equal(h.transactionId, p.transactionId);
    assert.deepEqual(Buffer.from(h.fingerprintB), Buffer.from(p.fingerprintB));
  });

  test(`${profileName} decoder refuses every truncation and any trailing byte`, () => {
    const bytes = readFileSync(fixture('vectors', `package-${profileName}.bin`));
    for (let len = 0; len < bytes.length; len++) {
      assert.throws(() => decodePackage(bytes.subarray(0, len)), DecodeError, `prefix of ${len} bytes`);
    }
    assert.throws(() => decodePackage(Buffer.concat([bytes, Buffer.of(0)])), /trailing/);
  });
}

test('v3 package vector is rebuilt byte for byte: fields 1-7, a zero warrant digest, signatures', async () => {
  const v = vectors.v3;
  const profile = PROFILES.v2;
  const server = fixtureIdentity('server-v2');
  const customer = fixtureIdentity('customer-v2');
  const proof = await makeProof({
    profile, transactionId: v.transactionId, time: v.time, priority: v.priority, content: readFileSync(fixture(v.content)),
    server: keySigner(profile, server.privateKey, server.certificates),
    partyA: keySigner(profile, server.privateKey, server.certificates),
    partyB: keySigner(profile, customer.privateKey, customer.certificates),
  });
  const bytes = readFileSync(fixture('vectors', 'package-v3.bin'));
  assert.equal(proof.packageBytes.toString('hex'), v.packageHex);
  assert.deepEqual(proof.packageBytes, bytes);
  assert.equal(bytes[0], 3);
  // Fields 1-7 are the v2 header but for the version byte; then 32 zero bytes; then three signatures.
  const v2 = readFileSync(fixture('vectors', 'package-v2.bin'));
  assert.deepEqual(bytes.subarray(1, 137), v2.subarray(1, 137));
  assert.deepEqual(bytes.subarray(137, 169), Buffer.from(NO_WARRANT));
  const p = decodePackage(bytes);
  assert.deepEqual(Buffer.from(p.warrantDigest!), Buffer.alloc(32));
  assert.deepEqual(encodeServerSigned(p), bytes.subarray(0, 169));
  assert.equal(serverSignedLength(3), 169);
  assert.deepEqual(encodeHeader(p), bytes.subarray(0, 137));
  assert.deepEqual(encodePackage(p), bytes);
  // The server's signature is over those 169 bytes, and no longer over fields 1-5.
  const { verifyBytes } = await import('../../src/crypto/keys.js');
  assert.ok(verifyBytes(profile, server.certificates[0]!.publicKey, bytes.subarray(0, 169), p.signatureServer));
  assert.ok(!verifyBytes(profile, server.certificates[0]!.publicKey, bytes.subarray(0, 73), p.signatureServer));
});

test('v3 proxy vector: the warrant digest is the SHA-256 of the warrant certificate', () => {
  const bytes = readFileSync(fixture('vectors', 'package-v3-proxy.bin'));
  assert.equal(bytes.toString('hex'), vectors.v3proxy.packageHex);
  const warrant = new X509Certificate(readFileSync(fixture('vectors', 'warrant-v2.pem')));
  const p = decodePackage(bytes);
  assert.equal(p.version, 3);
  assert.deepEqual(Buffer.from(p.warrantDigest!), warrantDigestOf(warrant.raw));
  assert.equal(warrantDigestOf(warrant.raw).toString("hex"), sha256Hex(warrant.raw));
  assert.deepEqual(encodePackage(p), bytes);
  for (let len = 0; len < bytes.length; len++) assert.throws(() => decodePackage(bytes.subarray(0, len)), DecodeError);
});

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

test('the encoder refuses a warrant digest where the version has none, and requires it in version 3', () => {
  const v2 = decodePackage(readFileSync(fixture('vectors', 'package-v2.bin')));
  assert.throws(() => encodePackage({ ...v2, warrantDigest: new Uint8Array(32) }), /version 2 package has no warrant digest/);
  assert.throws(() => encodeServerSigned({ ...v2, version: 3 }), /needs a 32-byte warrant digest/);
  assert.throws(() => encodePackage({ ...v2, version: 3, warrantDigest: new Uint8Array(31) }), /needs a 32-byte warrant digest/);
});

test('unknown versions are refused with a typed error', () => {
  const bytes = Buffer.from(readFileSync(fixture('vectors', 'package-v2.bin')));
  for (const v of [0, 4, 255]) {
    bytes[0] = v;
    assert.throws(() => decodePackage(bytes), (e: unknown) => e instanceof DecodeError && /unknown version/.test(e.message));
  }
});

test('v2 signature lengths of 0 or over 1024 are refused', () => {
  const bytes = Buffer.from(readFileSync(fixture('vectors', 'package-v2.bin')));
  bytes.writeUInt16BE(0, 137);
  assert.throws(() => decodePackage(bytes), /signature A length 0/);
  bytes.writeUInt16BE(1025, 137);
  assert.throws(() => decodePackage(bytes), /signature A length 1025/);
});

test('encoder refuses digests and v1 signatures of the wrong size', () => {
  const p = decodePackage(readFileSync(fixture('vectors', 'package-v1.bin')));
  assert.throws(() => encodePackage({ ...p, serverId: new Uint8Array(32) }), /server ID must be 20 bytes/);
  assert.throws(() => encodePackage({ ...p, signatureB: new Uint8Array(256) }), /must be 128 bytes/);
});

const packageArb = fc.constantFrom(1, 2, 3).chain((version) => {
  const d = version === 1 ? 20 : 32;
  const digest = fc.uint8Array({ minLength: d, maxLength: d });
  const sig = version === 1 ? fc.uint8Array({ minLength: 128, maxLength: 128 }) : fc.uint8Array({ minLength: 1, maxLength: 600 });
  return fc.record({
    version: fc.constant(version as 1 | 2 | 3),
    ...(version === 3 ? { warrantDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }) } : {}),
    serverId: digest,
    transactionId: fc.nat({ max: 0xffffffff }),
    time: fc.nat({ max: 0xffffffff }),
    contentId: digest,
    fingerprintA: digest,
    fingerprintB: digest,
    signatureA: sig,
    signatureB: sig,
    signatureServer: sig,
  });
});

test('property: decode(encode(p)) == p for any package', () => {
  fc.assert(fc.property(packageArb, (p: QtmPackage) => {
    const decoded = decodePackage(encodePackage(p));
    assert.deepEqual(
      Object.fromEntries(Object.entries(decoded).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v])),
      Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v])),
    );
  }), { numRuns: 300 });
});

test('property: random bytes never crash the decoders, only raise DecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1200 }), (bytes) => {
    for (const decode of [decodePackage, decodeHeader]) {
      try {
        decode(bytes);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `unexpected ${String(e)}`);
      }
    }
  }), { numRuns: 2000 });
});

test('property: a valid package with random bytes appended or cut never decodes', () => {
  const good = readFileSync(fixture('vectors', 'package-v2.bin'));
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat({ max: good.length - 1 }), (extra, cut) => {
    assert.throws(() => decodePackage(Buffer.concat([good, extra])), DecodeError);
    assert.throws(() => decodePackage(good.subarray(0, cut)), DecodeError);
  }));
});
