/**
 * Assembling a signed QTM package and its proof bundle from three signers. A signer is anything
 * that signs bytes: a key in memory, the server's receipt key, or a smart card (async).
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { contentId, signBytes } from '../crypto/keys.js';
import { parsedCertificate } from '../verify/cert-cache.js';
import { encodeBundle, type ProofBundle } from '../bundle/proof-bundle.js';
import { encodeCardRecord, SERVER_ID_PREFIX_LENGTH } from '../protocol/card-record.js';
import { profileByPackageVersion, type PackageVersion, type Profile } from '../protocol/profile.js';
import { encodeHeader, encodePackage, encodeServerSigned, warrantDigestOf, type PackageHeader, type QtmPackage, type WarrantBinding } from '../protocol/qtm-package.js';
import { RefusedError } from '../errors.js';

export interface PackageSigner {
  /** Own certificate first, then intermediates (never the root). */
  readonly certificates: readonly X509Certificate[];
  sign(data: Buffer): Buffer | Promise<Buffer>;
}

export function keySigner(profile: Profile, privateKey: KeyObject, certificates: readonly X509Certificate[]): PackageSigner {
  return { certificates, sign: (data) => signBytes(profile, privateKey, data) };
}

export interface ProofInput {
  readonly profile: Profile;
  readonly transactionId: number;
  /** Unix seconds. */
  readonly time: number;
  readonly content: Buffer;
  readonly server: PackageSigner;
  readonly partyA: PackageSigner;
  readonly partyB: PackageSigner;
  readonly priority?: number;
  /**
   * Proxy signing (claims 10-11): the warrant whose key party A signs with. Its digest goes into
   * the server-signed part of a version 3 package; the patent's v1 format cannot carry it.
   */
  readonly warrant?: X509Certificate;
  /**
   * Another package version of the profile's suite than the one it writes (fixtures and tests of
   * older proofs: version 2 is read, never written, by qtm's server).
   */
  readonly packageVersion?: PackageVersion;
}

function packageVersionFor(profile: Profile, requested: PackageVersion | undefined): PackageVersion {
  if (requested === undefined) return profile.packageVersion;
  if (profileByPackageVersion(requested) !== profile) throw new RangeError(`package version ${requested} is not of profile ${profile.name}`);
  return requested;
}

export function headerFor(input: Omit<ProofInput, 'server' | 'partyA' | 'partyB' | 'warrant'> & {
  server: Pick<PackageSigner, 'certificates'>;
  partyA: Pick<PackageSigner, 'certificates'>;
  partyB: Pick<PackageSigner, 'certificates'>;
}): PackageHeader {
  // Cached per certificate: exporting the key for a fingerprint costs about a millisecond, and the
  // server fingerprints its own certificate in every transaction.
  const fp = (s: Pick<PackageSigner, 'certificates'>) => parsedCertificate(s.certificates[0]!).fingerprint(input.profile.hash);
  return {
    version: packageVersionFor(input.profile, input.packageVersion),
    serverId: fp(input.server),
    transactionId: input.transactionId,
    time: input.time,
    contentId: contentId(input.content, input.profile),
    fingerprintA: fp(input.partyA),
    fingerprintB: fp(input.partyB),
  };
}

/** The warrant binding of a new package: the digest of the warrant A signs under (version 3). */
export function warrantBindingFor(header: PackageHeader, warrant: X509Certificate | undefined): WarrantBinding {
  if (header.version === 3) return { warrantDigest: warrantDigestOf(warrant?.raw) };
  if (warrant) throw new RefusedError(`package version ${header.version} cannot bind a warrant: proxy signing needs profile v2 (package version 3)`);
  return {};
}

export function cardRecordFor(header: PackageHeader, priority = 0): Buffer {
  return encodeCardRecord(header.version === 1
    ? { version: 1, transactionId: header.transactionId, time: header.time, contentId: header.contentId }
    : {
        version: 2,
        transactionId: header.transactionId,
        time: header.time,
        contentId: header.contentId,
        serverIdPrefix: header.serverId.subarray(0, SERVER_ID_PREFIX_LENGTH),
        priority,
      });
}

export async function makeProof(input: ProofInput): Promise<{ pkg: QtmPackage; packageBytes: Buffer; bundle: ProofBundle; bundleJson: string }> {
  const fields = headerFor(input);
  const header = { ...fields, ...warrantBindingFor(fields, input.warrant) };
  const headerBytes = encodeHeader(header);
  const pkg: QtmPackage = {
    ...header,
    signatureA: await input.partyA.sign(headerBytes),
    signatureB: await input.partyB.sign(headerBytes),
    signatureServer: await input.server.sign(encodeServerSigned(header)),
  };
  const packageBytes = encodePackage(pkg);
  const pems = (s: PackageSigner) => s.certificates.map((c) => c.toString());
  const bundle: ProofBundle = {
    package: packageBytes,
    content: input.content,
    certificates: { server: pems(input.server), partyA: pems(input.partyA), partyB: pems(input.partyB) },
    cardRecord: cardRecordFor(header, input.priority),
    ...(input.warrant ? { warrants: [input.warrant.toString()] } : {}),
  };
  return { pkg, packageBytes, bundle, bundleJson: encodeBundle(bundle) };
}
