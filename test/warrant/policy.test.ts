import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodePolicy, encodePolicy, type WarrantPolicy } from '../../src/warrant/policy.js';
import { Revocations } from '../../src/warrant/revocations.js';
import { DecodeError } from '../../src/errors.js';

const FP = '0123456789abcdef'.repeat(4);

test('the policy encoding is byte-exact canonical JSON', () => {
  const p: WarrantPolicy = { version: 1, customers: [{ fingerprint: FP }, { subject: ['CN=Bob Buyer', 'O=Bob BV'], issuer: FP }] };
  const expected = `{"version":1,"customers":[{"fingerprint":"${FP}"},{"subject":["CN=Bob Buyer","O=Bob BV"],"issuer":"${FP}"}]}`;
  assert.equal(encodePolicy(p).toString('utf8'), expected);
  assert.deepEqual(decodePolicy(Buffer.from(expected)), p);
});

test('the decoder is strict: every malformed policy is a DecodeError naming what is wrong', () => {
  const bad: [string, RegExp][] = [
    ['not json', /not UTF-8 JSON/],
    ['[]', /must be a JSON object/],
    [`{"customers":[{"fingerprint":"${FP}"}],"version":1}`, /exactly "version" and "customers", in that order/],
    [`{"version":2,"customers":[{"fingerprint":"${FP}"}]}`, /unknown version 2/],
    ['{"version":1,"customers":[]}', /non-empty list/],
    ['{"version":1,"customers":[{"fingerprint":"ABC"}]}', /64 lower-case hex/],
    [`{"version":1,"customers":[{"subject":[],"issuer":"${FP}"}]}`, /non-empty list of "TYPE=value"/],
    ['{"version":1,"customers":[{"subject":["CN=x"]}]}', /either "fingerprint" or "subject" and "issuer"/],
    [`{"version":1,"customers":[{"fingerprint":"${FP}","extra":1}]}`, /either "fingerprint"/],
    [`{"version":1, "customers":[{"fingerprint":"${FP}"}]}`, /not in canonical form/],
  ];
  for (const [text, why] of bad) assert.throws(() => decodePolicy(Buffer.from(text)), (e) => e instanceof DecodeError && why.test(e.message), text);
  assert.throws(() => decodePolicy(Buffer.from([0xff, 0xfe])), /not UTF-8/);
});

const customer = fc.oneof(
  fc.record({ fingerprint: fc.stringMatching(/^[0-9a-f]{64}$/) }),
  fc.record({ subject: fc.array(fc.stringMatching(/^(CN|O|OU|C)=[A-Za-z0-9 ,.=-]{1,20}$/), { minLength: 1, maxLength: 4 }), issuer: fc.stringMatching(/^[0-9a-f]{64}$/) }),
);

test('property: decode(encode(p)) == p, and any bytes decode or throw a DecodeError, never crash', () => {
  fc.assert(fc.property(fc.array(customer, { minLength: 1, maxLength: 5 }), (generated) => {
    const p: WarrantPolicy = { version: 1, customers: generated.map((c) => ({ ...c })) }; // plain objects: fast-check makes null-prototype ones
    assert.deepEqual(decodePolicy(encodePolicy(p)), p);
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    try {
      decodePolicy(bytes);
    } catch (e) {
      assert.ok(e instanceof DecodeError);
    }
  }));
  fc.assert(fc.property(fc.json(), (text) => {
    try {
      decodePolicy(Buffer.from(text));
    } catch (e) {
      assert.ok(e instanceof DecodeError);
    }
  }));
});

test('revocation lists: round trip, lookup by serial and issuer, strict decoding', () => {
  const r = new Revocations().with({ serial: 'AB12', issuer: FP, revokedAt: '2026-11-24T08:00:00.000Z', reason: 'contract ended' });
  const back = Revocations.decode(r.encode());
  assert.deepEqual(back.entries, r.entries);
  assert.equal(back.lookup('ab12', FP)?.toISOString(), '2026-11-24T08:00:00.000Z');
  assert.equal(back.lookup('AB12', 'ff'.repeat(32)), undefined);
  for (const bad of ['{}', '{"version":1,"revoked":[{"serial":"xyz","issuer":"' + FP + '","revokedAt":"2026-01-01T00:00:00Z"}]}',
    '{"version":1,"revoked":[{"serial":"AB","issuer":"' + FP + '","revokedAt":"yesterday"}]}']) {
    assert.throws(() => Revocations.decode(bad), DecodeError, bad);
  }
  fc.assert(fc.property(fc.string(), (text) => {
    try {
      Revocations.decode(text);
    } catch (e) {
      assert.ok(e instanceof DecodeError);
    }
  }));
});
