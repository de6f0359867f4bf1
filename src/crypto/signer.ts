/**
 * One signing interface for every long-term key qtm signs with (the receipt key, the proxy key S,
 * the CA key): a file key opened into node:crypto, or a key in a PKCS#11 token. Callers hold a
 * SigningKey and never learn which it is; both give the same signature formats:
 *   RSA:   PKCS#1 v1.5 over the hash (CKM_SHA256_RSA_PKCS / CKM_SHA1_RSA_PKCS in a token);
 *   ECDSA: the DER SEQUENCE { r, s } (a token's raw r||s is converted here).
 */
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { toBigInt, unsignedIntegerContent } from './integers.js';

export type SignatureHash = 'sha1' | 'sha256';

export interface Signer {
  /** Marks a Signer apart from a node:crypto KeyObject. */
  readonly kind: 'signer';
  /** Where the key lives, for messages (a file's type, or the token URI without any PIN). */
  readonly describe: string;
  readonly publicKey: KeyObject;
  readonly keyType: 'rsa' | 'ec';
  /** The signature over `data` with `hash`; ECDSA signatures are DER. */
  sign(hash: SignatureHash, data: Uint8Array): Buffer;
}

/** What callers hold: a KeyObject from a key file (wrapped on use) or any Signer. */
export type SigningKey = KeyObject | Signer;

export function isSigner(key: SigningKey): key is Signer {
  return (key as Signer).kind === 'signer';
}

/** A private key opened into node:crypto (from an encrypted PEM file). */
export function fileSigner(privateKey: KeyObject): Signer {
  const type = privateKey.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ec') throw new TypeError(`cannot sign with ${type} keys`);
  return {
    kind: 'signer',
    describe: `${type} key file`,
    publicKey: createPublicKey(privateKey),
    keyType: type,
    sign: (hash, data) => sign(hash, data, privateKey),
  };
}

export function asSigner(key: SigningKey): Signer {
  return isSigner(key) ? key : fileSigner(key);
}

/** The public half of any signing key. */
export function publicKeyOf(key: SigningKey): KeyObject {
  return isSigner(key) ? key.publicKey : createPublicKey(key);
}

/** Whether two signing keys are the same key pair (compared by public key). */
export function sameKey(a: SigningKey, b: SigningKey): boolean {
  return publicKeyOf(a).equals(publicKeyOf(b));
}

/**
 * A raw ECDSA signature r||s (what PKCS#11 CKM_ECDSA returns) as DER SEQUENCE { INTEGER r, INTEGER s }
 * (RFC 3279 2.2.3), built with node-forge's ASN.1 encoder: node:crypto can sign and verify either
 * form but cannot turn one into the other.
 */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new RangeError(`raw ECDSA signature must be r||s of equal halves, got ${raw.length} bytes`);
  const { asn1 } = forge;
  const integer = (half: Uint8Array) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, unsignedIntegerContent(toBigInt(half)));
  const n = raw.length / 2;
  const sequence = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [integer(raw.subarray(0, n)), integer(raw.subarray(n))]);
  return Buffer.from(asn1.toDer(sequence).getBytes(), 'binary');
}
