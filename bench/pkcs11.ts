/**
 * Keys in a token (issue 11): receipt signatures/s through PKCS#11 (SoftHSM2) against
 * node:crypto on the same key type and size, the SAM's diversification through CKM_AES_CMAC
 * against @noble/ciphers, and the server's CPU per transaction with every key in the token
 * against the same harness with file keys.
 *
 * SoftHSM2 runs inside the server process, so these figures are the PKCS#11 call overhead plus
 * SoftHSM's own (OpenSSL-backed) arithmetic; a network HSM adds its round trip per signature.
 */
import { IssuanceRegister } from '../src/card/issuance-register.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../src/pki/ca.js';
import { writeIdentity } from '../src/pki/key-files.js';
import { initSam, type Sam } from '../src/sam/sam.js';
import { CardClient } from '../src/card/client.js';
import { issueCard } from '../src/card/issue.js';
import { InProcessTransport } from '../src/card/transports/in-process.js';
import { blankImage, MemoryStorage } from '../src/card/virtual/storage.js';
import { QtmApi } from '../src/client/api.js';
import { Archive } from '../src/client/archive.js';
import { runTransaction } from '../src/client/transaction.js';
import { generateKeyPair, signBytes } from '../src/crypto/keys.js';
import { deriveCardKeys } from '../src/crypto/diversify.js';
import { QTM_AID } from '../src/card/app-spec.js';
import { PROFILES } from '../src/protocol/profile.js';
import { createSoftHsm, findSoftHsmModule } from '../src/pkcs11/softhsm.js';
import { generateTokenKeyPair, generateTokenMasterKey } from '../src/pkcs11/keys.js';
import { closeModules, setPkcs11Module } from '../src/pkcs11/token.js';
import { initTokenCa, issueTokenKeyAndCertificate } from '../src/pki/token-keys.js';
import { opsPerSecond } from './stats.js';
import { listeningUrl } from './listening.js';

const ROOT = resolve(import.meta.dirname ?? '.', '..', '..');
const QTM = join(ROOT, 'dist/bin/qtm.js');
const PASS = 'bench passphrase';
const USER_PIN = 'bench-user-pin';
const PIN = '123456';
const CLIENTS = 4;
const SECONDS = 8;

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = spawnSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }).stdout.split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

async function startServer(args: string[], env: Record<string, string>): Promise<{ server: ChildProcess; url: string }> {
  const server = spawn(process.execPath, [QTM, 'server', 'start', '--port', '0', '--rate', '1000000', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await listeningUrl(server);
  return { server, url };
}

/** Server CPU per transaction: CLIENTS clients in this process, each a fresh TLS session per transaction. */
async function serverCpuPerTransaction(dir: string, ca: OpenCa, sam: Sam, args: string[], env: Record<string, string>): Promise<{ cpuMs: number; done: number } | undefined> {
  const { server, url } = await startServer(args, env);
  try {
    const clients = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
      const transport = new InProcessTransport(new MemoryStorage(blankImage(16)));
      await issueCard(new CardClient(transport), { ca, sam, register: IssuanceRegister.open(join(dir, 'register'), sam.kcv), holder: `CN=Bench token ${i}`, pin: PIN, puk: '12345678', slots: 16, profile: 'v2' });
      return { card: new CardClient(transport), archive: await Archive.open(join(dir, `archive-${randomBytes(4).toString('hex')}`)) };
    }));
    const transact = async (c: (typeof clients)[number]) => {
      const api = new QtmApi(url, ca.certificate.toString());
      try {
        await runTransaction({ api, card: c.card, trustAnchors: [ca.certificate], archive: c.archive, order: { items: [{ sku: 'PAPER-A4', quantity: 1 }] }, hooks: { accept: async () => true, pin: async () => PIN } });
      } finally {
        api.close();
      }
    };
    await transact(clients[0]!); // warm-up
    let done = 0;
    const cpu0 = cpuSeconds(server.pid!);
    const until = performance.now() + SECONDS * 1000;
    await Promise.all(clients.map(async (c) => {
      while (performance.now() < until) {
        await transact(c);
        done++;
      }
    }));
    const cpu1 = cpuSeconds(server.pid!);
    return cpu0 === undefined || cpu1 === undefined ? undefined : { cpuMs: ((cpu1 - cpu0) * 1000) / done, done };
  } finally {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
}

export async function benchPkcs11(): Promise<void> {
  const module = findSoftHsmModule();
  if (!module) {
    console.log('keys in a token: skipped (SoftHSM2 not installed: apt-get install softhsm2)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'qtm-bench-pkcs11-'));
  const pinBefore = process.env['QTM_PKCS11_PIN'];
  try {
    const { conf } = createSoftHsm(join(dir, 'hsm'), 'bench', { so: 'bench-so-pin', user: USER_PIN });
    process.env['QTM_PKCS11_PIN'] = USER_PIN;
    setPkcs11Module(module);
    const uri = (object: string) => `pkcs11:token=bench;object=${object}`;
    const data = Buffer.alloc(400, 1);

    for (const spec of ['rsa2048', 'p256'] as const) {
      const token = generateTokenKeyPair(uri(`rate-${spec}`), spec, module);
      const file = generateKeyPair(spec).privateKey;
      const tokenRate = opsPerSecond(() => signBytes(PROFILES.v2, token, data));
      const fileRate = opsPerSecond(() => signBytes(PROFILES.v2, file, data));
      console.log(`receipt signature ${spec}: ${tokenRate.toFixed(0)}/s through PKCS#11 (SoftHSM2, in process) vs ${fileRate.toFixed(0)}/s node:crypto -> ratio ${(tokenRate / fileRate).toFixed(2)}; ${(1000 / tokenRate).toFixed(2)} vs ${(1000 / fileRate).toFixed(2)} ms each`);
    }
    const tokenSam = generateTokenMasterKey(uri('rate-master'), module);
    const master = randomBytes(16);
    const serial = randomBytes(8);
    const samRate = opsPerSecond(() => tokenSam.cardKeys(serial));
    const nobleRate = opsPerSecond(() => deriveCardKeys(master, serial, QTM_AID));
    console.log(`card keys (K_enc and K_mac, two AN10922 CMACs): ${samRate.toFixed(0)}/s through CKM_AES_CMAC vs ${nobleRate.toFixed(0)}/s @noble/ciphers`);

    // The server with every key in the token (CA, receipt key, SAM), and the same harness with files.
    const ca = initTokenCa(join(dir, 'ca-token'), { profile: 'v2', subject: 'CN=Bench token CA', uri: uri('ca') });
    const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
    writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, PASS);
    issueTokenKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Bench token receipts', uri: uri('receipts') });
    const sam = generateTokenMasterKey(uri('master'), module);
    const tokenEnv = { SOFTHSM2_CONF: conf, QTM_PKCS11_MODULE: module, QTM_PKCS11_PIN: USER_PIN, QTM_KEY_PASSPHRASE: PASS };
    const inToken = await serverCpuPerTransaction(dir, ca, sam, ['--tls', join(dir, 'tls'), '--signer', uri('receipts'), '--sam', uri('master'), '--trust', join(dir, 'ca-token', 'ca.pem'), '--store', join(dir, 'store-token')], tokenEnv);

    const fileCa = initCa(join(dir, 'ca-file'), { profile: 'v2', subject: 'CN=Bench file CA', passphrase: PASS });
    const fileTls = issueKeyAndCertificate(fileCa, { role: 'server', subject: 'CN=localhost' });
    const fileSigner = issueKeyAndCertificate(fileCa, { role: 'signer', subject: 'CN=Bench file receipts' });
    writeIdentity(join(dir, 'tls-file'), [fileTls.certificate], fileTls.privateKey, PASS);
    writeIdentity(join(dir, 'receipts-file'), [fileSigner.certificate], fileSigner.privateKey, PASS);
    const fileSam = initSam(join(dir, 'shop.sam'), PASS);
    const inFiles = await serverCpuPerTransaction(dir, fileCa, fileSam, ['--tls', join(dir, 'tls-file'), '--signer', join(dir, 'receipts-file'), '--sam', join(dir, 'shop.sam'), '--trust', join(dir, 'ca-file', 'ca.pem'), '--store', join(dir, 'store-file')], { QTM_KEY_PASSPHRASE: PASS, QTM_SAM_PASSPHRASE: PASS });
    if (inToken && inFiles) {
      console.log(`server CPU per transaction, receipt key and SAM master key in the token: ${inToken.cpuMs.toFixed(2)} ms (${inToken.done} transactions, ${CLIENTS} clients, ${SECONDS} s)`);
      console.log(`  same harness with file keys: ${inFiles.cpuMs.toFixed(2)} ms (${inFiles.done} transactions) -> the token adds ${(inToken.cpuMs - inFiles.cpuMs).toFixed(2)} ms (${((inToken.cpuMs / inFiles.cpuMs - 1) * 100).toFixed(0)}%); TLS stays a file key`);
    } else {
      console.log('server CPU per transaction: not measured (no /proc)');
    }
  } finally {
    closeModules();
    setPkcs11Module(undefined);
    if (pinBefore === undefined) delete process.env['QTM_PKCS11_PIN'];
    else process.env['QTM_PKCS11_PIN'] = pinBefore;
    rmSync(dir, { recursive: true, force: true });
  }
}
