/**
 * The host side of the qtm card application: one method per command, typed results, status
 * words turned into typed errors. Works over any CardTransport.
 */
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { CLA_CHAINING, decodeResponse, encodeCommand, MAX_SHORT_DATA, type CommandApdu } from './apdu.js';
import {
  CLA_ISO, CLA_PROPRIETARY, INS, PIN_REF, PSO_CDS, PSO_CDS_CRL, PSO_CDS_WARRANT, QTM_AID, READ_RECORD_ALL, READ_RECORD_ONE, TAG,
  decodeStatus, encodePinBlock, isValidPin, isValidPuk, type CardStatus,
} from './app-spec.js';
import { CardStatusError, PinBlockedError, SW, WrongPinError } from './status-words.js';
import type { CardTransport } from './transport.js';
import type { CardKeys } from '../crypto/diversify.js';
import { CHALLENGE_LENGTH, MAC_LENGTH } from '../crypto/secure-write.js';
import { DecodeError, InputError } from '../errors.js';

export class CardClient {
  /** APDUs exchanged so far, GET RESPONSE included: the figure `npm run bench` reports. */
  apduCount = 0;

  constructor(readonly transport: CardTransport) {}

  private async exchange(cmd: CommandApdu): Promise<{ data: Buffer; sw: number }> {
    this.apduCount++;
    return decodeResponse(await this.transport.transmit(encodeCommand(cmd)));
  }

  /** Sends a command, following 61xx (GET RESPONSE) and 6Cxx (resend with the right Le). */
  private async send(cmd: CommandApdu): Promise<{ data: Buffer; sw: number }> {
    let r = await this.exchange(cmd);
    if ((r.sw & 0xff00) === SW.WRONG_LE) r = await this.exchange({ ...cmd, le: r.sw & 0xff || 256 });
    const parts = [r.data];
    while ((r.sw & 0xff00) === SW.BYTES_REMAINING) {
      r = await this.exchange({ cla: CLA_ISO, ins: INS.GET_RESPONSE, p1: 0, p2: 0, data: new Uint8Array(0), le: r.sw & 0xff || 256 });
      parts.push(r.data);
    }
    return { data: Buffer.concat(parts), sw: r.sw };
  }

  private async call(name: string, cmd: CommandApdu, pin?: 'PIN' | 'PUK'): Promise<Buffer> {
    const r = await this.send(cmd);
    if (r.sw === SW.OK) return r.data;
    if (pin && (r.sw & 0xfff0) === SW.WRONG_PIN) throw new WrongPinError(pin, r.sw & 0x0f);
    if (pin && r.sw === SW.AUTH_BLOCKED) throw new PinBlockedError(pin);
    if (r.sw === SW.AUTH_BLOCKED) throw new PinBlockedError('PIN');
    throw new CardStatusError(name, r.sw);
  }

  private iso(ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), le?: number): CommandApdu {
    return { cla: CLA_ISO, ins, p1, p2, data, ...(le ? { le } : {}) };
  }

  async select(): Promise<void> {
    await this.call('SELECT', this.iso(INS.SELECT, 0x04, 0x00, QTM_AID));
  }

  async status(): Promise<CardStatus> {
    return decodeStatus(await this.call('GET DATA (status)', this.iso(INS.GET_DATA, TAG.STATUS >> 8, TAG.STATUS & 0xff, undefined, 256)));
  }

  /** Command chaining: every block but the last carries CLA bit 0x10; the last one's answer counts. */
  private async chained(name: string, ins: number, p1: number, p2: number, data: Uint8Array, le?: number): Promise<Buffer> {
    for (let offset = 0; ; offset += MAX_SHORT_DATA) {
      const last = offset + MAX_SHORT_DATA >= data.length;
      const cmd = this.iso(ins, p1, p2, data.subarray(offset, offset + MAX_SHORT_DATA), last ? le : undefined);
      const r = await this.call(name, last ? cmd : { ...cmd, cla: CLA_ISO | CLA_CHAINING });
      if (last) return r;
    }
  }

  private async putData(name: string, tag: number, data: Buffer): Promise<void> {
    await this.chained(name, INS.PUT_DATA, tag >> 8, tag & 0xff, data);
  }

  async setLayout(profileVersion: 1 | 2, slotCount: number): Promise<void> {
    await this.putData('PUT DATA (layout)', TAG.LAYOUT, Buffer.of(profileVersion, slotCount));
  }

  async setPinAndPuk(pin: string, puk: string): Promise<void> {
    if (!isValidPin(pin)) throw new InputError('a PIN is 4 to 8 digits');
    if (!isValidPuk(puk)) throw new InputError('a PUK is 8 digits');
    await this.putData('PUT DATA (PIN, PUK)', TAG.PIN_PUK, Buffer.concat([encodePinBlock(pin), encodePinBlock(puk)]));
  }

  async generateKeyPair(): Promise<KeyObject> {
    const spki = await this.call('GENERATE ASYMMETRIC KEY PAIR', this.iso(INS.GENERATE_ASYMMETRIC_KEY_PAIR, 0x80, 0x00, undefined, 256));
    return createPublicKey({ key: spki, format: 'der', type: 'spki' });
  }

  async readPublicKey(): Promise<KeyObject> {
    const spki = await this.call('GENERATE ASYMMETRIC KEY PAIR (read)', this.iso(INS.GENERATE_ASYMMETRIC_KEY_PAIR, 0x81, 0x00, undefined, 256));
    return createPublicKey({ key: spki, format: 'der', type: 'spki' });
  }

  async putCertificate(cert: X509Certificate): Promise<void> {
    await this.putData('PUT DATA (certificate)', TAG.CERTIFICATE, cert.raw);
  }

  async putCardKeys(keys: CardKeys): Promise<void> {
    await this.putData('PUT DATA (card keys)', TAG.CARD_KEYS, Buffer.concat([keys.kEnc, keys.kMac]));
  }

  async lock(): Promise<void> {
    await this.call('LOCK (ACTIVATE FILE)', this.iso(INS.ACTIVATE_FILE, 0, 0));
  }

  async verifyPin(pin: string): Promise<void> {
    if (!isValidPin(pin)) throw new InputError('a PIN is 4 to 8 digits', 'nothing was sent to the card');
    await this.call('VERIFY', this.iso(INS.VERIFY, 0, PIN_REF, encodePinBlock(pin)), 'PIN');
  }

  /** Tries left without spending one (VERIFY with no data); 0 when blocked. */
  async pinTriesLeft(): Promise<number | 'verified'> {
    const r = await this.send(this.iso(INS.VERIFY, 0, PIN_REF));
    if (r.sw === SW.OK) return 'verified';
    if ((r.sw & 0xfff0) === SW.WRONG_PIN) return r.sw & 0x0f;
    if (r.sw === SW.AUTH_BLOCKED) return 0;
    throw new CardStatusError('VERIFY (status)', r.sw);
  }

  async changePin(oldPin: string, newPin: string): Promise<void> {
    if (!isValidPin(newPin)) throw new InputError('the new PIN must be 4 to 8 digits', 'nothing was sent to the card');
    await this.call('CHANGE REFERENCE DATA', this.iso(INS.CHANGE_REFERENCE_DATA, 0, PIN_REF, Buffer.concat([encodePinBlock(oldPin), encodePinBlock(newPin)])), 'PIN');
  }

  async unblockPin(puk: string, newPin: string): Promise<void> {
    if (!isValidPin(newPin)) throw new InputError('the new PIN must be 4 to 8 digits', 'nothing was sent to the card');
    await this.call('RESET RETRY COUNTER', this.iso(INS.RESET_RETRY_COUNTER, 0, PIN_REF, Buffer.concat([encodePinBlock(puk), encodePinBlock(newPin)])), 'PUK');
  }

  async internalAuthenticate(challenge: Uint8Array): Promise<Buffer> {
    return this.call('INTERNAL AUTHENTICATE', this.iso(INS.INTERNAL_AUTHENTICATE, 0, 0, challenge, 256));
  }

  /** PSO COMPUTE DIGITAL SIGNATURE over a pre-QTM package (fields 1-7). */
  async signHeader(header: Uint8Array): Promise<Buffer> {
    return this.call('PSO COMPUTE DIGITAL SIGNATURE', this.iso(INS.PSO, PSO_CDS.p1, PSO_CDS.p2, header, 256));
  }

  /** PSO COMPUTE DIGITAL SIGNATURE over a warrant's TBSCertificate: manager cards only, PIN first. */
  async signWarrant(tbs: Uint8Array): Promise<Buffer> {
    return this.chained('PSO COMPUTE DIGITAL SIGNATURE (warrant)', INS.PSO, PSO_CDS_WARRANT.p1, PSO_CDS_WARRANT.p2, tbs, 256);
  }

  /** PSO COMPUTE DIGITAL SIGNATURE over a revocation list's TBSCertList naming this card as issuer: cards that issue warrants only, PIN first. */
  async signCrl(tbs: Uint8Array): Promise<Buffer> {
    return this.chained('PSO COMPUTE DIGITAL SIGNATURE (CRL)', INS.PSO, PSO_CDS_CRL.p1, PSO_CDS_CRL.p2, tbs, 256);
  }

  async getChallenge(): Promise<Buffer> {
    const r = await this.call('GET CHALLENGE', this.iso(INS.GET_CHALLENGE, 0, 0, undefined, CHALLENGE_LENGTH));
    if (r.length !== CHALLENGE_LENGTH) throw new CardStatusError('GET CHALLENGE', SW.NO_PRECISE_DIAGNOSIS);
    return r;
  }

  /** SECURE WRITE RECORD; returns the card's storage proof W. */
  async secureWrite(slot: number, envelope: Uint8Array): Promise<Buffer> {
    const w = await this.call('SECURE WRITE RECORD', { cla: CLA_PROPRIETARY, ins: INS.SECURE_WRITE_RECORD, p1: slot, p2: 0, data: envelope, le: MAC_LENGTH });
    if (w.length !== MAC_LENGTH) throw new CardStatusError('SECURE WRITE RECORD', SW.NO_PRECISE_DIAGNOSIS);
    return w;
  }

  /** READ RECORD of one slot (1-based); undefined when the slot is empty. */
  async readRecord(slot: number): Promise<Buffer | undefined> {
    const r = await this.send(this.iso(INS.READ_RECORD, slot, READ_RECORD_ONE, undefined, 256));
    if (r.sw === SW.RECORD_NOT_FOUND) return undefined;
    if (r.sw !== SW.OK) throw new CardStatusError('READ RECORD', r.sw);
    return r.data;
  }

  /** Every slot in one READ RECORD (P2 = 05, all from slot 1); undefined for empty slots. */
  async readAllRecords(recordLength: number): Promise<(Buffer | undefined)[]> {
    const all = await this.call('READ RECORD (all)', this.iso(INS.READ_RECORD, 1, READ_RECORD_ALL, undefined, 256));
    const out: (Buffer | undefined)[] = [];
    for (let i = 0; i + recordLength <= all.length; i += recordLength) {
      const rec = all.subarray(i, i + recordLength);
      out.push(rec[0] === 0 ? undefined : Buffer.from(rec));
    }
    return out;
  }

  async readCertificate(): Promise<X509Certificate> {
    // READ BINARY in 256-byte chunks until a short chunk or "offset beyond the file" (6B00).
    const parts: Buffer[] = [];
    for (let offset = 0; offset <= 0x7fff; ) {
      const r = await this.send(this.iso(INS.READ_BINARY, offset >> 8, offset & 0xff, undefined, 256));
      if (r.sw === SW.WRONG_OFFSET && offset > 0) break;
      if (r.sw !== SW.OK) throw new CardStatusError('READ BINARY', r.sw);
      parts.push(r.data);
      offset += r.data.length;
      if (r.data.length < 256) break;
    }
    try {
      return new X509Certificate(Buffer.concat(parts));
    } catch {
      throw new DecodeError('card certificate', 'the certificate the card holds (READ BINARY) is not a valid X.509 certificate (truncated or damaged)');
    }
  }
}
