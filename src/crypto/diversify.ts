/**
 * Card key diversification, NXP AN10922 section 2.2 (AES-128):
 *   diversified key = AES-CMAC(master, 0x01 || D), where M = 0x01 || D is padded to 32 bytes.
 * AN10922 always pads M to two blocks; standard CMAC pads to the next block boundary, which is
 * the same thing exactly when 16 < |M| <= 32. qtm's input D = serial (8) || AID (7) || label (3)
 * gives |M| = 19, and the function refuses lengths where the two would differ.
 */
import { aesCmac } from './cmac.js';

const DIV_CONSTANT_AES128 = 0x01;

export function an10922DiversifyAes128(masterKey: Uint8Array, input: Uint8Array): Buffer {
  const m = Buffer.concat([Buffer.of(DIV_CONSTANT_AES128), input]);
  if (m.length <= 16 || m.length > 32) {
    throw new RangeError(`AN10922 diversification input must be 16 to 31 bytes, got ${input.length}`);
  }
  return aesCmac(masterKey, m);
}

export type KeyLabel = 'ENC' | 'MAC';

export function diversificationInput(cardSerial: Uint8Array, aid: Uint8Array, label: KeyLabel): Buffer {
  return Buffer.concat([cardSerial, aid, Buffer.from(label, 'ascii')]);
}

export interface CardKeys {
  readonly kEnc: Buffer;
  readonly kMac: Buffer;
}

/** K_enc and K_mac of one card; each has its own label, and neither is ever the master key. */
export function deriveCardKeys(masterKey: Uint8Array, cardSerial: Uint8Array, aid: Uint8Array): CardKeys {
  return {
    kEnc: an10922DiversifyAes128(masterKey, diversificationInput(cardSerial, aid, 'ENC')),
    kMac: an10922DiversifyAes128(masterKey, diversificationInput(cardSerial, aid, 'MAC')),
  };
}
