/**
 * Unsigned big-endian integers, one home for the conversions qtm needs: bytes to bigint and back
 * (the escrow's RSA arithmetic, a token's ECDSA r and s), and the contents octets of a DER INTEGER
 * (X.690 8.3.2: two's complement in the fewest octets, so a 0x00 in front only when the top bit is
 * set) as the binary string node-forge's `asn1.create` takes. node-forge's big integer does the
 * minimal encoding: qtm writes no integer encoding of its own (node:crypto has no ASN.1 encoder).
 */
import forge from 'node-forge';

/** Big-endian unsigned bytes as a bigint (0 for no bytes). */
export function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length ? BigInt(`0x${Buffer.from(bytes).toString('hex')}`) : 0n;
}

/** A non-negative bigint as exactly `length` big-endian bytes; a RangeError if it does not fit. */
export function toBytes(n: bigint, length: number): Buffer {
  const hex = n.toString(16).padStart(length * 2, '0');
  if (hex.length > length * 2) throw new RangeError(`value does not fit in ${length} bytes`);
  return Buffer.from(hex, 'hex');
}

export function unsignedIntegerContent(n: bigint): string {
  if (n < 0n) throw new RangeError('a negative number is not an unsigned INTEGER');
  return String.fromCharCode(...new forge.jsbn.BigInteger(n.toString(16), 16).toByteArray().map((b) => b & 0xff));
}
