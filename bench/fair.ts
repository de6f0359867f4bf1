/** Issue 6's escrow figures: size, time to make and to verify a verifiable escrow, TTP extraction. */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { spkiDer } from '../src/crypto/keys.js';
import { transactionLabel } from '../src/fair/label.js';
import { escrowProblems, extractSignature, makeVerifiableEscrow } from '../src/fair/verifiable-escrow.js';
import { median } from './stats.js';

export async function benchFair(): Promise<void> {
  const card = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ttp = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const header = Buffer.alloc(169, 7);
  const signature = sign('sha256', header, card.privateKey);
  const label = transactionLabel({ header, ttpFingerprint: createHash('sha256').update(spkiDer(ttp.publicKey)).digest(), deadline: 1_800_000_000 });
  const ctx = { cardKey: card.publicKey, ttpKey: ttp.publicKey, label, message: header };
  const make: number[] = [];
  const check: number[] = [];
  const extract: number[] = [];
  let size = 0;
  for (let i = 0; i < 10; i++) {
    let t = performance.now();
    const e = makeVerifiableEscrow({ ...ctx, signature });
    make.push(performance.now() - t);
    size = e.length;
    t = performance.now();
    if (escrowProblems(e, ctx).length) throw new Error('an honest escrow failed to verify');
    check.push(performance.now() - t);
    t = performance.now();
    if (!extractSignature(e, { ...ctx, ttpPrivateKey: ttp.privateKey })) throw new Error('extraction failed');
    extract.push(performance.now() - t);
  }
  console.log(`verifiable escrow of an RSA-2048 card signature to an RSA-3072 TTP, 128 pairs: ${size.toLocaleString('en')} bytes`);
  console.log(`  make ${median(make).toFixed(0)} ms, verify ${median(check).toFixed(1)} ms, TTP extraction ${median(extract).toFixed(1)} ms (medians of 10)`);
}
