/**
 * What a verification worker thread needs to build the same VerifyOptions as the main thread: the
 * options in a form that crosses postMessage (PEM text, DER bytes, vkey text), rebuilt in the
 * worker by the same decoders. And what a worker answers per bundle.
 */
import { X509Certificate } from 'node:crypto';
import { decodeCrl } from '../warrant/crl.js';
import { decodeVkey, encodeVkey, SIG_TYPE_COSIGNATURE_V1 } from '../tlog/note.js';
import type { FileResult } from './verify-files.js';
import type { RunCounts } from './run-state.js';
import type { VerifyOptions } from './verify-bundle.js';

/**
 * How much of each result the main thread needs: a JSON line; a one-line report; only those not
 * valid (-q); or every check (-v).
 */
export type ReportDetail = 'json' | 'line' | 'quiet' | 'verbose';

export interface WorkerSetup {
  readonly anchors: string[];
  readonly content?: Uint8Array;
  readonly at?: number;
  readonly revocationsDer?: Uint8Array;
  readonly clockToleranceSeconds?: number;
  readonly log?: { readonly logKey: string; readonly witnesses?: string[]; readonly quorum?: number };
  readonly detail: ReportDetail;
  /** --debug: an internal error's stack travels with its result. */
  readonly debug: boolean;
}

export function setupOf(o: VerifyOptions, detail: ReportDetail, debug: boolean): WorkerSetup {
  return {
    anchors: o.trustAnchors.map((a) => a.toString()),
    ...(o.content ? { content: o.content } : {}),
    ...(o.at ? { at: o.at.getTime() } : {}),
    ...(o.revocations ? { revocationsDer: o.revocations.der } : {}),
    ...(o.clockToleranceSeconds !== undefined ? { clockToleranceSeconds: o.clockToleranceSeconds } : {}),
    ...(o.log ? { log: { logKey: encodeVkey(o.log.logKey), ...(o.log.witnesses ? { witnesses: o.log.witnesses.map((w) => encodeVkey(w)) } : {}), ...(o.log.quorum !== undefined ? { quorum: o.log.quorum } : {}) } } : {}),
    detail,
    debug,
  };
}

export function optionsOf(s: WorkerSetup): VerifyOptions {
  return {
    trustAnchors: s.anchors.map((pem) => new X509Certificate(pem)),
    ...(s.content ? { content: Buffer.from(s.content) } : {}),
    ...(s.at !== undefined ? { at: new Date(s.at) } : {}),
    ...(s.revocationsDer ? { revocations: decodeCrl(Buffer.from(s.revocationsDer)) } : {}),
    ...(s.clockToleranceSeconds !== undefined ? { clockToleranceSeconds: s.clockToleranceSeconds } : {}),
    ...(s.log ? {
      log: {
        logKey: decodeVkey(s.log.logKey),
        ...(s.log.witnesses ? { witnesses: s.log.witnesses.map((w) => decodeVkey(w, [SIG_TYPE_COSIGNATURE_V1])) } : {}),
        ...(s.log.quorum !== undefined ? { quorum: s.log.quorum } : {}),
      },
    } : {}),
  };
}

/** One bundle to verify: its place in the walk order, its path, and its text when read by the main thread (stdin). */
export interface WorkItem {
  readonly index: number;
  readonly path: string;
  readonly text?: string | { error: string };
}

/** What a worker answers for one batch: bundles first..first+count-1 of the walk order. */
export interface BatchResult {
  readonly first: number;
  readonly count: number;
  /** The path of the batch's last bundle: the state file's position after it. */
  readonly last: string;
  readonly counts: RunCounts;
  /** detail 'json': the batch's JSON lines, each ending in a newline, in UTF-8. */
  readonly text?: Uint8Array;
  /** Other details: the results the text report prints, in order. */
  readonly results?: FileResult[];
  /** --debug: the stacks of internal errors met in the batch. */
  readonly stacks?: string[];
}
