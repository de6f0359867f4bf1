/**
 * A complete, self-contained sample transaction made in memory: a throwaway CA, a server
 * receipt key, a merchant key (party A) and a customer key (party B, standing in for a card).
 * Used by `qtm package sizes` to reproduce the patent's figures and by tests and fixtures.
 */
import { generateKeyPair, type KeySpec } from '../crypto/keys.js';
import { buildCertificate } from '../crypto/x509.js';
import { issueCertificate, type OpenCa } from '../pki/ca.js';
import type { Role } from '../pki/roles.js';
import { PROFILES, type ProfileName } from '../protocol/profile.js';
import { keySigner, makeProof, type PackageSigner } from './make-proof.js';

export function memoryCa(now = new Date()): OpenCa {
  const { privateKey, publicKey } = generateKeyPair('rsa2048');
  const certificate = buildCertificate(
    {
      subject: 'CN=qtm sample CA',
      publicKey,
      notBefore: new Date(now.getTime() - 86_400_000),
      notAfter: new Date(now.getTime() + 3650 * 86_400_000),
      isCa: true,
      keyUsage: { keyCertSign: true, cRLSign: true },
    },
    { privateKey },
  );
  return { dir: '(memory)', info: { profile: 'v2', subject: 'CN=qtm sample CA', created: now.toISOString() }, certificate, privateKey };
}

export function memorySigner(ca: OpenCa, profileName: ProfileName, role: Role, subject: string, keySpec: KeySpec, now = new Date()): PackageSigner {
  const { privateKey, publicKey } = generateKeyPair(keySpec);
  const cert = issueCertificate(ca, { role, subject, publicKey, now: new Date(now.getTime() - 3_600_000) });
  return keySigner(PROFILES[profileName], privateKey, [cert]);
}

export async function sampleProof(profileName: ProfileName, content = Buffer.from('1 x qtm sample item, EUR 10.00\n'), now = new Date()) {
  const profile = PROFILES[profileName];
  const ca = memoryCa(now);
  const key: KeySpec = profileName === 'v1' ? 'rsa1024' : 'rsa2048';
  const server = memorySigner(ca, profileName, 'signer', 'CN=Sample Shop receipts,O=Sample Shop', key, now);
  const customer = memorySigner(ca, profileName, 'card', 'CN=Sample Customer,serialNumber=0102030405060708', key, now);
  const proof = await makeProof({
    profile,
    transactionId: 1,
    time: Math.floor(now.getTime() / 1000),
    content,
    server,
    partyA: server,
    partyB: customer,
  });
  return { ca, ...proof };
}
