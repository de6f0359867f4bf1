import { Command } from 'commander';
import { initSam, samInfo } from '../sam/sam.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { examples } from '../cli/options.js';
import { out } from '../cli/output.js';
import { PKCS11_HELP, pkcs11ModuleOption, preparePkcs11, requireUri } from '../cli/pkcs11.js';
import { generateTokenMasterKey, tokenMasterKeyInfo } from '../pkcs11/keys.js';
import { isPkcs11Uri, redactPkcs11Uri } from '../pkcs11/uri.js';
import { InputError } from '../errors.js';

import { SAM_PASSPHRASE } from '../cli/secret-sources.js';

export function samCommand(): Command {
  const sam = new Command('sam').description('the SAM keystore holding the master key for card key diversification');
  secretOptions(sam.command('init'), [SAM_PASSPHRASE])
    .description('create a SAM with a fresh AES-128 master key: in a file encrypted at rest (passphrase from QTM_SAM_PASSPHRASE or a prompt), or generated inside a PKCS#11 token')
    .option('--out <file>', 'SAM keystore file to create')
    .option('--pkcs11 <uri>', 'instead of a file: generate the master key in this token object (sensitive, never extractable, AES-CMAC only); --sam URI names it from then on')
    .addOption(pkcs11ModuleOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', PKCS11_HELP + examples(
      'QTM_SAM_PASSPHRASE=... qtm sam init --out shop.sam',
      'QTM_PKCS11_PIN=... qtm sam init --pkcs11 "pkcs11:token=personaliser;object=master" --pkcs11-module /usr/lib/softhsm/libsofthsm2.so'))
    .action(async (o: { out?: string; pkcs11?: string; pkcs11Module?: string; json?: boolean }) => {
      if (Boolean(o.out) === Boolean(o.pkcs11)) throw new InputError('give either --out FILE or --pkcs11 URI', 'a SAM is a file or a key in a token');
      await preparePkcs11([requireUri(o.pkcs11)], o.pkcs11Module);
      const s = o.pkcs11 ? generateTokenMasterKey(o.pkcs11) : initSam(o.out!, await readSecret({ ...SAM_PASSPHRASE, confirm: true, minLength: 8 }, o));
      const where = o.pkcs11 ? redactPkcs11Uri(o.pkcs11) : o.out!;
      if (o.json) return out.json({ [o.pkcs11 ? 'uri' : 'file']: where, kcv: s.kcv });
      out.line(`created SAM ${where} (master key check value ${s.kcv}; the key itself is never shown${o.pkcs11 ? ' and never leaves the token' : ''})`);
    });
  sam.command('info')
    .description('show the key check value and creation time of a SAM (no passphrase needed), or a token master key\'s check value and attributes (never its value)')
    .argument('<file|uri>', 'SAM keystore file, or the PKCS#11 URI of the master key')
    .addOption(pkcs11ModuleOption())
    .option('--json', 'print as JSON')
    .addHelpText('after', PKCS11_HELP + examples('qtm sam info shop.sam', 'QTM_PKCS11_PIN=... qtm sam info "pkcs11:token=personaliser;object=master"'))
    .action(async (file: string, o: { pkcs11Module?: string; json?: boolean }) => {
      if (isPkcs11Uri(file)) {
        await preparePkcs11([file], o.pkcs11Module);
        const info = tokenMasterKeyInfo(file);
        if (o.json) return out.json(info);
        out.line(`${info.uri}: master key check value ${info.kcv}; ${Object.entries(info.attributes).map(([k, v]) => `${k}=${v}`).join(' ')}`);
        return;
      }
      const info = samInfo(file);
      if (o.json) return out.json({ file, ...info });
      out.line(`${file}: master key check value ${info.kcv}, created ${info.created}`);
    });
  return sam;
}
