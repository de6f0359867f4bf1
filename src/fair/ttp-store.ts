/**
 * The TTP's records, one per exchange (keyed by its label L), behind an interface a
 * PostgreSQL implementation can take later. The default keeps them with lowdb, as the issue asks:
 * the TTP is consulted only when an exchange fails, so the document stays small. lowdb's own
 * file adapter renames a temp file but never fsyncs, and a TTP that forgets an abort after a
 * power cut breaks fairness, so the adapter here writes through writeFileAtomic (fsync, rename,
 * fsync of the folder) and a write resolves only once it is durable.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import { writeFileAtomic } from '../util/fs.js';
import { InputError } from '../errors.js';

export type TtpState = 'none' | 'aborted' | 'resolved';

export interface TtpRecord {
  /** The exchange's label L, hex: a package the server never signed cannot take another's record. */
  readonly key: string;
  /** SHA-256 of the pre-QTM package the first request named: later requests must match it. */
  readonly headerHash: string;
  readonly label: string;
  readonly state: Exclude<TtpState, 'none'>;
  /** Deposited or decrypted signatures, base64. */
  readonly x?: string;
  readonly y?: string;
  /** The abort token, signed once (aborted records). */
  readonly token?: string;
  readonly at: string;
}

export interface TtpStore {
  get(key: string): TtpRecord | undefined;
  /** Durable when the promise resolves. */
  put(record: TtpRecord): Promise<void>;
  count(): number;
}

interface Doc {
  version: 1;
  records: Record<string, TtpRecord>;
}

class DurableJsonFile implements Adapter<Doc> {
  constructor(private readonly path: string) {}
  async read(): Promise<Doc | null> {
    if (!existsSync(this.path)) return null;
    try {
      return JSON.parse(readFileSync(this.path, 'utf8')) as Doc;
    } catch {
      throw new InputError(`the TTP store ${this.path} is not readable JSON`, 'restore it from backup');
    }
  }
  async write(data: Doc): Promise<void> {
    writeFileAtomic(this.path, JSON.stringify(data) + '\n', 0o600);
  }
}

export class LowdbTtpStore implements TtpStore {
  private constructor(private readonly db: Low<Doc>) {}

  static async open(dir: string): Promise<LowdbTtpStore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const db = new Low<Doc>(new DurableJsonFile(join(dir, 'ttp.json')), { version: 1, records: {} });
    await db.read();
    return new LowdbTtpStore(db);
  }

  get(key: string): TtpRecord | undefined {
    return this.db.data.records[key];
  }

  async put(record: TtpRecord): Promise<void> {
    const before = this.db.data.records[record.key];
    this.db.data.records[record.key] = record;
    try {
      await this.db.write();
    } catch (err) {
      // Not durable, so not decided: leave memory as the disk is.
      if (before) this.db.data.records[record.key] = before;
      else delete this.db.data.records[record.key];
      throw err;
    }
  }

  count(): number {
    return Object.keys(this.db.data.records).length;
  }
}
