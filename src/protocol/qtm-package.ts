/**
 * The QTM package and the pre-QTM package (SPEC 3, the patent's "full QTM package structure").
 *
 * Layout, big-endian; d = digest length of the profile (v1: 20, v2: 32):
 *   offset 0        version            u8 (1, 2 or 3; see ./profile.ts)
 *   1               server ID          d bytes: digest of the server receipt key's DER SPKI
 *   1+d             transaction ID     u32
 *   5+d             time               u32, Unix seconds UTC
 *   9+d             content ID         d bytes: digest of the exact content bytes
 *   9+2d            fingerprint A      d bytes
 *   9+3d            fingerprint B      d bytes
 *   9+4d            end of the header (fields 1-7) = the pre-QTM package
 *   version 3 only: 9+4d  warrant digest  32 bytes: SHA-256 of the DER of the warrant certificate
 *                   party A signed under, or 32 zero bytes when A is the server itself
 *   then the signatures of A over 1-7, of B over 1-7, and of the server:
 *     versions 1 and 2: over fields 1-5;  version 3: over fields 1-7 and the warrant digest,
 *     so that party A's key and the warrant are bound by the server (docs/FORMATS.md)
 *     v1: each exactly 128 bytes (RSA-1024)  -> 89 + 3*128 = 473 bytes in all
 *     versions 2 and 3: each as u16 length || signature bytes
 */
import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter } from './bytes.js';
import { DecodeError } from '../errors.js';
import { type PackageVersion, type Profile, profileByPackageVersion } from './profile.js';

export interface PackageHeader {
  readonly version: PackageVersion;
  readonly serverId: Uint8Array;
  readonly transactionId: number;
  readonly time: number;
  readonly contentId: Uint8Array;
  readonly fingerprintA: Uint8Array;
  readonly fingerprintB: Uint8Array;
}

export interface PackageSignatures {
  readonly signatureA: Uint8Array;
  readonly signatureB: Uint8Array;
  readonly signatureServer: Uint8Array;
}

export interface WarrantBinding {
  /** Version 3 only: SHA-256 of the warrant certificate (DER) A signed under, or NO_WARRANT. */
  readonly warrantDigest?: Uint8Array;
}

export type QtmPackage = PackageHeader & WarrantBinding & PackageSignatures;

export const WARRANT_DIGEST_LENGTH = 32;
/** The warrant digest of a package whose party A is the server itself. */
export const NO_WARRANT: Uint8Array = new Uint8Array(WARRANT_DIGEST_LENGTH);

/** The warrant digest for a warrant certificate's DER bytes, or NO_WARRANT without one. */
export function warrantDigestOf(warrantDer: Uint8Array | undefined): Buffer {
  return warrantDer ? createHash('sha256').update(warrantDer).digest() : Buffer.from(NO_WARRANT);
}

/** v2 signatures longer than this are refused: RSA-8192 is 1024 bytes, nothing real is longer. */
export const MAX_SIGNATURE_LENGTH = 1024;

export function headerLength(profile: Profile): number {
  return 9 + 4 * profile.digestLength;
}

/** Offset where the server-signed part ends: fields 1-5 in versions 1-2, 1-7 + warrant digest in 3. */
export function serverSignedLength(version: PackageVersion): number {
  const d = profileOf(version, 'QTM package').digestLength;
  return version === 3 ? 9 + 4 * d + WARRANT_DIGEST_LENGTH : 9 + 2 * d;
}

function profileOf(version: number, format: string): Profile {
  const profile = profileByPackageVersion(version);
  if (!profile) throw new DecodeError(format, `unknown version ${version} (this qtm reads 1, 2 and 3)`);
  return profile;
}

function checkDigest(name: string, value: Uint8Array, profile: Profile): void {
  if (value.length !== profile.digestLength) {
    throw new RangeError(`${name} must be ${profile.digestLength} bytes for profile ${profile.name}, got ${value.length}`);
  }
}

/** Fields 1-7: the pre-QTM package, and the bytes that A and B sign. */
export function encodeHeader(h: PackageHeader): Buffer {
  const profile = profileOf(h.version, 'pre-QTM package');
  checkDigest('server ID', h.serverId, profile);
  checkDigest('content ID', h.contentId, profile);
  checkDigest('fingerprint A', h.fingerprintA, profile);
  checkDigest('fingerprint B', h.fingerprintB, profile);
  return new ByteWriter()
    .u8(h.version)
    .bytes(h.serverId)
    .u32(h.transactionId)
    .u32(h.time)
    .bytes(h.contentId)
    .bytes(h.fingerprintA)
    .bytes(h.fingerprintB)
    .finish();
}

function checkWarrantDigest(h: PackageHeader & WarrantBinding): void {
  if (h.version === 3) {
    if (h.warrantDigest?.length !== WARRANT_DIGEST_LENGTH) throw new RangeError(`a version 3 package needs a ${WARRANT_DIGEST_LENGTH}-byte warrant digest`);
  } else if (h.warrantDigest !== undefined) {
    throw new RangeError(`a version ${h.version} package has no warrant digest (proxy signing needs version 3)`);
  }
}

/**
 * The bytes the server signs (claim 4: the server signs the record's hash). Versions 1-2:
 * fields 1-5. Version 3: fields 1-7 and the warrant digest, so that nobody can swap party A's key,
 * add a warrant or change it under the server's signature.
 */
export function encodeServerSigned(h: PackageHeader & WarrantBinding): Buffer {
  checkWarrantDigest(h);
  const header = encodeHeader(h);
  if (h.version === 3) return Buffer.concat([header, h.warrantDigest!]);
  return header.subarray(0, serverSignedLength(h.version));
}

function readHeader(r: ByteReader, format: string): { header: PackageHeader; profile: Profile } {
  const version = r.u8('version');
  const profile = profileOf(version, format);
  const d = profile.digestLength;
  const header: PackageHeader = {
    version: version as PackageVersion,
    serverId: r.take(d, 'server ID'),
    transactionId: r.u32('transaction ID'),
    time: r.u32('time'),
    contentId: r.take(d, 'content ID'),
    fingerprintA: r.take(d, 'fingerprint A'),
    fingerprintB: r.take(d, 'fingerprint B'),
  };
  return { header, profile };
}

export function decodeHeader(bytes: Uint8Array): PackageHeader {
  const r = new ByteReader(bytes, 'pre-QTM package');
  const { header } = readHeader(r, 'pre-QTM package');
  r.end();
  return header;
}

function writeSignature(w: ByteWriter, name: string, sig: Uint8Array, profile: Profile): void {
  if (profile.fixedSignatureLength !== null) {
    if (sig.length !== profile.fixedSignatureLength) {
      throw new RangeError(`${name} must be ${profile.fixedSignatureLength} bytes in profile ${profile.name} (RSA-1024), got ${sig.length}`);
    }
    w.bytes(sig);
    return;
  }
  if (sig.length === 0 || sig.length > MAX_SIGNATURE_LENGTH) {
    throw new RangeError(`${name} length ${sig.length} outside 1..${MAX_SIGNATURE_LENGTH}`);
  }
  w.u16(sig.length).bytes(sig);
}

function readSignature(r: ByteReader, name: string, profile: Profile, format: string): Uint8Array {
  if (profile.fixedSignatureLength !== null) return r.take(profile.fixedSignatureLength, name);
  const length = r.u16(`${name} length`);
  if (length === 0 || length > MAX_SIGNATURE_LENGTH) {
    throw new DecodeError(format, `${name} length ${length} outside 1..${MAX_SIGNATURE_LENGTH}`);
  }
  return r.take(length, name);
}

export function encodePackage(p: QtmPackage): Buffer {
  const profile = profileOf(p.version, 'QTM package');
  checkWarrantDigest(p);
  const w = new ByteWriter().bytes(encodeHeader(p));
  if (p.version === 3) w.bytes(p.warrantDigest!);
  writeSignature(w, 'signature A', p.signatureA, profile);
  writeSignature(w, 'signature B', p.signatureB, profile);
  writeSignature(w, 'server signature', p.signatureServer, profile);
  return w.finish();
}

export function decodePackage(bytes: Uint8Array): QtmPackage {
  const format = 'QTM package';
  const r = new ByteReader(bytes, format);
  const { header, profile } = readHeader(r, format);
  const binding: WarrantBinding = header.version === 3 ? { warrantDigest: r.take(WARRANT_DIGEST_LENGTH, 'warrant digest') } : {};
  const signatureA = readSignature(r, 'signature A', profile, format);
  const signatureB = readSignature(r, 'signature B', profile, format);
  const signatureServer = readSignature(r, 'server signature', profile, format);
  r.end();
  return { ...header, ...binding, signatureA, signatureB, signatureServer };
}

export function headerOf(p: QtmPackage): PackageHeader {
  const { signatureA: _a, signatureB: _b, signatureServer: _s, warrantDigest: _w, ...header } = p;
  return header;
}
