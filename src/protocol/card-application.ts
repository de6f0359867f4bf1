/**
 * The qtm card application's identity, shared by the card, its host client, the SAM (the AID is
 * part of every diversification input, NXP AN10922) and the server (the authentication prefix).
 * docs/CARD.md is the full command table; ../card/app-spec.ts the rest of its encodings.
 */
export const QTM_AID = Buffer.from('F051544D010001', 'hex'); // F0 (proprietary) "QTM" 01 00 01

/** Domain separation: an authentication signature can never pass for a package signature. */
export const AUTH_PREFIX = Buffer.from('QTM-AUTH', 'ascii');
