import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as M from '../../src/protocol/messages.js';
import { DecodeError } from '../../src/errors.js';

const decoders = [M.decodeOrderRequest, M.decodeConceptOrder, M.decodeAuthChallenge, M.decodeAuthResponse, M.decodePrepareRequest, M.decodePrepared, M.decodeFirstMessage, M.decodeSecondMessage, M.decodeThirdMessage, M.decodeRedeliverRequest];

test('first, second and third messages encode to exact JSON and decode back', () => {
  const first = { signature: Buffer.from([1, 2, 3]), challenge: Buffer.alloc(16, 0xab), slot: 3, priority: 7 };
  const json = M.encodeFirstMessage(first);
  assert.deepEqual(JSON.stringify(json), '{"signature":"AQID","challenge":"q6urq6urq6urq6urq6urqw==","slot":3,"priority":7}');
  assert.deepEqual(M.decodeFirstMessage(JSON.parse(JSON.stringify(json))), first);
  const second = { transactionId: 42, package: Buffer.from('pkg'), envelope: Buffer.alloc(72, 1), slot: 3 };
  assert.deepEqual(M.decodeSecondMessage(M.encodeSecondMessage(second)), second);
  const third = { transactionId: 42, proof: Buffer.alloc(8, 9) };
  assert.deepEqual(JSON.stringify(M.encodeThirdMessage(third)), '{"transactionId":42,"proof":"CQkJCQkJCQk="}');
  assert.deepEqual(M.decodeThirdMessage(M.encodeThirdMessage(third)), third);
});

test('strict: unknown fields, missing fields, wrong lengths and ranges are refused', () => {
  const ok = M.encodeFirstMessage({ signature: Buffer.from([1]), challenge: Buffer.alloc(16), slot: 1, priority: 0 });
  assert.throws(() => M.decodeFirstMessage({ ...ok, extra: 1 }), /unknown field "extra"/);
  assert.throws(() => M.decodeFirstMessage({ ...ok, slot: undefined }), /missing field "slot"/);
  assert.throws(() => M.decodeFirstMessage({ ...ok, challenge: Buffer.alloc(15).toString('base64') }), /must be 16 bytes/);
  assert.throws(() => M.decodeFirstMessage({ ...ok, slot: 0 }), /whole number in 1..255/);
  assert.throws(() => M.decodeFirstMessage({ ...ok, signature: 'not base64!' }), /must be base64/);
  assert.throws(() => M.decodeOrderRequest({ items: [{ sku: 'A', quantity: 1000 }] }), /quantity/);
  assert.throws(() => M.decodeThirdMessage([]), /JSON object/);
});

test('property: any JSON value given to any decoder yields a value or a DecodeError, never a crash', () => {
  fc.assert(fc.property(fc.jsonValue(), fc.nat({ max: decoders.length - 1 }), (value, i) => {
    try {
      decoders[i]!(value);
    } catch (e) {
      assert.ok(e instanceof DecodeError, String(e));
    }
  }), { numRuns: 3000 });
});

test('the second message with its log proof and the card\'s monitoring key (issue 12), byte for byte', () => {
  const transparency = { index: 5, proof: [Buffer.alloc(32, 2).toString('base64')], checkpoint: 'shop.example/log\n6\nAAAA\n\n— shop.example/log AAAA\n', tag: Buffer.alloc(32, 3).toString('base64') };
  const second = { transactionId: 42, package: Buffer.from('pkg'), envelope: Buffer.from([1]), slot: 3, transparency, monitorKey: Buffer.alloc(32, 4) };
  const json = JSON.stringify(M.encodeSecondMessage(second));
  assert.equal(json, `{"transactionId":42,"package":"cGtn","envelope":"AQ==","slot":3,"transparency":${JSON.stringify(transparency)},"monitorKey":"${Buffer.alloc(32, 4).toString('base64')}"}`);
  assert.deepEqual(M.decodeSecondMessage(JSON.parse(json)), second);
  assert.throws(() => M.decodeSecondMessage({ ...JSON.parse(json), transparency: [1] }), /"transparency" must be a JSON object/);
  assert.throws(() => M.decodeSecondMessage({ ...JSON.parse(json), monitorKey: Buffer.alloc(31).toString('base64') }), /"monitorKey" must be 32 bytes/);
});

test('property: second messages round-trip with any transparency object and monitoring key', () => {
  fc.assert(fc.property(fc.dictionary(fc.string({ minLength: 1 }), fc.jsonValue()), fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }), (t, k) => {
    const second = { transactionId: 1, package: Buffer.from('p'), envelope: Buffer.from('e'), slot: 1, transparency: t, ...(k ? { monitorKey: Buffer.from(k) } : {}) };
    const back = M.decodeSecondMessage(JSON.parse(JSON.stringify(M.encodeSecondMessage(second))));
    assert.deepEqual(back.monitorKey, second.monitorKey);
    assert.deepEqual(back.transparency, JSON.parse(JSON.stringify(t)));
  }), { numRuns: 500 });
});
