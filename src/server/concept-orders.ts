/**
 * Stateless concept orders (issue 18, section 5). The server keeps no table of composed orders
 * that anonymous clients could fill: an order ID is a MAC under a per-server key over the order's
 * content and expiry, and the content travels with the ID (the prepare request carries it back).
 *
 *   orderId = base64url( nonce (16 random bytes) ‖ expiry (u32, Unix seconds) ‖ tag (16) )
 *   tag     = HMAC-SHA256(orderKey, "qtm concept order v1" ‖ nonce ‖ expiry ‖ SHA-256(content))[0..16]
 *
 * 48 characters. The content names the order by `<YYYYMMDD>-<nonce in hex>` (its first line), so
 * the ID is not inside what it authenticates. The key is 32 random bytes in `<store>/order-key`
 * (mode 0600), made on first start by exclusive create; server instances that share it accept
 * each other's orders. Checked at prepare: a forged ID, changed content or an expired order is
 * refused before anything is stored.
 */
import { createSecretFile, readSecretFile } from '../util/secret-file.js';
import { join } from 'node:path';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { InputError } from '../errors.js';
import { ServiceError } from './service-error.js';

export const ORDER_KEY_FILE = 'order-key';
const LABEL = Buffer.from('qtm concept order v1', 'ascii');
const NONCE = 16;
const TAG = 16;
/** How long a composed order may be prepared. */
export const ORDER_LIFETIME_SECONDS = 3600;

/** The store's order key: read, or made (exclusive create, fsync'd) the first time. */
export function orderKeyFor(storeDir: string): Buffer {
  const path = join(storeDir, ORDER_KEY_FILE);
  createSecretFile(path);
  const key = readSecretFile(path);
  if (!key) throw new InputError(`${path} is not a qtm order key (64 hex digits)`, 'restore it from backup, or delete it: orders composed before are then refused');
  return key;
}

function tag(key: Buffer, nonce: Buffer, expiry: number, content: Buffer): Buffer {
  const e = Buffer.alloc(4);
  e.writeUInt32BE(expiry);
  const digest = createHash('sha256').update(content).digest();
  return createHmac('sha256', key).update(Buffer.concat([LABEL, nonce, e, digest])).digest().subarray(0, TAG);
}

/** A fresh nonce and expiry for an order about to be composed; the nonce names it in its text. */
export function newOrderNonce(): Buffer {
  return randomBytes(NONCE);
}

export function orderIdFor(key: Buffer, nonce: Buffer, expiry: number, content: Buffer): string {
  const e = Buffer.alloc(4);
  e.writeUInt32BE(expiry);
  return Buffer.concat([nonce, e, tag(key, nonce, expiry, content)]).toString('base64url');
}

/** At prepare: the ID must be this server's MAC over this content, and not expired. Returns the expiry. */
export function checkOrder(key: Buffer, orderId: string, content: Buffer, nowSeconds: number): number {
  const raw = /^[\w-]{48}$/.test(orderId) ? Buffer.from(orderId, 'base64url') : Buffer.alloc(0);
  if (raw.length !== NONCE + 4 + TAG) {
    throw new ServiceError('E_NO_ORDER', `no concept order "${orderId}" (not an order ID this server composed: compose the order again)`);
  }
  const nonce = raw.subarray(0, NONCE);
  const expiry = raw.readUInt32BE(NONCE);
  if (!timingSafeEqual(raw.subarray(NONCE + 4), tag(key, nonce, expiry, content))) {
    throw new ServiceError('E_BAD_ORDER', `concept order "${orderId}" does not match its content, or this server never composed it: compose the order again`);
  }
  if (expiry <= nowSeconds) throw new ServiceError('E_NO_ORDER', `concept order "${orderId}" expired at ${new Date(expiry * 1000).toISOString()}: compose it again`);
  return expiry;
}
