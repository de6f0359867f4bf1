/**
 * A verification worker thread of `qtm verify DIR --jobs N`: verifies the batches of bundles the
 * main thread sends, with its own certificate cache (./cert-cache.ts is per thread), so once the
 * few certificates of an archive are parsed and their links checked a bundle costs the three RSA
 * verifications of its package signatures.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { verifyBatch } from './verify-item.js';
import { optionsOf, type WorkerSetup, type WorkItem } from './worker-setup.js';

const setup = workerData as WorkerSetup;
const options = optionsOf(setup);

parentPort!.on('message', (m: { items: WorkItem[] }) => {
  const result = verifyBatch(m.items, options, setup);
  parentPort!.postMessage(result, result.text ? [result.text.buffer as ArrayBuffer] : []);
});
