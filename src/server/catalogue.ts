/**
 * The order application (patent figure 1, item 17): a small catalogue and concept orders
 * composed as plain text that obeys SPEC 6. The server checks its own output too: it never
 * offers anything for signing that a client would have to refuse.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError, RefusedError } from '../errors.js';
import { checkPlainText, firstInvalidUtf8Offset, MAX_CONTENT_BYTES } from '../protocol/plain-text.js';
import { checkUnambiguousText } from '../protocol/unambiguous-text.js';
import type { OrderItem } from '../protocol/messages.js';

export interface Catalogue {
  readonly shop: string;
  readonly currency: string;
  readonly items: readonly { sku: string; name: string; price: number }[];
}

export function loadCatalogue(path: string): Catalogue {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new InputError(`cannot read the catalogue ${path}`, 'check the --catalogue path');
  }
  // Strictly: a lossy read would turn a bad byte into U+FFFD before the plain-text check saw it.
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`the catalogue ${path} is not valid UTF-8 at byte ${firstInvalidUtf8Offset(bytes)}`, 'save it as UTF-8; nothing was loaded', 'E_CATALOGUE');
  }
  let c: Catalogue;
  try {
    c = JSON.parse(text) as Catalogue;
  } catch {
    throw new InputError(`cannot read the catalogue ${path} (not JSON)`, undefined, 'E_CATALOGUE');
  }
  for (const text of [c.shop, c.currency, ...c.items.map((i) => i.name)]) checkPlainText(Buffer.from(text));
  return c;
}

function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

/** `reference` names the order in its text (the server passes one made from the order's nonce). */
export function composeOrder(catalogue: Catalogue, items: readonly OrderItem[], buyer: string, now: Date, reference?: string): { orderId: string; content: Buffer } {
  const orderId = reference ?? `${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(4).toString('hex')}`;
  const lines: string[] = [];
  let total = 0;
  for (const { sku, quantity } of items) {
    const item = catalogue.items.find((i) => i.sku === sku);
    if (!item) throw new RefusedError(`unknown article "${sku}"`, `the catalogue has ${catalogue.items.map((i) => i.sku).join(', ')}`, 'E_UNKNOWN_SKU');
    total += item.price * quantity;
    lines.push(`  ${String(quantity).padStart(3)} x ${item.name.padEnd(32)} ${catalogue.currency} ${money(item.price * quantity).padStart(9)}`);
  }
  const text = [
    `Order ${orderId}`,
    `Seller: ${catalogue.shop}`,
    `Buyer:  ${buyer}`,
    `Date:   ${now.toISOString().slice(0, 19)}Z`,
    '',
    ...lines,
    `  ${''.padEnd(38)} Total ${catalogue.currency} ${money(total).padStart(9)}`,
    '',
    'I accept this order and its total amount.',
    '',
  ].join('\n');
  const content = Buffer.from(text, 'utf8');
  if (content.length > MAX_CONTENT_BYTES) {
    throw new RefusedError(`the order would be ${content.length} bytes, over the ${MAX_CONTENT_BYTES}-byte limit for signed content`, 'order fewer articles; nothing was composed', 'E_ORDER_TOO_LARGE');
  }
  checkUnambiguousText(content);
  return { orderId, content };
}
