/**
 * The client archive (claim 1: the client stores the record, the second message and the server
 * authentication): one proof bundle file per transaction, written atomically and fsync'd, and a
 * small lowdb index of them. Card records about to be overwritten on a full card are archived
 * here first. Opening removes the temp copies of bundles that a killed writer left behind.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { JSONFilePreset } from 'lowdb/node';
import { checkFieldTypes, DamagedFileError, readJsonObject } from '../util/local-file.js';
import { isJsonObject } from '../protocol/strict-json.js';
import { removeStaleTemps, writeFileAtomic } from '../util/fs.js';

export interface ArchivedProof {
  serverId: string;
  transactionId: number;
  cardSerial: string;
  slot: number;
  state: 'received' | 'delivered';
  file: string;
  savedAt: string;
}

export interface ArchivedRecord {
  cardSerial: string;
  slot: number;
  record: string; // hex
  replacedAt: string;
}

/** What a fair exchange left the client with (issue 13: every TTP answer is applied and kept). */
export interface FairOutcome {
  serverId: string;
  transactionId: number;
  /** X (from the server or the TTP) or the TTP's abort token, base64. */
  outcome: 'x' | 'aborted';
  value: string;
  via: 'server' | 'ttp';
  keptAt: string;
}

interface Index {
  proofs: ArchivedProof[];
  replaced: ArchivedRecord[];
  fair?: FairOutcome[];
}

export function defaultArchiveDir(): string {
  if (process.env.QTM_ARCHIVE) return process.env.QTM_ARCHIVE;
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'qtm', 'archive');
}

const INDEX_HINT = 'the proofs themselves are in bundles/: restore index.json from a backup, or move it aside to start a new index';

/** The archive index, every entry of the shape saveProof, archiveReplaced and keepFairOutcome write. */
function checkIndex(file: string): void {
  const o = readJsonObject(file, 'archive index', INDEX_HINT);
  checkFieldTypes(file, 'archive index', o, { proofs: 'array', replaced: 'array', fair: 'array?' }, '', INDEX_HINT);
  const each = (list: unknown, name: string, fields: Parameters<typeof checkFieldTypes>[3]) => (list as unknown[] | undefined)?.forEach((e, i) => {
    if (!isJsonObject(e)) throw new DamagedFileError(file, 'archive index', `field "${name}[${i}]" must be an object`, INDEX_HINT);
    checkFieldTypes(file, 'archive index', e, fields, `${name}[${i}].`, INDEX_HINT);
  });
  each(o.proofs, 'proofs', { serverId: 'hex', transactionId: 'number', cardSerial: 'string', slot: 'number', state: 'string', file: 'string', savedAt: 'string' });
  each(o.replaced, 'replaced', { cardSerial: 'string', slot: 'number', record: 'hex', replacedAt: 'string' });
  each(o.fair, 'fair', { serverId: 'hex', transactionId: 'number', outcome: 'string', value: 'base64', via: 'string', keptAt: 'string' });
}

export class Archive {
  private constructor(
    readonly dir: string,
    private readonly db: Awaited<ReturnType<typeof JSONFilePreset<Index>>>,
  ) {}

  static async open(dir = defaultArchiveDir()): Promise<Archive> {
    mkdirSync(join(dir, 'bundles'), { recursive: true, mode: 0o700 });
    // A bundle's temp copy left by a writer killed mid-write (its process is gone) goes now.
    removeStaleTemps(join(dir, 'bundles'));
    const index = join(dir, 'index.json');
    if (existsSync(index)) checkIndex(index);
    const db = await JSONFilePreset<Index>(index, { proofs: [], replaced: [] });
    return new Archive(dir, db);
  }

  async saveProof(entry: Omit<ArchivedProof, 'file' | 'savedAt'>, bundleJson: string): Promise<ArchivedProof> {
    const file = join(this.dir, 'bundles', `${entry.serverId.slice(0, 16)}-${entry.transactionId}.json`);
    writeFileAtomic(file, bundleJson, 0o600);
    const proof: ArchivedProof = { ...entry, file, savedAt: new Date().toISOString() };
    const i = this.db.data.proofs.findIndex((p) => p.serverId === entry.serverId && p.transactionId === entry.transactionId);
    if (i >= 0) this.db.data.proofs[i] = proof;
    else this.db.data.proofs.push(proof);
    await this.db.write();
    return proof;
  }

  async markDelivered(serverId: string, transactionId: number): Promise<void> {
    const p = this.db.data.proofs.find((x) => x.serverId === serverId && x.transactionId === transactionId);
    if (p) {
      p.state = 'delivered';
      await this.db.write();
    }
  }

  async archiveReplaced(record: Omit<ArchivedRecord, 'replacedAt'>): Promise<void> {
    this.db.data.replaced.push({ ...record, replacedAt: new Date().toISOString() });
    await this.db.write();
  }

  /** Keeps X or the abort token of a fair exchange, fsync'd, before the client goes on. */
  async keepFairOutcome(o: Omit<FairOutcome, 'keptAt'>): Promise<void> {
    const list = (this.db.data.fair ??= []);
    const i = list.findIndex((f) => f.serverId === o.serverId && f.transactionId === o.transactionId);
    const entry = { ...o, keptAt: new Date().toISOString() };
    if (i >= 0) list[i] = entry;
    else list.push(entry);
    await this.db.write();
  }

  get fairOutcomes(): readonly FairOutcome[] {
    return this.db.data.fair ?? [];
  }

  get proofs(): readonly ArchivedProof[] {
    return this.db.data.proofs;
  }

  get replaced(): readonly ArchivedRecord[] {
    return this.db.data.replaced;
  }
}
