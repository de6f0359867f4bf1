/**
 * What a manager's (or delegating customer's) card checks before it signs a revocation list
 * (PSO COMPUTE DIGITAL SIGNATURE, P2 AD): the data must be one DER TBSCertList of an X.509 v2
 * CRL (RFC 5280 5.1) whose issuer is the card certificate's subject, byte for byte:
 *
 *   TBSCertList ::= SEQUENCE { version INTEGER 1, signature AlgorithmIdentifier (sha256WithRSAEncryption),
 *       issuer Name, thisUpdate Time, nextUpdate Time,
 *       revokedCertificates SEQUENCE OF SEQUENCE { INTEGER, Time, ... } OPTIONAL,
 *       crlExtensions [0] EXPLICIT Extensions }
 *
 * A TBSCertList starts with an INTEGER where a TBSCertificate starts with [0] and a pre-QTM
 * package is no DER at all, so nothing the card signs this way is also a certificate or a
 * transaction. The list's meaning (cRLNumber, entries) is the host's and the verifier's business.
 */
import forge from 'node-forge';
import { OID, oidDerContent } from '../../crypto/oids.js';

const { asn1 } = forge;
type Node = forge.asn1.Asn1;

const SHA256_WITH_RSA = oidDerContent(OID.sha256WithRSAEncryption).toString('binary');
const der = (n: Node) => asn1.toDer(n).getBytes();
const children = (n: Node | undefined): Node[] => (n && Array.isArray(n.value) ? (n.value as Node[]) : []);
const universal = (n: Node | undefined, type: number) => n !== undefined && n.tagClass === asn1.Class.UNIVERSAL && n.type === type;
const isTime = (n: Node | undefined) => universal(n, asn1.Type.UTCTIME) || universal(n, asn1.Type.GENERALIZEDTIME);

/** The reason the card refuses, or undefined when the TBS is a revocation list this card issues. */
export function crlTbsProblem(tbs: Buffer, cardCertificate: Buffer): string | undefined {
  let root: Node;
  let cardSubject: Node;
  try {
    root = asn1.fromDer(tbs.toString('binary'), { strict: true, parseAllBytes: true, decodeBitStrings: false } as never);
    cardSubject = children(children(asn1.fromDer(cardCertificate.toString('binary')))[0])[5]!;
  } catch {
    return 'not DER';
  }
  const t = children(root);
  if (!universal(root, asn1.Type.SEQUENCE) || !universal(t[0], asn1.Type.INTEGER) || t[0]!.value !== '\x01') return 'not a version 2 TBSCertList';
  if (children(t[1])[0]?.value !== SHA256_WITH_RSA) return 'signature algorithm is not sha256WithRSAEncryption';
  if (!universal(t[2], asn1.Type.SEQUENCE) || der(t[2]!) !== der(cardSubject)) return 'issuer is not this card';
  if (!isTime(t[3]) || !isTime(t[4])) return 'thisUpdate and nextUpdate must be times';
  let i = 5;
  if (universal(t[i], asn1.Type.SEQUENCE)) {
    if (children(t[i]).some((e) => !universal(e, asn1.Type.SEQUENCE) || !universal(children(e)[0], asn1.Type.INTEGER) || !isTime(children(e)[1]))) return 'a revoked entry is malformed';
    i++;
  }
  const ext = t[i];
  if (!ext || ext.tagClass !== asn1.Class.CONTEXT_SPECIFIC || ext.type !== 0 || t.length !== i + 1) return 'crlExtensions [0] must end the list';
  return undefined;
}
