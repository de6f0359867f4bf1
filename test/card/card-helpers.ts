import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CardClient } from '../../src/card/client.js';
import { issueCard } from '../../src/card/issue.js';
import { InProcessTransport } from '../../src/card/transports/in-process.js';
import { blankImage, MemoryStorage } from '../../src/card/virtual/storage.js';
import { memoryCa } from '../../src/proof/sample.js';
import { initSam, type Sam } from '../../src/sam/sam.js';
import type { OpenCa } from '../../src/pki/ca.js';
import type { ProfileName } from '../../src/protocol/profile.js';
import { IssuanceRegister } from '../../src/card/issuance-register.js';

export const PIN = '1234';
export const PUK = '12345678';

let shared: { ca: OpenCa; sam: Sam; register: IssuanceRegister } | undefined;

/** One CA and SAM for the whole test process (key generation is the slow part). */
export function authority(): { ca: OpenCa; sam: Sam; register: IssuanceRegister } {
  if (!shared) {
    const dir = mkdtempSync(join(tmpdir(), 'qtm-sam-'));
    const sam = initSam(join(dir, 'test.sam'), 'test passphrase');
    shared = { ca: memoryCa(), sam, register: IssuanceRegister.open(join(dir, 'register'), sam.kcv) };
  }
  return shared;
}

export function blankCard(slots = 4) {
  const storage = new MemoryStorage(blankImage(slots));
  const transport = new InProcessTransport(storage);
  return { storage, transport, card: transport.card, client: new CardClient(transport) };
}

export async function issuedCard(opts: { slots?: number; profile?: ProfileName; role?: 'card' | 'manager'; holder?: string } = {}) {
  const { ca, sam, register } = authority();
  const blank = blankCard(opts.slots ?? 4);
  const issued = await issueCard(blank.client, { ca, sam, register, holder: opts.holder ?? 'CN=Test Holder', pin: PIN, puk: PUK, slots: opts.slots ?? 4, profile: opts.profile ?? 'v2', role: opts.role ?? 'card' });
  const serial = Buffer.from(issued.serial, 'hex');
  return { ...blank, ca, sam, issued, serial, keys: sam.cardKeys(serial) };
}
