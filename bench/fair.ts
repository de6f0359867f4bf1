/** Issue 6's figures: escrow size, time to make and to verify one, TTP extraction, TTP requests/s. */
import { createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signBytes, spkiDer } from '../src/crypto/keys.js';
import { memoryCa } from '../src/proof/sample.js';
import { issueKeyAndCertificate } from '../src/pki/ca.js';
import { headerFor } from '../src/proof/make-proof.js';
import { encodeHeader } from '../src/protocol/qtm-package.js';
import { PROFILES } from '../src/protocol/profile.js';
import { abortRequestStatement, resolveRequestStatement, Ttp } from '../src/fair/ttp.js';
import { LowdbTtpStore } from '../src/fair/ttp-store.js';
import { startTtp } from '../src/fair/ttp-server.js';
import { TtpClient } from '../src/fair/ttp-client.js';
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

/** TTP requests/s over HTTPS: aborts of distinct transactions from 20 concurrent callers. */
export async function benchTtp(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-ttp-'));
  const ca = memoryCa();
  const id = (role: 'signer' | 'card' | 'ttp' | 'server', subject: string) => {
    const i = issueKeyAndCertificate(ca, { role, subject });
    return { ...i, certificates: [i.certificate] };
  };
  const server = id('signer', 'CN=Bench Shop');
  const card = id('card', 'CN=Bench Card,serialNumber=0101010101010101');
  const running = await startTtp({ identity: id('ttp', 'CN=Bench TTP'), tls: id('server', 'CN=localhost'), trustAnchors: [ca.certificate], storeDir: join(dir, 'ttp'), host: '127.0.0.1', port: 0, log: () => {},
    // All 20 callers are 127.0.0.1: the per-client request rate is not what is measured.
    limits: { rate: { perSecond: 1_000_000, burst: 10_000_000 } } });
  const profile = PROFILES.v2;
  const requests = Array.from({ length: 400 }, (_, i) => {
    const header = encodeHeader(headerFor({ profile, transactionId: i + 1, time: 1_790_000_000, content: Buffer.from('x'), server, partyA: server, partyB: card }));
    const exchange = { header, deadline: 1_900_000_000, serverCertificates: [server.certificate], cardCertificates: [card.certificate] };
    return { exchange, request: { kind: 'abort' as const, proof: signBytes(profile, server.privateKey, abortRequestStatement(running.ttp.label(exchange))) } };
  });
  const clients = Array.from({ length: 20 }, () => new TtpClient(running.url.replace('127.0.0.1', 'localhost'), ca.certificate.toString()));
  const t0 = performance.now();
  let next = 0;
  await Promise.all(clients.map(async (c) => {
    while (next < requests.length) {
      const r = requests[next++]!;
      if ((await c.request(r.exchange, r.request)).outcome !== 'aborted') throw new Error('abort failed');
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();
  await running.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`TTP over HTTPS, 20 concurrent callers, ${requests.length} aborts of distinct transactions (each verified, signed, fsync'd): ${(requests.length / seconds).toFixed(0)} requests/s`);
  console.log('  (the TTP is consulted only when an exchange fails; its lowdb document is rewritten per decision, so this falls as records accumulate)');
}

/**
 * Issue 17: what a TTP request costs its event loop. A request not signed by a server stops at
 * the one signature check (roles and fields cost no signature); a server-signed resolve costs
 * the public escrow check, then a decryption in the worker thread.
 */
export async function benchTtpRequestCost(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-ttp-cost-'));
  const ca = memoryCa();
  const id = (role: 'signer' | 'card' | 'ttp', subject: string) => {
    const i = issueKeyAndCertificate(ca, { role, subject });
    return { ...i, certificates: [i.certificate] };
  };
  const server = id('signer', 'CN=Bench Shop');
  const card = id('card', 'CN=Bench Card,serialNumber=0101010101010101');
  const ttpId = id('ttp', 'CN=Bench TTP');
  const ttp = new Ttp({ store: await LowdbTtpStore.open(dir), privateKey: ttpId.privateKey, publicKey: ttpId.certificate.publicKey, trustAnchors: [ca.certificate] });
  const profile = PROFILES.v2;
  const time = (n: number, f: () => Promise<unknown> | unknown) => async () => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await f();
      ms.push(performance.now() - t);
    }
    return median(ms);
  };
  let txId = 1;
  const fresh = () => {
    const header = encodeHeader(headerFor({ profile, transactionId: txId++, time: 1_790_000_000, content: Buffer.from('x'), server, partyA: server, partyB: card }));
    const exchange = { header, deadline: 1_900_000_000, serverCertificates: [server.certificate], cardCertificates: [card.certificate] };
    const y = signBytes(profile, card.privateKey, header);
    const escrowY = makeVerifiableEscrow({ cardKey: card.certificate.publicKey, ttpKey: ttpId.certificate.publicKey, label: ttp.label(exchange), message: header, signature: y });
    return { exchange, x: signBytes(profile, server.privateKey, header), escrowY };
  };
  const one = fresh();
  const statement = randomBytes(100);
  const sig = signBytes(profile, server.privateKey, statement);
  const oneVerify = await time(200, () => verify('sha256', statement, server.certificate.publicKey, sig))();
  const unsigned = await time(50, async () => {
    const a = await ttp.handle(one.exchange, { kind: 'resolve-server', x: one.x, escrowY: one.escrowY, proof: randomBytes(256) });
    if (a.outcome !== 'refused') throw new Error('an unsigned resolve was not refused');
  })();
  const signed: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = fresh();
    const request = { kind: 'resolve-server' as const, x: t.x, escrowY: t.escrowY, proof: signBytes(profile, server.privateKey, resolveRequestStatement(ttp.label(t.exchange), t.escrowY)) };
    const t0 = performance.now();
    if ((await ttp.handle(t.exchange, request)).outcome !== 'y') throw new Error('a signed resolve failed');
    signed.push(performance.now() - t0);
  }
  await ttp.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`one RSA-2048 signature verification: ${oneVerify.toFixed(3)} ms (median of 200)`);
  console.log(`a resolve-server request with X and a ${one.escrowY.length.toLocaleString('en')}-byte escrow but no server signature: refused in ${unsigned.toFixed(3)} ms (median of 50; bound: one verification plus decoding)`);
  console.log(`a server-signed resolve-server request: ${median(signed).toFixed(1)} ms (median of 10: the chains, X, the public escrow check, one pair decrypted in the worker, one fsync)`);
}
