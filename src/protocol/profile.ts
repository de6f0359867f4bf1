/**
 * The two profiles of SPEC 2. v1 reproduces the patent byte for byte (SHA-1, RSA-1024, fixed
 * 128-byte signatures) and is legacy; v2 is the default for everything new.
 */
export type ProfileName = 'v1' | 'v2';

export interface Profile {
  readonly name: ProfileName;
  readonly version: 1 | 2;
  /** node:crypto / OpenSSL digest name used for fingerprints, content IDs and signatures. */
  readonly hash: 'sha1' | 'sha256';
  readonly digestLength: 20 | 32;
  /** v1 signatures are exactly this many bytes (RSA-1024); v2 signatures are u16-length-prefixed. */
  readonly fixedSignatureLength: number | null;
  readonly legacy: boolean;
}

export const PROFILES: Readonly<Record<ProfileName, Profile>> = {
  v1: { name: 'v1', version: 1, hash: 'sha1', digestLength: 20, fixedSignatureLength: 128, legacy: true },
  v2: { name: 'v2', version: 2, hash: 'sha256', digestLength: 32, fixedSignatureLength: null, legacy: false },
};

export function profileByVersion(version: number): Profile | undefined {
  return version === 1 ? PROFILES.v1 : version === 2 ? PROFILES.v2 : undefined;
}

export function profileByName(name: string): Profile {
  const p = (PROFILES as Record<string, Profile>)[name];
  if (!p) throw new TypeError(`unknown profile "${name}" (expected v1 or v2)`);
  return p;
}
