/**
 * Linear checks for the text encodings of binary values in qtm's JSON (no regular expression:
 * a backtracking one overflowed the stack on a 6 MiB field). Each looks at every character
 * once and allocates at most one decoded copy.
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

function isPemBodyChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) // A-Z a-z 0-9
    || c === 0x2b || c === 0x2f || c === 0x3d || c === 0x0d || c === 0x0a; // + / = CR LF
}

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
  for (let j = i; j < bodyEnd; j++) if (!isPemBodyChar(s.charCodeAt(j))) return false;
  return true;
}
