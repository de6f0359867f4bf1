/**
 * The server's attestation of a package version 2 proxy proof (docs/FORMATS.md): version 2's
 * signature does not bind the warrant, so the server, and only from its own store, says which
 * package it signed under which warrant. It refuses whatever its store does not hold byte for byte.
 */
import { X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import type { ProofBundle } from '../bundle/proof-bundle.js';
import { fingerprint, signBytes } from '../crypto/keys.js';
import { RefusedError } from '../errors.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { attestationStatement } from '../protocol/proxy-attestation.js';
import { decodePackage } from '../protocol/qtm-package.js';
import type { TransactionStore } from '../store/types.js';

export interface ReceiptSigner {
  readonly privateKey: SigningKey;
  readonly certificates: readonly X509Certificate[];
}

export async function attestProxyBundle(store: TransactionStore, bundle: ProofBundle, signer: ReceiptSigner): Promise<ProofBundle> {
  const pkg = decodePackage(bundle.package);
  const profile = profileByPackageVersion(pkg.version)!;
  if (pkg.version !== 2) throw new RefusedError(`the package is version ${pkg.version}: only a version 2 proxy proof needs an attestation (version 3 binds its warrant in the server's signature)`);
  if (bundle.warrants?.length !== 1) throw new RefusedError('the bundle carries no warrant (or more than one): there is nothing to attest');
  if (!fingerprint(signer.certificates[0]!.publicKey, profile).equals(pkg.serverId)) {
    throw new RefusedError('the package names another server (field 2 is not this receipt key)', 'attest with the receipt key of the server that signed it');
  }
  const rec = await store.get(pkg.transactionId);
  if (!rec?.confirmed) throw new RefusedError(`this store holds no signed transaction ${pkg.transactionId}`);
  if (!Buffer.from(rec.confirmed.package, 'base64').equals(bundle.package)) {
    throw new RefusedError(`the store holds another package for transaction ${pkg.transactionId}: this one is not what the server signed`);
  }
  const stored = rec.prepared.warrant?.certificates[0];
  const warrant = new X509Certificate(bundle.warrants[0]!);
  if (!stored || !new X509Certificate(stored).raw.equals(warrant.raw)) {
    throw new RefusedError(`transaction ${pkg.transactionId} was ${stored ? 'signed under another warrant' : 'not signed by proxy'}: this warrant is not the server's`);
  }
  const attestation = signBytes(profile, signer.privateKey, attestationStatement(bundle.package, warrant.raw));
  return { ...bundle, attestation };
}
