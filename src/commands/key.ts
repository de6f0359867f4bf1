import { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { decryptPrivateKey, encryptPrivateKey, keyFileKdf, KEY_FILE_KDF } from '../crypto/keys.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { examples } from '../cli/options.js';
import { out } from '../cli/output.js';
import { writeFileAtomic } from '../util/fs.js';
import { InputError, RefusedError } from '../errors.js';
import { CA_PASSPHRASE, KEY_PASSPHRASE } from '../cli/secret-sources.js';

const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----/;

export function keyCommand(): Command {
  const key = new Command('key').description('private key files at rest (PKCS#8, encrypted)');
  secretOptions(key.command('rewrap'), [KEY_PASSPHRASE, CA_PASSPHRASE], { onePassphrase: true })
    .description(`rewrite an encrypted key file with PBKDF2-HMAC-SHA256 at ${KEY_FILE_KDF.iterations.toLocaleString('en')} iterations and AES-256-CBC, same passphrase (QTM_KEY_PASSPHRASE, or QTM_CA_PASSPHRASE with --ca, or a prompt); the file is replaced atomically`)
    .argument('<file>', 'an encrypted PKCS#8 key file (PREFIX-key.pem, ca/ca-key.pem, warrants/NAME-key.pem)')
    .option('--ca', 'the file is a CA key: the passphrase comes from QTM_CA_PASSPHRASE')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples(
      'QTM_KEY_PASSPHRASE=... qtm key rewrap keys/receipts-key.pem',
      'QTM_CA_PASSPHRASE=... qtm key rewrap --ca ca/ca-key.pem',
      'for k in keys/*-key.pem warrants/*-key.pem; do qtm key rewrap "$k"; done',
      'openssl asn1parse -in keys/receipts-key.pem   # INTEGER :0927C0 (600000), hmacWithSHA256',
    ))
    .action(async (file: string, o: { ca?: boolean; json?: boolean }) => {
      if (!existsSync(file)) throw new InputError(`no key file at ${file}`, 'give the path of a PREFIX-key.pem file');
      const pem = readFileSync(file, 'utf8');
      if (!ENCRYPTED_PEM.test(pem)) throw new InputError(`${file} is not an encrypted PKCS#8 key file (no "BEGIN ENCRYPTED PRIVATE KEY")`, 'qtm writes keys encrypted; nothing was changed');
      const before = keyFileKdf(pem);
      const source = o.ca ? CA_PASSPHRASE : KEY_PASSPHRASE;
      const passphrase = await readSecret(source, o);
      let privateKey;
      try {
        privateKey = decryptPrivateKey(pem, passphrase);
      } catch {
        throw new RefusedError(`wrong passphrase for ${file}`, `check ${source.env}${o.ca ? '' : ' (or pass --ca for a CA key)'}; nothing was changed`, 'E_PASSPHRASE');
      }
      const rewrapped = encryptPrivateKey(privateKey, passphrase);
      // Never replace a key with a file that does not open to the same key.
      const again = decryptPrivateKey(rewrapped, passphrase);
      if (!again.equals(privateKey)) throw new Error('re-wrapped key does not open to the same key');
      writeFileAtomic(file, rewrapped, 0o600);
      const after = keyFileKdf(rewrapped)!;
      if (o.json) return out.json({ file, before: before ?? null, after });
      out.line(`${file}: re-wrapped with PBKDF2 ${after.prf}, ${after.iterations} iterations, ${after.cipher}${before ? ` (was ${before.prf}, ${before.iterations} iterations, ${before.cipher})` : ''}`);
    });
  return key;
}
