/**
 * The virtual card's EEPROM: one JSON document, written atomically (temp file, fsync, rename)
 * so a crash in the middle of a write leaves the previous state, never a torn slot.
 *
 * Several processes may use one card file (`qtm sign` beside `qtm card pin change`, or beside
 * `qtm card emulate`): each APDU runs under an exclusive lock file `<card>.lock`
 * (src/util/lock-file.ts: exclusive create, PID and start time inside, stale once that process
 * is gone), and reads the card afresh under it, so no process writes back a state another has
 * changed, and no PIN try is checked without being counted.
 */
import { existsSync } from 'node:fs';
import { checkFieldTypes, DamagedFileError, parseJsonObject, readLocalFile } from '../../util/local-file.js';
import { randomBytes, X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import { ensureParentDir, removeStaleTemps, writeFileAtomic } from '../../util/fs.js';
import { lockWait, unlock } from '../../util/lock-file.js';
import { InputError, RefusedError } from '../../errors.js';
import type { Sealed, WrappedKey } from './vault.js';

export const CARD_FILE_FORMAT = 'qtm-virtual-card';

export interface CardImage {
  format: typeof CARD_FILE_FORMAT;
  version: 1;
  serial: string; // 16 hex digits
  profileVersion: 0 | 1 | 2;
  lifecycle: 'personalisation' | 'operational';
  slotCount: number;
  /** Hex of each record, or null for a free slot; index 0 is slot 1. */
  slots: (string | null)[];
  publicKey?: string; // base64 DER SubjectPublicKeyInfo
  certificate?: string; // base64 DER
  pinTriesLeft?: number;
  pukTriesLeft?: number;
  wrappedByPin?: WrappedKey;
  wrappedByPuk?: WrappedKey;
  secrets?: Sealed;
  cardKeysPresent?: boolean;
}

export interface CardStorage {
  load(): CardImage;
  save(image: CardImage): void;
  /** Runs one APDU with the card to itself: no other process loads or saves it meanwhile. */
  exclusive<T>(fn: () => T): T;
  readonly description: string;
}

/** How long an APDU waits for a card file another live process is using. */
export const CARD_LOCK_TIMEOUT_MS = 30_000;

const CARD_HINT = 'restore the card file from a backup; a damaged card is never repaired in place';

/**
 * Every field of a card file of the type it must have, the certificate a valid X.509 one: a
 * damaged file is exit 2 naming it and the field, never a card error or an exception.
 */
export function checkCardImage(path: string, o: Record<string, unknown>): CardImage {
  const bad = (problem: string): never => {
    throw new DamagedFileError(path, 'virtual card', problem, CARD_HINT);
  };
  if (o.format !== CARD_FILE_FORMAT || o.version !== 1) bad(`is not a qtm virtual card (format "${CARD_FILE_FORMAT}", version 1)`);
  checkFieldTypes(path, 'virtual card', o, {
    serial: 'hex', profileVersion: 'number', lifecycle: 'string', slotCount: 'number', slots: 'array',
    publicKey: 'base64?', certificate: 'base64?', pinTriesLeft: 'number?', pukTriesLeft: 'number?',
    wrappedByPin: 'object?', wrappedByPuk: 'object?', secrets: 'object?', cardKeysPresent: 'boolean?',
  }, '', CARD_HINT);
  if ((o.serial as string).length !== 16) bad('field "serial" must be 16 hex digits');
  if (![0, 1, 2].includes(o.profileVersion as number)) bad('field "profileVersion" must be 0, 1 or 2');
  if (o.lifecycle !== 'personalisation' && o.lifecycle !== 'operational') bad('field "lifecycle" must be "personalisation" or "operational"');
  const slots = o.slots as unknown[];
  if (!Number.isInteger(o.slotCount) || (o.slotCount as number) < 1 || (o.slotCount as number) > 255 || slots.length !== o.slotCount) bad('fields "slotCount" and "slots" do not agree');
  slots.forEach((v, i) => {
    if (v !== null && (typeof v !== 'string' || !/^[0-9a-fA-F]+$/.test(v))) bad(`field "slots[${i}]" must be null or hex text`);
  });
  for (const k of ['wrappedByPin', 'wrappedByPuk', 'secrets'] as const) {
    if (o[k] !== undefined) checkFieldTypes(path, 'virtual card', o[k] as Record<string, unknown>, { nonce: 'base64', data: 'base64', ...(k === 'secrets' ? {} : { salt: 'base64' }) }, `${k}.`, CARD_HINT);
  }
  if (o.certificate !== undefined) {
    try {
      new X509Certificate(Buffer.from(o.certificate as string, 'base64'));
    } catch {
      bad('field "certificate" is not a valid X.509 certificate (truncated or damaged)');
    }
  }
  return o as unknown as CardImage;
}

export function blankImage(slotCount: number): CardImage {
  const serial = randomBytes(8);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive as an X.509 serial, never all-zero
  return {
    format: CARD_FILE_FORMAT,
    version: 1,
    serial: serial.toString('hex').toUpperCase(),
    profileVersion: 0,
    lifecycle: 'personalisation',
    slotCount,
    slots: Array(slotCount).fill(null),
  };
}

export class MemoryStorage implements CardStorage {
  readonly description = 'in-memory virtual card';
  private image: string;
  constructor(image: CardImage) {
    this.image = JSON.stringify(image);
  }
  load(): CardImage {
    return JSON.parse(this.image) as CardImage;
  }
  save(image: CardImage): void {
    this.image = JSON.stringify(image);
  }
  exclusive<T>(fn: () => T): T {
    return fn();
  }
}

export class FileStorage implements CardStorage {
  private held = 0;
  private tempsCleaned = false;

  constructor(
    readonly path: string,
    private readonly lockTimeoutMs = CARD_LOCK_TIMEOUT_MS,
  ) {}

  get lockPath(): string {
    return `${this.path}.lock`;
  }

  exclusive<T>(fn: () => T): T {
    if (this.held > 0) return fn();
    const busy = lockWait(this.lockPath, this.lockTimeoutMs);
    if (busy) {
      throw new RefusedError(
        `virtual card ${this.path} is in use${busy.holder ? ` by process ${busy.holder.pid}` : ''} (waited ${Math.round(this.lockTimeoutMs / 1000)} s)`,
        'let that command finish, or stop it; a lock left by a process that has ended is taken over by itself',
        'E_CARD_BUSY',
      );
    }
    this.held++;
    try {
      if (!this.tempsCleaned) {
        // Under the lock no one else writes this card: a temp copy of it is a killed writer's.
        removeStaleTemps(dirname(this.path), this.path);
        this.tempsCleaned = true;
      }
      return fn();
    } finally {
      this.held--;
      unlock(this.lockPath);
    }
  }

  get description(): string {
    return `virtual card ${this.path}`;
  }

  static create(path: string, slotCount: number): FileStorage {
    if (existsSync(path)) throw new InputError(`${path} already exists`, 'choose another --card file; a card is never overwritten');
    const s = new FileStorage(path);
    ensureParentDir(path);
    writeFileAtomic(path, JSON.stringify(blankImage(slotCount), null, 1) + '\n', 0o600);
    return s;
  }

  load(): CardImage {
    if (!existsSync(this.path)) throw new InputError(`no virtual card at ${this.path}`, 'create one with `qtm card issue --card FILE` or check the path');
    const text = readLocalFile(this.path, 'virtual card', CARD_HINT).toString('utf8');
    // Every APDU loads the card: the full check (certificate parse included) runs once per content.
    if (text === this.checkedText) return JSON.parse(text) as CardImage;
    const image = checkCardImage(this.path, parseJsonObject(text, this.path, 'virtual card', CARD_HINT));
    this.checkedText = text;
    return image;
  }

  private checkedText: string | undefined;

  save(image: CardImage): void {
    writeFileAtomic(this.path, JSON.stringify(image, null, 1) + '\n', 0o600);
  }
}
