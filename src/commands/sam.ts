import { Command } from 'commander';
import { initSam, samInfo } from '../sam/sam.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { examples } from '../cli/options.js';
import { out } from '../cli/output.js';
import { SAM_PASSPHRASE } from '../cli/secret-sources.js';

export function samCommand(): Command {
  const sam = new Command('sam').description('the SAM keystore holding the master key for card key diversification');
  secretOptions(sam.command('init'), [SAM_PASSPHRASE])
    .description('create a SAM with a fresh AES-128 master key, encrypted at rest (passphrase from QTM_SAM_PASSPHRASE or a prompt)')
    .requiredOption('--out <file>', 'SAM keystore file to create')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('QTM_SAM_PASSPHRASE=... qtm sam init --out shop.sam'))
    .action(async (o: { out: string; json?: boolean }) => {
      const s = initSam(o.out, await readSecret({ ...SAM_PASSPHRASE, confirm: true, minLength: 8 }, o));
      if (o.json) return out.json({ file: o.out, kcv: s.kcv });
      out.line(`created SAM ${o.out} (master key check value ${s.kcv}; the key itself is never shown)`);
    });
  sam.command('info')
    .description('show the key check value and creation time of a SAM (no passphrase needed)')
    .argument('<file>', 'SAM keystore file')
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('qtm sam info shop.sam'))
    .action((file: string, o: { json?: boolean }) => {
      const info = samInfo(file);
      if (o.json) return out.json({ file, ...info });
      out.line(`${file}: master key check value ${info.kcv}, created ${info.created}`);
    });
  return sam;
}
