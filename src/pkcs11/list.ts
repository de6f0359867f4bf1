/**
 * What `qtm hsm list` shows: the tokens of a module, and a token's objects with their type and
 * protection attributes. Values (CKA_VALUE, private exponents) are never read.
 */
import { attribute, ck, loadModule, openSession, tokenRef, type Handle, type TokenSession } from './token.js';

export interface TokenListing {
  readonly label: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  readonly initialized: boolean;
  /** The URI that names this token (add ;object=LABEL for a key). */
  readonly uri: string;
}

const trim = (s: string) => s.replace(/[\s\0]+$/, '');

export function listTokens(module: string): TokenListing[] {
  const p11 = loadModule(module);
  return p11.C_GetSlotList(true).map((slot) => {
    const info = p11.C_GetTokenInfo(slot);
    const label = trim(info.label);
    return {
      label, manufacturer: trim(info.manufacturerID), model: trim(info.model), serial: trim(info.serialNumber),
      initialized: Boolean(info.flags & 0x400),
      uri: `pkcs11:token=${encodeURIComponent(label)};serial=${encodeURIComponent(trim(info.serialNumber))}`,
    };
  });
}

export interface ObjectListing {
  readonly class: string;
  readonly label: string;
  readonly id: string;
  readonly keyType?: string;
  readonly bits?: number;
  readonly attributes: Record<string, boolean>;
}

const CLASSES: Record<number, string> = {};
const KEY_TYPES: Record<number, string> = {};
const FLAGS = ['CKA_PRIVATE', 'CKA_SENSITIVE', 'CKA_ALWAYS_SENSITIVE', 'CKA_EXTRACTABLE', 'CKA_NEVER_EXTRACTABLE', 'CKA_SIGN', 'CKA_VERIFY', 'CKA_ENCRYPT', 'CKA_DECRYPT', 'CKA_WRAP', 'CKA_UNWRAP', 'CKA_DERIVE'];

function tryAttr(s: TokenSession, h: Handle, name: string): Buffer | undefined {
  try {
    return attribute(s, h, name);
  } catch {
    return undefined; // not an attribute of this class
  }
}

export function listObjects(uri: string): { token: string; objects: ObjectListing[] } {
  const s = openSession(tokenRef(uri));
  if (!Object.keys(CLASSES).length) {
    for (const [n, v] of [['cert', 'CKO_CERTIFICATE'], ['public', 'CKO_PUBLIC_KEY'], ['private', 'CKO_PRIVATE_KEY'], ['secret-key', 'CKO_SECRET_KEY'], ['data', 'CKO_DATA']] as const) CLASSES[ck(v)] = n;
    for (const [n, v] of [['RSA', 'CKK_RSA'], ['EC', 'CKK_EC'], ['AES', 'CKK_AES']] as const) KEY_TYPES[ck(v)] = n;
  }
  s.p11.C_FindObjectsInit(s.handle, []);
  let handles: Handle[];
  try {
    handles = s.p11.C_FindObjects(s.handle, 10_000);
  } finally {
    s.p11.C_FindObjectsFinal(s.handle);
  }
  const objects = handles.map((h): ObjectListing => {
    const cls = CLASSES[attribute(s, h, 'CKA_CLASS').readUIntLE(0, 4)] ?? 'other';
    const keyTypeRaw = cls === 'cert' || cls === 'data' ? undefined : tryAttr(s, h, 'CKA_KEY_TYPE');
    const keyType = keyTypeRaw ? KEY_TYPES[keyTypeRaw.readUIntLE(0, 4)] ?? 'other' : undefined;
    let bits: number | undefined;
    if (keyType === 'RSA') bits = (tryAttr(s, h, 'CKA_MODULUS')?.length ?? 0) * 8 || undefined;
    if (keyType === 'AES') bits = (tryAttr(s, h, 'CKA_VALUE_LEN')?.readUIntLE(0, 4) ?? 0) * 8 || undefined;
    if (keyType === 'EC') bits = 256;
    const attributes: Record<string, boolean> = {};
    if (cls !== 'cert' && cls !== 'data') {
      for (const f of FLAGS) {
        const v = tryAttr(s, h, f);
        if (v && v.length) attributes[f.slice(4).toLowerCase()] = v[0] === 1;
      }
    }
    return { class: cls, label: tryAttr(s, h, 'CKA_LABEL')?.toString('utf8') ?? '', id: tryAttr(s, h, 'CKA_ID')?.toString('hex') ?? '', ...(keyType ? { keyType } : {}), ...(bits ? { bits } : {}), attributes };
  });
  return { token: s.label, objects };
}
