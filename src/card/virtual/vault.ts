/**
 * The virtual card's secrets at rest. A real card keeps its private key in secure EEPROM; the
 * virtual card's EEPROM is a file, so its secrets (the RSA private key, K_enc, K_mac) are sealed
 * with AES-256-GCM under a random card key K_s, and K_s is wrapped twice: under scrypt(PIN) and
 * under scrypt(PUK). A correct PIN is one that unwraps K_s; the PIN is not stored at all. PIN
 * change rewraps K_s; PUK unblock unwraps with the PUK and rewraps under the new PIN.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';

export interface Sealed {
  readonly nonce: string;
  readonly data: string; // ciphertext || tag, base64
}

export interface WrappedKey extends Sealed {
  readonly salt: string;
}

// scrypt N=2^14, r=8: about 16 MiB and a few tens of ms per PIN check, like a card's slow path.
const SCRYPT = { N: 1 << 14, r: 8, p: 1, maxmem: 64 << 20 };

function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Sealed {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce).setAAD(aad);
  const data = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { nonce: nonce.toString('base64'), data: data.toString('base64') };
}

function open(key: Buffer, sealed: Sealed, aad: Buffer): Buffer | undefined {
  const data = Buffer.from(sealed.data, 'base64');
  if (data.length < 16) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.nonce, 'base64')).setAAD(aad);
    d.setAuthTag(data.subarray(data.length - 16));
    return Buffer.concat([d.update(data.subarray(0, data.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

export function newCardKey(): Buffer {
  return randomBytes(32);
}

export function wrapCardKey(cardKey: Buffer, secret: string, aad: Buffer): WrappedKey {
  const salt = randomBytes(16);
  const kek = scryptSync(secret, salt, 32, SCRYPT);
  return { salt: salt.toString('base64'), ...seal(kek, cardKey, aad) };
}

export function unwrapCardKey(wrapped: WrappedKey, secret: string, aad: Buffer): Buffer | undefined {
  const kek = scryptSync(secret, Buffer.from(wrapped.salt, 'base64'), 32, SCRYPT);
  return open(kek, wrapped, aad);
}

export interface CardSecrets {
  /** PKCS#8 DER of the card's private key, base64. */
  privateKey?: string;
  kEnc?: string;
  kMac?: string;
}

export function sealSecrets(cardKey: Buffer, secrets: CardSecrets, aad: Buffer): Sealed {
  return seal(cardKey, Buffer.from(JSON.stringify(secrets), 'utf8'), aad);
}

export function openSecrets(cardKey: Buffer, sealed: Sealed, aad: Buffer): CardSecrets | undefined {
  const plain = open(cardKey, sealed, aad);
  return plain ? (JSON.parse(plain.toString('utf8')) as CardSecrets) : undefined;
}
