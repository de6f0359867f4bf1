/**
 * The unsigned list of revoked warrants that qtm kept before revocation lists became X.509 CRLs
 * signed by the warrant's issuer (./crl.ts). Nobody relies on it any more: it is read only to
 * migrate (the server signs nothing for X while this file names a warrant of X's that X's CRL does
 * not revoke, and `qtm warrant revoke --import-json` has X sign its entries in). Strict JSON.
 *
 *   {"version":1,"revoked":[{"serial":"<hex>","issuer":"<sha256 of X's key>","revokedAt":"<ISO>","reason":"..."}]}
 */
import { existsSync, readFileSync } from 'node:fs';
import { DecodeError, InputError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { checkFields, isJsonObject, parseStrictJson } from '../protocol/strict-json.js';

export interface Revocation {
  readonly serial: string;
  /** SHA-256 fingerprint of the key of the manager who issued the warrant. */
  readonly issuer: string;
  readonly revokedAt: string;
  readonly reason?: string;
}

const FORMAT = 'warrant revocation list';

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

export class Revocations {
  constructor(readonly entries: readonly Revocation[] = []) {}

  /** When this warrant was revoked, or undefined. */
  lookup(serial: string, issuerFingerprint: string): Date | undefined {
    const r = this.entries.find((e) => e.serial === serial.toUpperCase() && e.issuer === issuerFingerprint);
    return r ? new Date(r.revokedAt) : undefined;
  }

  with(entry: Revocation): Revocations {
    return new Revocations([...this.entries, entry]);
  }

  encode(): string {
    return JSON.stringify({ version: 1, revoked: this.entries }, null, 2) + '\n';
  }

  static decode(text: string): Revocations {
    // Strict like every qtm input: a repeated key (a reader keeping the first would see another
    // serial or time) and a field the format does not name are refused.
    const json = parseStrictJson(text, FORMAT);
    if (!isJsonObject(json) || json.version !== 1 || !Array.isArray(json.revoked)) fail('expected {"version":1,"revoked":[...]}');
    const o = checkFields(FORMAT, json, ['version', 'revoked'], '');
    return new Revocations((o.revoked as unknown[]).map((e: unknown, i: number) => {
      if (!isJsonObject(e)) fail(`revoked[${i}] must be an object`);
      const r = checkFields(FORMAT, e, ['serial', 'issuer', 'revokedAt', 'reason'], `revoked[${i}]`);
      if (typeof r.serial !== 'string' || !/^[0-9A-F]+$/.test(r.serial)) fail(`revoked[${i}].serial must be upper-case hex`);
      if (typeof r.issuer !== 'string' || !/^[0-9a-f]{64}$/.test(r.issuer)) fail(`revoked[${i}].issuer must be a SHA-256 key fingerprint`);
      if (typeof r.revokedAt !== 'string' || Number.isNaN(Date.parse(r.revokedAt))) fail(`revoked[${i}].revokedAt must be an ISO 8601 time`);
      if (r.reason !== undefined && typeof r.reason !== 'string') fail(`revoked[${i}].reason must be text`);
      return { serial: r.serial, issuer: r.issuer, revokedAt: new Date(r.revokedAt).toISOString(), ...(typeof r.reason === 'string' ? { reason: r.reason } : {}) };
    }));
  }

  /** A missing file is an empty list (nothing revoked yet). */
  static read(file: string): Revocations {
    if (!existsSync(file)) return new Revocations();
    try {
      return Revocations.decode(readFileSync(file, 'utf8'));
    } catch (err) {
      if (err instanceof DecodeError) throw new InputError(`${file}: ${err.message}`, 'restore the revocation list from backup');
      throw err;
    }
  }

  write(file: string): void {
    writeFileAtomic(file, this.encode(), 0o644);
  }
}
