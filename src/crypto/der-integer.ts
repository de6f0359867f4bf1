/**
 * The contents octets of a DER INTEGER holding a non-negative number (X.690 8.3.2: two's
 * complement in the fewest octets, so a 0x00 in front only when the top bit is set), as the
 * binary string node-forge's `asn1.create` takes. node-forge's big integer does the minimal
 * encoding: qtm writes no integer encoding of its own (node:crypto has no ASN.1 encoder).
 */
import forge from 'node-forge';

export function unsignedIntegerContent(n: bigint): string {
  if (n < 0n) throw new RangeError('a negative number is not an unsigned INTEGER');
  return String.fromCharCode(...new forge.jsbn.BigInteger(n.toString(16), 16).toByteArray().map((b) => b & 0xff));
}

/** Big-endian unsigned bytes as a bigint (0 for no bytes). */
export function bigintOf(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex'));
}
