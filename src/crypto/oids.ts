import forge from 'node-forge';

/**
 * Object identifiers. qtm's own arc is a UUID arc under 2.25 (ITU-T X.667), which needs no
 * registration and cannot collide with anyone else's.
 */
export const QTM_ARC = '2.25.285551962100591553650106340579240825396';

export const OID = {
  /** Extended key usage: the server's receipt-signing key (claim 5: separate from its TLS key). */
  ekuReceiptSigning: `${QTM_ARC}.1.1`,
  /** Extended key usage: a customer card's signing key. */
  ekuCardSigning: `${QTM_ARC}.1.2`,
  /** Extended key usage: a manager who may issue warrants (sign by proxy, claims 10-11). */
  ekuWarrantIssuing: `${QTM_ARC}.1.3`,
  /** Extended key usage: the trusted third party of the fair exchange (claims 12-14). */
  ekuTrustedThirdParty: `${QTM_ARC}.1.4`,
  /** Policy language of a warrant's RFC 3820 ProxyPolicy: the qtm warrant policy (JSON). */
  warrantPolicy: `${QTM_ARC}.2.1`,
  /** RFC 3820 proxyCertInfo extension. */
  proxyCertInfo: '1.3.6.1.5.5.7.1.14',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
} as const;

/**
 * DER contents of qtm's OIDs. forge's OID encoder stops at 32-bit arcs and the UUID arc is
 * 128 bits, so these bytes were produced by `openssl asn1parse -genstr OID:<dotted>`; a test
 * checks that OpenSSL and node decode them back to the dotted form.
 */
const QTM_ARC_DER_HEX = '6983add3a7ad9ef0b28ef595a894d8a3eb8fa434';

export function oidDerContent(oid: string): Buffer {
  if (oid.startsWith(`${QTM_ARC}.`)) {
    const tail = oid.slice(QTM_ARC.length + 1).split('.').map(Number);
    if (tail.some((n) => !Number.isInteger(n) || n < 0 || n > 127)) throw new RangeError(`qtm sub-arc out of range in ${oid}`);
    return Buffer.concat([Buffer.from(QTM_ARC_DER_HEX, 'hex'), Buffer.from(tail)]);
  }
  return Buffer.from(forge.asn1.oidToDer(oid).getBytes(), 'binary');
}
