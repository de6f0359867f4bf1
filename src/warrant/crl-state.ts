/**
 * What a server remembers of each warrant issuer's revocation lists (`crl-state.json` in its
 * warrants folder), so that whoever can write the folder cannot roll a list back:
 *
 *   {"version":1,"issuers":{"<sha256 of X's key>":{"crlNumber":"<decimal>","thisUpdate":"<ISO>",
 *     "nextUpdate":"<ISO>","sha256":"<hex of the CRL's DER>","revoked":[{"serial":"<hex>","revocationDate":"<ISO>"}],
 *     "received":[{"crlNumber":"<decimal>","thisUpdate":"<ISO>","receivedAt":"<ISO>"}]}}}
 *
 * A list is accepted when it is signed by X (./crl.ts) and, against the highest one accepted
 * before: its cRLNumber is not lower (equal only for the very same list), it keeps every entry
 * with its date, no new entry is dated before the previous list's thisUpdate (a backdated
 * revocation would void proofs made while the warrant was valid), and it is not past its
 * nextUpdate. Each accepted list is recorded with the time this server first saw it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DecodeError, InputError } from '../errors.js';
import { checkFields, isJsonObject, parseStrictJson } from '../protocol/strict-json.js';
import { writeFileAtomic } from '../util/fs.js';
import { crlDigest, type RevocationList } from './crl.js';

export const CRL_STATE_FILE = 'crl-state.json';
const FORMAT = 'revocation list state';

interface Received { readonly crlNumber: string; readonly thisUpdate: string; readonly receivedAt: string }
interface IssuerState {
  readonly crlNumber: string;
  readonly thisUpdate: string;
  readonly nextUpdate: string;
  readonly sha256: string;
  readonly revoked: readonly { readonly serial: string; readonly revocationDate: string }[];
  readonly received: readonly Received[];
}

function fail(message: string): never {
  throw new DecodeError(FORMAT, message);
}

const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isDecimal = (v: unknown): v is string => typeof v === 'string' && /^(0|[1-9][0-9]{0,48})$/.test(v);

function decodeIssuer(v: unknown, path: string): IssuerState {
  if (!isJsonObject(v)) fail(`${path} must be an object`);
  const o = checkFields(FORMAT, v, ['crlNumber', 'thisUpdate', 'nextUpdate', 'sha256', 'revoked', 'received'], path);
  if (!isDecimal(o.crlNumber) || !isIso(o.thisUpdate) || !isIso(o.nextUpdate) || typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) fail(`${path}: crlNumber, thisUpdate, nextUpdate or sha256 is malformed`);
  if (!Array.isArray(o.revoked) || !Array.isArray(o.received)) fail(`${path}: revoked and received must be lists`);
  const revoked = o.revoked.map((e, i) => {
    if (!isJsonObject(e)) fail(`${path}.revoked[${i}] must be an object`);
    const r = checkFields(FORMAT, e, ['serial', 'revocationDate'], `${path}.revoked[${i}]`);
    if (typeof r.serial !== 'string' || !/^[0-9A-F]+$/.test(r.serial) || !isIso(r.revocationDate)) fail(`${path}.revoked[${i}] is malformed`);
    return { serial: r.serial, revocationDate: r.revocationDate };
  });
  const received = o.received.map((e, i) => {
    if (!isJsonObject(e)) fail(`${path}.received[${i}] must be an object`);
    const r = checkFields(FORMAT, e, ['crlNumber', 'thisUpdate', 'receivedAt'], `${path}.received[${i}]`);
    if (!isDecimal(r.crlNumber) || !isIso(r.thisUpdate) || !isIso(r.receivedAt)) fail(`${path}.received[${i}] is malformed`);
    return { crlNumber: r.crlNumber, thisUpdate: r.thisUpdate, receivedAt: r.receivedAt };
  });
  return { crlNumber: o.crlNumber, thisUpdate: o.thisUpdate, nextUpdate: o.nextUpdate, sha256: o.sha256, revoked, received };
}

export class CrlState {
  private constructor(private readonly file: string, private readonly issuers: Map<string, IssuerState>) {}

  static read(file: string): CrlState {
    if (!existsSync(file)) return new CrlState(file, new Map());
    try {
      const json = parseStrictJson(readFileSync(file, 'utf8'), FORMAT);
      if (!isJsonObject(json) || json.version !== 1 || !isJsonObject(json.issuers)) fail('expected {"version":1,"issuers":{...}}');
      checkFields(FORMAT, json, ['version', 'issuers'], '');
      const issuers = new Map<string, IssuerState>();
      for (const [fp, v] of Object.entries(json.issuers)) {
        if (!/^[0-9a-f]{64}$/.test(fp)) fail(`issuers: "${fp}" is not a key fingerprint`);
        issuers.set(fp, decodeIssuer(v, `issuers.${fp}`));
      }
      return new CrlState(file, issuers);
    } catch (err) {
      if (err instanceof DecodeError) throw new InputError(`${file}: ${err.message}`, 'restore it from backup: it holds the highest revocation list number seen per manager', 'E_CRL_STATE');
      throw err;
    }
  }

  /** The highest list accepted from this issuer, if any. */
  latest(issuerFingerprint: string): IssuerState | undefined {
    return this.issuers.get(issuerFingerprint);
  }

  /**
   * Accepts `list` (already verified as X's) at `now`, recording it when it is new; otherwise
   * the reason this server must not sign by proxy for X with it.
   */
  accept(list: RevocationList, issuerName: string, now: Date): string | undefined {
    const fp = list.issuerFingerprint;
    const prev = this.issuers.get(fp);
    const number = list.crlNumber.toString();
    const digest = crlDigest(list);
    const who = `"${issuerName}"`;
    if (prev) {
      const prevNumber = BigInt(prev.crlNumber);
      if (list.crlNumber < prevNumber) return `the revocation list of ${who} is older (number ${number}) than the one this server already had (number ${prev.crlNumber}, received ${prev.received.at(-1)?.receivedAt})`;
      if (list.crlNumber === prevNumber && digest !== prev.sha256) return `the revocation list of ${who} number ${number} differs from the list with that number this server already had`;
      if (list.crlNumber > prevNumber) {
        for (const e of prev.revoked) {
          const now = list.entries.find((n) => n.serial === e.serial);
          if (!now || now.revocationDate.toISOString() !== e.revocationDate) return `the revocation list of ${who} number ${number} has lost the entry for warrant ${e.serial} (revoked ${e.revocationDate} in number ${prev.crlNumber})`;
        }
        if (list.thisUpdate.getTime() < Date.parse(prev.thisUpdate)) return `the revocation list of ${who} number ${number} is dated ${list.thisUpdate.toISOString()}, before number ${prev.crlNumber} (${prev.thisUpdate})`;
        for (const e of list.entries) {
          if (!prev.revoked.some((p) => p.serial === e.serial) && e.revocationDate.getTime() < Date.parse(prev.thisUpdate)) {
            return `the revocation list of ${who} number ${number} revokes warrant ${e.serial} as of ${e.revocationDate.toISOString()}, before the previous list's thisUpdate ${prev.thisUpdate}: a backdated revocation`;
          }
        }
      }
    }
    if (now.getTime() > list.nextUpdate.getTime()) return `the revocation list of ${who} (number ${number}) was due to be replaced at ${list.nextUpdate.toISOString()}: ask for a new one (\`qtm warrant revoke\` with no serial renews it)`;
    if (prev && list.crlNumber === BigInt(prev.crlNumber)) return undefined;
    this.issuers.set(fp, {
      crlNumber: number, thisUpdate: list.thisUpdate.toISOString(), nextUpdate: list.nextUpdate.toISOString(), sha256: digest,
      revoked: list.entries.map((e) => ({ serial: e.serial, revocationDate: e.revocationDate.toISOString() })),
      received: [...(prev?.received ?? []), { crlNumber: number, thisUpdate: list.thisUpdate.toISOString(), receivedAt: now.toISOString() }],
    });
    this.write();
    return undefined;
  }

  private write(): void {
    writeFileAtomic(this.file, JSON.stringify({ version: 1, issuers: Object.fromEntries(this.issuers) }, null, 2) + '\n', 0o644);
  }
}
