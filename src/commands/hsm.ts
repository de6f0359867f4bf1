import { Command } from 'commander';
import { examples } from '../cli/options.js';
import { out } from '../cli/output.js';
import { PKCS11_HELP, pkcs11ModuleOption, preparePkcs11 } from '../cli/pkcs11.js';
import { listObjects, listTokens } from '../pkcs11/list.js';
import { modulePathFor, setPkcs11Module } from '../pkcs11/token.js';
import { isPkcs11Uri, parsePkcs11Uri } from '../pkcs11/uri.js';
import { InputError } from '../errors.js';

export function hsmCommand(): Command {
  const hsm = new Command('hsm').description('PKCS#11 tokens (HSMs): what they hold, never key values');
  hsm.command('list')
    .description('without a URI: the tokens of the module (no PIN); with a token URI: its objects, key types and protection attributes (user PIN)')
    .argument('[uri]', 'a token, e.g. "pkcs11:token=shop"')
    .addOption(pkcs11ModuleOption())
    .option('--json', 'print as JSON')
    .addHelpText('after', PKCS11_HELP + examples(
      'qtm hsm list --pkcs11-module /usr/lib/softhsm/libsofthsm2.so',
      'QTM_PKCS11_PIN=... qtm hsm list "pkcs11:token=shop"'))
    .action(async (uri: string | undefined, o: { pkcs11Module?: string; json?: boolean }) => {
      if (uri === undefined) {
        setPkcs11Module(o.pkcs11Module);
        const tokens = listTokens(modulePathFor(parsePkcs11Uri('pkcs11:')));
        if (o.json) return out.json({ tokens });
        for (const t of tokens) out.line(t.initialized ? `${t.uri}  (${t.manufacturer}, ${t.model})` : `(a free slot: no token initialised)`);
        return;
      }
      if (!isPkcs11Uri(uri)) throw new InputError(`"${uri}" is not a PKCS#11 URI`, 'e.g. qtm hsm list "pkcs11:token=shop"', 'E_PKCS11_URI');
      await preparePkcs11([uri], o.pkcs11Module);
      const listing = listObjects(uri);
      if (o.json) return out.json(listing);
      out.line(`token "${listing.token}": ${listing.objects.length} objects`);
      for (const ob of listing.objects) {
        const flags = Object.entries(ob.attributes).filter(([, v]) => v).map(([k]) => k).join(',');
        out.line(`  ${ob.class.padEnd(10)} ${(ob.keyType ? `${ob.keyType}${ob.bits ? `-${ob.bits}` : ''}` : '').padEnd(9)} label=${ob.label} id=${ob.id}${flags ? `  ${flags}` : ''}`);
      }
    });
  return hsm;
}
