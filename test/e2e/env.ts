/**
 * A complete qtm world for end-to-end tests: CA, TLS and receipt identities, SAM, a real HTTPS
 * server on a loopback port, and issued virtual cards (in-process, each in its own file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueKeyAndCertificate, type OpenCa } from '../../src/pki/ca.js';
import { initSam, type Sam } from '../../src/sam/sam.js';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { FileStorage } from '../../src/card/virtual/storage.js';
import { QtmApi } from '../../src/client/api.js';
import { Archive } from '../../src/client/archive.js';
import { runTransaction, type TransactionHooks, type TransactionInput } from '../../src/client/transaction.js';
import { loadCatalogue } from '../../src/server/catalogue.js';
import { startServer, type RunningServer, type ServerParts } from '../../src/server/run-server.js';
import { PROFILES } from '../../src/protocol/profile.js';
import { FIXTURES } from '../helpers.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

export const PIN = '123456';
export const PUK = '12345678';

export interface World {
  dir: string;
  ca: OpenCa;
  sam: Sam;
  server: RunningServer;
  url: string;
  signer: ReturnType<typeof issueKeyAndCertificate>;
  tls: ReturnType<typeof issueKeyAndCertificate>;
  logs: Record<string, unknown>[];
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** What a test may set of the server's parts (the rest makeWorld chooses). */
export type WorldParts = Partial<Pick<ServerParts, 'proxy' | 'fair' | 'now' | 'transparency' | 'anonymousRate' | 'limits'>>;

export async function makeWorld(extra: WorldParts | ((w: { dir: string; ca: OpenCa; sam: Sam }) => WorldParts | Promise<WorldParts>) = {}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-e2e-'));
  const ca = initCa(join(dir, 'ca'), { profile: 'v2', subject: 'CN=E2E CA', passphrase: 'e2e passphrase' });
  const tls = issueKeyAndCertificate(ca, { role: 'server', subject: 'CN=localhost' });
  const signer = issueKeyAndCertificate(ca, { role: 'signer', subject: 'CN=E2E Shop receipts' });
  const sam = initSam(join(dir, 'shop.sam'), 'e2e passphrase');
  const logs: Record<string, unknown>[] = [];
  const parts = typeof extra === 'function' ? await extra({ dir, ca, sam }) : extra;
  const start = (port = 0) => startServer({
    ...parts,
    tls: { privateKey: tls.privateKey, certificates: [tls.certificate] },
    signer: { privateKey: signer.privateKey, certificates: [signer.certificate] },
    sam, trustAnchors: [ca.certificate], storeDir: join(dir, 'store'), catalogue: loadCatalogue(join(FIXTURES, 'catalogue.json')),
    profile: PROFILES.v2, host: '127.0.0.1', port, log: (l) => logs.push(l),
  });
  const world: World = {
    dir, ca, sam, signer, tls, logs,
    server: await start(),
    url: '',
    async restart() {
      const port = Number(new URL(world.url).port);
      await world.server.close();
      world.server = await start(port);
    },
    async close() {
      await world.server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  world.url = world.server.url.replace('127.0.0.1', 'localhost');
  return world;
}

let cardCount = 0;

export async function newCard(world: World, slots = 4) {
  const file = join(world.dir, `card-${++cardCount}.json`);
  const storage = FileStorage.create(file, slots);
  const issued = await issueCard(new CardClient(new InProcessTransport(storage)), { ca: world.ca, sam: world.sam, register: IssuanceRegister.open(join(world.dir, 'ca', 'register'), world.sam.kcv), holder: `CN=Customer ${cardCount}`, pin: PIN, puk: PUK, slots, profile: 'v2' });
  const transport = new InProcessTransport(new FileStorage(file));
  return { file, issued, storage, client: new CardClient(transport), transport };
}

export function autoHooks(overrides: Partial<TransactionHooks> = {}): TransactionHooks {
  return { accept: async () => true, pin: async () => PIN, ...overrides };
}

export async function transact(world: World, card: Awaited<ReturnType<typeof newCard>>, extra: Partial<TransactionInput> = {}) {
  const api = (extra.api as QtmApi | undefined) ?? new QtmApi(world.url, world.ca.certificate.toString());
  const archive = extra.archive ?? (await Archive.open(join(world.dir, `archive-${card.issued.serial}`)));
  try {
    return await runTransaction({
      api, card: card.client, trustAnchors: [world.ca.certificate], archive,
      order: { items: [{ sku: 'PAPER-A4', quantity: 2 }] }, hooks: autoHooks(), ...extra,
    });
  } finally {
    api.close();
  }
}
