/**
 * Batch personalisation of virtual cards: one CSV row, one card file. Each card is issued into
 * a temporary file that is renamed into place only when the card is complete, so one failure
 * neither stops the batch nor leaves a half-personalised card where a good one is expected.
 */
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { CardClient } from './client.js';
import { issueCard, type IssueOptions } from './issue.js';
import { InProcessTransport } from './transports/in-process.js';
import { FileStorage } from './virtual/storage.js';
import { InputError } from '../errors.js';

export interface BatchRow {
  readonly line: number;
  readonly holder: string;
}

export interface BatchResult {
  readonly line: number;
  readonly holder: string;
  readonly status: 'issued' | 'failed';
  readonly serial?: string;
  readonly cardFile?: string;
  readonly certificateSerial?: string;
  readonly error?: string;
}

/** CSV with a header row; the `holder` column holds a distinguished name (quote it: it has commas). */
export function readBatchCsv(path: string): BatchRow[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new InputError(`cannot read ${path}`);
  }
  let rows: Record<string, string>[];
  try {
    rows = parse(text, { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (err) {
    throw new InputError(`${path} is not valid CSV: ${(err as Error).message}`);
  }
  if (rows.length === 0) throw new InputError(`${path} has no rows`, 'the first line is the header: holder');
  if (!('holder' in rows[0]!)) throw new InputError(`${path} has no "holder" column`, 'the first line is the header: holder');
  return rows.map((r, i) => ({ line: i + 2, holder: r.holder ?? '' }));
}

export async function issueBatch(
  rows: readonly BatchRow[],
  outDir: string,
  opts: Omit<IssueOptions, 'holder'>,
  onProgress: (done: number, result: BatchResult) => void,
): Promise<BatchResult[]> {
  const results: BatchResult[] = [];
  for (const row of rows) {
    const tmp = join(outDir, `.issuing-${process.pid}-${row.line}.card.json`);
    let result: BatchResult;
    try {
      if (!row.holder) throw new InputError('empty holder');
      const storage = FileStorage.create(tmp, opts.slots);
      const client = new CardClient(new InProcessTransport(storage));
      const issued = await issueCard(client, { ...opts, holder: row.holder });
      const cardFile = join(outDir, `${issued.serial}.card.json`);
      renameSync(tmp, cardFile);
      result = { line: row.line, holder: row.holder, status: 'issued', serial: issued.serial, cardFile, certificateSerial: issued.certificate.serialNumber };
    } catch (err) {
      rmSync(tmp, { force: true });
      result = { line: row.line, holder: row.holder, status: 'failed', error: (err as Error).message };
    }
    results.push(result);
    onProgress(results.length, result);
  }
  return results;
}

export function batchReportCsv(results: readonly BatchResult[]): string {
  const esc = (v: string | number | undefined) => {
    const s = String(v ?? '');
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const header = 'line,holder,status,serial,card_file,certificate_serial,error';
  return [header, ...results.map((r) => [r.line, r.holder, r.status, r.serial, r.cardFile, r.certificateSerial, r.error].map(esc).join(','))].join('\n') + '\n';
}
