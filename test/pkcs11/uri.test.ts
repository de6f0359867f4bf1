import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatPkcs11Uri, parsePkcs11Uri, redactPkcs11Uri, type Pkcs11Uri } from '../../src/pkcs11/uri.js';
import { InputError } from '../../src/errors.js';

// RFC 7512 section 3.3, every example, with what each must decode to.
const RFC7512_EXAMPLES: [string, Partial<Pkcs11Uri>][] = [
  ['pkcs11:', {}],
  ['pkcs11:object=my-pubkey;type=public', { object: 'my-pubkey', type: 'public' }],
  ['pkcs11:object=my-key;type=private?pin-source=file:/etc/token', { object: 'my-key', type: 'private', pinSource: 'file:/etc/token' }],
  ['pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin',
    { token: 'The Software PKCS#11 Softtoken', manufacturer: 'Snake Oil, Inc.', model: '1.0', object: 'my-certificate', type: 'cert', id: Buffer.from('69953E5CF4BDEC91', 'hex'), serial: '', pinSource: 'file:/etc/token_pin' }],
  ['pkcs11:object=my-sign-key;type=private?module-name=mypkcs11', { object: 'my-sign-key', type: 'private', moduleName: 'mypkcs11' }],
  ['pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1', { object: 'my-sign-key', type: 'private', modulePath: '/mnt/libmypkcs11.so.1' }],
  ['pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin', { token: 'Software PKCS#11 softtoken', manufacturer: 'Snake Oil, Inc.', pinValue: 'the-pin' }],
  ['pkcs11:slot-description=Sun%20Metaslot', { slotDescription: 'Sun Metaslot' }],
  ['pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23',
    { libraryManufacturer: 'Snake Oil, Inc.', libraryDescription: 'Soft Token Library', libraryVersion: { major: 1, minor: 23 } }],
  ['pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06',
    { token: 'My token% created by Joe', libraryVersion: { major: 3, minor: 0 }, id: Buffer.from('010203BADDCAFE040506', 'hex') }],
  ['pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert', { token: 'A name with a substring %;', object: 'my-certificate', type: 'cert' }],
  ['pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert', { token: 'Name with a small A with acute: á', object: 'my-certificate', type: 'cert' }],
  ['pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b',
    { token: 'my-token', object: 'my-certificate', type: 'cert', pinSource: 'file:/etc/token_pin', vendor: [{ name: 'vendor-aaa', value: 'value-a', in: 'path' }, { name: 'vendor-bbb', value: 'value-b', in: 'query' }] }],
];

for (const [uri, expected] of RFC7512_EXAMPLES) {
  test(`RFC 7512 example parses: ${uri.slice(0, 70)}`, () => {
    assert.deepEqual(parsePkcs11Uri(uri), { vendor: [], ...expected });
  });
}

const BAD: [string, RegExp][] = [
  ['pkcs12:token=a', /does not start with "pkcs11:"/],
  ['token=a', /does not start with "pkcs11:"/],
  ['pkcs11:token=a b', /" " in "token" must be percent-encoded/],
  ['pkcs11:token=a/b', /"\/" in "token" must be percent-encoded/],
  ['pkcs11:token=%4', /"%4" in "token" is not a percent-encoded byte/],
  ['pkcs11:token=%zz', /"%zz"/],
  ['pkcs11:token=a;token=b', /"token" appears twice/],
  ['pkcs11:token', /"token" is not name=value/],
  ['pkcs11:=x', /"=x" is not name=value/],
  ['pkcs11:type=secret', /type "secret" is not one of/],
  ['pkcs11:slot-id=1a', /slot-id "1a" is not a decimal number/],
  ['pkcs11:library-version=1.x', /library-version "1.x"/],
  ['pkcs11:library-version=256', /library-version "256"/],
  ['pkcs11:token=%C3', /"token" is not UTF-8/],
  ['pkcs11:token=a?pin-source=f&pin-value=1', /both pin-source and pin-value/],
  ['pkcs11:token=a?pin-value=1&pin-value=2', /"pin-value" appears twice/],
  ['pkcs11:token=a?pin-value=1&2', /"2" is not name=value/],
  ['pkcs11:pin-source=/x', /"pin-source" is a query attribute/],
  ['pkcs11:?token=a', /"token" is a path attribute/],
  ['pkcs11:token=a#frag', /fragment/],
  ['pkcs11:tok%65n=a', /"tok%65n" is not an attribute name/],
];

for (const [uri, message] of BAD) {
  test(`refused with one clear line: ${uri}`, () => {
    assert.throws(() => parsePkcs11Uri(uri), (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /^not a PKCS#11 URI \(RFC 7512\): /);
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  });
}

test('a pin-value never appears in a redacted URI', () => {
  assert.equal(redactPkcs11Uri('pkcs11:token=a?module-path=/m&pin-value=s3cret'), 'pkcs11:token=a?module-path=/m&pin-value=***');
});

// Any value (any Unicode text, any id bytes) survives format then parse unchanged.
const textArb = fc.string({ unit: 'grapheme', maxLength: 20 });
test('property: formatPkcs11Uri then parsePkcs11Uri gives back every attribute', () => {
  fc.assert(fc.property(
    fc.record({
      token: textArb, object: textArb, manufacturer: textArb, serial: textArb,
      id: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
      type: fc.constantFrom('public', 'private', 'cert', 'secret-key', 'data' as const),
      slotId: fc.nat(),
      libraryVersion: fc.record({ major: fc.integer({ min: 0, max: 255 }), minor: fc.integer({ min: 0, max: 255 }) }),
      pinSource: textArb, moduleName: textArb, modulePath: textArb,
    }, { requiredKeys: [] }),
    (u) => {
      const uri = formatPkcs11Uri(u as Omit<Pkcs11Uri, 'vendor'>);
      assert.deepEqual(parsePkcs11Uri(uri), { vendor: [], ...u, ...(u.libraryVersion ? { libraryVersion: { ...u.libraryVersion } } : {}) });
    },
  ), { numRuns: 500 });
});

test('property: arbitrary text after "pkcs11:" either parses or is refused with an InputError, never anything else', () => {
  fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => {
    try {
      parsePkcs11Uri(`pkcs11:${s}`);
    } catch (err) {
      assert.ok(err instanceof InputError, String(err));
    }
  }), { numRuns: 2000 });
});
