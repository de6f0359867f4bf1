/**
 * Key references on the command line: a file (as before) or a PKCS#11 URI (RFC 7512). Commands
 * call `preparePkcs11` with every reference they got before opening any key: it checks each URI,
 * sets the module (--pkcs11-module, else the URI's module-path, else QTM_PKCS11_MODULE) and asks
 * for a token's user PIN once, masked, when neither the URI's pin-source nor QTM_PKCS11_PIN gives
 * it. A PIN is never a flag, never printed, never logged.
 */
import { Option } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOKEN_KEY_SUFFIX } from '../warrant/registry.js';
import type { X509Certificate } from 'node:crypto';
import { caKeyInToken, openCa, type OpenCa } from '../pki/ca.js';
import { readIdentity } from '../pki/key-files.js';
import { openSam, type Sam } from '../sam/sam.js';
import type { SigningKey } from '../crypto/signer.js';
import { tokenCertificates, tokenSam, tokenSigner } from '../pkcs11/keys.js';
import { MODULE_ENV, PIN_ENV, pinWithoutPrompt, rememberPin, setPkcs11Module, tokenRef } from '../pkcs11/token.js';
import { isPkcs11Uri } from '../pkcs11/uri.js';
import { readSecret, type SecretFlags } from './secrets.js';
import { InputError } from '../errors.js';

import { CA_PASSPHRASE, KEY_PASSPHRASE, SAM_PASSPHRASE } from './secret-sources.js';

export function pkcs11ModuleOption(): Option {
  return new Option('--pkcs11-module <path>', `PKCS#11 module for pkcs11: key references (default: the URI's module-path, then ${MODULE_ENV})`);
}

export const PKCS11_HELP = `
Key references may be PKCS#11 URIs (RFC 7512), e.g. "pkcs11:token=shop;object=receipts".
The token's user PIN comes from the URI's pin-source=file:/path, ${PIN_ENV}, or a masked prompt.
`;

/** A --pkcs11 value must be a PKCS#11 URI (it names where the new key goes). */
export function requireUri(value: string | undefined): string | undefined {
  if (value !== undefined && !isPkcs11Uri(value)) throw new InputError(`--pkcs11 takes a PKCS#11 URI, not "${value}"`, 'e.g. --pkcs11 "pkcs11:token=shop;object=receipts"', 'E_PKCS11_URI');
  return value;
}

/** Checks every PKCS#11 reference and gets each token's PIN (prompting once if needed). */
export async function preparePkcs11(references: readonly (string | undefined)[], moduleFlag?: string): Promise<void> {
  setPkcs11Module(moduleFlag);
  for (const text of references) {
    if (!text || !isPkcs11Uri(text)) continue;
    const ref = tokenRef(text);
    if (pinWithoutPrompt(ref) !== undefined) continue;
    const label = ref.uri.token ?? ref.uri.serial ?? 'PKCS#11 token';
    rememberPin(ref, await readSecret({ env: PIN_ENV, prompt: `user PIN of token ${label}` }));
  }
}

/** The PKCS#11 URIs of the proxy keys in a warrants folder (NAME-key.pkcs11 files). */
export function warrantTokenReferences(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(TOKEN_KEY_SUFFIX)).map((f) => readFileSync(join(dir, f), 'utf8').trim());
}

/** A SAM file (passphrase from QTM_SAM_PASSPHRASE) or a master key in a token. */
export async function openSamReference(reference: string, flags?: SecretFlags): Promise<Sam> {
  if (isPkcs11Uri(reference)) return tokenSam(reference);
  return openSam(reference, await readSecret(SAM_PASSPHRASE, flags));
}

/** A CA directory whose key is ca-key.pem (passphrase asked) or in a token (ca.json names it). */
export async function openCaReference(dir: string, flags?: SecretFlags): Promise<OpenCa> {
  if (caKeyInToken(dir)) return openCa(dir, '');
  return openCa(dir, await readSecret(CA_PASSPHRASE, flags));
}

/** The references preparePkcs11 needs for a CA directory. */
export function caReferences(dir: string): (string | undefined)[] {
  return [caKeyInToken(dir)];
}

/** An identity to sign with: PREFIX (PREFIX.pem, PREFIX-key.pem) or a key in a token with its certificate stored beside it. */
export async function readSigningIdentity(reference: string, flags?: SecretFlags): Promise<{ certificates: X509Certificate[]; privateKey: SigningKey }> {
  if (isPkcs11Uri(reference)) {
    const privateKey = tokenSigner(reference);
    const certificates = tokenCertificates(reference);
    return { certificates, privateKey };
  }
  return readIdentity(reference, await readSecret(KEY_PASSPHRASE, flags));
}
