/**
 * The server's register of card keys by serial (issue 18, section 1): the first key a serial
 * logs in with (or, for a store made before this register, the first key stored for it) is that
 * serial's key for good, and a login with the same serial and another key is refused. One file
 * per serial, `<store>/card-keys/<SERIAL>`, made by exclusive create (O_CREAT|O_EXCL) and
 * fsync'd, so two logins at once cannot both claim a serial, across processes too.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDirectory } from '../util/fs.js';
import { cardKeyOfEntry, type TransactionStore } from '../store/types.js';
import { ServiceError } from './service-error.js';

export const CARD_KEYS_DIR = 'card-keys';

interface CardKeyFile {
  readonly serial: string;
  readonly cardKey: string;
  readonly firstSeen: string;
}

/**
 * What a login needs of the register, whatever keeps it: files under the store directory
 * (CardKeyRegister, the embedded store) or a table shared by every instance (PgCardKeyRegister).
 * `bind` is atomic across processes and instances: of two first logins with one serial and two
 * keys, exactly one key is registered, and the other login is refused.
 */
export interface CardKeyBinding {
  bind(serial: string, cardKey: string, now?: Date): void | Promise<void>;
}

function conflict(serial: string): ServiceError {
  return new ServiceError('E_CARD_KEY_CONFLICT', `card serial ${serial} is registered on this server with another card key: this card is refused (a second card made with that serial); ask the card issuer`);
}

function checkSerial(serial: string): string {
  if (!/^[0-9A-F]{16}$/i.test(serial)) throw new ServiceError('E_CLIENT_CERT', `card serial "${serial}" is not 16 hex digits`);
  return serial.toUpperCase();
}

/**
 * The register in PostgreSQL (table card_keys): INSERT ... ON CONFLICT DO NOTHING, then read what
 * stands, so two instances binding one serial at once agree. A serial's key never changes, so a
 * binding seen once is remembered in this process.
 */
export class PgCardKeyRegister implements CardKeyBinding {
  private readonly known = new Map<string, string>();

  constructor(private readonly store: { bindCardKey(serial: string, cardKey: string, now: Date): Promise<string> }) {}

  async bind(serial: string, cardKey: string, now = new Date()): Promise<void> {
    const s = checkSerial(serial);
    const stands = this.known.get(s) ?? await this.store.bindCardKey(s, cardKey, now);
    this.known.set(s, stands);
    if (stands !== cardKey) throw conflict(serial);
  }
}

export class CardKeyRegister implements CardKeyBinding {
  private readonly known = new Map<string, string>();

  private constructor(private readonly dir: string) {}

  /**
   * Opens `<storeDir>/card-keys`; the first time, fills it from the store (the first key stored
   * for each serial) in a temporary folder renamed into place, so a crash leaves no half register.
   */
  static async open(storeDir: string, store: TransactionStore, now = new Date()): Promise<CardKeyRegister> {
    const dir = join(storeDir, CARD_KEYS_DIR);
    if (!existsSync(dir)) {
      const tmp = `${dir}.filling`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      const first = new Map<string, string>();
      for await (const r of store.all()) if (!first.has(r.prepared.cardSerial)) first.set(r.prepared.cardSerial, cardKeyOfEntry(r.prepared));
      const register = new CardKeyRegister(tmp);
      for (const [serial, key] of first) register.claim(serial, key, now);
      fsyncDirectory(tmp);
      renameSync(tmp, dir);
      fsyncDirectory(storeDir);
    }
    return new CardKeyRegister(dir);
  }

  private path(serial: string): string {
    return join(this.dir, checkSerial(serial));
  }

  /** The key a serial is registered with, if any. */
  keyOf(serial: string): string | undefined {
    const cached = this.known.get(serial);
    if (cached) return cached;
    try {
      const f = JSON.parse(readFileSync(this.path(serial), 'utf8')) as CardKeyFile;
      this.known.set(serial, f.cardKey);
      return f.cardKey;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Registers the serial's key if it has none; true when it is now this key. */
  private claim(serial: string, cardKey: string, now: Date): boolean {
    const file: CardKeyFile = { serial, cardKey, firstSeen: now.toISOString() };
    let fd: number;
    try {
      fd = openSync(this.path(serial), 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return this.keyOf(serial) === cardKey;
    }
    try {
      writeSync(fd, JSON.stringify(file) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.known.set(serial, cardKey);
    return true;
  }

  /** At login: the serial's first key is its key for good; another key with it is refused. */
  bind(serial: string, cardKey: string, now = new Date()): void {
    const known = this.keyOf(serial);
    if (known === cardKey) return;
    if (known === undefined && this.claim(serial, cardKey, now)) {
      fsyncDirectory(this.dir);
      return;
    }
    throw conflict(serial);
  }
}
