/**
 * What each kind of certificate qtm issues may do. Verifiers check the extended key usage, so a
 * TLS key can never pass for a receipt-signing key (claim 5) and a card key never for a server.
 */
import type { KeySpec } from '../crypto/keys.js';
import { OID } from '../crypto/oids.js';
import type { ProfileName } from '../protocol/profile.js';

export type Role = 'server' | 'signer' | 'manager' | 'ttp' | 'card';
export const ISSUABLE_ROLES = ['server', 'signer', 'manager', 'ttp'] as const;

export interface RoleSpec {
  readonly description: string;
  readonly keyUsage: Record<string, boolean>;
  readonly extKeyUsage: readonly string[];
  /** Default key for the role in each profile. */
  readonly key: Record<ProfileName, KeySpec>;
}

const signing = { digitalSignature: true, nonRepudiation: true };

export const ROLES: Readonly<Record<Role, RoleSpec>> = {
  server: {
    description: 'TLS server of the web shop',
    keyUsage: { digitalSignature: true, keyEncipherment: true },
    extKeyUsage: [OID.serverAuth],
    key: { v1: 'rsa2048', v2: 'rsa2048' },
  },
  signer: {
    description: 'QTM server receipt signing (separate from the TLS key, claim 5)',
    keyUsage: signing,
    extKeyUsage: [OID.ekuReceiptSigning],
    key: { v1: 'rsa1024', v2: 'rsa2048' },
  },
  manager: {
    description: 'manager who signs warrants for proxy signing (claims 10-11), and revokes them with CRLs',
    // cRLSign: a manager revokes its own warrants with an X.509 CRL it signs (src/warrant/crl.ts).
    keyUsage: { ...signing, cRLSign: true },
    extKeyUsage: [OID.ekuWarrantIssuing, OID.clientAuth],
    key: { v1: 'rsa1024', v2: 'rsa2048' },
  },
  ttp: {
    description: 'trusted third party of the fair exchange (claims 12-14)',
    // RSA-OAEP-SHA256 escrows of 2048-bit values need a 3072-bit key (see docs/FAIR-EXCHANGE.md).
    keyUsage: { digitalSignature: true, keyEncipherment: true },
    extKeyUsage: [OID.ekuTrustedThirdParty, OID.serverAuth],
    key: { v1: 'rsa3072', v2: 'rsa3072' },
  },
  card: {
    description: "customer card's signing key",
    keyUsage: signing,
    extKeyUsage: [OID.ekuCardSigning, OID.clientAuth],
    key: { v1: 'rsa1024', v2: 'rsa2048' },
  },
};

export function roleOfCertificate(ekus: readonly string[] | undefined): Role | undefined {
  if (!ekus) return undefined;
  if (ekus.includes(OID.ekuReceiptSigning)) return 'signer';
  if (ekus.includes(OID.ekuCardSigning)) return 'card';
  if (ekus.includes(OID.ekuWarrantIssuing)) return 'manager';
  if (ekus.includes(OID.ekuTrustedThirdParty)) return 'ttp';
  if (ekus.includes(OID.serverAuth)) return 'server';
  return undefined;
}
