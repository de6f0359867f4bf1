/**
 * The client archive (claim 1: the client stores the record, the second message and the server
 * authentication): one proof bundle file per transaction, written atomically and fsync'd, and a
 * small lowdb index of them. Card records about to be overwritten on a full card are archived
 * here first. Opening removes the temp copies of bundles that a killed writer left behind.
 */
import { createHash } from 'node:crypto';
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
  /** SHA-256 (hex) of the QTM package: two packages under one ID are two proofs, both kept. */
  packageSha256?: string;
  /** Fields 1-7 as signed (base64), to refuse signing another record under an ID already held. */
  header?: string;
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

/** Two different packages the same server gave under one transaction ID: evidence, kept. */
export interface IdConflict {
  serverId: string;
  transactionId: number;
  files: string[];
  seenAt: string;
}

/** The highest store head a server signed for this client (src/store/head.ts), per server. */
export interface KeptHead {
  serverId: string;
  seq: number;
  hash: string;
  sig: string;
  keptAt: string;
}

interface Index {
  proofs: ArchivedProof[];
  conflicts?: IdConflict[];
  heads?: KeptHead[];
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

  /**
   * Keeps a proof under its server ID, transaction ID and package digest. The same package again
   * replaces its entry; another package under an ID already held is kept beside the first and
   * recorded as a conflict (a server that reused an ID: evidence), never written over it.
   */
  async saveProof(entry: Omit<ArchivedProof, 'file' | 'savedAt' | 'packageSha256'>, bundleJson: string, packageBytes: Uint8Array): Promise<ArchivedProof & { conflict?: IdConflict }> {
    const digest = createHash('sha256').update(packageBytes).digest('hex');
    const file = join(this.dir, 'bundles', `${entry.serverId.slice(0, 16)}-${entry.transactionId}-${digest.slice(0, 16)}.json`);
    writeFileAtomic(file, bundleJson, 0o600);
    const proof: ArchivedProof = { ...entry, packageSha256: digest, file, savedAt: new Date().toISOString() };
    const sameId = this.db.data.proofs.filter((p) => p.serverId === entry.serverId && p.transactionId === entry.transactionId);
    const i = this.db.data.proofs.findIndex((p) => sameId.includes(p) && (p.packageSha256 ?? digest) === digest && p.file === file);
    let conflict: IdConflict | undefined;
    if (i >= 0) this.db.data.proofs[i] = proof;
    else {
      this.db.data.proofs.push(proof);
      const others = sameId.filter((p) => p.packageSha256 !== digest);
      if (others.length) {
        conflict = { serverId: entry.serverId, transactionId: entry.transactionId, files: [...others.map((p) => p.file), file], seenAt: new Date().toISOString() };
        (this.db.data.conflicts ??= []).push(conflict);
      }
    }
    await this.db.write();
    return { ...proof, ...(conflict ? { conflict } : {}) };
  }

  /** The fields 1-7 this archive already holds for a server's transaction ID, if any. */
  headersFor(serverId: string, transactionId: number): string[] {
    return this.db.data.proofs.filter((p) => p.serverId === serverId && p.transactionId === transactionId && p.header).map((p) => p.header!);
  }

  get conflicts(): readonly IdConflict[] {
    return this.db.data.conflicts ?? [];
  }

  /** Keeps a server's signed store head if it is later than the one kept (already verified by the caller). */
  async keepHead(h: Omit<KeptHead, 'keptAt'>): Promise<void> {
    const heads = (this.db.data.heads ??= []);
    const i = heads.findIndex((x) => x.serverId === h.serverId);
    if (i >= 0 && heads[i]!.seq >= h.seq) return;
    const entry = { ...h, keptAt: new Date().toISOString() };
    if (i >= 0) heads[i] = entry;
    else heads.push(entry);
    await this.db.write();
    // Also as a file `qtm server audit --min-head` reads as it is.
    mkdirSync(join(this.dir, 'heads'), { recursive: true, mode: 0o700 });
    writeFileAtomic(join(this.dir, 'heads', `${h.serverId.slice(0, 16)}.json`), JSON.stringify({ seq: h.seq, hash: h.hash, sig: h.sig }, null, 2) + '\n', 0o600);
  }

  /**
   * The card's monitoring key for a server's transparency log (src/tlog/card-tag.ts), as
   * `monitor-keys/<log origin>-<card key prefix>.key` (mode 0600): give it to `qtm log monitor
   * --card-key` to list every leaf of the card. Written once; the same key comes every time.
   */
  keepMonitorKey(name: string, text: string): string {
    const file = join(this.dir, 'monitor-keys', name);
    if (existsSync(file)) return file;
    mkdirSync(join(this.dir, 'monitor-keys'), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, text, 0o600);
    return file;
  }

  get heads(): readonly KeptHead[] {
    return this.db.data.heads ?? [];
  }

  async markDelivered(serverId: string, transactionId: number, packageBytes?: Uint8Array): Promise<void> {
    const digest = packageBytes ? createHash('sha256').update(packageBytes).digest('hex') : undefined;
    const p = this.db.data.proofs.find((x) => x.serverId === serverId && x.transactionId === transactionId && (!digest || x.packageSha256 === digest));
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
