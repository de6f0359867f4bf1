/**
 * One bundle of an archive run, verified in a worker thread and turned into what the main thread
 * reports: a JSON line, or the result without the checks a one-line report does not print.
 */
import { readBundleFile, verifyText, type FileResult } from './verify-files.js';
import type { VerifyOptions } from './verify-bundle.js';
import type { ItemResult, WorkerSetup, WorkItem } from './worker-setup.js';

export function verifyItem(item: WorkItem, options: VerifyOptions, setup: Pick<WorkerSetup, 'detail' | 'debug'>): ItemResult {
  let r: FileResult;
  let internal = false;
  let stack: string | undefined;
  try {
    r = verifyText(item.path, item.text ?? readBundleFile(item.path), options);
  } catch (err) {
    // A bug met on one bundle must not hide the verdicts on the others: report it, go on, exit 3.
    internal = true;
    if (setup.debug) stack = (err as Error)?.stack ?? String(err);
    r = { file: item.path, status: 'unusable', error: `internal error: ${(err as Error)?.message ?? String(err)} (run again with --debug and report the output)` };
  }
  const legacy = r.status !== 'unusable' && Boolean(r.legacy);
  const base = { index: item.index, file: item.path, status: r.status, legacy, internal, ...(stack ? { stack } : {}) };
  if (setup.detail === 'json') return { ...base, json: JSON.stringify(r) };
  if (setup.detail === 'line' && r.status !== 'unusable') {
    const { checks: _checks, ...rest } = r;
    return { ...base, result: { ...rest, checks: [] } };
  }
  return { ...base, result: r };
}
