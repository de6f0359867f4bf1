/**
 * C2SP signed-note v1.0.0 (pinned): notes, signature lines, key IDs, and the vkey/skey text forms
 * of Ed25519 keys. Decoders are strict: valid UTF-8, no control characters but newline, a text
 * ending in newline, canonical base64, at most 100 signatures; a vkey's key ID must match its name
 * and key.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { DecodeError, RefusedError } from '../errors.js';
import { ed25519Sign, ed25519Verify, privateKeyFromSeed, publicFromSeed, publicKeyFromRaw } from './ed25519.js';

export const SIG_TYPE_ED25519 = 0x01;
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;
export const MAX_SIGNATURES = 100;
export const MAX_NOTE_BYTES = 1 << 20;
const EM_DASH = '\u2014';

/** A signature on a note that does not verify, or a note no known key signed: exit code 1. */
export class NoteSignatureError extends RefusedError {
  constructor(message: string) {
    super(message, undefined, 'E_TLOG_SIGNATURE');
  }
}

/** key ID = SHA-256(name || 0x0A || type || public key)[:4], as a big-endian uint32. */
export function keyId(name: string, type: number, publicKey: Uint8Array): number {
  const h = createHash('sha256').update(name, 'utf8').update(Buffer.from([0x0a, type])).update(publicKey).digest();
  return h.readUInt32BE(0);
}

export const hex8 = (id: number) => id.toString(16).padStart(8, '0');

/** Standard base64 (RFC 4648 section 4), refusing anything that does not re-encode identically. */
export function strictBase64(format: string, field: string, s: string): Buffer {
  const b = Buffer.from(s, 'base64');
  if (s.length === 0 || b.toString('base64') !== s) throw new DecodeError(format, `${field} is not canonical base64`);
  return b;
}

export function checkKeyName(format: string, name: string): void {
  // eslint-disable-next-line no-control-regex
  if (name.length === 0 || /[\s+\u0000-\u001f\u007f]/u.test(name)) {
    throw new DecodeError(format, `key name ${JSON.stringify(name)} is empty or holds a space, plus or control character`);
  }
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the key ID. */
  sign(text: string): Uint8Array;
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  verify(text: string, sig: Uint8Array): boolean;
}

export interface Vkey {
  name: string;
  keyId: number;
  type: number;
  publicKey: Buffer;
}

export function encodeVkey(v: { name: string; type: number; publicKey: Uint8Array }): string {
  checkKeyName('vkey', v.name);
  const id = keyId(v.name, v.type, v.publicKey);
  return `${v.name}+${hex8(id)}+${Buffer.concat([Buffer.from([v.type]), v.publicKey]).toString('base64')}`;
}

/** Splits only the leading fields: the base64 may itself hold '+'. */
function splitLeading(format: string, text: string, n: number): string[] {
  const parts: string[] = [];
  let rest = text;
  for (let i = 0; i < n - 1; i++) {
    const at = rest.indexOf('+');
    if (at < 0) throw new DecodeError(format, `expected ${n} '+'-separated fields`);
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

function decodeKeyFields(format: string, name: string, idHex: string, b64: string): { name: string; keyIdField: number; type: number; material: Buffer } {
  checkKeyName(format, name);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new DecodeError(format, 'key ID is not 8 lowercase hex digits');
  const raw = strictBase64(format, 'key', b64);
  if (raw.length < 1) throw new DecodeError(format, 'key is empty');
  return { name, keyIdField: parseInt(idHex, 16), type: raw[0]!, material: raw.subarray(1) };
}

/** Decodes `<name>+<hex key ID>+<base64(type || public key)>`, Ed25519 types 0x01 and 0x04 only. */
export function decodeVkey(text: string, allowedTypes: readonly number[] = [SIG_TYPE_ED25519]): Vkey {
  const format = 'vkey';
  const t = text.trim();
  const [name, idHex, b64] = splitLeading(format, t, 3) as [string, string, string];
  const f = decodeKeyFields(format, name, idHex, b64);
  if (!allowedTypes.includes(f.type)) throw new DecodeError(format, `signature type 0x${f.type.toString(16).padStart(2, '0')} is not accepted here`);
  if (f.material.length !== 32) throw new DecodeError(format, `an Ed25519 public key is 32 bytes, got ${f.material.length}`);
  if (keyId(f.name, f.type, f.material) !== f.keyIdField) throw new DecodeError(format, 'key ID does not match the name and key');
  return { name: f.name, keyId: f.keyIdField, type: f.type, publicKey: f.material };
}

export interface Skey {
  name: string;
  keyId: number;
  type: number;
  seed: Buffer;
  publicKey: Buffer;
}

export function encodeSkey(s: { name: string; type: number; seed: Uint8Array }): string {
  checkKeyName('skey', s.name);
  const id = keyId(s.name, s.type, publicFromSeed(s.seed));
  return `PRIVATE+KEY+${s.name}+${hex8(id)}+${Buffer.concat([Buffer.from([s.type]), s.seed]).toString('base64')}`;
}

/** Decodes `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`. */
export function decodeSkey(text: string, allowedTypes: readonly number[] = [SIG_TYPE_ED25519]): Skey {
  const format = 'skey';
  const [p, k, name, idHex, b64] = splitLeading(format, text.trim(), 5) as [string, string, string, string, string];
  if (p !== 'PRIVATE' || k !== 'KEY') throw new DecodeError(format, 'does not start with PRIVATE+KEY+');
  const f = decodeKeyFields(format, name, idHex, b64);
  if (!allowedTypes.includes(f.type)) throw new DecodeError(format, `signature type 0x${f.type.toString(16).padStart(2, '0')} is not accepted here`);
  if (f.material.length !== 32) throw new DecodeError(format, `an Ed25519 seed is 32 bytes, got ${f.material.length}`);
  const publicKey = publicFromSeed(f.material);
  if (keyId(f.name, f.type, publicKey) !== f.keyIdField) throw new DecodeError(format, 'key ID does not match the name and key');
  return { name: f.name, keyId: f.keyIdField, type: f.type, seed: f.material, publicKey };
}

export function ed25519NoteSigner(skey: Skey): NoteSigner {
  if (skey.type !== SIG_TYPE_ED25519) throw new RangeError('not an Ed25519 note key');
  const key: KeyObject = privateKeyFromSeed(skey.seed);
  return { name: skey.name, keyId: skey.keyId, sign: (text) => ed25519Sign(key, Buffer.from(text, 'utf8')) };
}

export function ed25519NoteVerifier(vkey: Vkey): NoteVerifier {
  if (vkey.type !== SIG_TYPE_ED25519) throw new RangeError('not an Ed25519 note key');
  const key = publicKeyFromRaw(vkey.publicKey);
  return { name: vkey.name, keyId: vkey.keyId, verify: (text, sig) => ed25519Verify(key, Buffer.from(text, 'utf8'), sig) };
}

export interface NoteSignature {
  name: string;
  keyId: number;
  /** The bytes after the key ID. */
  sig: Buffer;
}

export interface Note {
  /** The note text, ending in newline. */
  text: string;
  signatures: NoteSignature[];
}

export function encodeSignatureLine(s: NoteSignature): string {
  checkKeyName('signed note', s.name);
  const id = Buffer.alloc(4);
  id.writeUInt32BE(s.keyId >>> 0);
  return `${EM_DASH} ${s.name} ${Buffer.concat([id, s.sig]).toString('base64')}\n`;
}

export function encodeNote(n: Note): string {
  checkNoteText('signed note', n.text);
  if (n.signatures.length === 0) throw new RangeError('a signed note needs a signature');
  return `${n.text}\n${n.signatures.map(encodeSignatureLine).join('')}`;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;

function checkNoteText(format: string, text: string): void {
  if (text.length === 0 || !text.endsWith('\n')) throw new DecodeError(format, 'text must end with a newline');
  if (CONTROL.test(text)) throw new DecodeError(format, 'text holds a control character other than newline');
}

/** Strict decode of a signed note (bytes are checked as UTF-8). Does not verify. */
export function decodeNote(input: Uint8Array | string): Note {
  const format = 'signed note';
  let msg: string;
  if (typeof input === 'string') {
    msg = input;
    if (Buffer.from(msg, 'utf8').toString('utf8') !== msg) throw new DecodeError(format, 'not valid UTF-8 (lone surrogate)');
    if (Buffer.byteLength(msg, 'utf8') > MAX_NOTE_BYTES) throw new DecodeError(format, `longer than ${MAX_NOTE_BYTES} bytes`);
  } else {
    if (input.length > MAX_NOTE_BYTES) throw new DecodeError(format, `longer than ${MAX_NOTE_BYTES} bytes`);
    try {
      msg = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw new DecodeError(format, 'not valid UTF-8');
    }
  }
  if (CONTROL.test(msg)) throw new DecodeError(format, 'holds a control character other than newline');
  if (!msg.endsWith('\n')) throw new DecodeError(format, 'does not end with a newline');
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw new DecodeError(format, 'no blank line before the signatures');
  const text = msg.slice(0, split + 1);
  const lines = msg.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw new DecodeError(format, `more than ${MAX_SIGNATURES} signatures`);
  const signatures: NoteSignature[] = lines.map((line, i) => {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new DecodeError(format, `signature line ${i + 1} is not "\u2014 <name> <base64>"`);
    checkKeyName(format, m[1]!);
    const raw = strictBase64(format, `signature line ${i + 1}`, m[2]!);
    if (raw.length < 5) throw new DecodeError(format, `signature line ${i + 1} is shorter than a key ID and a signature`);
    return { name: m[1]!, keyId: raw.readUInt32BE(0), sig: raw.subarray(4) };
  });
  checkNoteText(format, text);
  return { text, signatures };
}

/**
 * Verifies a note against known keys (C2SP rules): signatures by unknown keys are ignored, a
 * known key whose signature fails rejects the note, and at least one known key must have signed.
 * Returns the verifiers whose signatures verified.
 */
export function verifyNote(note: Note, verifiers: readonly NoteVerifier[]): NoteVerifier[] {
  const ok: NoteVerifier[] = [];
  for (const s of note.signatures) {
    const v = verifiers.find((k) => k.name === s.name && k.keyId === s.keyId);
    if (!v) continue;
    if (!v.verify(note.text, s.sig)) throw new NoteSignatureError(`invalid signature for key ${s.name}+${hex8(s.keyId)}`);
    if (!ok.includes(v)) ok.push(v);
  }
  if (ok.length === 0) {
    const names = verifiers.map((v) => `${v.name}+${hex8(v.keyId)}`).join(', ');
    throw new NoteSignatureError(`no signature by a known key (${names})`);
  }
  return ok;
}

export function signNote(text: string, signers: readonly NoteSigner[]): string {
  return encodeNote({ text, signatures: signers.map((s) => ({ name: s.name, keyId: s.keyId, sig: Buffer.from(s.sign(text)) })) });
}
