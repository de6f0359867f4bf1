/**
 * The two profiles of SPEC 2. v1 reproduces the patent byte for byte (SHA-1, RSA-1024, fixed
 * 128-byte signatures) and is legacy; v2 is the default for everything new.
 *
 * A profile is a cryptographic suite and a card format (the card's keys, hash and record size).
 * The package version byte says which suite AND what the server's signature covers, so one
 * profile can write one package version and read older ones of its suite:
 *   package version 1: profile v1, the server signs fields 1-5 (the patent's 473 bytes);
 *   package version 2: profile v2, the server signs fields 1-5 (read only: it does not bind
 *     party A's key or a warrant, see docs/FORMATS.md);
 *   package version 3: profile v2, the server signs fields 1-7 and the warrant digest.
 */
export type ProfileName = 'v1' | 'v2';
export type PackageVersion = 1 | 2 | 3;

export interface Profile {
  readonly name: ProfileName;
  /** The card's profile number: its key size, hash and record format (SPEC 4). */
  readonly version: 1 | 2;
  /** The package version this profile writes for new transactions. */
  readonly packageVersion: 1 | 3;
  /** node:crypto / OpenSSL digest name used for fingerprints, content IDs and signatures. */
  readonly hash: 'sha1' | 'sha256';
  readonly digestLength: 20 | 32;
  /** v1 signatures are exactly this many bytes (RSA-1024); v2 signatures are u16-length-prefixed. */
  readonly fixedSignatureLength: number | null;
  readonly legacy: boolean;
}

export const PROFILES: Readonly<Record<ProfileName, Profile>> = {
  v1: { name: 'v1', version: 1, packageVersion: 1, hash: 'sha1', digestLength: 20, fixedSignatureLength: 128, legacy: true },
  v2: { name: 'v2', version: 2, packageVersion: 3, hash: 'sha256', digestLength: 32, fixedSignatureLength: null, legacy: false },
};

/** The profile of a card from its profile number (also its card record's version byte); never a package version: see profileByPackageVersion. */
export function profileOfCard(version: number): Profile | undefined {
  return version === 1 ? PROFILES.v1 : version === 2 ? PROFILES.v2 : undefined;
}

/** The profile whose suite a package version uses. */
export function profileByPackageVersion(version: number): Profile | undefined {
  return version === 1 ? PROFILES.v1 : version === 2 || version === 3 ? PROFILES.v2 : undefined;
}

/** Whether the server's signature in this package version covers party A's key and the warrant. */
export function bindsPartyA(version: PackageVersion): boolean {
  return version >= 3;
}

export function profileByName(name: string): Profile {
  const p = (PROFILES as Record<string, Profile>)[name];
  if (!p) throw new TypeError(`unknown profile "${name}" (expected v1 or v2)`);
  return p;
}
