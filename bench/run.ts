/**
 * `npm run bench`: figures and ratios on this machine. Not a test: it never fails on speed,
 * it reports. Each section prints what it measured and against what bound.
 */
import { benchVerify } from './verify.js';
import { benchCard } from './card.js';
import { benchTransaction, benchTransactionLog } from './transaction.js';
import { benchStore } from './store.js';
import { benchPgLog, benchPgStore } from './pg-store.js';
import { benchFair, benchTtp, benchTtpRequestCost, benchTtpStore } from './fair.js';
import { benchPkcs11 } from './pkcs11.js';
import { benchTlog } from './tlog.js';
import { benchLoad } from './load.js';

const sections: [string, () => Promise<void>][] = [
  ['offline verification', benchVerify],
  ['smart card', benchCard],
  ['transaction', benchTransaction],
  ['load: server CPU per transaction against its bound', () => benchLoad(process.argv.slice(3))],
  ['store', benchStore],
  ['PostgreSQL store', benchPgStore],
  ['PostgreSQL transparency log', benchPgLog],
  ['fair exchange escrows', benchFair],
  ['fair exchange TTP', benchTtp],
  ['fair exchange TTP request cost', benchTtpRequestCost],
  ['fair exchange TTP store at 100k decisions', benchTtpStore],
  ['keys in a token', benchPkcs11],
  ['tlog: transparency log at 1M entries', benchTlog],
  ['tlog: latency the log adds to a transaction', benchTransactionLog],
];
const only = process.argv[2];
for (const [name, run] of sections) {
  if (only && !name.includes(only)) continue;
  console.log(`\n== ${name}`);
  await run();
}
