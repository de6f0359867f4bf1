/**
 * Per-client accounting for the JSON-over-HTTPS servers: who a client is (its address, an IPv6
 * client by its /64) and a token bucket per client, in a table of bounded size.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface RateLimit {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Most tokens an address can hold (a burst). */
  readonly burst: number;
}

/**
 * The key a client is counted under: an IPv4 address as it is (an IPv4-mapped IPv6 address as
 * its IPv4 address), an IPv6 address by its /64 prefix, because one host or home network is
 * handed a whole /64 and could otherwise take a fresh address, with a fresh budget, per request.
 * Anything else (no address: a closed socket) is one shared key.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(address)) return address;
  const bare = address.replace(/%.*$/, ''); // a zone index (fe80::1%eth0) is not part of the address
  if (!isIPv6(bare)) return 'unknown';
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (lower-case hex, no leading zeros); an embedded IPv4 tail counts as two. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16).toString(16));
}

/** Buckets kept at most by default: about 100 bytes each, so ~10 MB however many addresses call. */
export const MAX_BUCKETS = 100_000;

/**
 * One token bucket per client key. The table holds at most `maxEntries` buckets: when a new
 * client would pass that, buckets that have refilled are dropped (their clients are owed
 * nothing, so forgetting them changes no answer), then the least recently used until a tenth of
 * the table is free (a client forgotten this way starts again with a full burst: the price of a
 * bound; its least recent use was the longest ago of all).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly limit: RateLimit,
    private readonly clock: () => number = () => performance.now(),
    readonly maxEntries: number = MAX_BUCKETS,
  ) {}

  /** Takes one token for this client: 0 if it may go ahead, else the seconds until it may (at least 1). */
  take(key: string): number {
    const now = this.clock();
    const known = this.buckets.get(key);
    const b = known ?? { tokens: this.limit.burst, at: now };
    b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
    if (known) this.buckets.delete(key); // re-inserted below: the Map's order is least recently used first
    else if (this.buckets.size >= this.maxEntries) this.prune(now);
    this.buckets.set(key, b);
    if (b.tokens < 1) return Math.max(1, Math.ceil((1 - b.tokens) / this.limit.perSecond));
    b.tokens -= 1;
    return 0;
  }

  /** Clients with a bucket now (for tests and the bound on memory). */
  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    for (const [a, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(a);
    // Then down to 90 %, least recently used first, so that a full scan comes once per tenth of the table.
    const keep = Math.floor(this.maxEntries * 0.9);
    while (this.buckets.size > keep) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
