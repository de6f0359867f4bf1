/**
 * The server's attestation of a package version 2 proxy proof (docs/FORMATS.md, "Proxy proofs
 * of package version 2"). Version 2's server signature covers fields 1-5 only, so a warrant and
 * party A's key beside it could have been put there by anyone; the server, reading its own store,
 * can still say which warrant it signed under. It signs, with its receipt key and the profile's
 * hash (RSASSA-PKCS1-v1_5 or ECDSA, as for the package):
 *
 *   offset 0   "qtm proxy attestation v2" || 0x00   25 bytes (domain: never a package, whose
 *                                                   first byte is its version 1-3)
 *   25         SHA-256 of the package bytes         32 bytes
 *   57         SHA-256 of the warrant's DER         32 bytes   (89 bytes in all)
 */
import { createHash } from 'node:crypto';

export const ATTESTATION_DOMAIN = Buffer.from('qtm proxy attestation v2\0', 'latin1');
export const ATTESTATION_STATEMENT_LENGTH = ATTESTATION_DOMAIN.length + 64;

export function attestationStatement(packageBytes: Uint8Array, warrantDer: Uint8Array): Buffer {
  const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
  return Buffer.concat([ATTESTATION_DOMAIN, sha256(packageBytes), sha256(warrantDer)]);
}
