/**
 * A batch of bundles of an archive run, verified in a worker thread and turned into what the main
 * thread reports: the batch's counts and, by the report's detail, its JSON lines as one string
 * (one copy through postMessage, not one object per bundle) or the results the text report prints.
 */
import { readBundleFile, verifyText, type FileResult } from './verify-files.js';
import type { VerifyOptions } from './verify-bundle.js';
import { emptyCounts } from './run-state.js';
import type { BatchResult, WorkerSetup, WorkItem } from './worker-setup.js';

function verifyOne(item: WorkItem, options: VerifyOptions, debug: boolean): { r: FileResult; internal: boolean; stack?: string } {
  try {
    return { r: verifyText(item.path, item.text ?? readBundleFile(item.path), options), internal: false };
  } catch (err) {
    // A bug met on one bundle must not hide the verdicts on the others: report it, go on, exit 3.
    return {
      r: { file: item.path, status: 'unusable', error: `internal error: ${(err as Error)?.message ?? String(err)} (run again with --debug and report the output)` },
      internal: true,
      ...(debug ? { stack: (err as Error)?.stack ?? String(err) } : {}),
    };
  }
}

const encoder = new TextEncoder();

/** `items` are consecutive in the walk order. */
export function verifyBatch(items: readonly WorkItem[], options: VerifyOptions, setup: Pick<WorkerSetup, 'detail' | 'debug'>): BatchResult {
  const counts = emptyCounts();
  let text = '';
  const results: FileResult[] = [];
  const stacks: string[] = [];
  for (const item of items) {
    const { r, internal, stack } = verifyOne(item, options, setup.debug);
    counts[r.status]++;
    if (r.status !== 'unusable' && r.legacy) counts.legacy++;
    if (internal) counts.internal++;
    if (stack) stacks.push(stack);
    if (setup.detail === 'json') {
      text += `${JSON.stringify(r)}\n`;
    } else if (setup.detail === 'verbose' || r.status === 'unusable') {
      results.push(r);
    } else if (setup.detail === 'line' || r.status !== 'valid') {
      // A one-line report prints no check of a valid bundle, and only the failures of an invalid one.
      results.push({ ...r, checks: [] });
    }
  }
  return {
    first: items[0]!.index, count: items.length, last: items[items.length - 1]!.path, counts,
    // UTF-8 bytes in an ArrayBuffer of their own: transferred to the main thread, not copied, and
    // written to stdout as they are.
    ...(setup.detail === 'json' ? { text: encoder.encode(text) } : { results }),
    ...(stacks.length ? { stacks } : {}),
  };
}
