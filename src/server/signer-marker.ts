/**
 * The receipt key's "signed before" marker (issue 18; docs/FORMATS.md): beside the key's files,
 * PREFIX.signed.json, `{"store","lastTransactionId","updated"}`, records that the key has signed
 * in a store and up to which transaction ID. An empty store started with a key that signed before
 * would hand those IDs out again (run-server.ts refuses it unless a first ID is given). A receipt
 * key in a PKCS#11 token has no files beside it, so no marker.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../errors.js';
import { isPostgresUrl, redactUrl } from '../store/pg-store.js';
import { writeFileAtomic } from '../util/fs.js';

export interface SignedBefore {
  /** The store it signed in, as storeName() names it. */
  readonly store: string;
  readonly lastTransactionId: number;
}

export interface SignerMarker {
  /** Where the marker is (undefined: the key has none, e.g. in a token). */
  readonly path: string | undefined;
  /** What the marker records, or undefined when there is none; a damaged one is an InputError. */
  read(): SignedBefore | undefined;
  /** Records that the key signed up to `lastTransactionId` in `store` (never lowers the ID kept for that store). */
  write(store: string, lastTransactionId: number): void;
}

/** How a store is named in markers and messages: a directory resolved, a URL without its password. */
export function storeName(store: string): string {
  return isPostgresUrl(store) ? redactUrl(store) : resolve(store);
}

/** The marker of the receipt key at `signerPrefix` (PREFIX.pem, PREFIX-key.pem); undefined: no marker. */
export function signerMarker(signerPrefix: string | undefined): SignerMarker {
  const path = signerPrefix ? `${signerPrefix}.signed.json` : undefined;
  const read = (): SignedBefore | undefined => {
    if (!path || !existsSync(path)) return undefined;
    try {
      const m = JSON.parse(readFileSync(path, 'utf8')) as { store?: unknown; lastTransactionId?: unknown };
      if (typeof m.store !== 'string' || !Number.isSafeInteger(m.lastTransactionId)) throw new Error('fields');
      return { store: m.store, lastTransactionId: m.lastTransactionId as number };
    } catch {
      throw new InputError(`${path} is not a qtm signer marker (store, lastTransactionId)`, 'restore it, or remove it knowing the key may then reuse transaction IDs');
    }
  };
  return {
    path,
    read,
    write(store: string, lastTransactionId: number): void {
      if (!path) return;
      const before = read();
      const last = Math.max(lastTransactionId, before && before.store === storeName(store) ? before.lastTransactionId : 0);
      writeFileAtomic(path, JSON.stringify({ store: storeName(store), lastTransactionId: last, updated: new Date().toISOString() }, null, 2) + '\n', 0o600);
    },
  };
}
