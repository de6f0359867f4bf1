/**
 * Regenerates fixtures/ (run: npm run build && node dist/scripts/make-fixtures.js).
 * Keys are random, so running it changes every fixture; the checked-in files are canonical and
 * tests rebuild the packages from them byte for byte. Every private key is encrypted with the
 * test-only passphrase below, documented in fixtures/README.md. Never trust this CA.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate } from '../src/pki/ca.js';
import { writeIdentity } from '../src/pki/key-files.js';
import { keySigner, makeProof } from '../src/proof/make-proof.js';
import { PROFILES, type ProfileName } from '../src/protocol/profile.js';
import { writeV3Fixtures } from './fixtures-v3.js';

export const FIXTURE_PASSPHRASE = 'qtm-fixture-only';
const root = 'fixtures';
const issued = new Date('2026-01-01T00:00:00Z');
const transactionTime = Math.floor(Date.parse('2026-11-24T12:00:00Z') / 1000);

for (const d of ['ca', 'keys', 'bundles', 'vectors']) rmSync(join(root, d), { recursive: true, force: true });
for (const d of ['keys', 'bundles', 'vectors', 'content']) mkdirSync(join(root, d), { recursive: true });

const ca = initCa(join(root, 'ca'), { profile: 'v2', subject: 'CN=qtm Fixture Root CA,O=qtm test fixtures', passphrase: FIXTURE_PASSPHRASE, days: 7300, now: issued });
const content = Buffer.from(
  'Order 2026-0042\n' +
  'Seller: Example Shop B.V., Hoogland\n' +
  'Buyer:  Alice Example (card 0102030405060708)\n' +
  '\n' +
  '  2 x A4 paper, 500 sheets      EUR   9.90\n' +
  '  1 x Fountain pen, blue        EUR  24.50\n' +
  '                         Total  EUR  34.40\n' +
  '\n' +
  'Delivery within 5 working days. I accept this order.\n',
  'utf8');
writeFileSync(join(root, 'content', 'order.txt'), content);

const vectors: Record<string, unknown> = {};
for (const profileName of ['v1', 'v2'] as ProfileName[]) {
  const profile = PROFILES[profileName];
  const make = (role: 'signer' | 'card', name: string, subject: string) => {
    const keySpec = profileName === 'v1' ? 'rsa1024' as const : 'rsa2048' as const;
    const id = issueKeyAndCertificate(ca, { role, subject, keySpec, days: 7300, now: issued });
    writeIdentity(join(root, 'keys', `${name}-${profileName}`), [id.certificate], id.privateKey, FIXTURE_PASSPHRASE);
    return keySigner(profile, id.privateKey, [id.certificate]);
  };
  const server = make('signer', 'server', `CN=Example Shop receipts ${profileName},O=Example Shop B.V.`);
  const customer = make('card', 'customer', `CN=Alice Example,serialNumber=0102030405060708`);
  // The v1 and v2 vectors are the package versions 1 and 2 (fields 1-5 server coverage).
  const proof = await makeProof({ profile, packageVersion: profile.version, transactionId: 42, time: transactionTime, content, server, partyA: server, partyB: customer, priority: 5 });
  writeFileSync(join(root, 'bundles', `sample-${profileName}.json`), proof.bundleJson);
  writeFileSync(join(root, 'vectors', `package-${profileName}.bin`), proof.packageBytes);
  writeFileSync(join(root, 'vectors', `card-record-${profileName}.bin`), proof.bundle.cardRecord!);
  vectors[profileName] = {
    transactionId: 42,
    time: transactionTime,
    priority: 5,
    content: 'content/order.txt',
    server: `keys/server-${profileName}`,
    partyA: `keys/server-${profileName}`,
    partyB: `keys/customer-${profileName}`,
    packageHex: proof.packageBytes.toString('hex'),
    cardRecordHex: proof.bundle.cardRecord!.toString('hex'),
  };
}
writeFileSync(join(root, 'vectors', 'vectors.json'), JSON.stringify(vectors, null, 2) + '\n');
await writeV3Fixtures(root);
console.log('fixtures written');
