/**
 * Reading qtm's own local files (SAM keystore, ca.json, virtual card files, the archive index):
 * a file that is missing, empty, truncated or has a field of the wrong type is exit 2 with one
 * line naming the file and what is wrong (E_FILE_DAMAGED), never an exception from deep inside.
 * The JSON is strict like every other qtm input (src/protocol/strict-json.ts).
 */
import { readFileSync } from 'node:fs';
import { DecodeError, InputError } from '../errors.js';
import { isJsonObject, parseStrictJson } from '../protocol/strict-json.js';

export class DamagedFileError extends InputError {
  constructor(readonly file: string, what: string, problem: string, hint?: string) {
    super(`${file}: ${what} ${problem}`, hint ?? 'restore it from a backup, or make a new one', 'E_FILE_DAMAGED');
  }
}

/** The file's bytes; a missing or unreadable file is an InputError naming it. */
export function readLocalFile(file: string, what: string, hint?: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read the ${what}${code ? ` (${code})` : ''}`, hint, 'E_INPUT');
  }
}

/** A JSON object from a local file, or a DamagedFileError saying why not. */
export function readJsonObject(file: string, what: string, hint?: string): Record<string, unknown> {
  return parseJsonObject(readLocalFile(file, what, hint).toString('utf8'), file, what, hint);
}

/** `text`, read from `file`, as a JSON object, or a DamagedFileError saying why not. */
export function parseJsonObject(text: string, file: string, what: string, hint?: string): Record<string, unknown> {
  if (text.length === 0) throw new DamagedFileError(file, what, 'is empty', hint);
  let json: unknown;
  try {
    json = parseStrictJson(text, what);
  } catch (err) {
    if (err instanceof DecodeError) throw new DamagedFileError(file, what, `is not valid JSON (truncated or damaged): ${err.message.replace(`${what}: `, '')}`, hint);
    throw err;
  }
  if (!isJsonObject(json)) throw new DamagedFileError(file, what, 'is not a JSON object', hint);
  return json;
}

type Kind = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'base64' | 'hex';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isKind(v: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'string': return typeof v === 'string';
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    case 'object': return isJsonObject(v);
    case 'array': return Array.isArray(v);
    case 'base64': return typeof v === 'string' && BASE64.test(v);
    case 'hex': return typeof v === 'string' && /^(?:[0-9A-Fa-f]{2})*$/.test(v);
  }
}

/**
 * Checks each named field's type (`kind?` for an optional one) in `o`, at `path` for the message;
 * a DamagedFileError naming the first field that is wrong.
 */
export function checkFieldTypes(file: string, what: string, o: Record<string, unknown>, fields: Record<string, `${Kind}` | `${Kind}?`>, path = '', hint?: string): void {
  for (const [name, spec] of Object.entries(fields)) {
    const optional = spec.endsWith('?');
    const kind = spec.replace('?', '') as Kind;
    const v = Object.prototype.hasOwnProperty.call(o, name) ? o[name] : undefined;
    if (v === undefined && optional) continue;
    if (!isKind(v, kind)) throw new DamagedFileError(file, what, `field "${path}${name}" ${v === undefined ? 'is missing' : `must be ${kind === 'array' || kind === 'object' ? `an ${kind}` : kind === 'hex' || kind === 'base64' ? `${kind} text` : `a ${kind}`}, not ${JSON.stringify(v)?.slice(0, 40)}`}`, hint);
  }
}
