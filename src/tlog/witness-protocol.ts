/**
 * C2SP tlog-witness v1.0.0 (pinned): the add-checkpoint request body (`old <size>\n`, up to 63
 * base64 consistency-proof lines, an empty line, then the signed checkpoint) and the witness's
 * decision on it, with the spec's status codes: 404 unknown origin, 403 no trusted signature,
 * 400 old size above the checkpoint's, 409 old size not the last cosigned one (body: that size,
 * text/x.tlog.size) or another root at the same size, 422 a consistency proof that does not
 * verify, 200 with the cosignature lines. The caller persists the new head before answering,
 * atomically with the check (one witness process, one state file written by rename).
 */
import { DecodeError } from '../errors.js';
import { decodeSignedCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import type { Cosigner } from './cosignature.js';
import { HASH_SIZE } from './hash.js';
import { verifyConsistency } from './merkle.js';
import { encodeSignatureLine, ed25519NoteVerifier, verifyNote, type Vkey } from './note.js';
import type { TrustedHead } from './client-ops.js';

const FORMAT = 'add-checkpoint request';
export const MAX_PROOF_LINES = 63;

export interface AddCheckpointRequest {
  readonly oldSize: number;
  readonly proof: readonly Buffer[];
  /** The signed checkpoint as sent. */
  readonly checkpoint: string;
}

export function encodeAddCheckpoint(r: AddCheckpointRequest): string {
  if (r.proof.length > MAX_PROOF_LINES) throw new RangeError(`at most ${MAX_PROOF_LINES} proof lines`);
  return `old ${r.oldSize}\n${r.proof.map((p) => `${p.toString('base64')}\n`).join('')}\n${r.checkpoint}`;
}

export function decodeAddCheckpoint(body: string): AddCheckpointRequest & { readonly parsed: SignedCheckpoint } {
  const blank = body.indexOf('\n\n');
  if (blank < 0) throw new DecodeError(FORMAT, 'no empty line before the checkpoint');
  const head = body.slice(0, blank).split('\n');
  const m = /^old (0|[1-9][0-9]{0,15})$/.exec(head[0]!);
  if (!m || !Number.isSafeInteger(Number(m[1]))) throw new DecodeError(FORMAT, 'the first line is not "old <size>" (decimal, no leading zeroes)');
  const lines = head.slice(1);
  if (lines.length > MAX_PROOF_LINES) throw new DecodeError(FORMAT, `more than ${MAX_PROOF_LINES} consistency proof lines`);
  const proof = lines.map((l, i) => {
    const b = Buffer.from(l, 'base64');
    if (b.length !== HASH_SIZE || b.toString('base64') !== l) throw new DecodeError(FORMAT, `proof line ${i + 1} is not a base64 32-byte hash`);
    return b;
  });
  const checkpoint = body.slice(blank + 2);
  const parsed = decodeSignedCheckpoint(checkpoint);
  return { oldSize: Number(m[1]), proof, checkpoint, parsed };
}

export type AddCheckpointAnswer =
  | { readonly status: 200; readonly body: string; readonly head: TrustedHead }
  | { readonly status: 400 | 403 | 404 | 409 | 422; readonly body: string; readonly contentType: string };

/** The witness's decision; `last` is its latest cosigned head for the origin (undefined: none). */
export function addCheckpoint(req: AddCheckpointRequest & { parsed: SignedCheckpoint }, logs: readonly Vkey[], last: TrustedHead | undefined, w: Cosigner): AddCheckpointAnswer {
  const text = 'text/plain; charset=utf-8';
  const c = req.parsed.checkpoint;
  const keys = logs.filter((k) => k.name === c.origin);
  if (keys.length === 0) return { status: 404, body: `unknown log ${c.origin}\n`, contentType: text };
  try {
    verifyNote(req.parsed.note, keys.map(ed25519NoteVerifier));
  } catch (err) {
    return { status: 403, body: `${(err as Error).message}\n`, contentType: text };
  }
  if (req.oldSize > c.size) return { status: 400, body: `old size ${req.oldSize} is above the checkpoint's ${c.size}\n`, contentType: text };
  const lastSize = last?.size ?? 0;
  if (req.oldSize !== lastSize) return { status: 409, body: `${lastSize}\n`, contentType: 'text/x.tlog.size' };
  if (last && req.oldSize === c.size) {
    if (last.root !== c.root.toString('base64')) return { status: 409, body: `LOG FORKED: another root for size ${c.size}\n`, contentType: text };
  } else if (req.oldSize === 0) {
    if (req.proof.length) return { status: 422, body: 'a proof from size 0 must be empty\n', contentType: text };
  } else {
    try {
      verifyConsistency(req.oldSize, c.size, req.proof, Buffer.from(last!.root, 'base64'), c.root);
    } catch (err) {
      return { status: 422, body: `${(err as Error).message}\n`, contentType: text };
    }
  }
  const sig = Buffer.from(w.sign(req.parsed.note.text));
  return { status: 200, body: encodeSignatureLine({ name: w.name, keyId: w.keyId, sig }), head: { origin: c.origin, size: c.size, root: c.root.toString('base64') } };
}
