import { DecodeError } from '../errors.js';

/**
 * A strict big-endian cursor over a byte string. Every read checks bounds and raises a
 * DecodeError naming the format and field, so decoders never index past the end or accept
 * trailing bytes by accident (call `end()` last).
 */
export class ByteReader {
  private offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly format: string,
  ) {}

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  take(length: number, field: string): Uint8Array {
    if (length > this.remaining) {
      throw new DecodeError(this.format, `truncated: ${field} needs ${length} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    // A copy in a plain Uint8Array (the typed-array constructor copies natively; Uint8Array.from
    // walked the iterator, byte by byte, and was most of a package's decoding time).
    return new Uint8Array(out);
  }

  /** The offset of `length` bytes of `field`, checked and consumed: integers are read in place. */
  private at(length: number, field: string): number {
    if (length > this.remaining) {
      throw new DecodeError(this.format, `truncated: ${field} needs ${length} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
    const o = this.offset;
    this.offset += length;
    return o;
  }

  u8(field: string): number {
    return this.bytes[this.at(1, field)]!;
  }

  u16(field: string): number {
    const o = this.at(2, field);
    return (this.bytes[o]! << 8) | this.bytes[o + 1]!;
  }

  u32(field: string): number {
    const o = this.at(4, field);
    const b = this.bytes;
    return ((b[o]! << 24) >>> 0) + (b[o + 1]! << 16) + (b[o + 2]! << 8) + b[o + 3]!;
  }

  end(): void {
    if (this.remaining !== 0) {
      throw new DecodeError(this.format, `${this.remaining} trailing bytes after offset ${this.offset}`);
    }
  }
}

/** Collects big-endian fields into one buffer. */
export class ByteWriter {
  private readonly parts: Uint8Array[] = [];

  bytes(b: Uint8Array): this {
    this.parts.push(b);
    return this;
  }

  u8(v: number): this {
    checkRange(v, 0xff, 'u8');
    return this.bytes(Uint8Array.of(v));
  }

  u16(v: number): this {
    checkRange(v, 0xffff, 'u16');
    return this.bytes(Uint8Array.of(v >>> 8, v & 0xff));
  }

  u32(v: number): this {
    checkRange(v, 0xffffffff, 'u32');
    return this.bytes(Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function checkRange(v: number, max: number, kind: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${kind} out of range: ${v}`);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
