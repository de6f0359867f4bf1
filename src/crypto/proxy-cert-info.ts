/**
 * The RFC 3820 proxyCertInfo extension (1.3.6.1.5.5.7.1.14), its one encoder and one decoder.
 * A warrant (../warrant/warrant.ts) carries it, and a manager's card checks it before signing a
 * warrant (../card/virtual/warrant-tbs.ts); both read it here, never by position themselves.
 *
 *   ProxyCertInfo ::= SEQUENCE {
 *       pCPathLenConstraint   INTEGER (0..MAX) OPTIONAL,   -- qtm: always 0, S cannot delegate
 *       proxyPolicy           ProxyPolicy }
 *
 *   ProxyPolicy ::= SEQUENCE {
 *       policyLanguage        OBJECT IDENTIFIER,            -- qtm: the warrant policy language
 *       policy                OCTET STRING OPTIONAL }       -- qtm: the policy JSON (../warrant/policy.ts)
 *
 * The decoder is strict: the value must be exactly one DER SEQUENCE of that shape, with no
 * trailing bytes; anything else is a DecodeError naming what is wrong.
 */
import forge from 'node-forge';
import { DecodeError } from '../errors.js';

const { asn1 } = forge;
type Node = forge.asn1.Asn1;

export interface ProxyCertInfo {
  /** Absent: no limit (RFC 3820 3.8). qtm warrants always say 0. */
  readonly pathLength?: number;
  /** DER contents of the policyLanguage OID (qtm's arc is longer than forge's OID codec handles). */
  readonly policyLanguage: Buffer;
  readonly policy?: Buffer;
}

const FORMAT = 'proxyCertInfo';
const bin = (b: Uint8Array) => Buffer.from(b).toString('binary');

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

/** The extension value in forge's ASN.1 form (what `extraExtensions` of a certificate request takes). */
export function proxyCertInfoAsn1(info: ProxyCertInfo): Node {
  const fields: Node[] = [];
  if (info.pathLength !== undefined) {
    if (!Number.isInteger(info.pathLength) || info.pathLength < 0 || info.pathLength > 0x7fffffff) throw new RangeError('pCPathLenConstraint must be a small non-negative integer');
    fields.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(info.pathLength).getBytes()));
  }
  const policy: Node[] = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, bin(info.policyLanguage))];
  if (info.policy) policy.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bin(info.policy)));
  fields.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, policy));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, fields);
}

/** The DER of the extension value (the contents of extnValue). */
export function encodeProxyCertInfo(info: ProxyCertInfo): Buffer {
  return Buffer.from(asn1.toDer(proxyCertInfoAsn1(info)).getBytes(), 'binary');
}

const isUniversal = (n: Node | undefined, type: number): n is Node => n !== undefined && n.tagClass === asn1.Class.UNIVERSAL && n.type === type;

/** Decodes the DER of the extension value; a DecodeError for anything but one well-formed ProxyCertInfo. */
export function decodeProxyCertInfo(der: Buffer): ProxyCertInfo {
  let root: Node;
  try {
    root = asn1.fromDer(bin(der), { strict: true, parseAllBytes: true, decodeBitStrings: false } as never);
  } catch {
    fail('not valid DER');
  }
  if (!isUniversal(root, asn1.Type.SEQUENCE) || !Array.isArray(root.value)) fail('not a SEQUENCE');
  const seq = [...(root.value as Node[])];
  let pathLength: number | undefined;
  if (isUniversal(seq[0], asn1.Type.INTEGER)) {
    const bytes = Buffer.from(seq.shift()!.value as string, 'binary');
    if (bytes.length === 0 || bytes.length > 4 || bytes[0]! & 0x80) fail('pCPathLenConstraint is not a small non-negative integer');
    pathLength = bytes.readUIntBE(0, bytes.length);
  }
  const proxyPolicy = seq[0];
  if (seq.length !== 1 || !isUniversal(proxyPolicy, asn1.Type.SEQUENCE) || !Array.isArray(proxyPolicy.value)) fail('must hold one ProxyPolicy');
  const [language, policy, ...rest] = proxyPolicy.value as Node[];
  if (!isUniversal(language, asn1.Type.OID)) fail('the ProxyPolicy has no policyLanguage');
  if (policy !== undefined && !isUniversal(policy, asn1.Type.OCTETSTRING)) fail('the ProxyPolicy\'s policy is not an OCTET STRING');
  if (rest.length) fail('the ProxyPolicy has fields after the policy');
  return {
    ...(pathLength !== undefined ? { pathLength } : {}),
    policyLanguage: Buffer.from(language.value as string, 'binary'),
    ...(policy ? { policy: Buffer.from(policy.value as string, 'binary') } : {}),
  };
}
