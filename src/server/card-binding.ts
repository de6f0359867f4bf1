/**
 * Which card a stored transaction belongs to (issue 18, section 1). A card serial is public and a
 * second card can be issued with it, so a transaction is bound to its serial AND the SHA-256 of
 * party B's public key, stored with it (`cardKey`; derived from the stored client certificate for
 * entries made before that field). Every lookup of a transaction for a caller goes through
 * `ownRecord`: a renewed certificate for the same key keeps its transactions, a second card with
 * the same serial and another key sees none. The SAM keys for a transaction come from its stored
 * serial (`storedSerial`), never from the caller's.
 */
import type { KeyObject } from 'node:crypto';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { cardKeyOfEntry, type TransactionRecord } from '../store/types.js';
import type { ClientIdentity } from './client-auth.js';
import { ServiceError } from './service-error.js';

/** True when the stored transaction is this card's: its serial and its key. */
export function belongsTo(rec: TransactionRecord, client: ClientIdentity): boolean {
  return rec.prepared.cardSerial === client.cardSerial && cardKeyOfEntry(rec.prepared) === client.cardKey;
}

/** The one check on every lookup: another card's transaction is reported as absent. */
export function ownRecord(rec: TransactionRecord | undefined, client: ClientIdentity, transactionId: number): TransactionRecord {
  if (!rec || !belongsTo(rec, client)) throw new ServiceError('E_NO_TRANSACTION', `no transaction ${transactionId} for this card`);
  return rec;
}

/** The card serial the transaction was prepared for, for the SAM's diversified keys. */
export function storedSerial(rec: TransactionRecord): Buffer {
  return Buffer.from(rec.prepared.cardSerial, 'hex');
}

/** Parsed stored client certificates' keys, by their PEM: a confirm no longer parses X.509 (bounded; a handful of cards are hot). */
const storedKeys = new Map<string, KeyObject>();

/** Party B's public key as stored with the transaction. */
export function storedCardKey(rec: TransactionRecord): KeyObject {
  const pem = rec.prepared.clientCertificate;
  let key = storedKeys.get(pem);
  if (!key) {
    key = certificatesFromPemBundle(pem, 'stored client certificate')[0]!.publicKey;
    if (storedKeys.size >= 4096) storedKeys.delete(storedKeys.keys().next().value!);
    storedKeys.set(pem, key);
  }
  return key;
}
