/**
 * Offline verification of one proof bundle. Every check has a stable name so a failure says
 * exactly what is wrong, and all checks run (a report lists every problem, not just the first).
 */
import type { X509Certificate } from 'node:crypto';
import { contentId, verifyBytes } from '../crypto/keys.js';
import { parsedCertificate } from './cert-cache.js';
import { OID } from '../crypto/oids.js';
import type { ProofBundle } from '../bundle/proof-bundle.js';
import { decodeCardRecord, SERVER_ID_PREFIX_LENGTH } from '../protocol/card-record.js';
import { checkPlainText } from '../protocol/plain-text.js';
import { profileByPackageVersion, type Profile } from '../protocol/profile.js';
import { decodePackage, encodeHeader, encodeServerSigned, NO_WARRANT, warrantDigestOf, type QtmPackage } from '../protocol/qtm-package.js';
import { attestationStatement } from '../protocol/proxy-attestation.js';
import { validateChain, type ChainResult } from './chain.js';
import { QtmError } from '../errors.js';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS } from '../protocol/clock.js';
import { crlSignatureProblem, verifyCrl, type Crl, type RevocationList } from '../warrant/crl.js';
import { parseWarrant, warrantProblems, type Warrant } from '../warrant/warrant.js';
import { transparencyChecks, type LogTrust } from '../tlog/bundle-proof.js';

export type CheckName =
  | 'package'
  | 'profile'
  | 'content-id'
  | 'plain-text'
  | 'server-id'
  | 'fingerprint-a'
  | 'fingerprint-b'
  | 'signature-server'
  | 'signature-a'
  | 'signature-b'
  | 'chain-server'
  | 'chain-a'
  | 'chain-b'
  | 'role-server'
  | 'role-a'
  | 'role-b'
  | 'party-a-is-server'
  | 'warrant-binding'
  | 'warrant'
  | 'card-record'
  | 'log-checkpoint'
  | 'log-inclusion'
  | 'log-witnesses';

export interface Check {
  readonly name: CheckName;
  readonly ok: boolean;
  readonly detail: string;
  /** A passing check that still deserves attention (the legacy v1 profile). */
  readonly warning?: boolean;
}

export interface PartySummary {
  readonly subject: string;
  readonly fingerprint: string;
}

export interface VerificationReport {
  readonly valid: boolean;
  readonly checks: Check[];
  readonly failures: Check[];
  readonly profile?: string;
  /** 1, 2 or 3: what the server's signature covers (docs/FORMATS.md). */
  readonly packageVersion?: number;
  readonly legacy?: boolean;
  readonly transactionId?: number;
  readonly time?: string;
  readonly serverId?: string;
  readonly contentId?: string;
  readonly server?: PartySummary;
  readonly partyA?: PartySummary;
  readonly partyB?: PartySummary;
  /** When A signed by proxy: the warrant, and for whom. */
  readonly warrant?: WarrantSummary;
  readonly evaluatedAt?: string;
}

export interface WarrantSummary {
  /** manager: X lets the server sign for X with customer B; customer: customer C lets it sign for C with seller B. */
  readonly direction: 'manager' | 'customer';
  readonly serial: string;
  readonly onBehalfOf: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly covers: string;
  /** With --revocations: the list's number and thisUpdate, and what it says of this warrant. */
  readonly revocation?: { readonly crlNumber: string; readonly thisUpdate: string; readonly status: 'not revoked' | 'revoked' | 'unknown' };
}

export { DEFAULT_CLOCK_TOLERANCE_SECONDS };

export interface VerifyOptions {
  readonly trustAnchors: readonly X509Certificate[];
  /** Detached content; required when the bundle carries none. */
  readonly content?: Buffer;
  /** Evaluate certificate validity at this time instead of the transaction time. */
  readonly at?: Date;
  /**
   * The warrant issuer X's revocation list (an X.509 CRL, src/warrant/crl.ts), checked here as
   * signed by party A's certificate. A proxy signature dated later than a revocation minus
   * `clockToleranceSeconds` fails: a server may have backdated the record by up to that much.
   */
  readonly revocations?: Crl;
  /** T, default 120 s (`qtm sign --clock-tolerance`). */
  readonly clockToleranceSeconds?: number;
  /**
   * The bundle was rebuilt from the server's own store (`qtm server audit`), which recorded the
   * warrant at prepare time: that stands in for the attestation a package version 2 proxy proof
   * needs. Never set for a bundle from anyone else.
   */
  readonly fromServerStore?: boolean;
  /** The server's transparency log key (and witnesses): the bundle must prove its inclusion. */
  readonly log?: LogTrust;
}

/** Once per certificate object (they are cached, ./cert-cache.ts): an archive run names each party per bundle. */
const subjectLines = new WeakMap<X509Certificate, string>();

function subjectLine(cert: X509Certificate): string {
  let line = subjectLines.get(cert);
  if (line === undefined) subjectLines.set(cert, (line = cert.subject.replace(/\n/g, ', ')));
  return line;
}

function parseCertificates(pems: readonly string[]): X509Certificate[] | string {
  try {
    return pems.map((p) => parsedCertificate(p).certificate);
  } catch (err) {
    return `unparseable certificate: ${(err as Error).message}`;
  }
}

export function verifyBundle(bundle: ProofBundle, options: VerifyOptions): VerificationReport {
  const checks: Check[] = [];
  const add = (name: CheckName, ok: boolean, detail: string, warning = false) => checks.push({ name, ok, detail, warning });
  const finish = (extra: Partial<VerificationReport> = {}): VerificationReport => {
    const failures = checks.filter((c) => !c.ok);
    return { valid: failures.length === 0, checks, failures, ...extra };
  };

  let pkg: QtmPackage;
  try {
    pkg = decodePackage(bundle.package);
  } catch (err) {
    add('package', false, err instanceof QtmError ? err.message : String(err));
    return finish();
  }
  const profile = profileByPackageVersion(pkg.version) as Profile;
  add('package', true, `${bundle.package.length}-byte QTM package version ${pkg.version}, transaction ${pkg.transactionId}`);
  if (profile.legacy) {
    add('profile', true, `profile ${profile.name} is LEGACY (SHA-1, RSA-1024): acceptable only for old proofs, never for new signatures`, true);
  } else if (pkg.version === 2) {
    add('profile', true, `profile ${profile.name} (SHA-256), package version 2: the server's signature covers fields 1-5 only, so party A is accepted only as the server itself, or under a warrant the server attests`, true);
  } else {
    add('profile', true, `profile ${profile.name} (SHA-256), package version ${pkg.version}: the server's signature covers fields 1-7 and the warrant digest`);
  }

  // Content and its ID.
  const content = bundle.content ?? options.content;
  // Content given beside a bundle that carries its own must be that content: otherwise "does this
  // receipt prove my file?" would be answered about another text.
  if (bundle.content && options.content && !bundle.content.equals(options.content)) {
    add('content-id', false, `the content given (${options.content.length} bytes) is not the content the bundle carries (${bundle.content.length} bytes): this receipt is not for that text`);
  }
  if (!content) {
    add('content-id', false, 'the bundle has no content and none was given: pass the content file with --content');
  } else {
    const id = contentId(content, profile);
    add('content-id', id.equals(pkg.contentId), id.equals(pkg.contentId)
      ? `content ${content.length} bytes, ${profile.hash} ${id.toString('hex')}`
      : `content digest ${id.toString('hex')} does not match the package's content ID ${Buffer.from(pkg.contentId).toString('hex')}`);
    try {
      checkPlainText(content);
      add('plain-text', true, 'content is plain UTF-8 text');
    } catch (err) {
      add('plain-text', false, (err as Error).message);
    }
  }

  const header = encodeHeader(pkg);
  const serverSigned = encodeServerSigned(pkg);
  const at = options.at ?? new Date(pkg.time * 1000);
  const summaries: { server?: PartySummary; partyA?: PartySummary; partyB?: PartySummary } = {};
  const intermediatesOf = (certs: X509Certificate[]) => certs.slice(1);

  const party = (
    key: 'server' | 'partyA' | 'partyB',
    pems: readonly string[],
    expectedFingerprint: Uint8Array,
    signed: Buffer,
    signature: Uint8Array,
    names: { fp: CheckName; sig: CheckName; chain: CheckName; role: CheckName },
    label: string,
    acceptableEkus: readonly string[],
    /** A warrant: its key signs in place of the leaf's (proxy signing, claims 10-11). */
    signingCertificate?: X509Certificate,
  ): ChainResult | undefined => {
    const certs = parseCertificates(pems);
    if (typeof certs === 'string') {
      add(names.chain, false, `${label}: ${certs}`);
      return undefined;
    }
    const leaf = certs[0]!;
    const parsedLeaf = parsedCertificate(signingCertificate ?? leaf);
    const fp = parsedLeaf.fingerprint(profile.hash);
    summaries[key] = { subject: subjectLine(leaf), fingerprint: fp.toString('hex') };
    const fpOk = fp.equals(expectedFingerprint);
    add(names.fp, fpOk, fpOk
      ? `${label} key ${fp.toString('hex')} is the one in the package`
      : `${label} certificate key ${fp.toString('hex')} is not the package's ${Buffer.from(expectedFingerprint).toString('hex')}`);
    const sigOk = verifyBytes(profile, parsedLeaf.publicKey, signed, signature);
    const coverage = names.sig !== 'signature-server' ? 'fields 1-7' : pkg.version === 3 ? 'fields 1-7 and the warrant digest' : 'fields 1-5';
    add(names.sig, sigOk, sigOk
      ? `${label} signature over ${coverage} verifies (${profile.hash})`
      : `${label} signature over ${coverage} does not verify with "${subjectLine(signingCertificate ?? leaf)}"`);
    const chain = validateChain(leaf, intermediatesOf(certs), options.trustAnchors, at);
    add(names.chain, chain.ok, chain.ok
      ? `${label} "${subjectLine(leaf)}" chains to "${subjectLine(chain.path[chain.path.length - 1]!)}", valid at ${at.toISOString()}`
      : `${label}: ${chain.reason}`);
    const ekus = leaf.keyUsage ?? [];
    const roleOk = acceptableEkus.some((e) => ekus.includes(e));
    add(names.role, roleOk, roleOk
      ? `${label} certificate is authorised for this role`
      : `${label} certificate "${subjectLine(leaf)}" lacks the required extended key usage (${acceptableEkus.join(' or ')})`);
    return chain;
  };

  /** Whether the server's own signature (version 3) or its attestation (version 2) names this warrant. */
  const bindingCheck = (w: Warrant): void => {
    if (pkg.version === 1) {
      add('warrant-binding', false, 'the patent\'s v1 package has no proxy signing: a warrant on a v1 proof is not the server\'s');
    } else if (pkg.version === 3) {
      const digest = warrantDigestOf(w.certificate.raw);
      const ok = digest.equals(pkg.warrantDigest!);
      add('warrant-binding', ok, ok
        ? `the server's signature names this warrant (SHA-256 ${digest.toString('hex')})`
        : Buffer.from(pkg.warrantDigest!).equals(NO_WARRANT)
          ? 'the server signed with no warrant, but the bundle carries one: party A and the warrant are not the server\'s'
          : `the server signed under another warrant (digest ${Buffer.from(pkg.warrantDigest!).toString('hex')}, this one ${digest.toString('hex')})`);
    } else if (options.fromServerStore) {
      add('warrant-binding', true, 'package version 2 proxy proof read from the server\'s own store, which recorded the warrant');
    } else if (!bundle.attestation) {
      add('warrant-binding', false, 'package version 2 does not bind the warrant to the server\'s signature, so this proof cannot be told from a forgery: ask the server to attest it from its store (qtm server attest)');
    } else {
      const server = parseCertificates(bundle.certificates.server);
      const ok = typeof server !== 'string' && verifyBytes(profile, parsedCertificate(server[0]!).publicKey, attestationStatement(bundle.package, w.certificate.raw), bundle.attestation);
      add('warrant-binding', ok, ok
        ? 'the server attests, from its store, that it signed this package under this warrant'
        : 'the attestation does not verify with the server\'s receipt key for this package and warrant');
    }
  };

  // Proxy signing: A's signature is made with the warrant's key, on behalf of partyA[0]. The
  // warrant is believed only as far as the server's signature binds it (version 3) or the server
  // attests it (version 2): its issuer may be anyone, and can name any key and any date.
  let warrant: Warrant | undefined;
  const warrants = bundle.warrants ?? [];
  if (warrants.length > 1) {
    add('warrant', false, `the bundle carries ${warrants.length} warrants; a proof is signed under at most one (nothing else would be checked)`);
  }
  if (warrants.length) {
    try {
      warrant = parseWarrant(parsedCertificate(warrants[0]!).certificate);
    } catch (err) {
      add('warrant', false, `the bundle's warrant is unusable: ${(err as Error).message}`);
    }
  }

  party('server', bundle.certificates.server, pkg.serverId, serverSigned, pkg.signatureServer,
    { fp: 'server-id', sig: 'signature-server', chain: 'chain-server', role: 'role-server' }, 'server', [OID.ekuReceiptSigning]);
  party('partyA', bundle.certificates.partyA, pkg.fingerprintA, header, pkg.signatureA,
    { fp: 'fingerprint-a', sig: 'signature-a', chain: 'chain-a', role: 'role-a' }, warrant ? 'party A (by proxy)' : 'party A',
    // Without a warrant A is the server itself; with one, A is the manager (or delegating customer) who issued it.
    warrant ? [OID.ekuWarrantIssuing] : [OID.ekuReceiptSigning], warrant?.certificate);
  const chainB = party('partyB', bundle.certificates.partyB, pkg.fingerprintB, header, pkg.signatureB,
    { fp: 'fingerprint-b', sig: 'signature-b', chain: 'chain-b', role: 'role-b' }, 'party B', [OID.ekuCardSigning]);

  if (!warrants.length) {
    // Fields 6 and 2 in the package itself: whatever certificates the bundle lists, A's key is the server's.
    const same = Buffer.from(pkg.fingerprintA).equals(pkg.serverId);
    add('party-a-is-server', same, same
      ? 'without a warrant party A is the server itself: field 6 equals field 2'
      : 'without a warrant party A must be the server itself, but field 6 (party A\'s key) is not field 2 (the server ID)');
    if (pkg.version === 3) {
      const none = Buffer.from(pkg.warrantDigest!).equals(NO_WARRANT);
      add('warrant-binding', none, none
        ? 'the server signed with no warrant (warrant digest zero)'
        : `the server signed under a warrant (digest ${Buffer.from(pkg.warrantDigest!).toString('hex')}) that the bundle does not carry`);
    }
  } else if (warrant) {
    bindingCheck(warrant);
  }
  if (bundle.attestation && !(pkg.version === 2 && warrants.length)) {
    add('warrant-binding', false, 'the bundle carries an attestation, which only a package version 2 proxy proof has: it is not checked, so it is refused');
  }

  let warrantSummary: WarrantSummary | undefined;
  if (warrant) {
    const manager = parseCertificates(bundle.certificates.partyA);
    const customer = parseCertificates(bundle.certificates.partyB);
    if (typeof manager !== 'string' && typeof customer !== 'string') {
      // The warrant must hold at the transaction time, whatever --at says about certificates.
      // Only X's own signed list says what X revoked (not the server's copy, not anyone else's).
      let revocations: RevocationList | undefined;
      const listProblem = options.revocations ? crlSignatureProblem(options.revocations, manager[0]!) : undefined;
      if (options.revocations && !listProblem) revocations = verifyCrl(options.revocations, manager[0]!);
      const tolerance = (options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS) * 1000;
      const time = new Date(pkg.time * 1000);
      const problems = warrantProblems(warrant, {
        manager: manager[0]!, customer: customer[0]!, customerIssuer: chainB?.ok ? chainB.path[1] : undefined,
        at: time, ...(revocations ? { revocations, clockToleranceMs: tolerance } : {}),
      });
      if (listProblem) problems.push(`${listProblem.message}: give X's own list to --revocations`);
      // A delegating customer's card holds the card-signing and warrant-issuing usages at once:
      // it must never be both the issuer of the warrant and party B.
      if (parsedCertificate(manager[0]!).fingerprint('sha256').equals(parsedCertificate(customer[0]!).fingerprint('sha256'))) {
        problems.push(`the warrant's issuer is party B itself ("${subjectLine(customer[0]!)}"): nobody can sign by proxy with themselves`);
      }
      const direction = (manager[0]!.keyUsage ?? []).includes(OID.ekuCardSigning) ? 'customer' : 'manager';
      const revokedAt = revocations?.lookup(warrant.serial, revocations.issuerFingerprint);
      const revocation = revocations ? {
        crlNumber: revocations.crlNumber.toString(), thisUpdate: revocations.thisUpdate.toISOString(),
        status: revokedAt && revokedAt.getTime() - tolerance <= time.getTime() ? 'revoked' as const : revocations.thisUpdate < time ? 'unknown' as const : 'not revoked' as const,
      } : undefined;
      warrantSummary = {
        direction, serial: warrant.serial, onBehalfOf: subjectLine(manager[0]!),
        notBefore: warrant.notBefore.toISOString(), notAfter: warrant.notAfter.toISOString(), covers: subjectLine(customer[0]!),
        ...(revocation ? { revocation } : {}),
      };
      const revocationText = !revocation ? ''
        : revocation.status === 'unknown' ? `, revocation status unknown (revocation list number ${revocation.crlNumber} of ${revocation.thisUpdate} is older than the transaction)`
          : `, not revoked (revocation list number ${revocation.crlNumber} of ${revocation.thisUpdate})`;
      const server = parseCertificates(bundle.certificates.server);
      const serverName = typeof server === 'string' ? 'the server' : `"${subjectLine(server[0]!)}"`;
      const roles = direction === 'manager'
        ? `for manager "${warrantSummary.onBehalfOf}", customer "${warrantSummary.covers}"`
        : `for customer "${warrantSummary.onBehalfOf}", seller "${warrantSummary.covers}"`;
      add('warrant', problems.length === 0, problems.length === 0
        ? `signed by ${serverName} on behalf of "${warrantSummary.onBehalfOf}" under warrant ${warrant.serial} (valid from ${warrantSummary.notBefore} to ${warrantSummary.notAfter}, covers "${warrantSummary.covers}"): ${roles}${revocationText}`
        : problems.join('; '));
    }
  }

  if (bundle.cardRecord) {
    try {
      const rec = decodeCardRecord(bundle.cardRecord);
      const mismatches: string[] = [];
      if (rec.version !== profile.version) mismatches.push(`card record version ${rec.version}, but a package version ${pkg.version} receipt has a profile ${profile.name} record (version ${profile.version})`);
      if (rec.transactionId !== pkg.transactionId) mismatches.push(`transaction ${rec.transactionId} vs ${pkg.transactionId}`);
      if (rec.time !== pkg.time) mismatches.push(`time ${rec.time} vs ${pkg.time}`);
      if (!Buffer.from(rec.contentId).equals(pkg.contentId)) mismatches.push('content ID differs');
      if (rec.serverIdPrefix && !Buffer.from(rec.serverIdPrefix).equals(pkg.serverId.subarray(0, SERVER_ID_PREFIX_LENGTH))) {
        mismatches.push('server ID differs');
      }
      add('card-record', mismatches.length === 0, mismatches.length === 0
        ? `card record (${bundle.cardRecord.length} bytes) matches the package`
        : `card record does not match the package: ${mismatches.join('; ')}`);
    } catch (err) {
      add('card-record', false, (err as Error).message);
    }
  }

  if (options.log) {
    for (const c of transparencyChecks({ transactionId: pkg.transactionId, package: bundle.package }, bundle.transparency, options.log)) add(c.name, c.ok, c.detail);
  } else if (bundle.transparency) {
    add('log-inclusion', true, `carries an inclusion proof (leaf ${bundle.transparency.index}) that was not checked: give the log's key with --log-key`, true);
  }

  return finish({
    profile: profile.name,
    packageVersion: pkg.version,
    legacy: profile.legacy,
    transactionId: pkg.transactionId,
    time: new Date(pkg.time * 1000).toISOString(),
    serverId: Buffer.from(pkg.serverId).toString('hex'),
    contentId: Buffer.from(pkg.contentId).toString('hex'),
    evaluatedAt: at.toISOString(),
    ...summaries,
    ...(warrantSummary ? { warrant: warrantSummary } : {}),
  });
}
