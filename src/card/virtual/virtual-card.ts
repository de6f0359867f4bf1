/**
 * The qtm card application in TypeScript: what a Java Card applet would do, command for command
 * (docs/CARD.md). `transmit` takes any byte string and always answers with a status word; it
 * never throws. Persistent state lives in a CardStorage (the EEPROM); session state (selected
 * application, verified PIN, unwrapped card key, pending challenge, response chaining) lives in
 * this object (the RAM) and is cleared by reset().
 */
import { createPublicKey, createPrivateKey, createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { decodeCommand, encodeResponse, CLA_CHAINING, type CommandApdu } from '../apdu.js';
import { SW } from '../status-words.js';
import {
  ATR, AUTH_PREFIX, CLA_ISO, CLA_PROPRIETARY, INS, MAX_SLOTS, PIN_REF, PIN_TRIES, PSO_CDS, PSO_CDS_CRL, PSO_CDS_WARRANT, PUK_TRIES, QTM_AID,
  READ_RECORD_ALL, READ_RECORD_ONE, STATUS_LENGTH, TAG, decodePinBlock, encodeStatus, isValidPin, isValidPuk,
} from '../app-spec.js';
import { CHALLENGE_LENGTH, openRecord, storageProof } from '../../crypto/secure-write.js';
import { CARD_RECORD_LENGTH, decodeCardRecord } from '../../protocol/card-record.js';
import { decodeHeader } from '../../protocol/qtm-package.js';
import { profileByPackageVersion, profileOfCard } from '../../protocol/profile.js';
import type { CardImage, CardStorage } from './storage.js';
import { OID } from '../../crypto/oids.js';
import { crlTbsProblem } from './crl-tbs.js';
import { warrantTbsProblem } from './warrant-tbs.js';
import { newCardKey, openSecrets, sealSecrets, unwrapCardKey, wrapCardKey, type CardSecrets } from './vault.js';

const APP_VERSION = 1;

interface Reply {
  data?: Buffer;
  sw: number;
}

const ok = (data?: Buffer): Reply => ({ sw: SW.OK, ...(data ? { data } : {}) });
const fail = (sw: number): Reply => ({ sw });

export class VirtualCard {
  private selected = false;
  private pinVerified = false;
  private cardKey: Buffer | undefined;
  private challenge: Buffer | undefined;
  private pendingResponse: Buffer | undefined;
  private chain: { ins: number; p1: number; p2: number; parts: Buffer[] } | undefined;
  private privateKeyCache: KeyObject | undefined;

  constructor(private readonly storage: CardStorage) {}

  get description(): string {
    return this.storage.description;
  }

  get atr(): Buffer {
    return Buffer.from(ATR);
  }

  /** Power-up or warm reset: RAM is cleared, EEPROM kept. Returns the ATR. */
  reset(): Buffer {
    this.selected = false;
    this.lockSession();
    this.challenge = undefined;
    this.pendingResponse = undefined;
    this.chain = undefined;
    return Buffer.from(ATR);
  }

  /**
   * One APDU, with the card file to itself from the first read to the last write (scrypt
   * included): see CardStorage.exclusive. Throws only when another live process keeps the card
   * past the lock timeout (E_CARD_BUSY); every other failure is a status word.
   */
  transmit(apdu: Uint8Array): Buffer {
    return this.storage.exclusive(() => {
      let reply: Reply;
      try {
        reply = this.process(apdu);
      } catch {
        reply = fail(SW.NO_PRECISE_DIAGNOSIS);
      }
      return encodeResponse({ data: reply.data ?? Buffer.alloc(0), sw: reply.sw });
    });
  }

  private lockSession(): void {
    this.pinVerified = false;
    this.cardKey = undefined;
    this.privateKeyCache = undefined;
  }

  private process(bytes: Uint8Array): Reply {
    let cmd: CommandApdu;
    try {
      cmd = decodeCommand(bytes);
    } catch {
      return fail(SW.WRONG_LENGTH);
    }
    const claBase = cmd.cla & ~CLA_CHAINING;
    if (claBase !== CLA_ISO && claBase !== CLA_PROPRIETARY) return fail(SW.CLA_NOT_SUPPORTED);

    if (cmd.ins === INS.GET_RESPONSE && claBase === CLA_ISO) return this.getResponse(cmd);
    this.pendingResponse = undefined;

    // Command chaining (ISO 7816-4 5.3.3): only PUT DATA and signing a warrant or a CRL take more than 255 bytes.
    if (cmd.cla & CLA_CHAINING) {
      const warrant = cmd.ins === INS.PSO && cmd.p1 === PSO_CDS_WARRANT.p1 && (cmd.p2 === PSO_CDS_WARRANT.p2 || cmd.p2 === PSO_CDS_CRL.p2);
      if (cmd.ins !== INS.PUT_DATA && !warrant) return fail(SW.FUNCTION_NOT_SUPPORTED);
      if (this.chain && (this.chain.ins !== cmd.ins || this.chain.p1 !== cmd.p1 || this.chain.p2 !== cmd.p2)) {
        this.chain = undefined;
        return fail(SW.CONDITIONS_NOT_SATISFIED);
      }
      this.chain ??= { ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, parts: [] };
      this.chain.parts.push(Buffer.from(cmd.data));
      if (this.chain.parts.reduce((n, p) => n + p.length, 0) > 4096) {
        this.chain = undefined;
        return fail(SW.WRONG_LENGTH);
      }
      return ok();
    }
    if (this.chain) {
      const chain = this.chain;
      this.chain = undefined;
      if (chain.ins !== cmd.ins || chain.p1 !== cmd.p1 || chain.p2 !== cmd.p2) return fail(SW.CONDITIONS_NOT_SATISFIED);
      cmd = { ...cmd, data: Buffer.concat([...chain.parts, cmd.data]) };
    }

    if (claBase === CLA_PROPRIETARY) {
      if (cmd.ins !== INS.SECURE_WRITE_RECORD) return fail(SW.INS_NOT_SUPPORTED);
    } else if (cmd.ins === INS.SECURE_WRITE_RECORD) {
      return fail(SW.CLA_NOT_SUPPORTED);
    }
    if (cmd.ins === INS.SELECT) return this.select(cmd);
    if (!this.selected) return fail(SW.CONDITIONS_NOT_SATISFIED);

    const image = this.storage.load();
    const respond = (r: Reply): Reply => this.chainResponse(r, cmd.le);
    switch (cmd.ins) {
      case INS.GET_DATA:
        return respond(this.getData(image, cmd));
      case INS.PUT_DATA:
        return this.putData(image, cmd);
      case INS.GENERATE_ASYMMETRIC_KEY_PAIR:
        return respond(this.generate(image, cmd));
      case INS.ACTIVATE_FILE:
        return this.activate(image, cmd);
      case INS.VERIFY:
        return this.verify(image, cmd);
      case INS.CHANGE_REFERENCE_DATA:
        return this.changePin(image, cmd);
      case INS.RESET_RETRY_COUNTER:
        return this.resetRetryCounter(image, cmd);
      case INS.INTERNAL_AUTHENTICATE:
        return respond(this.internalAuthenticate(image, cmd));
      case INS.PSO:
        return respond(this.computeSignature(image, cmd));
      case INS.GET_CHALLENGE:
        return this.getChallenge(image, cmd);
      case INS.SECURE_WRITE_RECORD:
        return this.secureWrite(image, cmd);
      case INS.READ_RECORD:
        return respond(this.readRecord(image, cmd));
      case INS.READ_BINARY:
        return this.readBinary(image, cmd);
      default:
        return fail(SW.INS_NOT_SUPPORTED);
    }
  }

  /** Responses longer than Le (at most 256) continue with 61xx / GET RESPONSE. */
  private chainResponse(r: Reply, le: number | undefined): Reply {
    if (r.sw !== SW.OK || !r.data) return r;
    const max = Math.min(le ?? 256, 256);
    if (r.data.length <= max) return r;
    this.pendingResponse = r.data.subarray(max);
    return { data: r.data.subarray(0, max), sw: SW.BYTES_REMAINING | (Math.min(this.pendingResponse.length, 256) & 0xff) };
  }

  private getResponse(cmd: CommandApdu): Reply {
    if (!this.pendingResponse) return fail(SW.CONDITIONS_NOT_SATISFIED);
    const rest = this.pendingResponse;
    this.pendingResponse = undefined;
    return this.chainResponse(ok(rest), cmd.le);
  }

  private select(cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0x04 || (cmd.p2 !== 0x00 && cmd.p2 !== 0x0c)) return fail(SW.WRONG_P1P2);
    // ISO 7816-4: a failed selection leaves the current one as it was (other middleware probes
    // for its own applications on a shared reader).
    if (!Buffer.from(cmd.data).equals(QTM_AID)) return fail(SW.FILE_NOT_FOUND);
    this.lockSession();
    this.challenge = undefined;
    this.selected = true;
    return ok();
  }

  private status(image: CardImage): Buffer {
    const free = image.slots.findIndex((s) => s === null);
    return encodeStatus({
      appVersion: APP_VERSION,
      serial: Buffer.from(image.serial, 'hex'),
      profileVersion: image.profileVersion,
      lifecycle: image.lifecycle,
      slotCount: image.slotCount,
      recordLength: image.profileVersion ? CARD_RECORD_LENGTH[image.profileVersion] : 0,
      ...(image.pinTriesLeft !== undefined ? { pinTriesLeft: image.pinTriesLeft, pukTriesLeft: image.pukTriesLeft ?? 0 } : {}),
      ...(free >= 0 ? { firstFreeSlot: free + 1 } : {}),
      keyGenerated: Boolean(image.publicKey),
      certificatePresent: Boolean(image.certificate),
      cardKeysPresent: Boolean(image.cardKeysPresent),
      pinVerified: this.pinVerified,
    });
  }

  private getData(image: CardImage, cmd: CommandApdu): Reply {
    const tag = (cmd.p1 << 8) | cmd.p2;
    if (tag !== TAG.STATUS) return fail(SW.REFERENCED_DATA_NOT_FOUND);
    const s = this.status(image);
    return s.length === STATUS_LENGTH ? ok(s) : fail(SW.NO_PRECISE_DIAGNOSIS);
  }

  private secrets(image: CardImage): CardSecrets | undefined {
    if (!this.cardKey || !image.secrets) return this.cardKey ? {} : undefined;
    return openSecrets(this.cardKey, image.secrets, this.aad(image));
  }

  private aad(image: CardImage): Buffer {
    return Buffer.from(`qtm-card:${image.serial}`, 'ascii');
  }

  private putData(image: CardImage, cmd: CommandApdu): Reply {
    if (image.lifecycle !== 'personalisation') return fail(SW.CONDITIONS_NOT_SATISFIED);
    const tag = (cmd.p1 << 8) | cmd.p2;
    const data = Buffer.from(cmd.data);
    switch (tag) {
      case TAG.LAYOUT: {
        if (data.length !== 2) return fail(SW.WRONG_LENGTH);
        const [version, slots] = [data[0]!, data[1]!];
        if ((version !== 1 && version !== 2) || slots < 1 || slots > MAX_SLOTS) return fail(SW.WRONG_DATA);
        if (image.publicKey) return fail(SW.CONDITIONS_NOT_SATISFIED); // the key size follows the profile
        image.profileVersion = version;
        image.slotCount = slots;
        image.slots = Array(slots).fill(null);
        break;
      }
      case TAG.PIN_PUK: {
        if (data.length !== 16) return fail(SW.WRONG_LENGTH);
        const pin = decodePinBlock(data.subarray(0, 8));
        const puk = decodePinBlock(data.subarray(8));
        if (!pin || !isValidPin(pin) || !puk || !isValidPuk(puk)) return fail(SW.WRONG_DATA);
        // Setting the PIN starts the secrets afresh: personalisation restarts from here.
        const cardKey = newCardKey();
        image.wrappedByPin = wrapCardKey(cardKey, pin, this.aad(image));
        image.wrappedByPuk = wrapCardKey(cardKey, puk, this.aad(image));
        image.pinTriesLeft = PIN_TRIES;
        image.pukTriesLeft = PUK_TRIES;
        delete image.secrets;
        delete image.publicKey;
        delete image.certificate;
        image.cardKeysPresent = false;
        this.cardKey = cardKey;
        this.privateKeyCache = undefined;
        break;
      }
      case TAG.CARD_KEYS: {
        if (data.length !== 32) return fail(SW.WRONG_LENGTH);
        const secrets = this.secrets(image);
        if (!secrets || !this.cardKey) return fail(SW.CONDITIONS_NOT_SATISFIED);
        secrets.kEnc = data.subarray(0, 16).toString('base64');
        secrets.kMac = data.subarray(16).toString('base64');
        image.secrets = sealSecrets(this.cardKey, secrets, this.aad(image));
        image.cardKeysPresent = true;
        break;
      }
      case TAG.CERTIFICATE: {
        if (!image.publicKey) return fail(SW.CONDITIONS_NOT_SATISFIED);
        let cert: X509Certificate;
        try {
          cert = new X509Certificate(data);
        } catch {
          return fail(SW.WRONG_DATA);
        }
        // The card accepts only a certificate for its own key.
        const own = createPublicKey({ key: Buffer.from(image.publicKey, 'base64'), format: 'der', type: 'spki' });
        if (!cert.publicKey.equals(own)) return fail(SW.WRONG_DATA);
        image.certificate = data.toString('base64');
        break;
      }
      default:
        return fail(SW.REFERENCED_DATA_NOT_FOUND);
    }
    this.storage.save(image);
    return ok();
  }

  private generate(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p2 !== 0x00) return fail(SW.WRONG_P1P2);
    if (cmd.p1 === 0x81) {
      return image.publicKey ? ok(Buffer.from(image.publicKey, 'base64')) : fail(SW.REFERENCED_DATA_NOT_FOUND);
    }
    if (cmd.p1 !== 0x80) return fail(SW.WRONG_P1P2);
    if (image.lifecycle !== 'personalisation' || !image.profileVersion) return fail(SW.CONDITIONS_NOT_SATISFIED);
    const secrets = this.secrets(image);
    if (!secrets || !this.cardKey) return fail(SW.CONDITIONS_NOT_SATISFIED); // set the PIN first
    const modulusLength = image.profileVersion === 1 ? 1024 : 2048;
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength, publicExponent: 0x10001 });
    secrets.privateKey = privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64');
    image.secrets = sealSecrets(this.cardKey, secrets, this.aad(image));
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    image.publicKey = spki.toString('base64');
    delete image.certificate;
    this.privateKeyCache = privateKey;
    this.storage.save(image);
    return ok(spki);
  }

  private activate(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return fail(SW.WRONG_P1P2);
    const complete = image.profileVersion && image.wrappedByPin && image.publicKey && image.certificate && image.cardKeysPresent;
    if (image.lifecycle !== 'personalisation' || !complete) return fail(SW.CONDITIONS_NOT_SATISFIED);
    image.lifecycle = 'operational';
    this.storage.save(image);
    this.lockSession();
    return ok();
  }

  private checkPin(image: CardImage, which: 'pin' | 'puk', secret: string): 'ok' | Reply {
    const triesKey = which === 'pin' ? 'pinTriesLeft' : 'pukTriesLeft';
    const wrapped = which === 'pin' ? image.wrappedByPin : image.wrappedByPuk;
    const tries = image[triesKey] ?? 0;
    if (!wrapped) return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (tries === 0) return fail(SW.AUTH_BLOCKED);
    // Decrement and persist before checking, so pulling the card mid-check still costs a try.
    image[triesKey] = tries - 1;
    this.storage.save(image);
    const cardKey = unwrapCardKey(wrapped, secret, this.aad(image));
    if (!cardKey) return fail(SW.WRONG_PIN | (tries - 1));
    image[triesKey] = which === 'pin' ? PIN_TRIES : PUK_TRIES;
    this.storage.save(image);
    this.cardKey = cardKey;
    this.privateKeyCache = undefined;
    return 'ok';
  }

  private verify(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== PIN_REF) return fail(SW.WRONG_P1P2);
    if (image.lifecycle !== 'operational') return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (cmd.data.length === 0) {
      const tries = image.pinTriesLeft ?? 0;
      if (tries === 0) return fail(SW.AUTH_BLOCKED);
      return this.pinVerified ? ok() : fail(SW.WRONG_PIN | tries);
    }
    if (cmd.data.length !== 8) return fail(SW.WRONG_LENGTH);
    // A block that is not a PIN at all is refused before the counter is touched: no try spent.
    const pin = decodePinBlock(cmd.data);
    if (!pin) return fail(SW.WRONG_DATA);
    this.lockSession();
    const r = this.checkPin(image, 'pin', pin);
    if (r !== 'ok') return r;
    this.pinVerified = true;
    return ok();
  }

  private changePin(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== PIN_REF) return fail(SW.WRONG_P1P2);
    if (image.lifecycle !== 'operational') return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (cmd.data.length !== 16) return fail(SW.WRONG_LENGTH);
    const oldPin = decodePinBlock(cmd.data.subarray(0, 8));
    const newPin = decodePinBlock(cmd.data.subarray(8));
    if (!oldPin || !newPin) return fail(SW.WRONG_DATA); // no try spent on a malformed block
    this.lockSession();
    const r = this.checkPin(image, 'pin', oldPin);
    if (r !== 'ok') return r;
    image.wrappedByPin = wrapCardKey(this.cardKey!, newPin, this.aad(image));
    this.storage.save(image);
    this.pinVerified = true;
    return ok();
  }

  private resetRetryCounter(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== PIN_REF) return fail(SW.WRONG_P1P2);
    if (image.lifecycle !== 'operational') return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (cmd.data.length !== 16) return fail(SW.WRONG_LENGTH);
    const puk = decodePinBlock(cmd.data.subarray(0, 8));
    const newPin = decodePinBlock(cmd.data.subarray(8));
    if (!puk || !isValidPuk(puk) || !newPin) return fail(SW.WRONG_DATA); // no try spent on a malformed block
    this.lockSession();
    const r = this.checkPin(image, 'puk', puk);
    if (r !== 'ok') return r;
    image.wrappedByPin = wrapCardKey(this.cardKey!, newPin, this.aad(image));
    image.pinTriesLeft = PIN_TRIES;
    this.storage.save(image);
    this.lockSession(); // the holder proves the new PIN with VERIFY
    return ok();
  }

  private privateKey(image: CardImage): KeyObject | undefined {
    if (this.privateKeyCache) return this.privateKeyCache;
    const secrets = this.secrets(image);
    if (!secrets?.privateKey) return undefined;
    this.privateKeyCache = createPrivateKey({ key: Buffer.from(secrets.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    return this.privateKeyCache;
  }

  private signingContext(image: CardImage): { key: KeyObject; hash: 'sha1' | 'sha256' } | Reply {
    if (image.lifecycle !== 'operational') return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (!this.pinVerified) return fail(SW.SECURITY_STATUS);
    const key = this.privateKey(image);
    const profile = profileOfCard(image.profileVersion);
    if (!key || !profile) return fail(SW.NO_PRECISE_DIAGNOSIS);
    return { key, hash: profile.hash };
  }

  private internalAuthenticate(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return fail(SW.WRONG_P1P2);
    if (cmd.data.length < 8 || cmd.data.length > 128) return fail(SW.WRONG_LENGTH);
    const ctx = this.signingContext(image);
    if ('sw' in ctx) return ctx;
    return ok(sign(ctx.hash, Buffer.concat([AUTH_PREFIX, cmd.data]), ctx.key));
  }

  private computeSignature(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 === PSO_CDS_WARRANT.p1 && cmd.p2 === PSO_CDS_WARRANT.p2) return this.signWarrant(image, cmd);
    if (cmd.p1 === PSO_CDS_CRL.p1 && cmd.p2 === PSO_CDS_CRL.p2) return this.signWarrant(image, cmd, crlTbsProblem);
    if (cmd.p1 !== PSO_CDS.p1 || cmd.p2 !== PSO_CDS.p2) return fail(SW.WRONG_P1P2);
    const ctx = this.signingContext(image);
    if ('sw' in ctx) return ctx;
    // The card signs only a pre-QTM package of its own profile's suite that names its own key as B.
    let header;
    try {
      header = decodeHeader(cmd.data);
    } catch {
      return fail(SW.WRONG_DATA);
    }
    const profile = profileOfCard(image.profileVersion)!;
    const ownFingerprint = createHash(profile.hash).update(Buffer.from(image.publicKey!, 'base64')).digest();
    if (profileByPackageVersion(header.version)?.version !== image.profileVersion || !ownFingerprint.equals(header.fingerprintB)) return fail(SW.WRONG_DATA);
    return ok(sign(ctx.hash, cmd.data, ctx.key));
  }

  /**
   * Only a card that issues warrants signs them, and only warrants it issues (./warrant-tbs.ts);
   * the same card signs its own revocation lists, and only those (./crl-tbs.ts).
   */
  private signWarrant(image: CardImage, cmd: CommandApdu, problem: (tbs: Buffer, cert: Buffer) => string | undefined = warrantTbsProblem): Reply {
    const ctx = this.signingContext(image);
    if ('sw' in ctx) return ctx;
    const cert = image.certificate ? Buffer.from(image.certificate, 'base64') : undefined;
    if (!cert || !(new X509Certificate(cert).keyUsage ?? []).includes(OID.ekuWarrantIssuing)) return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (problem(Buffer.from(cmd.data), cert)) return fail(SW.WRONG_DATA);
    return ok(sign('sha256', cmd.data, ctx.key));
  }

  private getChallenge(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return fail(SW.WRONG_P1P2);
    if (cmd.le !== undefined && cmd.le !== CHALLENGE_LENGTH && cmd.le !== 256) return fail(0x6c00 | CHALLENGE_LENGTH);
    if (image.lifecycle !== 'operational') return fail(SW.CONDITIONS_NOT_SATISFIED);
    this.challenge = randomBytes(CHALLENGE_LENGTH);
    return ok(Buffer.from(this.challenge));
  }

  private secureWrite(image: CardImage, cmd: CommandApdu): Reply {
    // Every attempt consumes the challenge: one R, one try, so the MAC cannot be searched.
    const r = this.challenge;
    this.challenge = undefined;
    if (cmd.p2 !== 0) return fail(SW.WRONG_P1P2);
    if (image.lifecycle !== 'operational') return fail(SW.CONDITIONS_NOT_SATISFIED);
    if (!r) return fail(SW.REFERENCE_DATA_UNUSABLE);
    if (!this.pinVerified) return fail(SW.SECURITY_STATUS);
    const slot = cmd.p1;
    if (slot < 1 || slot > image.slotCount) return fail(SW.WRONG_P1P2);
    const secrets = this.secrets(image);
    if (!secrets?.kEnc || !secrets.kMac) return fail(SW.NO_PRECISE_DIAGNOSIS);
    const keys = { kEnc: Buffer.from(secrets.kEnc, 'base64'), kMac: Buffer.from(secrets.kMac, 'base64') };
    const opened = openRecord(keys, r, slot, cmd.data);
    if (!opened.ok) return fail(SW.SM_DATA_INCORRECT);
    try {
      const rec = decodeCardRecord(opened.record);
      if (rec.version !== image.profileVersion) return fail(SW.WRONG_DATA);
    } catch {
      return fail(SW.WRONG_DATA);
    }
    image.slots[slot - 1] = opened.record.toString('hex');
    this.storage.save(image);
    return ok(storageProof(keys, r, opened.record));
  }

  private readRecord(image: CardImage, cmd: CommandApdu): Reply {
    const first = cmd.p1;
    if (first < 1 || first > image.slotCount) return fail(SW.RECORD_NOT_FOUND);
    if (cmd.p2 === READ_RECORD_ONE) {
      const rec = image.slots[first - 1];
      return rec ? ok(Buffer.from(rec, 'hex')) : fail(SW.RECORD_NOT_FOUND);
    }
    if (cmd.p2 === READ_RECORD_ALL) {
      if (!image.profileVersion) return fail(SW.RECORD_NOT_FOUND);
      const len = CARD_RECORD_LENGTH[image.profileVersion];
      return ok(Buffer.concat(image.slots.slice(first - 1).map((s) => (s ? Buffer.from(s, 'hex') : Buffer.alloc(len)))));
    }
    return fail(SW.WRONG_P1P2);
  }

  private readBinary(image: CardImage, cmd: CommandApdu): Reply {
    if (cmd.p1 & 0x80) return fail(SW.FUNCTION_NOT_SUPPORTED); // no short EF identifiers
    if (!image.certificate) return fail(SW.FILE_NOT_FOUND);
    const file = Buffer.from(image.certificate, 'base64');
    const offset = (cmd.p1 << 8) | cmd.p2;
    if (offset >= file.length) return fail(SW.WRONG_OFFSET);
    return ok(file.subarray(offset, offset + (cmd.le ?? 256)));
  }
}
