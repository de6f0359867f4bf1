/**
 * Package version 3 fixtures, added beside the v1/v2 ones from the same fixture CA and keys
 * (run: npm run build && node dist/scripts/fixtures-v3.js; make-fixtures.ts calls it too).
 * RSA PKCS#1 v1.5 is deterministic, so the no-warrant v3 vector is a function of the existing
 * keys; the proxy fixtures need a manager and a proxy key S, made here once.
 *
 *   bundles/sample-v3.json                 transaction 42 in package version 3, no warrant
 *   bundles/sample-v3-proxy.json           transaction 43, A signed by S under X's warrant (valid)
 *   bundles/sample-v2-proxy.json           the same in package version 2: fails warrant-binding
 *   bundles/sample-v2-proxy-attested.json  ... with the server's attestation from its store (valid)
 *   vectors/package-v3.bin, package-v3-proxy.bin, warrant-v2.pem
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeBundle } from '../src/bundle/proof-bundle.js';
import { generateKeyPair, keyFingerprint, signBytes } from '../src/crypto/keys.js';
import { issueKeyAndCertificate, openCa } from '../src/pki/ca.js';
import { readIdentity, writeIdentity } from '../src/pki/key-files.js';
import { keySigner, makeProof } from '../src/proof/make-proof.js';
import { PROFILES } from '../src/protocol/profile.js';
import { attestationStatement } from '../src/protocol/proxy-attestation.js';
import { issueWarrant } from '../src/warrant/warrant.js';

const PASSPHRASE = 'qtm-fixture-only';
const issued = new Date('2026-01-01T00:00:00Z');
const transactionTime = Math.floor(Date.parse('2026-11-24T12:00:00Z') / 1000);

export async function writeV3Fixtures(root: string): Promise<void> {
  const profile = PROFILES.v2;
  const ca = openCa(join(root, 'ca'), PASSPHRASE);
  const server = readIdentity(join(root, 'keys', 'server-v2'), PASSPHRASE);
  const customer = readIdentity(join(root, 'keys', 'customer-v2'), PASSPHRASE);
  const content = readFileSync(join(root, 'content', 'order.txt'));
  const vectors = JSON.parse(readFileSync(join(root, 'vectors', 'vectors.json'), 'utf8')) as Record<string, unknown>;
  const signer = (id: { privateKey: import('node:crypto').KeyObject; certificates: import('node:crypto').X509Certificate[] }) => keySigner(profile, id.privateKey, id.certificates);

  const plain = await makeProof({ profile, transactionId: 42, time: transactionTime, content, server: signer(server), partyA: signer(server), partyB: signer(customer), priority: 5 });
  writeFileSync(join(root, 'bundles', 'sample-v3.json'), plain.bundleJson);
  writeFileSync(join(root, 'vectors', 'package-v3.bin'), plain.packageBytes);
  vectors.v3 = {
    transactionId: 42, time: transactionTime, priority: 5, content: 'content/order.txt',
    server: 'keys/server-v2', partyA: 'keys/server-v2', partyB: 'keys/customer-v2',
    packageHex: plain.packageBytes.toString('hex'), cardRecordHex: plain.bundle.cardRecord!.toString('hex'),
  };

  // X (a manager) and S (the server's proxy key, certified by X's warrant naming the customer).
  const managerPrefix = join(root, 'keys', 'manager-v2');
  if (!existsSync(`${managerPrefix}.pem`)) {
    const m = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Manager,O=Example Shop B.V.', keySpec: 'rsa2048', days: 7300, now: issued });
    writeIdentity(managerPrefix, [m.certificate], m.privateKey, PASSPHRASE);
  }
  const manager = readIdentity(managerPrefix, PASSPHRASE);
  const proxyPrefix = join(root, 'keys', 'proxy-v2');
  if (!existsSync(`${proxyPrefix}.pem`)) {
    const s = generateKeyPair('rsa2048');
    const warrant = issueWarrant({
      issuer: { certificate: manager.certificates[0]!, privateKey: manager.privateKey }, subjectKey: s.publicKey,
      customers: [{ fingerprint: keyFingerprint(customer.certificates[0]!.publicKey) }], notBefore: issued, notAfter: new Date('2045-12-01T00:00:00Z'),
    });
    writeIdentity(proxyPrefix, [warrant], s.privateKey, PASSPHRASE);
  }
  const proxy = readIdentity(proxyPrefix, PASSPHRASE);
  const warrant = proxy.certificates[0]!;
  writeFileSync(join(root, 'vectors', 'warrant-v2.pem'), warrant.toString());
  const asManager = (b: typeof plain.bundle) => ({ ...b, certificates: { ...b.certificates, partyA: [manager.certificates[0]!.toString()] } });

  const v3 = await makeProof({ profile, transactionId: 43, time: transactionTime, content, server: signer(server), partyA: signer(proxy), partyB: signer(customer), priority: 5, warrant });
  writeFileSync(join(root, 'bundles', 'sample-v3-proxy.json'), encodeBundle(asManager(v3.bundle)));
  writeFileSync(join(root, 'vectors', 'package-v3-proxy.bin'), v3.packageBytes);
  vectors.v3proxy = {
    transactionId: 43, time: transactionTime, priority: 5, content: 'content/order.txt',
    server: 'keys/server-v2', partyA: 'keys/proxy-v2 (warrant from keys/manager-v2)', partyB: 'keys/customer-v2', warrant: 'vectors/warrant-v2.pem',
    packageHex: v3.packageBytes.toString('hex'), cardRecordHex: v3.bundle.cardRecord!.toString('hex'),
  };

  // The same proxy transaction as an older server wrote it: version 2 binds no warrant.
  const v2 = await makeProof({ profile, packageVersion: 2, transactionId: 43, time: transactionTime, content, server: signer(server), partyA: signer(proxy), partyB: signer(customer), priority: 5 });
  const v2Bundle = { ...asManager(v2.bundle), warrants: [warrant.toString()] };
  writeFileSync(join(root, 'bundles', 'sample-v2-proxy.json'), encodeBundle(v2Bundle));
  const attestation = signBytes(profile, server.privateKey, attestationStatement(v2.packageBytes, warrant.raw));
  writeFileSync(join(root, 'bundles', 'sample-v2-proxy-attested.json'), encodeBundle({ ...v2Bundle, attestation }));

  writeFileSync(join(root, 'vectors', 'vectors.json'), JSON.stringify(vectors, null, 2) + '\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeV3Fixtures('fixtures');
  console.log('version 3 fixtures written');
}
