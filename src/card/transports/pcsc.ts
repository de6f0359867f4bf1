/**
 * PC/SC through the `pcsclite` binding and pcscd, as with any real reader. The binding is an
 * optional dependency: on a machine without libpcsclite it is absent and every PC/SC command
 * says what to install instead of crashing.
 */
import { createRequire } from 'node:module';
import type { CardTransport } from '../transport.js';
import { CardUnavailableError } from '../status-words.js';

const START_HINT = 'start it: `sudo systemctl start pcscd` or `sudo pcscd`; or use --card FILE for a virtual card in this process';
const NOT_REACHABLE = 'the PC/SC service (pcscd) is not reachable';

/** pcsclite reports a missing pcscd as SCARD_E_NO_SERVICE (0x8010001D) or SCARD_E_NO_READERS_AVAILABLE. */
function serviceUnreachable(err: Error): CardUnavailableError {
  return new CardUnavailableError(`${NOT_REACHABLE}: ${err.message.replace(/\.?\s*\(0x[0-9a-fA-F]+\)$/, '')}`, START_HINT);
}

const INSTALL_HINT = 'install pcscd and libpcsclite-dev (Debian/Ubuntu: apt-get install pcscd libpcsclite-dev), start pcscd, then run npm ci again';

/* Minimal typing of the parts of pcsclite used here. */
interface PcscReader {
  name: string;
  state: number;
  SCARD_SHARE_SHARED: number;
  SCARD_LEAVE_CARD: number;
  SCARD_STATE_PRESENT: number;
  SCARD_PROTOCOL_T0: number;
  SCARD_PROTOCOL_T1: number;
  on(event: 'status', cb: (s: { state: number; atr?: Buffer }) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  connect(opts: { share_mode: number; protocol?: number }, cb: (err: Error | null, protocol: number) => void): void;
  disconnect(disposition: number, cb: (err: Error | null) => void): void;
  transmit(data: Buffer, resLen: number, protocol: number, cb: (err: Error | null, data: Buffer) => void): void;
  close(): void;
}
interface PcscContext {
  on(event: 'reader', cb: (r: PcscReader) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  close(): void;
}

function loadBinding(): () => PcscContext {
  try {
    return createRequire(import.meta.url)('pcsclite') as () => PcscContext;
  } catch (err) {
    throw new CardUnavailableError(`PC/SC is not available: the pcsclite binding did not load (${(err as Error).message.split('\n')[0]})`, INSTALL_HINT);
  }
}

export interface ReaderInfo {
  readonly name: string;
  readonly cardPresent: boolean;
  readonly atr?: string;
}

type ReaderMap = Map<string, { reader: PcscReader; status?: { state: number; atr?: Buffer } }>;

/** Closing the context alone leaves each reader's monitor running and the process alive. */
function closeAll(ctx: PcscContext, readers: ReaderMap): void {
  for (const { reader } of readers.values()) reader.close();
  ctx.close();
}

/** Opens a PC/SC context and gathers the readers pcscd reports within `settleMs`. */
async function withContext<T>(settleMs: number, use: (ctx: PcscContext, readers: ReaderMap) => Promise<T>): Promise<T> {
  const binding = loadBinding();
  let ctx: PcscContext;
  try {
    ctx = binding();
  } catch (err) {
    throw serviceUnreachable(err as Error);
  }
  const readers: ReaderMap = new Map();
  let contextError: Error | undefined;
  ctx.on('error', (err) => {
    contextError = err;
  });
  ctx.on('reader', (reader) => {
    const entry: { reader: PcscReader; status?: { state: number; atr?: Buffer } } = { reader };
    readers.set(reader.name, entry);
    reader.on('error', () => {});
    reader.on('status', (s) => {
      entry.status = s;
    });
  });
  const deadline = Date.now() + settleMs;
  // Wait until every reader reported a status, or the settle time runs out.
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    if (readers.size > 0 && [...readers.values()].every((e) => e.status)) break;
  }
  try {
    if (readers.size === 0 && contextError) {
      throw serviceUnreachable(contextError);
    }
    return await use(ctx, readers);
  } catch (err) {
    closeAll(ctx, readers);
    throw err;
  }
}

export async function listReaders(settleMs = 1500): Promise<ReaderInfo[]> {
  return withContext(settleMs, async (ctx, readers) => {
    const list = [...readers.values()].map(({ reader, status }) => {
      const present = Boolean(status && status.state & reader.SCARD_STATE_PRESENT);
      return { name: reader.name, cardPresent: present, ...(present && status?.atr?.length ? { atr: status.atr.toString('hex').toUpperCase() } : {}) };
    });
    closeAll(ctx, readers);
    return list;
  });
}

/**
 * Which reader `--reader SPEC` means, as opensc-tool and ykman read it: the exact name, else an
 * index into the list pcscd reports ("0" is the first, as `opensc-tool -r 0`), else the one name
 * that contains SPEC ignoring case. Anything else names no reader or several: say which.
 */
export function resolveReaderName(spec: string, names: readonly string[]): string {
  if (names.includes(spec)) return spec;
  const list = names.length ? `readers: ${names.map((n, i) => `"${n}" (${i})`).join(', ')}` : 'no reader found: is pcscd running with the reader plugged in?';
  if (/^\d+$/.test(spec)) {
    const byIndex = names[Number(spec)];
    if (byIndex === undefined) throw new CardUnavailableError(`no PC/SC reader number ${spec}`, list);
    return byIndex;
  }
  const matches = names.filter((n) => n.toLowerCase().includes(spec.toLowerCase()));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new CardUnavailableError(`"${spec}" names ${matches.length} PC/SC readers: ${matches.map((n) => `"${n}"`).join(', ')}`, 'give more of the name, or its number from `qtm card list-readers`');
  throw new CardUnavailableError(`no PC/SC reader named "${spec}"`, list);
}

export interface ConnectOptions {
  /** Wait for a card without a deadline (until the process is stopped). */
  readonly wait?: boolean;
  /** Called once when the reader is found empty and the transport starts waiting. */
  readonly onWaiting?: (readerName: string) => void;
}

export class PcscTransport implements CardTransport {
  private constructor(
    private readonly ctx: PcscContext,
    private readonly readers: ReaderMap,
    private readonly reader: PcscReader,
    private readonly protocol: number,
  ) {}

  get description(): string {
    return `PC/SC reader "${this.reader.name}"`;
  }

  static async connect(readerSpec: string, waitMs = 3000, opts: ConnectOptions = {}): Promise<PcscTransport> {
    return withContext(Math.min(waitMs, 3000), async (ctx, readers) => {
      const readerName = resolveReaderName(readerSpec, [...readers.keys()]);
      const entry = readers.get(readerName)!;
      const { reader } = entry;
      const deadline = opts.wait ? Infinity : Date.now() + waitMs;
      let announced = false;
      while (!(entry.status && entry.status.state & reader.SCARD_STATE_PRESENT)) {
        if (opts.wait && !announced && entry.status) {
          announced = true;
          opts.onWaiting?.(readerName);
        }
        if (Date.now() > deadline) {
          throw new CardUnavailableError(`no card in reader "${readerName}"`, 'insert the card, or start `qtm card emulate --card FILE` for a virtual card');
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      const protocol = await new Promise<number>((resolve, reject) => {
        reader.connect({ share_mode: reader.SCARD_SHARE_SHARED, protocol: reader.SCARD_PROTOCOL_T1 | reader.SCARD_PROTOCOL_T0 }, (err, p) =>
          err ? reject(new CardUnavailableError(`cannot connect to the card in "${readerName}": ${err.message}`)) : resolve(p));
      });
      return new PcscTransport(ctx, readers, reader, protocol);
    });
  }

  /**
   * For a card that is only now being plugged in (an emulator starting up): retries until the
   * reader has it or `totalMs` passes, then throws the last reason.
   */
  static async connectWhenReady(readerName: string, totalMs = 5000): Promise<PcscTransport> {
    const deadline = Date.now() + totalMs;
    for (;;) {
      try {
        return await PcscTransport.connect(readerName, 500);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  transmit(apdu: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.reader.transmit(apdu, 258, this.protocol, (err, data) =>
        err ? reject(new CardUnavailableError(`PC/SC transmit failed on "${this.reader.name}": ${err.message}`)) : resolve(Buffer.from(data)));
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.reader.disconnect(this.reader.SCARD_LEAVE_CARD, () => resolve()));
    closeAll(this.ctx, this.readers);
  }
}
