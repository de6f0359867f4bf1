import { Command } from 'commander';
import { cardOptions, examples, parsePositiveInt } from '../cli/options.js';
import { out } from '../cli/output.js';
import { withCard, type CardChoice } from '../card/open-card.js';
import { chooseSlot, readSlots, type SlotView } from '../card/receipts.js';
import { InputError, RefusedError } from '../errors.js';
import { fetchCommand } from './sign.js';

const hex = (b?: Uint8Array) => (b ? Buffer.from(b).toString('hex') : undefined);

function slotJson(s: SlotView) {
  if (!s.raw) return { slot: s.slot, state: 'free' };
  if (!s.record) return { slot: s.slot, state: 'unreadable', error: s.error, raw: hex(s.raw) };
  const r = s.record;
  return {
    slot: s.slot,
    state: 'used',
    version: r.version,
    transactionId: r.transactionId,
    time: new Date(r.time * 1000).toISOString(),
    contentId: hex(r.contentId),
    ...(r.serverIdPrefix ? { serverIdPrefix: hex(r.serverIdPrefix), priority: r.priority } : {}),
    raw: hex(s.raw),
  };
}


/** A blank card has no slots yet: "0 of 0 slots used" would read as an empty issued card. */
function notIssued(serial: Buffer): RefusedError {
  return new RefusedError(`card ${serial.toString('hex').toUpperCase()} is not issued: it holds no receipts yet`, 'issue it with `qtm card issue`', 'E_NOT_ISSUED');
}

export function receiptsCommand(): Command {
  const receipts = new Command('receipts').description('receipts stored on the card (readable without PIN)');

  cardOptions(receipts.command('list'))
    .description('list the card\'s slots: transaction IDs, times, servers; which slot the next receipt takes')
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('qtm receipts list --card alice.card.json', 'qtm receipts list --reader "Virtual PCD 00 00" --json'))
    .action(async (o: CardChoice & { json?: boolean }) => {
      const { serial, slots } = await withCard(o, async (client) => {
        await client.select();
        const status = await client.status();
        if (status.lifecycle !== 'operational') throw notIssued(status.serial);
        return { serial: status.serial.toString('hex').toUpperCase(), slots: await readSlots(client, status) };
      });
      const next = chooseSlot(slots);
      if (o.json) {
        return out.json({ card: serial, slots: slots.map(slotJson), next: next ? { slot: next.slot, replaces: next.replaces ? slotJson(next.replaces) : null } : null });
      }
      out.line(`card ${serial}: ${slots.filter((s) => s.raw).length} of ${slots.length} slots used`);
      for (const s of slots) {
        const j = slotJson(s) as Record<string, unknown>;
        const mark = next?.slot === s.slot ? (next.replaces ? '  <- replaced next' : '  <- next') : '';
        if (j.state === 'free') out.line(`  ${String(s.slot).padStart(2)}  free${mark}`);
        else if (j.state === 'unreadable') out.line(`  ${String(s.slot).padStart(2)}  unreadable: ${j.error}${mark}`);
        else out.line(`  ${String(s.slot).padStart(2)}  tx ${j.transactionId}  ${j.time}  server ${j.serverIdPrefix ?? '(v1)'}  priority ${j.priority ?? '-'}${mark}`);
      }
    });

  cardOptions(receipts.command('show'))
    .description('show one slot in full')
    .argument('<slot>', 'slot number (1-based)', parsePositiveInt)
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('qtm receipts show 1 --card alice.card.json --json'))
    .action(async (slot: number, o: CardChoice & { json?: boolean }) => {
      const view = await withCard(o, async (client) => {
        await client.select();
        const status = await client.status();
        if (status.lifecycle !== 'operational') throw notIssued(status.serial);
        if (slot > status.slotCount) throw new InputError(`slot ${slot} does not exist: the card has ${status.slotCount} slots`);
        return (await readSlots(client, status))[slot - 1]!;
      });
      const j = slotJson(view);
      if (o.json) return out.json(j);
      for (const [k, v] of Object.entries(j)) out.line(`${k.padEnd(16)} ${v}`);
    });
  receipts.addCommand(fetchCommand());
  return receipts;
}
