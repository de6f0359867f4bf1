/**
 * Issue 18, section 2: edits to the server's store are caught by `qtm server audit`, and an ID
 * handed out again after the newest transaction was removed is refused by the client before its
 * card signs. A real server (HTTPS, receipt key signing the store's heads) makes the store; each
 * edit is made by hand, as an operator with a text editor would, on a copy; the real CLI audits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Archive } from '../../src/client/archive.js';
import { StepError } from '../../src/client/transaction.js';
import { encodeSignedHead, headSigner, headStatement, lineHash } from '../../src/store/head.js';
import { LOG_FILE } from '../../src/store/log-store.js';
import { makeWorld, newCard, transact } from '../e2e/env.js';
import { qtm } from '../helpers.js';

type Line = Record<string, unknown> & { seq?: number; prev?: string; type?: string; transactionId?: number; head?: unknown };

const parse = (text: string): Line[] => text.trim().split('\n').map((l) => JSON.parse(l) as Line);
const serialise = (lines: Line[]) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';

/** Appends an entry with a correct chain (anyone can compute it: no secret), but no signed head. */
function appendChained(lines: Line[], entry: Record<string, unknown>): Line[] {
  const entries = lines.filter((l) => !('head' in l));
  const last = entries[entries.length - 1]!;
  return [...lines, { seq: last.seq! + 1, prev: lineHash(Buffer.from(JSON.stringify(last))), ...entry }];
}

test('store edits: the six of the issue are caught by qtm server audit; a cut-back store by a customer\'s kept head', async (t) => {
  const world = await makeWorld();
  t.after(() => world.close());
  const card = await newCard(world);
  const archiveDir = join(world.dir, 'archive');
  const archive = await Archive.open(archiveDir);
  for (let i = 0; i < 3; i++) await transact(world, card, { archive });
  await world.server.close();
  writeFileSync(join(world.dir, 'receipts.pem'), world.signer.certificate.toString());
  writeFileSync(join(world.dir, 'ca.pem'), world.ca.certificate.toString());
  const original = readFileSync(join(world.dir, 'store', LOG_FILE), 'utf8');
  const lines = parse(original);
  assert.ok(lines.some((l) => 'head' in l), 'the server signed heads');

  const audit = (name: string, edit: (l: Line[]) => Line[], extra: string[] = []) => {
    const dir = join(world.dir, `edit-${name}`);
    cpSync(join(world.dir, 'store'), dir, { recursive: true });
    writeFileSync(join(dir, LOG_FILE), serialise(edit(parse(original))));
    const r = qtm(['server', 'audit', '--store', dir, '--signer-cert', join(world.dir, 'receipts.pem'), '--trust', join(world.dir, 'ca.pem'), '--json', ...extra]);
    return { status: r.status, report: r.stdout ? JSON.parse(r.stdout) as { logProblems: string[]; tampered: { problems: string[] }[]; damagedLines: number[] } : undefined, stderr: r.stderr };
  };

  const untouched = audit('none', (l) => l);
  assert.equal(untouched.status, 0, JSON.stringify(untouched.report));

  const lastId = Math.max(...lines.filter((l) => l.type === 'prepared').map((l) => l.transactionId!));
  const cases: [string, (l: Line[]) => Line[], RegExp][] = [
    ['flipped content byte', (l) => l.map((x) => (x.type === 'prepared' && x.transactionId === 2 ? { ...x, content: Buffer.from(Buffer.from(String(x.content), 'base64').toString('utf8').replace('2 x', '9 x')).toString('base64') } : x)), /chain is broken|content does not match/],
    ['newest transaction deleted (its head kept)', (l) => l.filter((x) => x.transactionId !== lastId), /signed head at line \d+ names entry/],
    ['a confirmed entry deleted', (l) => l.filter((x) => !(x.type === 'confirmed' && x.transactionId === 2)), /chain is broken/],
    ['a prepared entry deleted', (l) => l.filter((x) => !(x.type === 'prepared' && x.transactionId === 2)), /chain is broken/],
    ['a new prepared for an old ID with another total', (l) => {
      const old = l.find((x) => x.type === 'prepared' && x.transactionId === 1)!;
      const { seq: _s, prev: _p, ...entry } = old;
      return appendChained(l, { ...entry, content: Buffer.from('1 x PAPER-A4  EUR 0.01\n').toString('base64') });
    }, /prepared a second time|after the last signed head/],
    ['a forged delivered', (l) => appendChained(l, { type: 'delivered', transactionId: lastId, proof: 'AAAAAAAAAAA=', at: new Date().toISOString() }), /after the last signed head/],
  ];
  for (const [name, edit, expected] of cases) {
    const r = audit(name.replace(/\W+/g, '-'), edit);
    assert.equal(r.status, 1, `${name}: audit must fail (${r.stderr})`);
    const all = [...r.report!.logProblems, ...r.report!.tampered.flatMap((x) => x.problems)].join('\n');
    assert.match(all, expected, `${name}: ${all}`);
  }

  // Cut back cleanly, to the last signed head before the newest transaction (entries that sign
  // nothing, such as the delivered entry before it, wait for the next head). The log alone is
  // consistent again; the head the customer kept is not.
  const cut = (l: Line[]) => {
    const first = l.findIndex((x) => x.transactionId === lastId);
    const lastHead = l.slice(0, first).map((x) => 'head' in x).lastIndexOf(true);
    return l.slice(0, lastHead + 1);
  };
  const consistent = audit('cut', cut);
  assert.equal(consistent.status, 0, 'a clean cut passes the audit of the log alone (witnesses and kept heads catch it)');
  const headFile = (await Archive.open(archiveDir)).heads[0]!;
  writeFileSync(join(world.dir, 'kept-head.json'), JSON.stringify({ seq: headFile.seq, hash: headFile.hash, sig: headFile.sig }));
  const caught = audit('cut-with-head', cut, ['--min-head', join(world.dir, 'kept-head.json')]);
  assert.equal(caught.status, 1);
  assert.match(caught.report!.logProblems.join('\n'), /ends before entry \d+, which the head given proves it once held/);
  // And a head not signed by this server is refused as such.
  writeFileSync(join(world.dir, 'forged-head.json'), JSON.stringify({ seq: headFile.seq, hash: headFile.hash, sig: Buffer.alloc(256, 1).toString('base64') }));
  const forged = audit('forged-head', (l) => l, ['--min-head', join(world.dir, 'forged-head.json')]);
  assert.equal(forged.status, 1);
  assert.match(forged.report!.logProblems.join('\n'), /not signed by this server's receipt key/);
});

test('an ID handed out again after the newest transaction was cut from the store: the client refuses before the card signs', async (t) => {
  const world = await makeWorld();
  t.after(() => world.close());
  const card = await newCard(world);
  const archive = await Archive.open(join(world.dir, 'archive'));
  await transact(world, card, { archive });
  const second = await transact(world, card, { archive });
  const port = Number(new URL(world.url).port);
  await world.server.close();
  // The operator cuts the newest transaction (and the heads after it) and restarts the server.
  const path = join(world.dir, 'store', LOG_FILE);
  const lines = parse(readFileSync(path, 'utf8'));
  writeFileSync(path, serialise(lines.slice(0, lines.findIndex((l) => l.transactionId === second.transactionId))));
  world.server = await (await import('../../src/server/run-server.js')).startServer({
    tls: { privateKey: world.tls.privateKey, certificates: [world.tls.certificate] },
    signer: { privateKey: world.signer.privateKey, certificates: [world.signer.certificate] },
    sam: world.sam, trustAnchors: [world.ca.certificate], storeDir: join(world.dir, 'store'),
    catalogue: (await import('../../src/server/catalogue.js')).loadCatalogue(join((await import('../helpers.js')).FIXTURES, 'catalogue.json')),
    profile: (await import('../../src/protocol/profile.js')).PROFILES.v2, host: '127.0.0.1', port, log: () => {},
  });
  const signedBefore = card.storage.load().slots.filter((s: string | null) => s).length;
  await assert.rejects(transact(world, card, { archive, order: { items: [{ sku: 'PEN-BLUE', quantity: 1 }] } }), (err: unknown) => {
    assert.ok(err instanceof StepError, String(err));
    assert.equal(err.step, 'prepare', 'refused before the card signed');
    assert.match((err.cause as Error).message, new RegExp(`already holds another (record|receipt) as transaction ${second.transactionId} of this server`));
    return true;
  });
  assert.equal(card.storage.load().slots.filter((s: string | null) => s).length, signedBefore, 'nothing written to the card');
  // The proof of the first use of the ID is still in the archive, untouched.
  assert.ok(archive.proofs.some((p) => p.transactionId === second.transactionId));
});

test('an operator holding the receipt key re-chains and re-signs a forged storage proof W: only the SAM check of qtm server audit --sam catches it', async (t) => {
  const world = await makeWorld();
  t.after(() => world.close());
  const card = await newCard(world);
  await transact(world, card, { archive: await Archive.open(join(world.dir, 'archive')) });
  await world.server.close();
  writeFileSync(join(world.dir, 'receipts.pem'), world.signer.certificate.toString());
  writeFileSync(join(world.dir, 'ca.pem'), world.ca.certificate.toString());
  // Rewrite the delivered entry's W, then recompute the whole chain and every head with the key.
  const entries = parse(readFileSync(join(world.dir, 'store', LOG_FILE), 'utf8')).filter((l) => !('head' in l));
  let prev = '0'.repeat(64);
  const rebuilt: Line[] = [];
  entries.forEach((e, i) => {
    const { seq: _s, prev: _p, ...entry } = e;
    const line = { seq: i + 1, prev, ...(entry.type === 'delivered' ? { ...entry, proof: Buffer.alloc(8, 0x42).toString('base64') } : entry) };
    prev = lineHash(Buffer.from(JSON.stringify(line)));
    rebuilt.push(line);
  });
  const signer = headSigner(world.signer.certificate.publicKey, world.signer.privateKey);
  const head = { seq: rebuilt.length, hash: prev };
  rebuilt.push({ head: encodeSignedHead({ ...head, sig: signer.sign(headStatement(head)) }) });
  writeFileSync(join(world.dir, 'store', LOG_FILE), serialise(rebuilt));
  const audit = (extra: string[]) => qtm(['server', 'audit', '--store', join(world.dir, 'store'), '--signer-cert', join(world.dir, 'receipts.pem'), '--trust', join(world.dir, 'ca.pem'), '--json', ...extra], { env: { QTM_SAM_PASSPHRASE: 'e2e passphrase' } });
  const without = audit([]);
  assert.equal(without.status, 0, 'chain and heads are consistent: the key holder made them');
  const withSam = audit(['--sam', join(world.dir, 'shop.sam')]);
  assert.equal(withSam.status, 1, withSam.stdout);
  assert.match(withSam.stdout, /storage proof W does not verify with the card's keys/);
});
