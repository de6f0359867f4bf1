/**
 * The demo's transparency log (issue 12): the server logs the receipt's transaction and sends its
 * inclusion proof with the receipt, a witness cosigns the checkpoint, the receipt's proof moves to
 * the witnessed checkpoint and verifies against the log key and the witness; with --fork, the shop rewrites its history and the witness refuses it.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { decodeBundle, encodeBundle } from '../bundle/proof-bundle.js';
import { cosigner } from '../tlog/cosignature.js';
import { LogMisbehaviourError, proveInclusion, witness } from '../tlog/client-ops.js';
import { LogDir } from '../tlog/log-dir.js';
import { readNoteKey, readVkeyFile, writeNewNoteKey } from '../tlog/log-key.js';
import { ed25519NoteSigner, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, type NoteSigner } from '../tlog/note.js';
import { dirSource } from '../tlog/tile-source.js';
import { decodePackage } from '../protocol/qtm-package.js';
import { verifyFile } from '../verify/verify-files.js';
import type { X509Certificate } from 'node:crypto';
import type { TransactionStore } from '../store/types.js';

export const DEMO_LOG_ORIGIN = 'shop.example/log';
export const DEMO_WITNESS = 'witness.example/w1';

export interface DemoLogKeys {
  readonly signer: NoteSigner;
  readonly dir: string;
  readonly vkeyFile: string;
  readonly witnessVkeyFile: string;
}

export function demoLogKeys(dir: string, passphrase: string): DemoLogKeys {
  writeNewNoteKey(join(dir, 'log'), DEMO_LOG_ORIGIN, SIG_TYPE_ED25519, passphrase);
  writeNewNoteKey(join(dir, 'witness'), DEMO_WITNESS, SIG_TYPE_COSIGNATURE_V1, passphrase);
  return {
    signer: ed25519NoteSigner(readNoteKey(join(dir, 'log'), passphrase, SIG_TYPE_ED25519)),
    dir: join(dir, 'tlog'),
    vkeyFile: join(dir, 'log.vkey'),
    witnessVkeyFile: join(dir, 'witness.vkey'),
  };
}

export interface DemoLogResult {
  readonly story: string[];
  readonly valid: boolean;
  readonly bundleFile: string;
  readonly index: number;
  readonly size: number;
  /** With fork: the witness's refusal of the rewritten history. */
  readonly forkRefused?: string;
}

export async function runLogDemo(o: {
  dir: string; keys: DemoLogKeys; passphrase: string; bundleFile: string; trustAnchors: X509Certificate[];
  fork: boolean; store: TransactionStore;
}): Promise<DemoLogResult> {
  const story: string[] = [];
  const www = join(o.keys.dir, 'www');
  const logKey = readVkeyFile(o.keys.vkeyFile);
  const bundle = decodeBundle((await import('node:fs')).readFileSync(o.bundleFile, 'utf8'));
  const pkg = decodePackage(bundle.package);
  if (bundle.transparency) {
    const size = Number(bundle.transparency.checkpoint.split('\n')[1]);
    story.push(`The server's reply carried the receipt's inclusion proof: transaction ${pkg.transactionId} is leaf ${bundle.transparency.index} of the log's checkpoint of size ${size}, made at its commit and signed by the log only${bundle.transparency.tag ? ' (the leaf carries the card\'s tag; the card holder got its monitoring key)' : ''}.`);
  }
  const w = cosigner(readNoteKey(join(o.dir, 'witness'), o.passphrase, SIG_TYPE_COSIGNATURE_V1));
  const state = join(o.dir, 'witness-state.json');
  const cosigned = await witness(dirSource(www), logKey, w, state);
  writeFileSync(join(o.dir, 'checkpoint-cosigned.txt'), cosigned.cosigned);
  story.push(`Witness ${DEMO_WITNESS} fetched the log's checkpoint (size ${cosigned.checkpoint.size}, ${cosigned.status}) and cosigned it (C2SP cosignature/v1).`);
  const t = await proveInclusion(dirSource(www), logKey, { transactionId: pkg.transactionId, package: bundle.package, ...(bundle.transparency?.tag ? { tag: bundle.transparency.tag } : {}) },
    { checkpoint: cosigned.cosigned, ...(bundle.transparency ? { index: bundle.transparency.index } : {}) });
  const logged = join(o.dir, 'receipt-logged.json');
  writeFileSync(logged, encodeBundle({ ...bundle, transparency: t }));
  const v = verifyFile(logged, { trustAnchors: o.trustAnchors, log: { logKey, witnesses: [readVkeyFile(o.keys.witnessVkeyFile, [SIG_TYPE_COSIGNATURE_V1])], quorum: 1 } });
  const valid = v.status === 'valid';
  story.push(valid
    ? `Transaction ${pkg.transactionId} is leaf ${t.index} of the shop's public log (only a hash of its package and ID is published); its proof was moved to the witnessed checkpoint (${t.proof.length} hashes; qtm log prove --witness does this): VALID (log-checkpoint, log-inclusion, log-witnesses).`
    : `The logged receipt did NOT verify: ${'failures' in v ? v.failures.map((f) => `${f.name}: ${f.detail}`).join('; ') : v.status}`);
  let forkRefused: string | undefined;
  if (o.fork) {
    // The shop rewrites its history: the same log key signs a tree without this transaction.
    const forkDir = join(o.dir, 'tlog-rewritten');
    const forked = LogDir.open(forkDir, o.keys.signer);
    for await (const rec of o.store.all()) {
      if (rec.confirmed && rec.transactionId !== pkg.transactionId) await forked.append({ transactionId: rec.transactionId, package: Buffer.from(rec.confirmed.package, 'base64') });
    }
    await forked.append({ transactionId: pkg.transactionId, package: Buffer.concat([bundle.package, Buffer.from('rewritten')]) });
    await forked.close();
    story.push(`--fork: the shop rewrote its history: with the same log key it signed a checkpoint of size ${forked.size} in which transaction ${pkg.transactionId} is replaced.`);
    try {
      await witness(dirSource(join(forkDir, 'www')), logKey, w, state);
      story.push('The witness COSIGNED the rewritten history: the fork was NOT caught.');
    } catch (err) {
      if (!(err instanceof LogMisbehaviourError)) throw err;
      forkRefused = err.message;
      story.push(`The witness refused to cosign: ${err.message}. A receipt checked with --witness ${DEMO_WITNESS} cannot be proven against the rewritten log.`);
    }
  }
  return { story, valid: valid && (!o.fork || forkRefused !== undefined), bundleFile: logged, index: t.index, size: cosigned.checkpoint.size, ...(forkRefused ? { forkRefused } : {}) };
}
