/**
 * Client authentication by card (SPEC 7, claim 9): the card signs, with INTERNAL AUTHENTICATE,
 * a value bound to this TLS session (an RFC 5705/8446 keying-material exporter value) and a
 * server nonce. A signature made for one TLS session is useless in another, so a relayed or
 * replayed authentication fails. The certificate must chain to the trusted CA, carry the card
 * role, and hold the card serial in its subject (serialNumber). Its certificate serial is the
 * CA's own random choice (issue 18); cards issued before, whose certificate serial is the card
 * serial, are accepted as well. The identity carries the SHA-256 of the card's key: a serial is
 * public and names no one by itself (src/server/card-binding.ts).
 */
import { verify, type X509Certificate } from 'node:crypto';
import { AUTH_PREFIX } from '../protocol/card-application.js';
import { authenticationData } from '../protocol/card-authentication.js';
import { OID } from '../crypto/oids.js';
import { DecodeError, RefusedError } from '../errors.js';
import { parsedCertificate } from '../verify/cert-cache.js';
import { validateChain } from '../verify/chain.js';
import { PROFILES, type Profile } from '../protocol/profile.js';


export interface ClientIdentity {
  readonly certificates: X509Certificate[];
  readonly cardSerial: string;
  /** SHA-256 (hex) of the card key's DER SubjectPublicKeyInfo: what transactions are bound to. */
  readonly cardKey: string;
  readonly subject: string;
  readonly profile: Profile;
}

export function verifyCardAuthentication(opts: {
  certificates: readonly string[];
  nonce: Buffer;
  signature: Buffer;
  exporter: Buffer;
  trustAnchors: readonly X509Certificate[];
  now: Date;
}): ClientIdentity {
  const certs = opts.certificates.map((p, i) => {
    try {
      return parsedCertificate(p).certificate;
    } catch {
      // A malformed request (400), not a server failure.
      throw new DecodeError('auth response', `certificates[${i}] is not an X.509 certificate (its PEM does not parse)`);
    }
  });
  const leaf = certs[0]!;
  const chain = validateChain(leaf, certs.slice(1), opts.trustAnchors, opts.now);
  if (!chain.ok) throw new RefusedError(`client certificate refused: ${chain.reason}`, undefined, 'E_CLIENT_CERT');
  if (!(leaf.keyUsage ?? []).includes(OID.ekuCardSigning)) throw new RefusedError('client certificate is not a qtm card certificate', undefined, 'E_CLIENT_CERT');
  const serial = /(?:^|\n)serialNumber=([0-9A-F]{16})(?:\n|$)/.exec(leaf.subject)?.[1];
  if (!serial) {
    throw new RefusedError('client certificate does not hold a card serial (serialNumber, 16 hex digits) in its subject', 'issue the card with qtm card issue', 'E_CLIENT_CERT');
  }
  // One parse per distinct certificate (verify/cert-cache.ts): `leaf.publicKey` builds a new key object each time it is read.
  const parsedLeaf = parsedCertificate(leaf);
  const bits = parsedLeaf.publicKey.asymmetricKeyDetails?.modulusLength;
  const profile = bits === 1024 ? PROFILES.v1 : PROFILES.v2;
  const signed = Buffer.concat([AUTH_PREFIX, authenticationData(opts.exporter, opts.nonce)]);
  if (!verify(profile.hash, signed, parsedLeaf.publicKey, opts.signature)) {
    throw new RefusedError('card authentication signature does not verify for this TLS session', undefined, 'E_CLIENT_AUTH');
  }
  return { certificates: certs, cardSerial: serial, cardKey: parsedLeaf.fingerprint('sha256').toString('hex'), subject: leaf.subject.replace(/\n/g, ', '), profile };
}
