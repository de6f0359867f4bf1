/**
 * What a manager's card checks before it signs a warrant (PSO COMPUTE DIGITAL SIGNATURE, P2 AC):
 * the data must be the TBSCertificate of an RFC 3820 proxy certificate that this card issues:
 * issuer = the card certificate's subject, subject = that name + one CN, a critical
 * proxyCertInfo with path length 0 in the qtm warrant policy language, and not a CA. So the
 * card's key signs nothing but warrants here, and its package-signing command stays the only way
 * to sign a transaction. Read with forge's ASN.1 decoder (node has no API for it); the
 * proxyCertInfo itself with ../../crypto/proxy-cert-info.ts, as the warrant's reader does.
 */
import forge from 'node-forge';
import { OID, oidDerContent } from '../../crypto/oids.js';
import { decodeProxyCertInfo, type ProxyCertInfo } from '../../crypto/proxy-cert-info.js';

const { asn1 } = forge;
type Node = forge.asn1.Asn1;

const CN = asn1.oidToDer('2.5.4.3').getBytes();
const BASIC_CONSTRAINTS = asn1.oidToDer('2.5.29.19').getBytes();
const SHA256_WITH_RSA = asn1.oidToDer(OID.sha256WithRSAEncryption).getBytes();

const der = (n: Node) => asn1.toDer(n).getBytes();
const children = (n: Node | undefined): Node[] => (n && Array.isArray(n.value) ? (n.value as Node[]) : []);

/** The reason the card refuses, or undefined when the TBS is a warrant this card may sign. */
export function warrantTbsProblem(tbs: Buffer, cardCertificate: Buffer): string | undefined {
  let t: Node[];
  let cardSubject: Node;
  try {
    // strict: the whole input must be one DER value, no trailing bytes.
    t = children(asn1.fromDer(tbs.toString('binary'), { strict: true, parseAllBytes: true } as never));
    cardSubject = children(children(asn1.fromDer(cardCertificate.toString('binary')))[0])[5]!;
  } catch {
    return 'not DER';
  }
  // version [0], serial, signature, issuer, validity, subject, spki, [3] extensions
  if (t.length !== 8 || t[0]!.tagClass !== asn1.Class.CONTEXT_SPECIFIC || t[7]!.tagClass !== asn1.Class.CONTEXT_SPECIFIC || t[7]!.type !== 3) return 'not a v3 TBSCertificate';
  if (children(t[2])[0]?.value !== SHA256_WITH_RSA) return 'signature algorithm is not sha256WithRSAEncryption';
  if (der(t[3]!) !== der(cardSubject)) return 'issuer is not this card';
  const issuerRdns = children(t[3]);
  const subjectRdns = children(t[5]);
  if (subjectRdns.length !== issuerRdns.length + 1 || issuerRdns.some((r, i) => der(r) !== der(subjectRdns[i]!))) return 'subject is not the issuer plus one CN';
  const last = children(children(subjectRdns[subjectRdns.length - 1])[0]);
  if (children(subjectRdns[subjectRdns.length - 1]).length !== 1 || last[0]?.value !== CN) return 'subject is not the issuer plus one CN';

  let proxy: ProxyCertInfo | undefined;
  for (const ext of children(children(t[7])[0])) {
    const [id, maybeCritical, value] = children(ext);
    const critical = maybeCritical?.type === asn1.Type.BOOLEAN && maybeCritical.value === '\xff';
    const octets = (value ?? maybeCritical)?.value as string;
    if (id?.value === oidDerContent(OID.proxyCertInfo).toString('binary')) {
      if (!critical) return 'proxyCertInfo is not critical';
      try {
        proxy = decodeProxyCertInfo(Buffer.from(octets, 'binary'));
      } catch (err) {
        return err instanceof Error ? err.message : 'proxyCertInfo is not DER';
      }
    }
    if (id?.value === BASIC_CONSTRAINTS) {
      try {
        const bc = children(asn1.fromDer(octets));
        if (bc[0]?.type === asn1.Type.BOOLEAN && bc[0].value === '\xff') return 'a warrant must not be a CA';
      } catch {
        return 'basicConstraints is not DER';
      }
    }
  }
  if (!proxy) return 'not a proxy certificate (no proxyCertInfo)';
  if (proxy.pathLength !== 0) return 'path length must be 0';
  if (!proxy.policyLanguage.equals(oidDerContent(OID.warrantPolicy))) return 'policy language is not the qtm warrant policy';
  return undefined;
}
