/**
 * What the card signs to log in (SPEC 7, claim 9): a TLS keying-material exporter value of this
 * connection (RFC 5705 / RFC 8446 7.5, with this label and length) and the server's nonce, after
 * the card's own AUTH_PREFIX. Shared by the client that asks the card and the server that checks.
 */
export const EXPORTER_LABEL = 'EXPORTER-qtm-card-authentication';
export const EXPORTER_LENGTH = 32;

/** The bytes the card signs (after its own "QTM-AUTH" prefix). */
export function authenticationData(exporter: Buffer, nonce: Buffer): Buffer {
  return Buffer.concat([exporter, nonce]);
}
