/**
 * The label that binds an escrow to one transaction and its deadline (issue 6): both escrows are
 * OAEP-encrypted under it, so the TTP decrypts them only for the transaction they were made for,
 * and a label is never valid for another transaction, TTP or deadline.
 *
 *   L = SHA-256( "qtm fair exchange v1" 0x00 | SHA-256(pre-QTM package) | TTP key fingerprint
 *                | deadline u32 (Unix seconds) )
 * The pre-QTM package already names the transaction ID, the server, the content ID and both
 * parties' keys, so hashing it binds all of them.
 */
import { createHash } from 'node:crypto';

const DOMAIN = Buffer.from('qtm fair exchange v1\0');

export interface TransactionCondition {
  /** The pre-QTM package (fields 1-7). */
  readonly header: Uint8Array;
  /** SHA-256 of the TTP key's DER SubjectPublicKeyInfo. */
  readonly ttpFingerprint: Uint8Array;
  /** Unix seconds after which the exchange may be aborted. */
  readonly deadline: number;
}

export function transactionLabel(c: TransactionCondition): Buffer {
  if (c.ttpFingerprint.length !== 32) throw new RangeError('the TTP fingerprint is a SHA-256 digest');
  if (!Number.isInteger(c.deadline) || c.deadline < 0 || c.deadline > 0xffffffff) throw new RangeError('the deadline is a u32 of Unix seconds');
  const deadline = Buffer.alloc(4);
  deadline.writeUInt32BE(c.deadline);
  return createHash('sha256')
    .update(DOMAIN)
    .update(createHash('sha256').update(c.header).digest())
    .update(c.ttpFingerprint)
    .update(deadline)
    .digest();
}
