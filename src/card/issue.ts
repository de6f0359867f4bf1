/**
 * Personalising one card (SPEC 5): layout, PIN and PUK, on-card key generation, the serial
 * reserved for that key in the issuance register (issuance-register.ts), a certificate from the
 * CA for that key with the card serial in the subject (its certificate serial is 16 random bytes
 * the CA chooses), diversified keys from the SAM, LOCK, a self-test, and the register row marked
 * issued. The private key never leaves the card: the CA sees only the public key the card returns.
 */
import { randomBytes, verify, type X509Certificate } from 'node:crypto';
import type { CardClient } from './client.js';
import { AUTH_PREFIX } from './app-spec.js';
import type { OpenCa } from '../pki/ca.js';
import { issueCertificate } from '../pki/ca.js';
import { withCardKeys, type Sam } from '../sam/sam.js';
import { PROFILES, type ProfileName } from '../protocol/profile.js';
import { RefusedError } from '../errors.js';
import { OID } from '../crypto/oids.js';
import { keyFingerprint } from '../crypto/keys.js';
import type { IssuanceRegister } from './issuance-register.js';

export interface IssueOptions {
  readonly ca: OpenCa;
  readonly sam: Sam;
  /** Distinguished name of the holder; serialNumber=<card serial> is appended. */
  readonly holder: string;
  readonly pin: string;
  readonly puk: string;
  readonly slots: number;
  readonly profile?: ProfileName;
  readonly days?: number;
  /** 'card' (default): a customer's card. 'manager': a card whose key issues warrants (claims 10-11). */
  readonly role?: 'card' | 'manager';
  /**
   * A customer's card that may also issue warrants: the patent's reverse case, where the server
   * signs for the customer (a reverse auction) with the sellers the customer names.
   */
  readonly mayDelegate?: boolean;
  /** The issuance register of the SAM's master key: a serial is tied to one card key for good. */
  readonly register: IssuanceRegister;
  /** Take over a reservation left by a failed run (its certificate is recorded void). */
  readonly retry?: boolean;
}

export interface IssuedCard {
  readonly serial: string;
  readonly profile: ProfileName;
  readonly slots: number;
  readonly certificate: X509Certificate;
  readonly subject: string;
}

export async function issueCard(client: CardClient, opts: IssueOptions): Promise<IssuedCard> {
  await client.select();
  const status = await client.status();
  if (status.lifecycle !== 'personalisation') {
    throw new RefusedError(`card ${status.serial.toString('hex').toUpperCase()} is already issued and locked`, 'a locked card cannot be personalised again');
  }
  const serial = status.serial.toString('hex').toUpperCase();
  const profile = opts.profile ?? opts.ca.info.profile;
  await client.setLayout(PROFILES[profile].version, opts.slots);
  await client.setPinAndPuk(opts.pin, opts.puk);
  const publicKey = await client.generateKeyPair();
  const subject = `${opts.holder},serialNumber=${serial}`;
  // The serial comes from the card, which may be anyone's blank card: it is tied to this key
  // before anything is signed, and a serial issued to another key is refused.
  const reservation = opts.register.reserve({ serial, cardKey: keyFingerprint(publicKey), holder: opts.holder, ...(opts.retry ? { retry: true } : {}) });
  const certificate = issueCertificate(opts.ca, { role: opts.role ?? 'card', ...(opts.mayDelegate ? { extraExtKeyUsage: [OID.ekuWarrantIssuing], extraKeyUsage: { cRLSign: true } } : {}), subject, publicKey, ...(opts.days ? { days: opts.days } : {}) });
  opts.register.recordCertificate(reservation, certificate.serialNumber);
  await client.putCertificate(certificate);
  await withCardKeys(opts.sam, status.serial, (keys) => client.putCardKeys(keys));
  await client.lock();

  // Self-test: the locked card answers with the key its certificate names.
  await client.verifyPin(opts.pin);
  const challenge = randomBytes(32);
  const sig = await client.internalAuthenticate(challenge);
  if (!verify(PROFILES[profile].hash, Buffer.concat([AUTH_PREFIX, challenge]), certificate.publicKey, sig)) {
    throw new RefusedError(`card ${serial} failed its self-test: its signature does not match its certificate`);
  }
  opts.register.markIssued(reservation);
  return { serial, profile, slots: opts.slots, certificate, subject };
}
