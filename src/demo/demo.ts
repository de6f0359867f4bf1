/**
 * `qtm demo`: one transaction end to end on this machine, nothing to set up and no network
 * beyond loopback. A throwaway CA, SAM and virtual card, a real HTTPS server, the real client
 * flow, the receipt read back from the card, and the proof verified offline.
 */
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../pki/ca.js';
import { writeIdentity } from '../pki/key-files.js';
import { initSam } from '../sam/sam.js';
import { CardClient } from '../card/client.js';
import { issueCard } from '../card/issue.js';
import { readSlots } from '../card/receipts.js';
import { InProcessTransport } from '../card/transports/in-process.js';
import { PcscTransport } from '../card/transports/pcsc.js';
import type { CardTransport } from '../card/transport.js';
import { FileStorage } from '../card/virtual/storage.js';
import { VirtualCard } from '../card/virtual/virtual-card.js';
import { runVpcdBridge, VPCD_DEFAULT_PORT } from '../card/vpcd-bridge.js';
import { QtmApi, ServerError } from '../client/api.js';
import { Archive } from '../client/archive.js';
import { runTransaction, type TransactionHooks } from '../client/transaction.js';
import { loadCatalogue } from '../server/catalogue.js';
import { startServer } from '../server/run-server.js';
import { PROFILES } from '../protocol/profile.js';
import { verifyFile } from '../verify/verify-files.js';
import { InputError } from '../errors.js';
import { randomBytes, type X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import { generateTokenMasterKey, tokenSigner } from '../pkcs11/keys.js';
import { createSoftHsm, findSoftHsmModule, initSoftHsmToken } from '../pkcs11/softhsm.js';
import { closeModules, rememberPin, setPkcs11Module, tokenRef } from '../pkcs11/token.js';
import { createTokenRequest, initTokenCa, issueTokenKeyAndCertificate } from '../pki/token-keys.js';
import { StepError } from '../client/transaction.js';
import { createRequest, readRequest, WarrantRegistry } from '../warrant/registry.js';
import { crlPem, issueCrl } from '../warrant/crl.js';
import { issueWarrant } from '../warrant/warrant.js';
import { keyFingerprint } from '../crypto/keys.js';
import { runCheat, runLoss, startDemoTtp, type Cheat, type CheatSwitch } from './fair-demo.js';
import type { LostMessage } from './lossy-api.js';
import { IssuanceRegister } from '../card/issuance-register.js';
import { demoLogKeys, runLogDemo } from './tlog-demo.js';

export const DEMO_PIN = '123456';
const DEMO_PUK = '12345678';
const DEMO_PASSPHRASE = 'qtm-demo-only';
const DEMO_TOKEN_PIN = 'qtm-demo-token-pin';
export const DEMO_READER = 'Virtual PCD 00 00';

export interface DemoOptions {
  readonly keepDir?: string;
  readonly pcsc?: boolean;
  /** Sign by proxy for a manager under a warrant, and show a customer without one refused. */
  readonly proxy?: boolean;
  /** Fair exchange through a TTP; with cheat, one party cheats and the TTP restores fairness. */
  readonly fair?: boolean;
  readonly cheat?: Cheat;
  /** With fair: both honest, this message of the exchange is lost; the TTP settles it. */
  readonly lose?: LostMessage;
  /** Every long-term key (SAM master key, CA key, receipt key, proxy key S) in a PKCS#11 token. */
  readonly pkcs11?: boolean;
  /** After the transaction, the shop rewrites its log's history; the witness must refuse it. */
  readonly fork?: boolean;
  readonly catalogue: string;
  readonly hooks: (pin: string) => TransactionHooks;
  readonly onStage?: (text: string) => void;
}

export interface DemoResult {
  readonly story: string[];
  readonly valid: boolean;
  readonly transactionId: number;
  /** Absent when no proof was made (a cheat the TTP aborted). */
  readonly bundleFile?: string;
  readonly dir?: string;
  readonly apdus: number;
  readonly ms: number;
  /** With proxy: the warrant used, and the refusal of the customer it does not cover. */
  readonly proxy?: { readonly warrant: string; readonly refused: string };
  /** With fair: who ended up with which signature. */
  readonly fairness?: { readonly cheat: Cheat | null; readonly clientHasX: boolean; readonly serverHasY: boolean; readonly fair: boolean };
  /** With lose: who holds which signature once the TTP settled the exchange. */
  readonly holds?: { readonly server: { readonly y: boolean }; readonly client: { readonly x: boolean } };
  readonly fair?: boolean;
  readonly lost?: LostMessage;
  /** With cheat client: the cheating client's moves at the TTP and the code each was refused with. */
  readonly cheatMoves?: readonly { readonly move: string; readonly refused: string }[];
  /** The receipt's leaf in the transparency log, and with fork the witness's refusal. */
  readonly log?: { readonly index: number; readonly size: number; readonly forkRefused?: string };
}

const LOSS_DEADLINE_SECONDS = 3;

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  const dir = o.keepDir ?? mkdtempSync(join(tmpdir(), 'qtm-demo-'));
  mkdirSync(dir, { recursive: true });
  const story: string[] = [];
  const tell = (s: string) => {
    story.push(s);
    o.onStage?.(s);
  };
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    const token = o.pkcs11 ? demoToken(dir) : undefined;
    if (token) {
      cleanups.push(() => closeModules());
      tell(`PKCS#11 token "${token.label}" ready in ${token.where} (module ${token.module}): every long-term key below is generated in it, sensitive and never extractable.`);
    }
    const ca = token
      ? initTokenCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=qtm Demo CA,O=qtm demo', uri: token.uri('ca') })
      : initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=qtm Demo CA,O=qtm demo', passphrase: DEMO_PASSPHRASE });
    const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost,O=Example Shop' });
    writeIdentity(join(dir, 'tls'), [tls.certificate], tls.privateKey, DEMO_PASSPHRASE);
    let signer: { certificate: X509Certificate; privateKey: SigningKey };
    if (token) {
      const issuedSigner = issueTokenKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Example Shop receipts,O=Example Shop', uri: token.uri('receipts') });
      writeFileSync(join(dir, 'receipts.pem'), issuedSigner.certificate.toString());
      signer = { certificate: issuedSigner.certificate, privateKey: tokenSigner(token.uri('receipts')) };
    } else {
      const issuedSigner = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=Example Shop receipts,O=Example Shop' });
      writeIdentity(join(dir, 'receipts'), [issuedSigner.certificate], issuedSigner.privateKey, DEMO_PASSPHRASE);
      signer = issuedSigner;
    }
    tell(`CA "CN=qtm Demo CA" created${token ? ' (its key in the token)' : ''}; it issued a TLS certificate for localhost and a separate receipt-signing certificate (claim 5)${token ? ', whose key is in the token' : ''}.`);

    const sam = token ? generateTokenMasterKey(token.uri('master')) : initSam(join(dir, 'shop.sam'), DEMO_PASSPHRASE);
    tell(`SAM created: master key for card key diversification (check value ${sam.kcv}); the key itself never leaves ${token ? 'the token (AES-CMAC only)' : 'it'}.`);

    const cardFile = join(dir, 'alice.card.json');
    const storage = FileStorage.create(cardFile, 8);
    const issuer = new CardClient(new InProcessTransport(storage));
    const issued = await issueCard(issuer, { ca, sam, register: IssuanceRegister.open(join(dir, 'ca', 'register'), sam.kcv), holder: 'CN=Alice Demo,O=Customer', pin: DEMO_PIN, puk: DEMO_PUK, slots: 8, profile: 'v2' });
    tell(`Virtual card ${issued.serial} issued to "CN=Alice Demo": RSA-2048 key made on the card, certificate with the card serial, diversified keys, PIN set, locked.`);

    const proxy = o.proxy ? setUpProxy(dir, ca, issued.certificate, tell, token) : undefined;

    // Only the demo's --cheat passes a cheating-party switch to the server.
    const cheatSwitch: CheatSwitch | undefined = o.cheat ? {} : undefined;
    // A lost message is settled at the deadline: a short one, so the demo shows the end.
    const deadlineSeconds = o.lose ? LOSS_DEADLINE_SECONDS : 300;
    const ttp = o.fair || o.cheat || o.lose ? await startDemoTtp(dir, ca, cheatSwitch, deadlineSeconds) : undefined;
    if (ttp) {
      cleanups.push(() => ttp.close());
      tell(`Trusted third party listening on ${ttp.running.url.replace('127.0.0.1', 'localhost')}: an RSA-3072 escrow key, consulted only if the exchange goes wrong (claims 12-14).`);
    }

    const logKeys = demoLogKeys(dir, DEMO_PASSPHRASE);
    tell(`Transparency log key "${'shop.example/log'}" created (Ed25519, separate from the receipt and TLS keys), and a witness's cosigning key.`);

    const server = await startServer({
      transparency: { dir: logKeys.dir, signer: logKeys.signer },
      ...(proxy ? { proxy: { registry: proxy.registry, manager: [proxy.manager] } } : {}),
      ...(ttp ? { fair: ttp.fair } : {}),
      tls: { privateKey: tls.privateKey, certificates: [tls.certificate] },
      signer: { privateKey: signer.privateKey, certificates: [signer.certificate] },
      sam,
      trustAnchors: [ca.certificate],
      storeDir: join(dir, 'store'),
      catalogue: loadCatalogue(o.catalogue),
      profile: PROFILES.v2,
      host: '127.0.0.1',
      port: 0,
      log: (line) => writeFileSync(join(dir, 'server.log'), JSON.stringify(line) + '\n', { flag: 'a' }),
    });
    cleanups.push(() => server.close());
    tell(`Server listening on ${server.url.replace('127.0.0.1', 'localhost')} (HTTPS, TLS 1.3 only); its store is an fsync'd append-only log.`);

    let transport: CardTransport;
    if (o.pcsc) {
      const controller = new AbortController();
      const bridge = runVpcdBridge(new VirtualCard(new FileStorage(cardFile)), { host: '127.0.0.1', port: VPCD_DEFAULT_PORT, signal: controller.signal });
      cleanups.push(async () => {
        controller.abort();
        await bridge;
      });
      transport = await PcscTransport.connectWhenReady(DEMO_READER);
      const probe = new CardClient(transport);
      await probe.select();
      const seen = (await probe.status()).serial.toString('hex').toUpperCase();
      if (seen !== issued.serial) {
        throw new InputError(`reader "${DEMO_READER}" holds another card (${seen}), not the demo's`, 'stop any other `qtm card emulate` (only one card fits in the vpcd reader) and run again');
      }
      tell(`Card plugged into pcscd through vpcd; the client reaches it as PC/SC reader "${DEMO_READER}", like any real card.`);
    } else {
      transport = new InProcessTransport(new FileStorage(cardFile));
    }
    const card = new CardClient(transport);
    cleanups.push(() => transport.close());

    const api = new QtmApi(server.url.replace('127.0.0.1', 'localhost'), ca.certificate.toString());
    cleanups.push(() => api.close());
    const archive = await Archive.open(join(dir, 'archive'));
    const order = { items: [{ sku: 'PAPER-A4', quantity: 2 }, { sku: 'PEN-BLUE', quantity: 1 }] };
    if (o.lose) {
      const l = await runLoss(o.lose, { url: server.url.replace('127.0.0.1', 'localhost'), trustPem: ca.certificate.toString(), store: server.store, deadlineSeconds, transaction: { card, trustAnchors: [ca.certificate], archive, order, hooks: o.hooks(DEMO_PIN) } });
      l.story.forEach(tell);
      return { story, valid: l.fair, transactionId: l.transactionId, ...(o.keepDir ? { dir } : {}), apdus: card.apduCount, ms: performance.now() - started, holds: l.holds, fair: l.fair, lost: o.lose };
    }
    if (o.cheat) {
      const c = await runCheat(o.cheat, { service: server.service, store: server.store, cheatSwitch: cheatSwitch!, transaction: { api, card, trustAnchors: [ca.certificate], archive, order, hooks: o.hooks(DEMO_PIN) } });
      c.story.forEach(tell);
      const fair = c.clientHasX === c.serverHasY;
      return { story, valid: fair, transactionId: c.transactionId, ...(o.keepDir ? { dir } : {}), apdus: card.apduCount, ms: performance.now() - started, fairness: { cheat: o.cheat, clientHasX: c.clientHasX, serverHasY: c.serverHasY, fair }, ...(c.moves ? { cheatMoves: c.moves } : {}) };
    }
    const result = await runTransaction({ api, card, trustAnchors: [ca.certificate], archive, order, hooks: o.hooks(DEMO_PIN), ...(o.fair ? { fair: true } : {}) });
    const content = result.bundle.content!;
    const total = /Total (.+)$/m.exec(content.toString('utf8'))?.[1]?.replace(/\s+/g, ' ').trim();
    tell(`Order composed by the shop as plain text (${content.length} bytes, ${total}); the text was checked for hidden characters and shown before signing (claim 8).`);
    tell(`The card authenticated over TLS (INTERNAL AUTHENTICATE on a TLS exporter value), then signed the record; the server verified it, stored record, signature and certificate, and counter-signed: transaction ${result.transactionId}.`);
    tell(`Receipt written to card slot ${result.slot} with the card's one-time challenge (only the SAM's keys can write it); the card proved storage and the server marked it delivered (claims 2, 3, 6, 7). ${result.apdus} APDUs in all.`);
    if (result.fair) tell(`Fair exchange: the server sent an ordinary escrow of its signature X for the TTP; the client sent a verifiable escrow of the card's Y (128 cut-and-choose pairs), the server checked it and released X, and only then did Y leave the client. X came from the ${result.fair.xFrom === 'server' ? 'server; the TTP was never needed' : 'TTP'}.`);

    const slots = await readSlots(card, await card.status());
    const used = slots.filter((s) => s.record).map((s) => `slot ${s.slot}: transaction ${s.record!.transactionId} at ${new Date(s.record!.time * 1000).toISOString()}`);
    tell(`Receipts on the card, read without PIN: ${used.join('; ')}.`);

    let refused: string | undefined;
    if (proxy) {
      const zedFile = join(dir, 'zed.card.json');
      const zedIssued = await issueCard(new CardClient(new InProcessTransport(FileStorage.create(zedFile, 8))), { ca, sam, register: IssuanceRegister.open(join(dir, 'ca', 'register'), sam.kcv), holder: 'CN=Zed Demo,O=Customer', pin: DEMO_PIN, puk: DEMO_PUK, slots: 8, profile: 'v2' });
      const zed = new CardClient(new InProcessTransport(new FileStorage(zedFile)));
      const zedApi = new QtmApi(server.url.replace('127.0.0.1', 'localhost'), ca.certificate.toString());
      try {
        await runTransaction({ api: zedApi, card: zed, trustAnchors: [ca.certificate], archive, order: { items: [{ sku: 'PEN-BLUE', quantity: 1 }] }, hooks: { accept: async () => true, pin: async () => DEMO_PIN } });
        throw new Error('the demo server signed for a customer no warrant covers');
      } catch (err) {
        if (!(err instanceof StepError) || !(err.cause instanceof ServerError)) throw err;
        refused = `HTTP ${err.cause.status} ${err.cause.serverCode}: ${err.cause.message.replace(/^server refused \([^)]*\): /, '')}`;
      } finally {
        zedApi.close();
      }
      const zedSlots = await readSlots(zed, await zed.status());
      tell(`A second customer, card ${zedIssued.serial} ("CN=Zed Demo"), was REFUSED: no warrant of the manager names Zed, so the server cannot sign for him (${refused}). Zed's card holds ${zedSlots.filter((x) => x.record).length} receipts.`);
    }

    const verified = verifyFile(result.bundleFile, { trustAnchors: [ca.certificate] });
    const valid = verified.status === 'valid';
    const proxyLine = 'checks' in verified ? verified.checks.find((c) => c.name === 'warrant')?.detail : undefined;
    tell(valid
      ? `Proof verified offline with only the CA certificate: VALID (${'checks' in verified ? verified.checks.length : 0} checks: three signatures, content ID, key fingerprints, chains at the transaction time, roles, card record${proxyLine ? ', warrant' : ''}).${proxyLine ? ` Party A: ${proxyLine}.` : ''}`
      : `Proof verification FAILED: ${'failures' in verified ? verified.failures.map((f) => f.name).join(', ') : verified.status}`);
    const logged = await runLogDemo({ dir, keys: logKeys, passphrase: DEMO_PASSPHRASE, bundleFile: result.bundleFile, trustAnchors: [ca.certificate], fork: Boolean(o.fork), store: server.store });
    logged.story.forEach(tell);
    if (o.keepDir) {
      writeFileSync(join(dir, 'README.txt'), `qtm demo files. Passphrases: ${DEMO_PASSPHRASE}; card PIN ${DEMO_PIN}, PUK ${DEMO_PUK} (demo only).\n`);
    }
    return {
      story, valid: valid && logged.valid, transactionId: result.transactionId, bundleFile: logged.bundleFile, ...(o.keepDir ? { dir } : {}), apdus: result.apdus, ms: performance.now() - started,
      log: { index: logged.index, size: logged.size, ...(logged.forkRefused ? { forkRefused: logged.forkRefused } : {}) },
      ...(proxy && refused ? { proxy: { warrant: proxy.serial, refused } } : {}),
      ...(result.fair ? { fairness: { cheat: null, clientHasX: true, serverHasY: true, fair: true } } : {}),
    };
  } finally {
    for (const c of cleanups.reverse()) await c();
    if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

/** Manager X, the server's proxy key S, and X's warrant letting S sign with Alice only. */
/**
 * The demo's token: in a throwaway SoftHSM2 under DIR when SOFTHSM2_CONF is unset, else a new
 * token in the SoftHSM2 it names. Its user PIN is the demo's, kept in this process only.
 */
function demoToken(dir: string): { label: string; module: string; where: string; uri(object: string): string } {
  const label = `qtm-demo-${randomBytes(4).toString('hex')}`;
  let module: string;
  let where: string;
  if (process.env['SOFTHSM2_CONF']) {
    module = process.env['QTM_PKCS11_MODULE'] ?? findSoftHsmModule() ?? '';
    if (!module) throw new InputError('SoftHSM2 is not installed', 'install it: apt-get install softhsm2');
    initSoftHsmToken(module, label, randomBytes(12).toString('hex'), DEMO_TOKEN_PIN);
    where = `the SoftHSM2 of SOFTHSM2_CONF=${process.env['SOFTHSM2_CONF']}`;
  } else {
    module = createSoftHsm(join(dir, 'softhsm'), label, { so: randomBytes(12).toString('hex'), user: DEMO_TOKEN_PIN }).module;
    where = `a throwaway SoftHSM2 (${join(dir, 'softhsm')})`;
  }
  setPkcs11Module(module);
  const uri = (object: string) => `pkcs11:token=${label};object=${object}`;
  rememberPin(tokenRef(uri('master')), DEMO_TOKEN_PIN);
  return { label, module, where, uri };
}

function setUpProxy(dir: string, ca: OpenCa, alice: X509Certificate, tell: (s: string) => void, token?: { uri(object: string): string }) {
  const manager = issueKeyAndCertificate(ca, { role: 'manager', subject: 'CN=Xavier Sales,O=Example Shop' });
  writeIdentity(join(dir, 'xavier'), [manager.certificate], manager.privateKey, DEMO_PASSPHRASE);
  const warrants = join(dir, 'warrants');
  const request = token ? createTokenRequest(warrants, 'sales', token.uri('proxy-sales')) : createRequest(warrants, 'sales', DEMO_PASSPHRASE);
  const w = issueWarrant({
    issuer: manager, subjectKey: readRequest(request.requestFile), customers: [{ fingerprint: keyFingerprint(alice.publicKey) }],
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 30 * 86_400_000),
  });
  writeFileSync(join(warrants, 'alice.warrant.pem'), [w, manager.certificate].map((c) => c.toString()).join(''));
  // X's first revocation list, empty: the server signs nothing for X without a current one.
  const now = new Date();
  writeFileSync(join(warrants, 'xavier.crl'), crlPem(issueCrl({ crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + 7 * 86_400_000), entries: [] }, manager).der));
  const serial = w.serialNumber.toUpperCase();
  tell(`Sales manager "CN=Xavier Sales" signed warrant ${serial}: an RFC 3820 proxy certificate letting the server's key S sign as Xavier, with Alice only, for 30 days (claims 10-11).`);
  return { registry: WarrantRegistry.open(warrants, DEMO_PASSPHRASE), manager: manager.certificate, serial };
}

export function bundleText(file: string): string {
  return readFileSync(file, 'utf8');
}
