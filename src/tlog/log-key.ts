/**
 * The log's own Ed25519 key on disk, apart from the receipt and TLS keys: PREFIX-key.pem (PKCS#8,
 * encrypted at rest as every qtm key, src/crypto/keys.ts) and PREFIX.vkey (the public signed-note
 * verifier key, which names the log: its key name is the checkpoint origin). Witness keys use the
 * same files with signature type 0x04 (cosignature/v1).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { decryptPrivateKey, encryptPrivateKey } from '../crypto/keys.js';
import { InputError, RefusedError } from '../errors.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';
import { rawSeed } from './ed25519.js';
import { checkKeyName, decodeVkey, encodeVkey, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, type Skey, type Vkey } from './note.js';
import { publicFromSeed } from './ed25519.js';

export function logKeyPaths(prefix: string) {
  return { key: `${prefix}-key.pem`, vkey: `${prefix}.vkey` };
}

/** Generates and writes a new key; never overwrites. Returns the vkey text. */
export function writeNewNoteKey(prefix: string, name: string, type: number, passphrase: string): { vkey: string; paths: { key: string; vkey: string } } {
  checkKeyName('key name', name);
  const paths = logKeyPaths(prefix);
  for (const p of [paths.key, paths.vkey]) {
    if (existsSync(p)) throw new RefusedError(`${p} already exists`, 'choose another --out prefix; qtm never overwrites keys');
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const vkey = encodeVkey({ name, type, publicKey: publicFromSeed(rawSeed(privateKey)) });
  ensureParentDir(paths.key);
  writeFileAtomic(paths.key, encryptPrivateKey(privateKey, passphrase), 0o600);
  try {
    writeFileAtomic(paths.vkey, `${vkey}\n`);
  } catch (err) {
    rmSync(paths.key, { force: true });
    throw err;
  }
  return { vkey, paths };
}

export function readVkeyFile(path: string, types: readonly number[] = [SIG_TYPE_ED25519]): Vkey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // A vkey can also be given inline (name+id+base64).
    if (path.includes('+')) return decodeVkey(path, types);
    throw new InputError(`cannot read the key ${path}`, 'give a .vkey file or the vkey text itself');
  }
  return decodeVkey(text, types);
}

/** Reads PREFIX-key.pem with the passphrase and PREFIX.vkey, and checks they are one key. */
export function readNoteKey(prefix: string, passphrase: string, type: number): Skey {
  const paths = logKeyPaths(prefix);
  if (!existsSync(paths.key) || !existsSync(paths.vkey)) {
    throw new InputError(`no log key at ${prefix} (expected ${paths.key} and ${paths.vkey})`, type === SIG_TYPE_COSIGNATURE_V1 ? 'create one with `qtm log witness-key`' : 'create one with `qtm log init`');
  }
  const vkey = readVkeyFile(paths.vkey, [type]);
  let seed: Buffer;
  try {
    const key = decryptPrivateKey(readFileSync(paths.key, 'utf8'), passphrase);
    if (key.asymmetricKeyType !== 'ed25519') throw new InputError(`${paths.key} is not an Ed25519 key`);
    seed = rawSeed(key);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new RefusedError(`wrong passphrase for ${paths.key}`, 'check QTM_KEY_PASSPHRASE, or the passphrase file given');
  }
  if (!publicFromSeed(seed).equals(vkey.publicKey)) throw new InputError(`${paths.key} and ${paths.vkey} are not one key pair`);
  return { name: vkey.name, keyId: vkey.keyId, type, seed, publicKey: vkey.publicKey };
}

