/**
 * The transparency field of a proof bundle (version 2, or 3 with a tag) and of the server's
 * second message: the leaf's index, its RFC 9162 inclusion proof, the signed checkpoint (with any
 * witness cosignatures) the proof leads to, and for a version 2 entry the card's tag (leaf.ts).
 * Checked with named checks: log-checkpoint, log-inclusion, log-witnesses.
 */
import { DecodeError } from '../errors.js';
import { decodeSignedCheckpoint, openCheckpoint } from './checkpoint.js';
import { cosignatureVerifier } from './cosignature.js';
import { HASH_SIZE, leafHash } from './hash.js';
import { encodeEntry, TAG_BYTES } from './leaf.js';
import { verifyInclusion } from './merkle.js';
import { ed25519NoteVerifier, verifyNote, hex8, type Vkey, type NoteVerifier } from './note.js';

export interface TransparencyProof {
  readonly index: number;
  readonly proof: readonly Buffer[];
  /** The signed checkpoint note, exactly as served. */
  readonly checkpoint: string;
  /** The card's tag, when the log writes version 2 entries (the leaf is 0x02 || C || tag). */
  readonly tag?: Buffer;
}

/** 2^63 leaves need 63 hashes; 64 is the cap. */
export const MAX_PROOF_HASHES = 64;
export const MAX_CHECKPOINT_CHARS = 16 * 1024;

export function encodeTransparency(t: TransparencyProof): Record<string, unknown> {
  return { index: t.index, proof: t.proof.map((p) => p.toString('base64')), checkpoint: t.checkpoint, ...(t.tag ? { tag: t.tag.toString('base64') } : {}) };
}

/** Strict decode of the bundle's `transparency` object; errors name the bundle field. */
export function decodeTransparency(format: string, v: unknown): TransparencyProof {
  const fail = (m: string): never => { throw new DecodeError(format, `transparency${m}`); };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(' must be an object with index, proof and checkpoint');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['index', 'proof', 'checkpoint', 'tag'].includes(k)) fail(`: unknown field ${JSON.stringify(k)}`);
  if (typeof o.index !== 'number' || !Number.isSafeInteger(o.index) || o.index < 0) fail('.index must be a non-negative integer');
  if (!Array.isArray(o.proof)) fail('.proof must be a list of base64 SHA-256 hashes');
  const list = o.proof as unknown[];
  if (list.length > MAX_PROOF_HASHES) fail(`.proof holds ${list.length} hashes, at most ${MAX_PROOF_HASHES} are read`);
  const proof = list.map((p, i) => {
    const b = typeof p === 'string' ? Buffer.from(p, 'base64') : undefined;
    if (!b || b.toString('base64') !== p || b.length !== HASH_SIZE) fail(`.proof[${i}] is not a base64 32-byte hash`);
    return b!;
  });
  if (typeof o.checkpoint !== 'string' || o.checkpoint.length > MAX_CHECKPOINT_CHARS) fail(`.checkpoint must be a signed note of at most ${MAX_CHECKPOINT_CHARS} characters`);
  const checkpoint = o.checkpoint as string;
  let tag: Buffer | undefined;
  if (o.tag !== undefined) {
    tag = typeof o.tag === 'string' ? Buffer.from(o.tag, 'base64') : undefined;
    if (!tag || tag.toString('base64') !== o.tag || tag.length !== TAG_BYTES) fail(`.tag is not a base64 ${TAG_BYTES}-byte card tag`);
  }
  try {
    const cp = decodeSignedCheckpoint(checkpoint).checkpoint;
    if ((o.index as number) >= cp.size) fail(`.index ${o.index} is not in the checkpoint's tree of size ${cp.size}`);
  } catch (err) {
    if (err instanceof DecodeError && !err.message.startsWith(`${format}:`)) fail(`.checkpoint: ${err.message}`);
    throw err;
  }
  return { index: o.index as number, proof, checkpoint, ...(tag ? { tag } : {}) };
}

export interface LogTrust {
  readonly logKey: Vkey;
  readonly witnesses?: readonly Vkey[];
  /** Cosignatures required from `witnesses` (k of n); default all of them. */
  readonly quorum?: number;
}

export interface LogCheck {
  readonly name: 'log-checkpoint' | 'log-inclusion' | 'log-witnesses';
  readonly ok: boolean;
  readonly detail: string;
}

export function transparencyChecks(leaf: { transactionId: number; package: Uint8Array }, t: TransparencyProof | undefined, trust: LogTrust): LogCheck[] {
  const out: LogCheck[] = [];
  const log = ed25519NoteVerifier(trust.logKey);
  const logName = `${trust.logKey.name}+${hex8(trust.logKey.keyId)}`;
  if (!t) {
    out.push({ name: 'log-inclusion', ok: false, detail: `the bundle carries no inclusion proof in log ${logName}: add one with \`qtm log prove\`` });
    return out;
  }
  let cp;
  try {
    cp = openCheckpoint(t.checkpoint, log).checkpoint;
    const others = decodeSignedCheckpoint(t.checkpoint).note.signatures.length - 1;
    const which = trust.witnesses?.length
      ? ''
      : others === 0
        ? ' (log-signed only, no witness cosignature: `qtm log prove --witness` moves the proof to a witnessed checkpoint)'
        : ` (with ${others} other signature${others === 1 ? '' : 's'}, not checked: give --witness KEY to count witnesses)`;
    out.push({ name: 'log-checkpoint', ok: true, detail: `checkpoint of ${cp.origin} at size ${cp.size} is signed by log key ${logName}${which}` });
  } catch (err) {
    out.push({ name: 'log-checkpoint', ok: false, detail: `the checkpoint is not the log's: ${(err as Error).message}` });
    return out;
  }
  try {
    verifyInclusion(t.index, cp.size, leafHash(encodeEntry({ ...leaf, ...(t.tag ? { tag: t.tag } : {}) })), t.proof, cp.root);
    out.push({ name: 'log-inclusion', ok: true, detail: `transaction ${leaf.transactionId} is leaf ${t.index} of the log's tree of size ${cp.size}${t.tag ? ' (a card-tagged entry)' : ''}` });
  } catch (err) {
    out.push({ name: 'log-inclusion', ok: false, detail: `transaction ${leaf.transactionId} is not proven in the log: ${(err as Error).message}` });
  }
  if (trust.witnesses?.length) out.push(witnessCheck(t.checkpoint, trust.witnesses, trust.quorum ?? trust.witnesses.length));
  return out;
}

/** k-of-n witness cosignatures (cosignature/v1) on a checkpoint. */
export function witnessCheck(checkpoint: string, witnesses: readonly Vkey[], quorum: number): LogCheck {
  const note = decodeSignedCheckpoint(checkpoint).note;
  const good: string[] = [];
  const bad: string[] = [];
  for (const w of witnesses) {
    const v: NoteVerifier = cosignatureVerifier(w, { maxFuture: 600 });
    try {
      verifyNote(note, [v]);
      good.push(w.name);
    } catch (err) {
      if (/invalid signature/.test((err as Error).message)) bad.push(w.name);
    }
  }
  const ok = good.length >= quorum && bad.length === 0;
  const detail = bad.length
    ? `cosignature by ${bad.join(', ')} does not verify`
    : `${good.length} of ${witnesses.length} witnesses cosigned the checkpoint (${quorum} required)${good.length ? `: ${good.join(', ')}` : ''}${good.length < quorum ? '; `qtm log prove --witness` moves the proof to a checkpoint they cosigned' : ''}`;
  return { name: 'log-witnesses', ok, detail };
}
