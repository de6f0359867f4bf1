/**
 * Linear checks for the text encodings of binary values in qtm's JSON (no backtracking regular
 * expression: one overflowed the stack on a 6 MiB field; a search for one character class is
 * fine). Each looks at every character once and allocates at most one decoded copy.
 */

/**
 * Standard base64 (RFC 4648 section 4) with padding, in its canonical form: the exact text that
 * encoding the decoded bytes gives back (no line breaks, no white space, unused bits zero). So
 * one value has one spelling. Returns the bytes, or undefined when `s` is not such text.
 */
export function decodeCanonicalBase64(s: string): Buffer | undefined {
  if (s.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(s, 'base64');
  // Buffer.from skips characters outside the alphabet; re-encoding shows any that were there.
  return bytes.toString('base64') === s ? bytes : undefined;
}

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/**
 * Any one character that is not A-Z a-z 0-9 + / = CR LF. A search for a single character class
 * has no quantifier, so nothing to backtrack: linear in the text and native speed (a bundle has
 * three PEMs to check; the per-character loop it replaces was most of a bundle's decoding).
 */
const NOT_PEM_BODY = /[^A-Za-z0-9+/=\r\n]/;

/**
 * One PEM certificate: the BEGIN line, a line break (LF or CRLF), one or more base64 body
 * characters and line breaks, the END line, at most one final line break, nothing else. Whether
 * the DER inside parses is for X509Certificate to say.
 */
export function isPemCertificate(s: string): boolean {
  if (!s.startsWith(BEGIN)) return false;
  let i = BEGIN.length;
  if (s.charCodeAt(i) === 0x0d) i++;
  if (s.charCodeAt(i) !== 0x0a) return false;
  i++;
  let end = s.length;
  if (s.charCodeAt(end - 1) === 0x0a) end--;
  if (s.charCodeAt(end - 1) === 0x0d) end--;
  if (end - i <= END.length || !s.startsWith(END, end - END.length)) return false;
  const bodyEnd = end - END.length;
  return !NOT_PEM_BODY.test(s.slice(i, bodyEnd));
}
