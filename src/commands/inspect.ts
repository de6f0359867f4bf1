import { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { examples } from '../cli/options.js';
import { out } from '../cli/output.js';
import { renderContent } from '../cli/dialog.js';
import { decodeBundle, MAX_BUNDLE_BYTES, type ProofBundle } from '../bundle/proof-bundle.js';
import { decodePackage } from '../protocol/qtm-package.js';
import { decodeCardRecord } from '../protocol/card-record.js';
import { profileByPackageVersion } from '../protocol/profile.js';
import { describeCustomers, parseWarrant } from '../warrant/warrant.js';
import { InputError } from '../errors.js';
import type { ArchivedProof, FairOutcome } from '../client/archive.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const subjectOf = (pem: string | undefined) => {
  if (!pem) return null;
  try {
    return new X509Certificate(pem).subject.replace(/\n/g, ', ');
  } catch {
    return '(not a certificate)';
  }
};

function readBundleArg(file: string): { text: string; name: string } {
  if (file === '-') {
    const text = readFileSync(0);
    if (text.length > MAX_BUNDLE_BYTES) throw new InputError(`standard input: over the ${MAX_BUNDLE_BYTES}-byte bundle cap`);
    return { text: text.toString('utf8'), name: '-' };
  }
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (err) {
    throw new InputError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'give a proof bundle file, or - for standard input');
  }
  if (text.length > MAX_BUNDLE_BYTES) throw new InputError(`${file}: over the ${MAX_BUNDLE_BYTES}-byte bundle cap`);
  return { text: text.toString('utf8'), name: file };
}

/** A bundle inside a client archive (ARCHIVE/bundles/X.json) has its slot and fair-exchange outcome in ARCHIVE/index.json. */
function archiveEntry(file: string, serverId: string, transactionId: number): { proof?: ArchivedProof; fair?: FairOutcome } {
  if (file === '-' || basename(dirname(file)) !== 'bundles') return {};
  const index = join(dirname(dirname(file)), 'index.json');
  if (!existsSync(index)) return {};
  try {
    const data = JSON.parse(readFileSync(index, 'utf8')) as { proofs?: ArchivedProof[]; fair?: FairOutcome[] };
    const match = <T extends { serverId: string; transactionId: number }>(x: T) => x.serverId === serverId && x.transactionId === transactionId;
    return { proof: data.proofs?.find(match), fair: data.fair?.find(match) };
  } catch {
    return {};
  }
}

export function describeBundle(b: ProofBundle, file: string) {
  const p = decodePackage(b.package);
  const profile = profileByPackageVersion(p.version);
  const serverId = hex(p.serverId);
  const record = b.cardRecord ? decodeCardRecord(b.cardRecord) : undefined;
  const inArchive = archiveEntry(file, serverId, p.transactionId);
  const warrants = (b.warrants ?? []).map((pem) => {
    try {
      const w = parseWarrant(new X509Certificate(pem));
      return { serial: w.serial, issuer: w.certificate.issuer.replace(/\n/g, ', '), subject: w.certificate.subject.replace(/\n/g, ', '), validFrom: w.notBefore.toISOString(), validTo: w.notAfter.toISOString(), covers: describeCustomers(w.policy) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  });
  return {
    file,
    verified: false,
    packageVersion: p.version,
    profile: profile?.name ?? null,
    transactionId: p.transactionId,
    time: new Date(p.time * 1000).toISOString(),
    server: { id: serverId, subject: subjectOf(b.certificates.server[0]) },
    partyA: { subject: subjectOf(b.certificates.partyA[0]), fingerprint: hex(p.fingerprintA) },
    partyB: { subject: subjectOf(b.certificates.partyB[0]), fingerprint: hex(p.fingerprintB) },
    contentId: hex(p.contentId),
    content: b.content ? { bytes: b.content.length, text: b.content.toString('utf8') } : null,
    cardRecord: record ? { priority: record.priority ?? null, serverIdPrefix: record.serverIdPrefix ? hex(record.serverIdPrefix) : null } : null,
    slot: inArchive.proof?.slot ?? null,
    cardSerial: inArchive.proof?.cardSerial ?? null,
    delivery: inArchive.proof?.state ?? null,
    warrants,
    fairExchange: inArchive.fair ? { outcome: inArchive.fair.outcome, via: inArchive.fair.via, keptAt: inArchive.fair.keptAt } : null,
    attested: Boolean(b.attestation),
  };
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show what a proof bundle says, without verifying it: the order text as signed, parties, times, server, slot, warrant, fair exchange')
    .argument('<bundle>', 'a proof bundle file, or - for standard input')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Nothing is verified: a forged bundle is shown as readily as a genuine one. Run \`qtm verify\` to
check it. The slot and the fair-exchange outcome come from the client archive's index when the
bundle is in one (ARCHIVE/bundles/); otherwise they are not in the bundle and shown as unknown.
` + examples('qtm inspect ~/.local/share/qtm/archive/bundles/5a3c9e0b12d4f6a8-42.json', 'qtm inspect receipt.json --json | jq .content.text', 'cat receipt.json | qtm inspect -'))
    .action((file: string, o: { json?: boolean }) => {
      const { text, name } = readBundleArg(file);
      const bundle = decodeBundle(text);
      const d = describeBundle(bundle, name);
      if (o.json) return out.json(d);
      const c = out.colour;
      out.line(`${c.yellow('NOT VERIFIED')} ${name}: transaction ${d.transactionId} at ${d.time} (run qtm verify to check it)`);
      out.line(`  package  version ${d.packageVersion}${d.profile ? `, profile ${d.profile}` : ''}; content ${d.contentId}`);
      out.line(`  server   ${d.server.subject ?? '?'} (id ${d.server.id})`);
      out.line(`  party A  ${d.partyA.subject ?? '?'}`);
      out.line(`  party B  ${d.partyB.subject ?? '?'}`);
      out.line(`  slot     ${d.slot ?? 'unknown (not in the bundle; see qtm receipts list)'}${d.cardSerial ? ` on card ${d.cardSerial}` : ''}${d.delivery ? `, ${d.delivery}` : ''}${d.cardRecord?.priority != null ? `, priority ${d.cardRecord.priority}` : ''}`);
      if (d.warrants.length === 0) out.line('  warrant  none (party A signed for itself)');
      for (const w of d.warrants) {
        if ('error' in w) out.line(`  warrant  unreadable: ${w.error}`);
        else out.line(`  warrant  ${w.serial} issued by ${w.issuer}, valid ${w.validFrom} to ${w.validTo}, covers ${w.covers}`);
      }
      out.line(`  fair     ${d.fairExchange ? `${d.fairExchange.outcome === 'x' ? 'X received' : 'aborted by the TTP'} via ${d.fairExchange.via} (${d.fairExchange.keptAt})` : 'no fair-exchange outcome recorded'}`);
      if (!bundle.content) out.line('  content  detached (not in the bundle)');
      else out.line(renderContent(bundle.content, process.stdout, 'Order as signed'));
    });
}
