/**
 * Small records qtm keeps in a token beside a key it holds there (CKO_DATA objects, CKA_TOKEN,
 * not private, CKA_APPLICATION "qtm", labelled KEYLABEL.NAME): they travel with the token, as a
 * marker file travels with key files. Tokens may refuse to change CKA_VALUE of an object (SoftHSM2
 * does: CKR_ATTRIBUTE_READ_ONLY), so a record is written as a new object and the older ones are
 * destroyed after it: a crash in between leaves both, and a reader sees every copy (the caller
 * decides which stands; the next write removes the others).
 */
import { InputError } from '../errors.js';
import { attribute, ck, ckr, findObjects, openSession, tokenRef, type TokenSession } from './token.js';

const APPLICATION = 'qtm';

function recordLabel(s: TokenSession, name: string): string {
  const key = s.ref.uri.object;
  if (key === undefined) throw new InputError(`${s.ref.text} names no object`, 'add object=LABEL to the URI', 'E_PKCS11_OBJECT');
  return `${key}.${name}`;
}

/** Where a record is, for messages: the token and the data object's label. */
export function tokenRecordName(uri: string, name: string): string {
  const ref = tokenRef(uri);
  return `the data object "${ref.uri.object ?? '?'}.${name}" in ${ref.text}`;
}

/** Every copy of the record in the token (none: an empty list; more than one after a crash during a write). */
export function readTokenRecords(uri: string, name: string, moduleFlag?: string): Buffer[] {
  const s = openSession(tokenRef(uri, moduleFlag));
  return findObjects(s, 'data', { label: recordLabel(s, name) }).map((h) => attribute(s, h, 'CKA_VALUE'));
}

/** Writes the record as a new object, then destroys the copies it replaces. */
export function writeTokenRecord(uri: string, name: string, value: Buffer, moduleFlag?: string): void {
  const s = openSession(tokenRef(uri, moduleFlag));
  const label = recordLabel(s, name);
  const older = findObjects(s, 'data', { label });
  try {
    s.p11.C_CreateObject(s.handle, [
      { type: ck('CKA_CLASS'), value: ck('CKO_DATA') }, { type: ck('CKA_TOKEN'), value: true }, { type: ck('CKA_PRIVATE'), value: false },
      { type: ck('CKA_LABEL'), value: label }, { type: ck('CKA_APPLICATION'), value: APPLICATION }, { type: ck('CKA_VALUE'), value },
    ]);
    for (const h of older) s.p11.C_DestroyObject(s.handle, h);
  } catch (err) {
    throw new InputError(`token "${s.label}" refused to write the data object "${label}" (${ckr(err) ?? (err as Error).message})`, 'the token must allow data objects (CKO_DATA) and be writable', 'E_PKCS11');
  }
}
