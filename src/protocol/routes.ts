/**
 * The qtm server's HTTP API: every path in one place, for the client that builds them and the
 * server that matches them (the TTP's are TTP_PATHS in ../fair/ttp-messages.ts). Transaction IDs
 * are u32, so at most 10 digits; order IDs are URL-safe tokens of at most 64 characters.
 */
export const PATHS = {
  health: '/health',
  orders: '/orders',
  order: (orderId: string) => `/orders/${encodeURIComponent(orderId)}`,
  authChallenge: '/auth/challenge',
  authResponse: '/auth/response',
  transactions: '/transactions',
  pending: '/transactions/pending',
  transaction: (id: number) => `/transactions/${id}`,
  escrow: (id: number) => `/transactions/${id}/escrow`,
  confirm: (id: number) => `/transactions/${id}/confirm`,
  redeliver: (id: number) => `/transactions/${id}/redeliver`,
  ack: (id: number) => `/transactions/${id}/ack`,
} as const;

export type Route =
  | { readonly name: 'health' | 'compose' | 'auth-challenge' | 'auth-response' | 'pending' | 'prepare' }
  | { readonly name: 'order'; readonly orderId: string }
  | { readonly name: 'transaction' | 'escrow' | 'confirm' | 'redeliver' | 'ack'; readonly transactionId: number };

const FIXED: Record<string, Route['name']> = {
  [`GET ${PATHS.health}`]: 'health',
  [`POST ${PATHS.orders}`]: 'compose',
  [`POST ${PATHS.authChallenge}`]: 'auth-challenge',
  [`POST ${PATHS.authResponse}`]: 'auth-response',
  [`GET ${PATHS.pending}`]: 'pending',
  [`POST ${PATHS.transactions}`]: 'prepare',
};
const ORDER = /^\/orders\/([\w-]{1,64})$/;
const TRANSACTION = /^\/transactions\/(\d{1,10})(?:\/(escrow|confirm|redeliver|ack))?$/;

/** The methods a path takes (the Allow header of a 405); none: no route has this path (404). */
export function allowedMethods(path: string): ('GET' | 'POST')[] {
  return (['GET', 'POST'] as const).filter((m) => matchRoute(m, path) !== undefined);
}

/** The route a request names, or undefined (a 405 if another method has it, see allowedMethods; else 404). */
export function matchRoute(method: string, path: string): Route | undefined {
  const fixed = Object.hasOwn(FIXED, `${method} ${path}`) ? FIXED[`${method} ${path}`] : undefined;
  if (fixed) return { name: fixed } as Route;
  let m: RegExpExecArray | null;
  if (method === 'GET' && (m = ORDER.exec(path))) return { name: 'order', orderId: m[1]! };
  if ((m = TRANSACTION.exec(path))) {
    const transactionId = Number(m[1]);
    if (!m[2]) return method === 'GET' ? { name: 'transaction', transactionId } : undefined;
    return method === 'POST' ? { name: m[2] as 'escrow' | 'confirm' | 'redeliver' | 'ack', transactionId } : undefined;
  }
  return undefined;
}
