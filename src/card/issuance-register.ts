/**
 * The issuance register (issue 18, section 1): which card key each card serial was issued to.
 * A card's secure-write keys come from its serial alone (AN10922 under the SAM master key), and a
 * blank card chooses its own serial, so a card made with another card's serial would get that
 * card's keys. One register per SAM master key, named by its key check value (a second CA sharing
 * the SAM shares the register: point both at one `--register` folder):
 *
 *   REGISTER/<KCV>/<SERIAL>.json   one row per serial, made by exclusive create (O_CREAT|O_EXCL)
 *
 * A serial is tied to one card key for good: re-certifying the same key is allowed, another key
 * is refused. The row is reserved (exclusive create) before the certificate is signed, records
 * the certificate serial once signed, and is marked issued after LOCK and the self-test. A row
 * left `reserved` by a run that failed is taken over only with an explicit retry, and the
 * certificate it recorded is listed as void. Each row keeps serial, key fingerprint, certificate
 * serial, holder, station and time, as `openssl ca`'s index does. One host: several stations
 * need one shared register (a table with a unique key on the serial, or one issuing service).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { InputError, RefusedError } from '../errors.js';
import { fsyncDirectory, writeFileAtomic } from '../util/fs.js';

export interface RegisterRow {
  readonly serial: string;
  /** SHA-256 (hex) of the card key's DER SubjectPublicKeyInfo. */
  readonly cardKey: string;
  readonly state: 'reserved' | 'issued';
  /** The certificate signed for this row's key (absent until it is signed). */
  readonly certificateSerial?: string;
  readonly holder: string;
  readonly station: string;
  /** When the row was reserved, then when it was marked issued. */
  readonly time: string;
  readonly issuedAt?: string;
  /** Earlier certificates: for the same key (re-certified), or void (a failed run taken over). */
  readonly previous?: readonly { readonly certificateSerial: string; readonly cardKey: string; readonly status: 'superseded' | 'void'; readonly time: string }[];
}

export interface Reservation {
  readonly serial: string;
  readonly cardKey: string;
}

export class IssuanceRegister {
  private constructor(readonly dir: string, private readonly station: string) {}

  /** REGISTER/<KCV>, created if missing. */
  static open(root: string, kcv: string, station = `${hostname()}:${process.pid}`): IssuanceRegister {
    if (!/^[0-9A-Fa-f]{6,64}$/.test(kcv)) throw new InputError(`SAM key check value "${kcv}" is not hex`);
    const dir = join(root, kcv.toUpperCase());
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new InputError(`cannot use the issuance register ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'give a writable --register folder');
    }
    return new IssuanceRegister(dir, station);
  }

  private path(serial: string): string {
    if (!/^[0-9A-F]{16}$/.test(serial)) throw new RefusedError(`card serial "${serial}" is not 16 hex digits`, undefined, 'E_SERIAL_TAKEN');
    return join(this.dir, `${serial}.json`);
  }

  row(serial: string): RegisterRow | undefined {
    try {
      return JSON.parse(readFileSync(this.path(serial), 'utf8')) as RegisterRow;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new InputError(`the issuance register row ${this.path(serial)} cannot be read: ${(err as Error).message}`, 'restore it from backup; never delete a row');
    }
  }

  /**
   * Before the certificate is signed: the serial is reserved for this key by exclusive create.
   * Refused when the serial is issued to another key, or reserved by a run that did not finish
   * (unless `retry`: then its certificate is recorded void and the row is this run's).
   */
  reserve(r: { serial: string; cardKey: string; holder: string; retry?: boolean }, now = new Date()): Reservation {
    const row: RegisterRow = { serial: r.serial, cardKey: r.cardKey, state: 'reserved', holder: r.holder, station: this.station, time: now.toISOString() };
    const path = this.path(r.serial);
    let fd: number | undefined;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (fd !== undefined) {
      try {
        writeSync(fd, JSON.stringify(row, null, 2) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      fsyncDirectory(this.dir);
      return { serial: r.serial, cardKey: r.cardKey };
    }
    const existing = this.row(r.serial)!;
    if (existing.state === 'issued') {
      if (existing.cardKey !== r.cardKey) {
        throw new RefusedError(
          `card serial ${r.serial} was issued on ${existing.issuedAt ?? existing.time} to another card key (holder "${existing.holder}"): this card is refused, nothing was signed`,
          'a blank card that claims a serial already issued is not a card this issuer made; set it aside', 'E_SERIAL_TAKEN');
      }
      // The same key again: a new certificate for it; the earlier one is superseded, not void.
      const previous = [...(existing.previous ?? []), ...(existing.certificateSerial ? [{ certificateSerial: existing.certificateSerial, cardKey: existing.cardKey, status: 'superseded' as const, time: now.toISOString() }] : [])];
      writeFileAtomic(path, JSON.stringify({ ...row, previous }, null, 2) + '\n', 0o600);
      return { serial: r.serial, cardKey: r.cardKey };
    }
    if (!r.retry) {
      throw new RefusedError(
        `card serial ${r.serial} is reserved by an issuing run that did not finish (station ${existing.station}, ${existing.time}): nothing was signed`,
        'if that run failed, run qtm card issue again with --retry (its certificate is then recorded void); if it is still running, wait', 'E_SERIAL_RESERVED');
    }
    const previous = [...(existing.previous ?? []), ...(existing.certificateSerial ? [{ certificateSerial: existing.certificateSerial, cardKey: existing.cardKey, status: 'void' as const, time: now.toISOString() }] : [])];
    writeFileAtomic(path, JSON.stringify({ ...row, previous }, null, 2) + '\n', 0o600);
    return { serial: r.serial, cardKey: r.cardKey };
  }

  private update(res: Reservation, change: (row: RegisterRow) => RegisterRow): void {
    const row = this.row(res.serial);
    if (!row || row.cardKey !== res.cardKey) throw new RefusedError(`card serial ${res.serial}: the register row is no longer this run's (another run took it over)`, 'issue this card again', 'E_SERIAL_RESERVED');
    writeFileAtomic(this.path(res.serial), JSON.stringify(change(row), null, 2) + '\n', 0o600);
  }

  /** Once signed, before the certificate goes to the card. */
  recordCertificate(res: Reservation, certificateSerial: string): void {
    this.update(res, (row) => ({ ...row, certificateSerial }));
  }

  /** After LOCK and the self-test. */
  markIssued(res: Reservation, now = new Date()): void {
    this.update(res, (row) => ({ ...row, state: 'issued', issuedAt: now.toISOString() }));
  }
}
