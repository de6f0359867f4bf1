/**
 * The receipt key's "signed before" marker (issue 18; docs/FORMATS.md): beside the key's files,
 * PREFIX.signed.json, `{"store","lastTransactionId","updated"}`, records that the key has signed
 * in a store and up to which transaction ID. An empty store started with a key that signed before
 * would hand those IDs out again (run-server.ts refuses it unless a first ID is given). A receipt
 * key in a PKCS#11 token has no files beside it: its marker is a data object in the token beside
 * the key (pkcs11/records.ts, label KEYLABEL.signed), so it goes wherever the token goes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../errors.js';
import { isPostgresUrl, redactUrl } from '../store/pg-store.js';
import { writeFileAtomic } from '../util/fs.js';
import { isPkcs11Uri } from '../pkcs11/uri.js';
import { readTokenRecords, tokenRecordName, writeTokenRecord } from '../pkcs11/records.js';

export interface SignedBefore {
  /** The store it signed in, as storeName() names it. */
  readonly store: string;
  readonly lastTransactionId: number;
}

export interface SignerMarker {
  /** Where the marker is, for messages (a file, or a data object in a token). */
  readonly where: string;
  /** What the marker records, or undefined when there is none; a damaged one is an InputError. */
  read(): SignedBefore | undefined;
  /** Records that the key signed up to `lastTransactionId` in `store` (never lowers the ID kept for that store). */
  write(store: string, lastTransactionId: number): void;
}

/** How a store is named in markers and messages: a directory resolved, a URL without its password. */
export function storeName(store: string): string {
  return isPostgresUrl(store) ? redactUrl(store) : resolve(store);
}

/**
 * The marker of the receipt key `signer`: key files at a prefix (PREFIX.pem, PREFIX-key.pem; the
 * marker PREFIX.signed.json beside them), or a key in a token (a pkcs11: URI; the marker a data
 * object beside it).
 */
export function signerMarker(signer: string): SignerMarker {
  // Every copy there is: one file, or the data objects in the token (two after a crash mid-write).
  const home = isPkcs11Uri(signer)
    ? { where: tokenRecordName(signer, 'signed'), load: () => readTokenRecords(signer, 'signed').map((b) => b.toString('utf8')), save: (text: string) => writeTokenRecord(signer, 'signed', Buffer.from(text, 'utf8')) }
    : {
      where: `${signer}.signed.json`,
      load: () => (existsSync(`${signer}.signed.json`) ? [readFileSync(`${signer}.signed.json`, 'utf8')] : []),
      save: (text: string) => writeFileAtomic(`${signer}.signed.json`, text, 0o600),
    };
  const parse = (text: string): SignedBefore & { updated: string } => {
    try {
      const m = JSON.parse(text) as { store?: unknown; lastTransactionId?: unknown; updated?: unknown };
      if (typeof m.store !== 'string' || !Number.isSafeInteger(m.lastTransactionId)) throw new Error('fields');
      return { store: m.store, lastTransactionId: m.lastTransactionId as number, updated: typeof m.updated === 'string' ? m.updated : '' };
    } catch {
      throw new InputError(`${home.where} is not a qtm signer marker (store, lastTransactionId)`, 'restore it, or remove it knowing the key may then reuse transaction IDs');
    }
  };
  // Of two copies (a write cut short in a token), the later one stands.
  const read = (): SignedBefore | undefined => {
    const copies = home.load().map(parse).sort((a, b) => (a.updated < b.updated ? -1 : a.updated > b.updated ? 1 : a.lastTransactionId - b.lastTransactionId));
    const last = copies[copies.length - 1];
    return last ? { store: last.store, lastTransactionId: last.lastTransactionId } : undefined;
  };
  return {
    where: home.where,
    read,
    write(store: string, lastTransactionId: number): void {
      const before = read();
      const last = Math.max(lastTransactionId, before && before.store === storeName(store) ? before.lastTransactionId : 0);
      home.save(JSON.stringify({ store: storeName(store), lastTransactionId: last, updated: new Date().toISOString() }, null, 2) + '\n');
    },
  };
}
