/**
 * Redelivery (claim 7, "the server can try to contact the first client again"): receipts the
 * server signed but never saw acknowledged are written again with a fresh card challenge. A
 * record that is already on the card (the third message was lost) is rewritten into its own
 * slot, so the card proves storage again without using another slot.
 */
import { PATHS } from '../protocol/routes.js';
import type { X509Certificate } from 'node:crypto';
import type { CardClient } from '../card/client.js';
import { chooseSlot, readSlots } from '../card/receipts.js';
import { encodeBundle } from '../bundle/proof-bundle.js';
import * as M from '../protocol/messages.js';
import { decodeHeader } from '../protocol/qtm-package.js';
import { RefusedError } from '../errors.js';
import type { QtmApi } from './api.js';
import type { Archive } from './archive.js';
import { checkSecondMessage, keepStoreHead, openAndAuthenticate, type TransactionHooks } from './transaction.js';

export interface Redelivered {
  readonly transactionId: number;
  readonly slot: number;
  readonly rewritten: boolean;
}

export async function fetchReceipts(o: { api: QtmApi; card: CardClient; trustAnchors: readonly X509Certificate[]; archive: Archive; pin: string; hooks?: Partial<TransactionHooks> }): Promise<Redelivered[]> {
  const hooks = { accept: async () => true, pin: async () => o.pin, ...o.hooks };
  const { status, certificate } = await openAndAuthenticate(o.api, o.card, o.pin, hooks, {});
  const { transactions } = await o.api.call<{ transactions: number[] }>('GET', PATHS.pending);
  const done: Redelivered[] = [];
  for (const transactionId of transactions) {
    const prepared = await o.api.call('GET', PATHS.transaction(transactionId), undefined, M.decodePrepared);
    const slots = await readSlots(o.card, status);
    const header = decodeHeader(prepared.header);
    const already = slots.find((s) => s.record && s.record.transactionId === transactionId && Buffer.from(s.record.contentId).equals(header.contentId));
    const choice = already ? { slot: already.slot } : chooseSlot(slots);
    if (!choice) throw new RefusedError('the card has no receipt slots');
    if (!already && 'replaces' in choice && choice.replaces?.raw) {
      await o.archive.archiveReplaced({ cardSerial: status.serial.toString('hex').toUpperCase(), slot: choice.slot, record: choice.replaces.raw.toString('hex') });
    }
    const challenge = await o.card.getChallenge();
    const second = await o.api.call('POST', PATHS.redeliver(transactionId), M.encodeRedeliverRequest({ challenge, slot: choice.slot }), M.decodeSecondMessage);
    const priority = already?.record?.priority ?? 0;
    const { bundle, record, monitorKeyFile } = checkSecondMessage({ prepared, second, cardCertificate: certificate, trustAnchors: o.trustAnchors, priority });
    const serverId = Buffer.from(header.serverId).toString('hex');
    await keepStoreHead(o.archive, serverId, second, prepared.serverCertificates[0]!);
    if (monitorKeyFile) o.archive.keepMonitorKey(monitorKeyFile.name, monitorKeyFile.text);
    await o.archive.saveProof({ serverId, transactionId, cardSerial: status.serial.toString('hex').toUpperCase(), slot: choice.slot, state: 'received', header: prepared.header.toString('base64') }, encodeBundle(bundle), second.package);
    const proof = await o.card.secureWrite(choice.slot, second.envelope);
    const back = await o.card.readRecord(choice.slot);
    if (!back?.equals(record)) throw new RefusedError(`slot ${choice.slot} does not hold the receipt that was written`);
    await o.api.call('POST', PATHS.ack(transactionId), M.encodeThirdMessage({ transactionId, proof }));
    await o.archive.markDelivered(serverId, transactionId, second.package);
    done.push({ transactionId, slot: choice.slot, rewritten: Boolean(already) });
  }
  return done;
}
