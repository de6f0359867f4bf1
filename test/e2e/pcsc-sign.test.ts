/**
 * The README's walk-through, command for command, with the card behind pcscd: CA, keys, SAM,
 * `qtm card emulate`, `qtm card issue --reader`, `qtm server start`, `qtm sign --reader`,
 * `qtm receipts list --reader`, `qtm verify`, `qtm server audit`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { qtm, tempDir } from '../helpers.js';
import { READER, requirePcscd, startEmulator, stopEmulator } from '../card/pcsc-helpers.js';
import { startServerProcess } from './server-process.js';

test('qtm sign through pcscd against qtm server start, all from the command line', async (t) => {
  if (!(await requirePcscd(t))) return;
  const dir = tempDir(t);
  const at = (...p: string[]) => join(dir, ...p);
  const env = { QTM_CA_PASSPHRASE: 'walk-through ca', QTM_KEY_PASSPHRASE: 'walk-through keys', QTM_SAM_PASSPHRASE: 'walk-through sam', QTM_PIN: '123456', QTM_PUK: '12345678' };
  const ok = (args: string[], opts: { env?: Record<string, string> } = {}) => {
    const r = qtm(args, { env: { ...env, ...opts.env } });
    assert.equal(r.status, 0, `qtm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  ok(['ca', 'init', '--out', at('ca')]);
  ok(['ca', 'issue', '--ca', at('ca'), '--role', 'signer', '--subject', 'CN=Shop receipts,O=Shop', '--out', at('keys', 'receipts')]);
  ok(['ca', 'issue', '--ca', at('ca'), '--role', 'server', '--subject', 'CN=localhost', '--out', at('keys', 'tls')]);
  ok(['sam', 'init', '--out', at('shop.sam')]);
  const emulator = await startEmulator(at('alice.card.json'));
  t.after(() => stopEmulator(emulator));
  ok(['card', 'issue', '--ca', at('ca'), '--sam', at('shop.sam'), '--holder', 'CN=Alice Example', '--reader', READER]);
  const server = await startServerProcess(['--tls', at('keys', 'tls'), '--signer', at('keys', 'receipts'), '--sam', at('shop.sam'), '--trust', at('ca', 'ca.pem'), '--store', at('store')], env);
  t.after(() => server.stop());

  const signed = JSON.parse(ok(['sign', '--server', server.url, '--trust', at('ca', 'ca.pem'), '--reader', READER, '--archive', at('archive'), '--items', 'PAPER-A4:2,PEN-BLUE:1', '--yes', '--json']));
  assert.equal(signed.slot, 1);
  const slots = JSON.parse(ok(['receipts', 'list', '--reader', READER, '--json'])).slots;
  assert.equal(slots[0].transactionId, signed.transactionId);
  assert.equal(slots[0].state, 'used');
  const verified = JSON.parse(ok(['verify', signed.proof, '--trust', at('ca', 'ca.pem'), '--json']));
  assert.deepEqual([verified.summary.valid, verified.results[0].status], [1, 'valid']);
  const audit = JSON.parse(ok(['server', 'audit', '--store', at('store'), '--signer-cert', at('keys', 'receipts.pem'), '--trust', at('ca', 'ca.pem'), '--json']));
  assert.equal(audit.byState.delivered, 1);
  assert.deepEqual(audit.tampered, []);
});
