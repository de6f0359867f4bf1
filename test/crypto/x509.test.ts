import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { OID, oidDerContent, QTM_ARC } from '../../src/crypto/oids.js';
import { parseDistinguishedName } from '../../src/crypto/x509.js';
import { initCa, issueCertificate, openCa } from '../../src/pki/ca.js';
import { InputError, RefusedError } from '../../src/errors.js';
import { requireTool, tempDir } from '../helpers.js';

test('qtm OID DER bytes decode to the dotted form in OpenSSL', (t) => {
  if (!requireTool(t, 'openssl', 'apt-get install openssl')) return;
  const dir = tempDir(t);
  for (const oid of [OID.ekuReceiptSigning, OID.ekuCardSigning, OID.ekuWarrantIssuing, OID.ekuTrustedThirdParty]) {
    const content = oidDerContent(oid);
    writeFileSync(join(dir, 'oid.der'), Buffer.concat([Buffer.of(0x06, content.length), content]));
    const out = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', join(dir, 'oid.der')], { encoding: 'utf8' });
    assert.ok(out.includes(oid), out);
  }
  assert.ok(OID.ekuReceiptSigning.startsWith(QTM_ARC));
});

test('issued certificates carry the role EKU (read back by node) and any key type', (t) => {
  const dir = tempDir(t);
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Test CA', passphrase: 'long enough' });
  for (const spec of ['rsa2048', 'p256'] as const) {
    const { publicKey } = generateKeyPair(spec);
    const cert = issueCertificate(ca, { role: 'signer', subject: 'CN=Receipts,O=Shop', publicKey });
    assert.deepEqual(cert.keyUsage, [OID.ekuReceiptSigning]);
    assert.ok(cert.checkIssued(ca.certificate) && cert.verify(ca.certificate.publicKey));
    assert.equal(cert.ca, false);
    assert.ok(cert.publicKey.equals(publicKey));
  }
  const card = issueCertificate(ca, { role: 'card', subject: 'CN=Alice,serialNumber=00AA', publicKey: generateKeyPair('rsa2048').publicKey, serialHex: '0102030405060708' });
  assert.equal(card.serialNumber, '0102030405060708');
  assert.match(card.subject, /serialNumber=00AA/);
  assert.deepEqual(card.keyUsage, [OID.ekuCardSigning, OID.clientAuth]);
});

test('the CA key is encrypted at rest and refuses a wrong passphrase; an existing CA is never overwritten', (t) => {
  const dir = tempDir(t);
  initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Test CA', passphrase: 'right passphrase' });
  assert.throws(() => openCa(join(dir, 'ca'), 'wrong passphrase'), RefusedError);
  assert.ok(openCa(join(dir, 'ca'), 'right passphrase').privateKey);
  assert.throws(() => initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=Other', passphrase: 'x'.repeat(10) }), /already exists/);
});

test('distinguished names: escapes, supported attributes, clear errors', () => {
  assert.deepEqual(parseDistinguishedName('CN=Shop\\, Inc.,C=NL'), [{ shortName: 'CN', value: 'Shop, Inc.' }, { shortName: 'C', value: 'NL' }]);
  assert.throws(() => parseDistinguishedName('Alice'), InputError);
  assert.throws(() => parseDistinguishedName('XX=1'), /not supported/);
  assert.throws(() => parseDistinguishedName('C=Netherlands'), /two capital letters/);
});
