import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { decodeBundle } from '../bundle/proof-bundle.js';
import { examples, parseProfile } from '../cli/options.js';
import { out } from '../cli/output.js';
import { InputError } from '../errors.js';
import { decodeCardRecord } from '../protocol/card-record.js';
import { PROFILES } from '../protocol/profile.js';
import { decodePackage, headerLength, serverSignedLength } from '../protocol/qtm-package.js';
import { sampleProof } from '../proof/sample.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function readPackageArg(file: string): { pkg: Buffer; record?: Buffer } {
  let raw: Buffer;
  try {
    raw = readFileSync(file === '-' ? 0 : file); // - is standard input
  } catch {
    throw new InputError(`cannot read ${file}`);
  }
  if (raw[0] === 0x7b /* { */) {
    const bundle = decodeBundle(raw.toString('utf8'));
    return { pkg: bundle.package, ...(bundle.cardRecord ? { record: bundle.cardRecord } : {}) };
  }
  return { pkg: raw };
}

export function packageCommand(): Command {
  const pkg = new Command('package').description('inspect QTM packages and reproduce the patent\'s sizes');

  pkg.command('sizes')
    .description('build a sample signed transaction in memory and report package and card-record sizes')
    .addOption(new Option('--profile <profile>', 'v2 (default, as everywhere else) or v1 (the patent\'s figures: SHA-1, RSA-1024)').argParser(parseProfile).default('v2'))
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('qtm package sizes --profile v1   # 473-byte package, 29-byte card record', 'qtm package sizes --profile v2 --json'))
    .action(async (o: { profile: 'v1' | 'v2'; json?: boolean }) => {
      const profile = PROFILES[o.profile];
      const sample = await sampleProof(o.profile);
      const d = profile.digestLength;
      const sigs = [sample.pkg.signatureA, sample.pkg.signatureB, sample.pkg.signatureServer].map((s) => s.length);
      const packageFormula = profile.fixedSignatureLength
        ? `1+${d}+4+4+${d}+${d}+${d}+3*${profile.fixedSignatureLength}`
        : `1+${d}+4+4+${d}+${d}+${d}+32+${sigs.map((s) => `(2+${s})`).join('+')}`;
      const recordFormula = o.profile === 'v1' ? `1+4+4+${d}` : `1+4+4+${d}+8+1`;
      const result = {
        profile: o.profile,
        packageBytes: sample.packageBytes.length,
        packageFormula,
        headerBytes: headerLength(profile),
        packageVersion: profile.packageVersion,
        serverSignedBytes: serverSignedLength(profile.packageVersion),
        cardRecordBytes: sample.bundle.cardRecord!.length,
        cardRecordFormula: recordFormula,
      };
      if (o.json) return out.json(result);
      out.line(`profile ${o.profile}${profile.legacy ? ' (patent, legacy)' : ''}`);
      out.line(`  QTM package  ${result.packageBytes} bytes = ${packageFormula}`);
      out.line(`  card record  ${result.cardRecordBytes} bytes = ${recordFormula}`);
      out.line(`  signed header (fields 1-7) ${result.headerBytes} bytes; server-signed part (${profile.packageVersion === 1 ? 'fields 1-5' : 'fields 1-7 and the warrant digest'}) ${result.serverSignedBytes} bytes`);
    });

  pkg.command('decode')
    .description('print the fields of a QTM package (a raw package file or a proof bundle)')
    .argument('<file>', 'raw package bytes or a proof bundle (.json); - for standard input')
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('qtm package decode receipt.json', 'qtm package decode package.bin --json', 'cat receipt.json | qtm package decode -'))
    .action((file: string, o: { json?: boolean }) => {
      const { pkg: bytes, record } = readPackageArg(file);
      const p = decodePackage(bytes);
      const result = {
        bytes: bytes.length,
        version: p.version,
        serverId: hex(p.serverId),
        transactionId: p.transactionId,
        time: new Date(p.time * 1000).toISOString(),
        contentId: hex(p.contentId),
        fingerprintA: hex(p.fingerprintA),
        fingerprintB: hex(p.fingerprintB),
        ...(p.warrantDigest ? { warrantDigest: hex(p.warrantDigest) } : {}),
        signatureA: hex(p.signatureA),
        signatureB: hex(p.signatureB),
        signatureServer: hex(p.signatureServer),
        ...(record ? { cardRecord: { bytes: record.length, ...(() => { const r = decodeCardRecord(record); return { version: r.version, transactionId: r.transactionId, time: r.time, contentId: hex(r.contentId), ...(r.serverIdPrefix ? { serverIdPrefix: hex(r.serverIdPrefix), priority: r.priority } : {}) }; })() } } : {}),
      };
      if (o.json) return out.json(result);
      for (const [k, v] of Object.entries(result)) out.line(`${k.padEnd(16)} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
    });
  return pkg;
}
