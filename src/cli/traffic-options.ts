/**
 * The timeout and limit flags shared by `qtm server start` and `qtm ttp start`, and the same
 * names as keys of `qtm server start --config`. The table with each default and what a client
 * sees when it trips is docs/OPERATIONS.md.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { InputError } from '../errors.js';
import { trafficLimits, type TrafficLimits } from '../http/server.js';

export interface TrafficFlags {
  handshakeTimeout?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  idleTimeout?: number;
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  rate?: number;
}

export const TRAFFIC_KEYS = ['handshakeTimeout', 'headersTimeout', 'requestTimeout', 'idleTimeout', 'maxConnections', 'maxConnectionsPerClient', 'rate'] as const;

const SECONDS = new Set<keyof TrafficFlags>(['handshakeTimeout', 'headersTimeout', 'requestTimeout', 'idleTimeout']);
const FLAG: Record<keyof TrafficFlags, string> = {
  handshakeTimeout: '--handshake-timeout', headersTimeout: '--headers-timeout', requestTimeout: '--request-timeout', idleTimeout: '--idle-timeout',
  maxConnections: '--max-connections', maxConnectionsPerClient: '--max-connections-per-client', rate: '--rate',
};

/** Seconds, fractions allowed (0.5), from a millisecond to a day. */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d{1,3})?$/.test(value) || !(n >= 0.001 && n <= 86_400)) throw new InvalidArgumentError('expected seconds, from 0.001 to 86400 (e.g. 10 or 2.5)');
  return n;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !(n >= 1 && n <= 1_000_000)) throw new InvalidArgumentError('expected a whole number from 1 to 1000000');
  return n;
}

export const trafficOptions = (cmd: Command) =>
  cmd
    .option('--handshake-timeout <seconds>', 'a connection must finish its TLS handshake within this, or is dropped (default 10)', parseSeconds)
    .option('--headers-timeout <seconds>', 'a request\'s headers must arrive within this from connecting (or from its first byte): else 408 E_TIMEOUT (default 10)', parseSeconds)
    .option('--request-timeout <seconds>', 'a whole request, headers and body, must arrive within this: else 408 E_TIMEOUT (default 30)', parseSeconds)
    .option('--idle-timeout <seconds>', 'a kept-alive connection silent this long between requests is closed (default 10)', parseSeconds)
    .option('--max-connections <n>', 'open connections at most; beyond, the longest-idle is closed (default: min(4096, ulimit -n - 64))', parseCount)
    .option('--max-connections-per-client <n>', 'open connections per client address (an IPv6 client: per /64); more are closed at once (default 64)', parseCount)
    .option('--rate <n>', 'requests a second per client address, bursts of 10 times it; beyond: 429 E_RATE_LIMITED with Retry-After (default 50)', parseCount);

/**
 * The limits the flags (or config keys, `file`) ask for; unset ones keep their defaults. A
 * config value is checked as its flag would be.
 */
export function trafficLimitsFrom(flags: TrafficFlags, file: Record<string, unknown> = {}, configName = 'the config file'): Partial<TrafficLimits> {
  const v: TrafficFlags = {};
  for (const k of TRAFFIC_KEYS) {
    let x: unknown = flags[k];
    if (x === undefined && file[k] !== undefined) {
      try {
        x = (SECONDS.has(k) ? parseSeconds : parseCount)(String(file[k]));
        if (typeof file[k] !== 'number') throw new InvalidArgumentError('expected a number');
      } catch (err) {
        throw new InputError(`${configName}: "${k}" (${FLAG[k]}): ${(err as Error).message}`);
      }
    }
    if (x !== undefined) v[k] = x as number;
  }
  const ms = (s: number | undefined) => (s === undefined ? undefined : Math.round(s * 1000));
  const out: { -readonly [K in keyof TrafficLimits]?: TrafficLimits[K] } = {};
  if (v.handshakeTimeout !== undefined) out.handshakeTimeoutMs = ms(v.handshakeTimeout)!;
  if (v.headersTimeout !== undefined) out.headersTimeoutMs = ms(v.headersTimeout)!;
  if (v.requestTimeout !== undefined) out.requestTimeoutMs = ms(v.requestTimeout)!;
  if (v.idleTimeout !== undefined) out.idleTimeoutMs = ms(v.idleTimeout)!;
  if (v.maxConnections !== undefined) out.maxConnections = v.maxConnections;
  if (v.maxConnectionsPerClient !== undefined) out.maxConnectionsPerClient = v.maxConnectionsPerClient;
  if (v.rate !== undefined) out.rate = { perSecond: v.rate, burst: 10 * v.rate };
  trafficLimits(out); // refused here (headers timeout over the request timeout), before any file is opened
  return out;
}

export const TRAFFIC_HELP = `
Under bad traffic (docs/OPERATIONS.md): TLS handshake 10 s, headers 10 s, whole request 30 s,
idle keep-alive 10 s; at most min(4096, ulimit -n - 64) connections, 64 per client address;
50 requests a second per client address, bursts of 500 (429 with Retry-After beyond).
`;
