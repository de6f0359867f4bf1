/**
 * C2SP tlog-checkpoint v1.0.0 (pinned): the note text `<origin>\n<size>\n<base64 root>\n` and
 * optional non-empty extension lines, signed as a signed note by the log's Ed25519 key.
 */
import { DecodeError } from '../errors.js';
import { HASH_SIZE } from './hash.js';
import { decodeNote, signNote, strictBase64, verifyNote, type Note, type NoteSigner, type NoteVerifier } from './note.js';

export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  extensions: string[];
}

const FORMAT = 'checkpoint';

export function encodeCheckpointBody(c: Checkpoint): string {
  if (c.origin.length === 0 || c.origin.includes('\n')) throw new RangeError('checkpoint origin must be one non-empty line');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new RangeError('checkpoint size must be a non-negative integer');
  if (c.root.length !== HASH_SIZE) throw new RangeError('checkpoint root must be 32 bytes');
  for (const e of c.extensions) if (e.length === 0 || e.includes('\n')) throw new RangeError('extension lines must be non-empty lines');
  return [c.origin, String(c.size), c.root.toString('base64'), ...c.extensions].map((l) => `${l}\n`).join('');
}

/** Strict decode of a checkpoint's note text (not its signatures). */
export function decodeCheckpointBody(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw new DecodeError(FORMAT, 'text does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new DecodeError(FORMAT, `needs origin, size and root lines, got ${lines.length} lines`);
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw new DecodeError(FORMAT, 'origin is empty');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new DecodeError(FORMAT, 'tree size is not a decimal without leading zeroes (below 2^53)');
  }
  const root = strictBase64(FORMAT, 'root hash', rootText);
  if (root.length !== HASH_SIZE) throw new DecodeError(FORMAT, `root hash is ${root.length} bytes, not ${HASH_SIZE}`);
  if (extensions.some((e) => e.length === 0)) throw new DecodeError(FORMAT, 'an extension line is empty');
  return { origin, size: Number(sizeText), root, extensions };
}

export interface SignedCheckpoint {
  checkpoint: Checkpoint;
  note: Note;
}

export function signCheckpoint(c: Checkpoint, log: NoteSigner): string {
  return signNote(encodeCheckpointBody(c), [log]);
}

/** Strict decode of a signed checkpoint, without verifying signatures. */
export function decodeSignedCheckpoint(input: Uint8Array | string): SignedCheckpoint {
  const note = decodeNote(input);
  return { checkpoint: decodeCheckpointBody(note.text), note };
}

/**
 * Decodes and verifies: the log key must have signed and the origin must be the expected one
 * (by default the log key's name, which C2SP says SHOULD match).
 */
export function openCheckpoint(input: Uint8Array | string, log: NoteVerifier, origin = log.name): SignedCheckpoint {
  const sc = decodeSignedCheckpoint(input);
  verifyNote(sc.note, [log]);
  if (sc.checkpoint.origin !== origin) {
    throw new DecodeError(FORMAT, `origin ${JSON.stringify(sc.checkpoint.origin)} is not the log's ${JSON.stringify(origin)}`);
  }
  return sc;
}
