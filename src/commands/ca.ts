import { Command, Option } from 'commander';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { defaultSubjectAltNames, initCa, issueKeyAndCertificate } from '../pki/ca.js';
import { initTokenCa, issueTokenKeyAndCertificate } from '../pki/token-keys.js';
import { caReferences, openCaReference, PKCS11_HELP, pkcs11ModuleOption, preparePkcs11, requireUri } from '../cli/pkcs11.js';
import { identityPaths } from '../pki/key-files.js';
import { redactPkcs11Uri } from '../pkcs11/uri.js';
import { RefusedError } from '../errors.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';
import { ISSUABLE_ROLES, ROLES, type Role } from '../pki/roles.js';
import { writeIdentity } from '../pki/key-files.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { examples, parsePositiveInt, parseProfile } from '../cli/options.js';
import { out } from '../cli/output.js';
import type { KeySpec } from '../crypto/keys.js';
import { CA_PASSPHRASE, KEY_PASSPHRASE } from '../cli/secret-sources.js';

export function caCommand(): Command {
  const ca = new Command('ca').description('certificate authority: create a root CA and issue role certificates');

  secretOptions(ca.command('init'), [CA_PASSPHRASE])
    .description('create a root CA whose key is encrypted at rest (passphrase from QTM_CA_PASSPHRASE or a prompt)')
    .requiredOption('--out <dir>', 'directory for ca.pem, ca-key.pem, ca.json')
    .addOption(new Option('--profile <profile>', 'default profile of the keys it issues').argParser(parseProfile).default('v2'))
    .option('--subject <dn>', 'CA distinguished name', 'CN=qtm Root CA')
    .option('--days <n>', 'validity in days', parsePositiveInt, 3650)
    .option('--pkcs11 <uri>', 'generate the CA key in this PKCS#11 token object instead of ca-key.pem (RSA-3072, never extractable)')
    .addOption(pkcs11ModuleOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', PKCS11_HELP + examples(
      'QTM_CA_PASSPHRASE=... qtm ca init --out ./ca',
      'qtm ca init --out ./ca-legacy --profile v1 --subject "CN=Legacy CA,O=Shop"',
      'QTM_PKCS11_PIN=... qtm ca init --out ./ca --pkcs11 "pkcs11:token=personaliser;object=ca" --pkcs11-module /usr/lib/softhsm/libsofthsm2.so'))
    .action(async (o: { out: string; profile: 'v1' | 'v2'; subject: string; days: number; pkcs11?: string; pkcs11Module?: string; json?: boolean }) => {
      await preparePkcs11([requireUri(o.pkcs11)], o.pkcs11Module);
      const created = o.pkcs11
        ? initTokenCa(o.out, { profile: o.profile, subject: o.subject, uri: o.pkcs11, days: o.days })
        : initCa(o.out, { profile: o.profile, subject: o.subject, passphrase: await readSecret({ ...CA_PASSPHRASE, confirm: true, minLength: 8 }, o), days: o.days });
      const result = {
        dir: o.out,
        subject: o.subject,
        profile: o.profile,
        certificate: `${o.out}/ca.pem`,
        sha256: createHash('sha256').update(created.certificate.raw).digest('hex'),
        validTo: created.certificate.validTo,
      };
      if (o.json) return out.json(result);
      out.line(`created CA "${o.subject}" (profile ${o.profile}) in ${o.out}${o.pkcs11 ? `, its key in ${created.info.key}` : ''}`);
      out.line(`  trust anchor: ${result.certificate}  sha256 ${result.sha256}`);
    });

  secretOptions(ca.command('issue'), [CA_PASSPHRASE, KEY_PASSPHRASE])
    .description('issue a key and certificate for a role (key encrypted with QTM_KEY_PASSPHRASE or a prompt)')
    .requiredOption('--ca <dir>', 'CA directory (its key in ca-key.pem, or in a token named by ca.json)')
    .addOption(new Option('--role <role>', 'what the certificate is for').choices([...ISSUABLE_ROLES]).makeOptionMandatory())
    .requiredOption('--subject <dn>', 'distinguished name, e.g. "CN=Shop receipts,O=Shop"')
    .requiredOption('--out <prefix>', 'writes PREFIX.pem and PREFIX-key.pem')
    .addOption(new Option('--key <type>', 'key type (default: the role\'s key in the CA profile)').choices(['rsa1024', 'rsa2048', 'rsa3072', 'p256']))
    .option('--days <n>', 'validity in days', parsePositiveInt, 730)
    .option('--san <entry>', 'subjectAltName, DNS:name or IP:address; repeatable (TLS roles default to DNS:<CN>)', (v: string, p: string[]) => [...p, v], [])
    .option('--pkcs11 <uri>', 'generate the key in this PKCS#11 token object (never extractable); writes PREFIX.pem only, and the certificate into the token')
    .addOption(pkcs11ModuleOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', PKCS11_HELP + `\nRoles:\n${ISSUABLE_ROLES.map((r) => `  ${r.padEnd(8)} ${ROLES[r].description}`).join('\n')}\n` + examples(
      'qtm ca issue --ca ./ca --role signer --subject "CN=Shop receipts,O=Shop" --out ./keys/receipts',
      'qtm ca issue --ca ./ca --role server --subject "CN=localhost" --out ./keys/tls',
      'qtm ca issue --ca ./ca --role signer --key p256 --subject "CN=Shop receipts EC" --out ./keys/receipts-ec',
      'QTM_PKCS11_PIN=... qtm ca issue --ca ./ca --role signer --subject "CN=Shop receipts" --out ./keys/receipts --pkcs11 "pkcs11:token=shop;object=receipts"'))
    .action(async (o: { ca: string; role: Role; subject: string; out: string; key?: KeySpec; days: number; san: string[]; pkcs11?: string; pkcs11Module?: string; json?: boolean }) => {
      const subjectAltNames = defaultSubjectAltNames(o.role, o.subject, o.san);
      await preparePkcs11([...caReferences(o.ca), requireUri(o.pkcs11)], o.pkcs11Module);
      const ca = await openCaReference(o.ca, o);
      const request = { role: o.role, subject: o.subject, days: o.days, ...(o.key ? { keySpec: o.key } : {}), ...(subjectAltNames ? { subjectAltNames } : {}) };
      if (o.pkcs11) {
        const certFile = identityPaths(o.out).cert;
        if (existsSync(certFile)) throw new RefusedError(`${certFile} already exists`, 'choose another --out prefix; qtm never overwrites keys');
        const issued = issueTokenKeyAndCertificate(ca, { ...request, uri: o.pkcs11 });
        ensureParentDir(certFile);
        writeFileAtomic(certFile, issued.certificate.toString());
        const result = { role: o.role, subject: o.subject, key: issued.keySpec, serial: issued.certificate.serialNumber, validTo: issued.certificate.validTo, certificate: certFile, privateKey: redactPkcs11Uri(o.pkcs11) };
        if (o.json) return out.json(result);
        out.line(`issued ${o.role} certificate "${o.subject}" (${issued.keySpec}, serial ${result.serial})`);
        out.line(`  certificate: ${certFile} (also stored in the token)`);
        out.line(`  private key: ${result.privateKey} (in the token, never extractable)`);
        return;
      }
      const keyPassphrase = await readSecret({ ...KEY_PASSPHRASE, confirm: true, minLength: 8 }, o);
      const issued = issueKeyAndCertificate(ca, request);
      const paths = writeIdentity(o.out, [issued.certificate], issued.privateKey, keyPassphrase);
      const result = {
        role: o.role,
        subject: o.subject,
        key: issued.keySpec,
        serial: issued.certificate.serialNumber,
        validTo: issued.certificate.validTo,
        certificate: paths.cert,
        privateKey: paths.key,
      };
      if (o.json) return out.json(result);
      out.line(`issued ${o.role} certificate "${o.subject}" (${issued.keySpec}, serial ${result.serial})`);
      out.line(`  certificate: ${paths.cert}`);
      out.line(`  private key: ${paths.key} (encrypted)`);
    });
  return ca;
}
