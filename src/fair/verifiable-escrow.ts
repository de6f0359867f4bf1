/**
 * Verifiable escrow of a card's RSA PKCS#1 v1.5 signature Y to a trusted third party (issue 6,
 * patent figure 3 block 305; docs/FAIR-EXCHANGE.md has the construction and why it is sound).
 * Cut and choose, made non-interactive with Fiat-Shamir: Y is split k times as Y = r_i * s_i mod
 * N, each half is OAEP-encrypted to the TTP under the transaction's label, u_i = r_i^e is public,
 * and a hash over everything chooses which half of each pair is opened. The verifier learns
 * nothing of Y (an opened r_i or s_i alone is uniform) but is sure, up to 2^-k, that the TTP can
 * recover Y from an unopened pair.
 */
import { createHash, randomBytes, verify as verifySignature, type KeyObject } from 'node:crypto';
import { spkiDer } from '../crypto/keys.js';
import { decodeEscrow, encodeEscrow, type EscrowPair } from './escrow-format.js';
import { OAEP_SEED_LENGTH, oaepDecrypt, oaepEncryptWithSeed, oaepKey } from './oaep.js';
import { emsaPkcs1v15Sha256, invMod, mulMod, powE, rsaPublic, type RsaPublic } from './rsa-math.js';
import { toBigInt, toBytes } from '../crypto/integers.js';

export const DEFAULT_PAIRS = 128;
/** Fewer pairs than this would let a cheater pass with a probability worth trying for. */
export const MIN_PAIRS = 128;
const DOMAIN = Buffer.from('qtm verifiable escrow v1\0');

export interface EscrowContext {
  /** The card's public key: the signature's verification key. */
  readonly cardKey: KeyObject;
  /** The TTP's RSA-OAEP key (3072 bits or more: a 2048-bit value must fit under OAEP-SHA-256). */
  readonly ttpKey: KeyObject;
  /** Binds the escrow to one transaction (transaction ID, first message hash, parties, deadline). */
  readonly label: Uint8Array;
  /** The bytes the card signed (the pre-QTM package). */
  readonly message: Uint8Array;
}

/** Fiat-Shamir: which half of each pair is opened (exported so tests can play a cheater). */
export function challengeBits(ctx: EscrowContext, em: Buffer, pairs: readonly Pick<EscrowPair, 'u' | 'cR' | 'cS'>[]): number[] {
  const h = createHash('sha256').update(DOMAIN);
  const field = (b: Uint8Array) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    h.update(len).update(b);
  };
  field(ctx.label);
  field(spkiDer(ctx.cardKey));
  field(spkiDer(ctx.ttpKey));
  field(em);
  for (const p of pairs) {
    field(p.u);
    field(p.cR);
    field(p.cS);
  }
  const digest = h.digest();
  return pairs.map((_, i) => (digest[i >> 3]! >> (7 - (i & 7))) & 1);
}

/** A uniform element of Z_N* (rejection sampling on k+8 random bytes keeps the bias below 2^-64). */
function randomUnit(card: RsaPublic): { r: bigint; rInverse: bigint } {
  for (;;) {
    const r = toBigInt(randomBytes(card.k + 8)) % card.n;
    if (r < 2n) continue;
    const rInverse = invMod(r, card.n);
    if (rInverse !== undefined) return { r, rInverse };
  }
}

export function makeVerifiableEscrow(ctx: EscrowContext & { readonly signature: Uint8Array; readonly pairs?: number }): Buffer {
  const card = rsaPublic(ctx.cardKey);
  const ttp = oaepKey(ctx.ttpKey);
  const y = toBigInt(ctx.signature);
  if (!verifySignature('sha256', ctx.message, ctx.cardKey, ctx.signature)) throw new Error('the signature to escrow does not verify');
  const count = ctx.pairs ?? DEFAULT_PAIRS;
  const secrets = Array.from({ length: count }, () => {
    const { r, rInverse } = randomUnit(card);
    const s = mulMod(y, rInverse, card.n);
    const seedR = randomBytes(OAEP_SEED_LENGTH);
    const seedS = randomBytes(OAEP_SEED_LENGTH);
    const rBytes = toBytes(r, card.k);
    const sBytes = toBytes(s, card.k);
    return {
      rBytes, sBytes, seedR, seedS,
      u: toBytes(powE(card, r), card.k),
      cR: oaepEncryptWithSeed(ttp, rBytes, ctx.label, seedR),
      cS: oaepEncryptWithSeed(ttp, sBytes, ctx.label, seedS),
    };
  });
  const em = emsaPkcs1v15Sha256(ctx.message, card.k);
  const bits = challengeBits(ctx, em, secrets);
  return encodeEscrow({
    modulusLength: card.k,
    ciphertextLength: ttp.forgeKey.n.bitLength() / 8,
    pairs: secrets.map((p, i) => ({
      u: p.u, cR: p.cR, cS: p.cS,
      opened: bits[i] ? p.sBytes : p.rBytes,
      seed: bits[i] ? p.seedS : p.seedR,
    })),
  });
}

/** Every reason the escrow is not a sound escrow of a signature on ctx.message; [] when it is. */
export function escrowProblems(escrow: Uint8Array, ctx: EscrowContext): string[] {
  let decoded;
  try {
    decoded = decodeEscrow(escrow);
  } catch (err) {
    return [(err as Error).message];
  }
  const card = rsaPublic(ctx.cardKey);
  const ttp = oaepKey(ctx.ttpKey);
  if (decoded.modulusLength !== card.k) return [`the escrow is for a ${decoded.modulusLength * 8}-bit key, the card's is ${card.k * 8}-bit`];
  if (decoded.ciphertextLength * 8 !== ttp.forgeKey.n.bitLength()) return ['the escrow is not encrypted to this TTP key'];
  if (decoded.pairs.length < MIN_PAIRS) return [`${decoded.pairs.length} pairs; at least ${MIN_PAIRS} are needed`];
  const em = toBigInt(emsaPkcs1v15Sha256(ctx.message, card.k));
  const bits = challengeBits(ctx, toBytes(em, card.k), decoded.pairs);
  const problems: string[] = [];
  decoded.pairs.forEach((p, i) => {
    const value = toBigInt(p.opened);
    const u = toBigInt(p.u);
    if (value < 1n || value >= card.n || u < 1n || u >= card.n) {
      problems.push(`pair ${i}: value out of range`);
      return;
    }
    const again = oaepEncryptWithSeed(ttp, p.opened, ctx.label, p.seed);
    if (!again.equals(bits[i] ? p.cS : p.cR)) {
      problems.push(`pair ${i}: the opened ${bits[i] ? 's' : 'r'} is not what was encrypted (wrong value, seed or label)`);
      return;
    }
    const ok = bits[i] ? mulMod(powE(card, value), u, card.n) === em : powE(card, value) === u;
    if (!ok) problems.push(`pair ${i}: the opened ${bits[i] ? 's does not complete the signature' : 'r does not match u'}`);
  });
  return problems;
}

/**
 * The TTP's side: decrypt the pairs and return the first r*s that is a valid signature on the
 * message, or undefined if none is (which a verified escrow makes all but impossible).
 */
export function extractSignature(escrow: Uint8Array, ctx: EscrowContext & { readonly ttpPrivateKey: KeyObject }): Buffer | undefined {
  const decoded = decodeEscrow(escrow);
  const card = rsaPublic(ctx.cardKey);
  for (const p of decoded.pairs) {
    const r = oaepDecrypt(ctx.ttpPrivateKey, p.cR, ctx.label);
    const s = oaepDecrypt(ctx.ttpPrivateKey, p.cS, ctx.label);
    if (!r || !s || r.length !== card.k || s.length !== card.k) continue;
    const y = toBytes(mulMod(toBigInt(r), toBigInt(s), card.n), card.k);
    if (verifySignature('sha256', ctx.message, ctx.cardKey, y)) return y;
  }
  return undefined;
}
