/**
 * ISO 7816-4 short APDUs. A command is CLA INS P1 P2 [Lc data] [Le]; a response is data SW1 SW2.
 * qtm uses short APDUs only (as the card application's table in docs/CARD.md says): data over
 * 255 bytes goes with command chaining (CLA bit 0x10), responses over 256 with 61xx/GET RESPONSE.
 */
import { DecodeError } from '../errors.js';

export interface CommandApdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly data: Uint8Array;
  /** Expected response length 1..256, or undefined for none (case 1/3). 256 encodes as 00. */
  readonly le?: number;
}

export const CLA_CHAINING = 0x10;
export const MAX_SHORT_DATA = 255;

export function encodeCommand(c: CommandApdu): Buffer {
  for (const [name, v] of [['CLA', c.cla], ['INS', c.ins], ['P1', c.p1], ['P2', c.p2]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${name} out of range: ${v}`);
  }
  if (c.data.length > MAX_SHORT_DATA) throw new RangeError(`short APDU data is at most ${MAX_SHORT_DATA} bytes, got ${c.data.length}`);
  if (c.le !== undefined && (c.le < 1 || c.le > 256)) throw new RangeError(`Le out of range: ${c.le}`);
  const parts = [Buffer.of(c.cla, c.ins, c.p1, c.p2)];
  if (c.data.length > 0) parts.push(Buffer.of(c.data.length), Buffer.from(c.data));
  if (c.le !== undefined) parts.push(Buffer.of(c.le === 256 ? 0 : c.le));
  return Buffer.concat(parts);
}

/** Parses a short command APDU (ISO 7816-4 cases 1-4); extended length is refused. */
export function decodeCommand(bytes: Uint8Array): CommandApdu {
  const format = 'command APDU';
  if (bytes.length < 4) throw new DecodeError(format, `${bytes.length} bytes is shorter than a header`);
  const [cla, ins, p1, p2] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  const body = bytes.subarray(4);
  if (body.length === 0) return { cla, ins, p1, p2, data: new Uint8Array(0) }; // case 1
  if (body.length === 1) return { cla, ins, p1, p2, data: new Uint8Array(0), le: body[0] === 0 ? 256 : body[0]! }; // case 2
  const lc = body[0]!;
  if (lc === 0) throw new DecodeError(format, 'extended-length APDUs are not supported');
  if (body.length === 1 + lc) return { cla, ins, p1, p2, data: Uint8Array.from(body.subarray(1)) }; // case 3
  if (body.length === 2 + lc) {
    const le = body[1 + lc]!;
    return { cla, ins, p1, p2, data: Uint8Array.from(body.subarray(1, 1 + lc)), le: le === 0 ? 256 : le }; // case 4
  }
  throw new DecodeError(format, `Lc ${lc} does not match the ${body.length - 1} bytes that follow`);
}

export interface ResponseApdu {
  readonly data: Buffer;
  readonly sw: number;
}

export function encodeResponse(r: ResponseApdu): Buffer {
  return Buffer.concat([r.data, Buffer.of(r.sw >> 8, r.sw & 0xff)]);
}

export function decodeResponse(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) throw new DecodeError('response APDU', `${bytes.length} bytes cannot hold a status word`);
  const n = bytes.length;
  return { data: Buffer.from(bytes.subarray(0, n - 2)), sw: (bytes[n - 2]! << 8) | bytes[n - 1]! };
}

export function hexSw(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}
