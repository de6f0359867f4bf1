/**
 * The one strict reading of JSON that qtm accepts from outside (proof bundles, every HTTP body
 * the server, the TTP and the client receive), and the one rule for decoding objects from it.
 *
 * JSON.parse keeps the last of two equal keys, and a reviver never sees the first one, so a
 * reader that kept the first would see other data than qtm checked. `parseStrictJson` first lets
 * JSON.parse validate the text (V8's parser is iterative: no recursion per nesting level), then
 * makes one linear pass over the now known-valid text that tracks the keys of each open object
 * on an explicit stack (no recursion) and refuses:
 *   - a key that occurs twice in one object (compared after unescaping: "a" and "\u0061" are
 *     the same key), naming the key and the object's path;
 *   - nesting deeper than MAX_JSON_DEPTH levels (qtm's formats use at most 4).
 * Each character is looked at once; a key with escapes is decoded once. Time and memory are
 * linear in the text.
 *
 * Objects decoded from it follow one rule (`checkFields`): only own properties count (a
 * field named "constructor", "toString" or "__proto__" is just an unknown field), and every key
 * that the format does not name is refused, with its full path ("certificates.partyC").
 */
import { DecodeError } from '../errors.js';

/** Deepest nesting of objects and arrays accepted. */
export const MAX_JSON_DEPTH = 32;

export type JsonProblem =
  | { readonly kind: 'duplicate'; readonly key: string; readonly path: string }
  | { readonly kind: 'depth'; readonly path: string };

interface Frame {
  /** Keys seen so far, for an object; undefined for an array. */
  readonly keys: Set<string> | undefined;
  readonly path: string;
  /** Index of the current element, for an array. */
  index: number;
}

function child(parent: Frame | undefined, key: string | undefined): string {
  if (!parent) return '';
  if (parent.keys) return parent.path ? `${parent.path}.${key}` : key!;
  return `${parent.path}[${parent.index}]`;
}

/**
 * The first duplicate key (in document order) or the first container deeper than the cap, in
 * text that JSON.parse accepts; undefined when there is none. Not meaningful on invalid JSON.
 */
export function findJsonProblem(text: string, maxDepth = MAX_JSON_DEPTH): JsonProblem | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  let lastKey: string | undefined;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const path = child(parent, lastKey);
      if (stack.length >= maxDepth) return { kind: 'depth', path };
      stack.push({ keys: c === 0x7b ? new Set() : undefined, path, index: 0 });
      expectKey = c === 0x7b;
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
      i++;
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1]!;
      if (top.keys) expectKey = true;
      else top.index++;
      i++;
    } else if (c === 0x22 /* " */) {
      // The closing quote is the next one after an even run of backslashes (an odd run escapes it).
      // indexOf finds candidates natively: base64 and PEM values are most of a bundle's text. Each
      // backslash is looked at again at most once, by the quote right after its run: still linear.
      let j = text.indexOf('"', i + 1);
      for (;;) {
        if (j < 0) return undefined; // unterminated: not JSON, which the caller has refused already
        let k = j - 1;
        while (k > i && text.charCodeAt(k) === 0x5c /* \ */) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (expectKey) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
        const top = stack[stack.length - 1]!;
        if (top.keys!.has(key)) return { kind: 'duplicate', key, path: top.path };
        top.keys!.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j + 1;
    } else {
      i++; // white space, ':', numbers, true/false/null
    }
  }
  return undefined;
}

/** JSON.parse, refusing duplicate keys and nesting over MAX_JSON_DEPTH, as a DecodeError of `format`. */
export function parseStrictJson(text: string, format: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DecodeError(format, `not JSON (${(err as Error).message})`);
  }
  const problem = findJsonProblem(text);
  if (problem?.kind === 'duplicate') {
    throw new DecodeError(format, `duplicate key ${quoteName(problem.key)} in ${problem.path ? quoteName(problem.path) : 'the top-level object'} (each key may appear once)`);
  }
  if (problem?.kind === 'depth') {
    throw new DecodeError(format, `nested deeper than ${MAX_JSON_DEPTH} levels at ${quoteName(problem.path)}`);
  }
  return value;
}

/**
 * A name from the input, for an error message: quoted and escaped as JSON (so a key holding a
 * line break or a quote stays one readable line), and cut after 80 characters (an attacker's
 * 100 KB key is not echoed back).
 */
export function quoteName(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An own property's value, or undefined: never a value inherited from Object.prototype. */
export function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * The strict decoding rule for one object: `v` must be a JSON object whose own keys are all
 * in `known` (checked as own properties of nothing: a plain list, so "constructor" or
 * "__proto__" are unknown like any other name). `path` names the object ("" at the top, else
 * "certificates"); the error names the full path of the first unknown field.
 */
export function checkFields(format: string, v: unknown, known: readonly string[], path: string): Record<string, unknown> {
  if (!isJsonObject(v)) throw new DecodeError(format, `${path ? `"${path}"` : 'the top level'} must be a JSON object`);
  for (const key of Object.keys(v)) {
    if (!known.includes(key)) throw new DecodeError(format, `unknown field ${quoteName(path ? `${path}.${key}` : key)}`);
  }
  return v;
}
