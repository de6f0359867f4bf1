/**
 * Issue 12's transparency-log figures at 1M entries (built directly, not through transactions):
 * opening (rebuilding the tree from entries.bin and writing every tile), the cost of one leaf
 * append (fsync'd entry, changed tiles, a signed checkpoint written atomically) alone and in
 * groups, which is the latency the log adds to a confirm (it awaits the append before its reply),
 * and the size of an inclusion proof in a bundle.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTransparency } from '../src/tlog/bundle-proof.js';
import { proveInclusion } from '../src/tlog/client-ops.js';
import { leafHash } from '../src/tlog/hash.js';
import { encodeEntry, ENTRY_BYTES } from '../src/tlog/leaf.js';
import { ENTRIES_FILE, LogDir } from '../src/tlog/log-dir.js';
import { verifyInclusion } from '../src/tlog/merkle.js';
import { decodeSkey, decodeVkey, ed25519NoteSigner, encodeSkey, encodeVkey } from '../src/tlog/note.js';
import { dirSource } from '../src/tlog/tile-source.js';
import { median, percentile } from './stats.js';

const N = Number(process.env.QTM_BENCH_TLOG_SIZE ?? 1_000_000);

function countFiles(dir: string): number {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as { isFile(): boolean }[]).filter((d) => d.isFile()).length;
}

export async function benchTlog(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-tlog-'));
  try {
    const skey = decodeSkey(encodeSkey({ name: 'bench.example/log', type: 1, seed: randomBytes(32) }));
    const signer = ed25519NoteSigner(skey);
    // entries.bin with N entries, written directly (set-up, not measured).
    const fd = openSync(join(dir, ENTRIES_FILE), 'w');
    const chunk = Buffer.alloc(4096 * ENTRY_BYTES);
    for (let i = 0; i < N; i += 4096) {
      const n = Math.min(4096, N - i);
      for (let j = 0; j < n; j++) {
        chunk[j * ENTRY_BYTES] = 1;
        createHash('sha256').update(`tx ${i + j}`).digest().copy(chunk, j * ENTRY_BYTES + 1);
      }
      writeSync(fd, chunk, 0, n * ENTRY_BYTES);
    }
    closeSync(fd);
    let t0 = performance.now();
    const log = LogDir.open(dir, signer);
    const openMs = performance.now() - t0;
    console.log(`open at ${N.toLocaleString('en')} entries (rebuild the tree, write every tile and the checkpoint): ${(openMs / 1000).toFixed(1)} s, ${countFiles(join(dir, 'www')).toLocaleString('en')} files, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB`);

    const one: number[] = [];
    for (let i = 0; i < 200; i++) {
      const leaf = { transactionId: N + i, package: randomBytes(900) };
      t0 = performance.now();
      await log.append(leaf);
      one.push(performance.now() - t0);
    }
    console.log(`append one leaf at a time (fsync + tiles + signed checkpoint): median ${median(one).toFixed(2)} ms, p99 ${percentile(one, 99).toFixed(2)} ms (what a confirm waits for; the end-to-end figure is the next section)`);
    for (const group of [10, 100]) {
      const times: number[] = [];
      for (let r = 0; r < 5; r++) {
        const leaves = Array.from({ length: group }, (_, i) => ({ transactionId: N + 1000 + r * group + i + group * 10, package: randomBytes(900) }));
        t0 = performance.now();
        await Promise.all(leaves.map((l) => log.append(l)));
        times.push(performance.now() - t0);
      }
      console.log(`append ${group} concurrent leaves (one fsync, one checkpoint): median ${median(times).toFixed(2)} ms for the group, ${(median(times) / group).toFixed(3)} ms a leaf`);
    }

    // Issue 12, when the proof is made. In the transaction: the reply waits for the append above
    // (fsync + tiles + signed checkpoint, shared by a group) and then the proof from the in-memory
    // tree; the alternative, a CT-like signed promise now and the proof fetched later, would sign
    // one promise per transaction and skip the wait for the fsync, but leave the receipt without a
    // proof until a second round trip.
    const proofIters = 10_000;
    t0 = performance.now();
    for (let i = 0; i < proofIters; i++) log.inclusionProof((i * 7919) % log.size);
    const proofUs = ((performance.now() - t0) * 1000) / proofIters;
    const promise = Buffer.alloc(8 + 32 + 8);
    t0 = performance.now();
    for (let i = 0; i < 1000; i++) { promise.writeUInt32BE(i, 0); signer.sign(promise.toString('latin1')); }
    const promiseUs = (performance.now() - t0);
    const secret = randomBytes(32);
    const { monitorKey, cardTag } = await import('../src/tlog/card-tag.js');
    t0 = performance.now();
    for (let i = 0; i < 1000; i++) cardTag(monitorKey(secret, createHash('sha256').update(String(i)).digest('hex')), promise.subarray(0, 32));
    const tagUs = (performance.now() - t0);
    const replied = await log.append({ transactionId: N + 999_999, package: randomBytes(900) });
    const extraBytes = JSON.stringify(encodeTransparency(replied)).length + ',"transparency":'.length + ',"monitorKey":""'.length + 44;
    console.log(`proof in the transaction: the inclusion proof from the in-memory tree at ${log.size.toLocaleString('en')} entries ${proofUs.toFixed(1)} µs (after the append's wait above); the card tag (HKDF + HMAC) ${tagUs.toFixed(1)} µs; the second message grows by ${extraBytes} bytes`);
    console.log(`  a CT-like signed promise instead (one Ed25519 signature per transaction, no wait for the log's fsync): ${promiseUs.toFixed(1)} µs each, but the receipt has no proof until it is fetched later`);

    const size = log.size;
    const www = join(dir, 'www');
    const vkey = decodeVkey(encodeVkey(skey));
    const leaf = { transactionId: 4242, package: randomBytes(900) };
    await log.append(leaf);
    const at = log.find(leaf)!;
    t0 = performance.now();
    const proof = await proveInclusion(dirSource(www), vkey, leaf, { index: at });
    const proveMs = performance.now() - t0;
    const json = JSON.stringify(encodeTransparency(proof), null, 2);
    const cp = proof.checkpoint;
    t0 = performance.now();
    for (let i = 0; i < 1000; i++) verifyInclusion(proof.index, log.size, leafHash(encodeEntry(leaf)), proof.proof, Buffer.from(cp.split('\n')[2]!, 'base64'));
    const verifyUs = (performance.now() - t0);
    const first = { index: 0, proof: log.inclusionProof(0).map((p) => Buffer.from(p)), checkpoint: cp };
    const firstJson = JSON.stringify(encodeTransparency(first), null, 2);
    console.log(`inclusion proof at ${log.size.toLocaleString('en')} entries: leaf 0 ${first.proof.length} hashes = ${first.proof.length * 32} bytes, the bundle's transparency field ${firstJson.length} bytes of JSON; the newest leaf ${proof.proof.length} hashes, ${json.length} bytes (checkpoint ${cp.length} bytes)`);
    console.log(`  made from the served tiles in ${proveMs.toFixed(1)} ms (index known); verified in ${verifyUs.toFixed(0)} µs`);
    const cons = log.consistencyProof(Math.floor(size / 2), log.size);
    console.log(`consistency proof ${Math.floor(size / 2).toLocaleString('en')} -> ${log.size.toLocaleString('en')}: ${cons.length} hashes = ${cons.length * 32} bytes`);
    t0 = performance.now();
    let found = -1;
    for await (const e of (await import('../src/tlog/client-ops.js')).allEntries(dirSource(www), log.size)) if (e.entry.equals(encodeEntry(leaf))) { found = e.index; break; }
    console.log(`finding a leaf by scanning the entry bundles (qtm log prove without an index): ${((performance.now() - t0) / 1000).toFixed(1)} s (leaf ${found})`);
    await log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
