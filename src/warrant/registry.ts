/**
 * The server's warrants folder:
 *   NAME-key.pem        a proxy signing key S (PKCS#8, encrypted with QTM_KEY_PASSPHRASE)
 *   NAME-key.pkcs11     or: the PKCS#11 URI of S in a token (`qtm warrant request --pkcs11`)
 *   NAME.request.pem    its public key: the request a manager turns into a warrant
 *   *.warrant.pem       a warrant followed by its issuer X's certificate (and intermediates)
 *   *.crl               each issuer X's revocation list, an X.509 CRL X signs (./crl.ts)
 *   crl-state.json      the highest list accepted per issuer, and when it came (./crl-state.ts)
 *   revocations.json    the unsigned list of qtm before CRLs: read only so that none of its
 *                       entries is lost (X signs them into a CRL with `qtm warrant revoke --import-json`)
 * Warrants added while the server runs are picked up on the next transaction; revocation lists
 * are read again before every proxy signature, and without a current list from X none is made.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { SigningKey } from '../crypto/signer.js';
import { tokenSigner } from '../pkcs11/keys.js';
import { createPublicKey } from 'node:crypto';
import { decryptPrivateKey, encryptPrivateKey, generateKeyPair, keyFingerprint, type KeySpec } from '../crypto/keys.js';
import { certificatesFromPemBundle } from '../crypto/x509.js';
import { DecodeError, InputError, RefusedError } from '../errors.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';
import { readLocalFile } from '../util/local-file.js';
import { crlSignatureProblem, decodeCrl, verifyCrl, type Crl, type RevocationList } from './crl.js';
import { CRL_STATE_FILE, CrlState } from './crl-state.js';
import { Revocations } from './revocations.js';
import { coversCustomer, parseWarrant, warrantProblems, type Warrant } from './warrant.js';

/** The unsigned JSON list of earlier versions: kept only to migrate it (see above). */
export const LEGACY_REVOCATIONS_FILE = 'revocations.json';
const CRL_SUFFIX = '.crl';
const WARRANT_SUFFIX = '.warrant.pem';
const KEY_SUFFIX = '-key.pem';
export { TOKEN_KEY_SUFFIX } from '../pki/token-keys.js';
import { TOKEN_KEY_SUFFIX } from '../pki/token-keys.js';

export interface StoredWarrant {
  readonly file: string;
  readonly warrant: Warrant;
  /** X's certificate first, then any intermediates. */
  readonly issuerChain: readonly X509Certificate[];
  /** S, when this server holds it (a key file or a key in a token). */
  readonly key?: SigningKey;
}

export type WarrantLookup =
  | { readonly found: StoredWarrant }
  | { readonly problems: readonly string[] };

/** `qtm warrant request`: a new S; its private half stays in the folder, encrypted. */
export function createRequest(dir: string, name: string, passphrase: string, keySpec: KeySpec = 'rsa2048'): { requestFile: string; keyFile: string; fingerprint: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new InputError(`"${name}" is not a usable name`, 'use letters, digits, dot, dash and underscore');
  const keyFile = join(dir, `${name}${KEY_SUFFIX}`);
  const requestFile = join(dir, `${name}.request.pem`);
  if (existsSync(keyFile) || existsSync(requestFile)) throw new RefusedError(`${keyFile} already exists`, 'choose another --name; keys are never overwritten');
  const { privateKey, publicKey } = generateKeyPair(keySpec);
  ensureParentDir(keyFile);
  writeFileAtomic(keyFile, encryptPrivateKey(privateKey, passphrase), 0o600);
  writeFileAtomic(requestFile, publicKey.export({ type: 'spki', format: 'pem' }) as string);
  return { requestFile, keyFile, fingerprint: keyFingerprint(publicKey) };
}

export function readRequest(file: string): KeyObject {
  try {
    return createPublicKey(readFileSync(file, 'utf8'));
  } catch {
    throw new InputError(`${file} is not a warrant request (a PEM public key)`, 'make one with `qtm warrant request`');
  }
}

export function readWarrantFile(file: string): Omit<StoredWarrant, 'key'> {
  const certs = certificatesFromPemBundle(readLocalFile(file, 'warrant').toString('utf8'), file);
  if (certs.length < 2) throw new InputError(`${file} must hold the warrant followed by its issuer's certificate`);
  try {
    return { file, warrant: parseWarrant(certs[0]!), issuerChain: certs.slice(1) };
  } catch (err) {
    if (err instanceof DecodeError) throw new InputError(`${file}: ${err.message}`, 'remove it from the warrants folder, or ask its issuer for it again', 'E_FILE_DAMAGED');
    throw err;
  }
}

export class WarrantRegistry {
  private warrants: StoredWarrant[] = [];
  private keys = new Map<string, SigningKey>();
  private loadedAt = -1;

  private constructor(
    readonly dir: string,
    private readonly passphrase: string | undefined,
  ) {}

  /** Without a passphrase the keys are not opened (listing, revoking). */
  static open(dir: string, passphrase?: string): WarrantRegistry {
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const r = new WarrantRegistry(dir, passphrase);
    r.reloadIfChanged();
    return r;
  }

  /** Re-reads the folder when a file was added or removed since the last look. */
  reloadIfChanged(): void {
    const mtime = statSync(this.dir).mtimeMs;
    if (mtime === this.loadedAt) return;
    const files = readdirSync(this.dir).sort();
    if (this.passphrase !== undefined) {
      const keys = new Map<string, SigningKey>();
      for (const f of files.filter((n) => n.endsWith(KEY_SUFFIX))) {
        let key: KeyObject;
        try {
          key = decryptPrivateKey(readFileSync(join(this.dir, f), 'utf8'), this.passphrase);
        } catch {
          throw new RefusedError(`cannot open the proxy key ${join(this.dir, f)}`, 'check QTM_KEY_PASSPHRASE');
        }
        keys.set(keyFingerprint(key), key);
      }
      for (const f of files.filter((n) => n.endsWith(TOKEN_KEY_SUFFIX))) {
        const key = tokenSigner(readFileSync(join(this.dir, f), 'utf8').trim());
        keys.set(keyFingerprint(key.publicKey), key);
      }
      this.keys = keys;
    }
    this.warrants = files.filter((n) => n.endsWith(WARRANT_SUFFIX)).map((f) => {
      const w = readWarrantFile(join(this.dir, f));
      const key = this.keys.get(keyFingerprint(w.warrant.certificate.publicKey));
      return key ? { ...w, key } : w;
    });
    this.loadedAt = mtime;
  }

  all(): readonly StoredWarrant[] {
    return this.warrants;
  }

  get(serial: string): StoredWarrant | undefined {
    return this.warrants.find((w) => w.warrant.serial === serial.toUpperCase());
  }

  /** Every `*.crl` in the folder, decoded, or why it does not decode. Read from disk every time. */
  revocationFiles(): { file: string; crl?: Crl; error?: string }[] {
    return readdirSync(this.dir).filter((n) => n.endsWith(CRL_SUFFIX)).sort().map((n) => {
      const file = join(this.dir, n);
      try {
        return { file, crl: decodeCrl(readFileSync(file)) };
      } catch (err) {
        if (err instanceof DecodeError) return { file, error: err.message };
        throw err;
      }
    });
  }

  /**
   * X's current revocation list as this server may rely on it at `now`: present, signed by X,
   * not older than or missing entries of the highest accepted before, not backdating, not past
   * its nextUpdate, and keeping every entry of a legacy revocations.json. Otherwise the reason.
   */
  revocationList(manager: X509Certificate, now: Date): { readonly list: RevocationList } | { readonly problem: string } {
    const name = manager.subject.replace(/\n/g, ', ');
    const files = this.revocationFiles();
    const broken = files.find((f) => f.error);
    if (broken) return { problem: `${broken.file} is not a usable revocation list (${broken.error})` };
    const lists: RevocationList[] = [];
    for (const f of files) {
      const problem = crlSignatureProblem(f.crl!, manager);
      if (problem?.kind === 'issuer') continue;
      if (problem) return { problem: `${f.file}: ${problem.message}` };
      lists.push(verifyCrl(f.crl!, manager));
    }
    if (lists.length === 0) return { problem: `no revocation list from "${name}" in ${this.dir} (X signs one with \`qtm warrant revoke --crl ${join(this.dir, 'NAME.crl')}\`)` };
    const list = lists.reduce((a, b) => (b.crlNumber > a.crlNumber ? b : a));
    let state: CrlState;
    try {
      state = CrlState.read(join(this.dir, CRL_STATE_FILE));
    } catch (err) {
      // Without the highest list seen before, a rolled-back list cannot be told: fail closed.
      if (err instanceof InputError) return { problem: err.message };
      throw err;
    }
    const problem = state.accept(list, name, now);
    if (problem) return { problem };
    for (const legacy of Revocations.read(join(this.dir, LEGACY_REVOCATIONS_FILE)).entries) {
      if (legacy.issuer !== list.issuerFingerprint) continue;
      const at = list.lookup(legacy.serial, list.issuerFingerprint);
      if (!at || at.getTime() > Date.parse(legacy.revokedAt)) {
        return { problem: `${LEGACY_REVOCATIONS_FILE} revokes warrant ${legacy.serial} at ${legacy.revokedAt}, which the revocation list of "${name}" (number ${list.crlNumber}) does not: have X sign it in with \`qtm warrant revoke --import-json\`` };
      }
    }
    return { list };
  }

  /**
   * A warrant from this manager that lets S sign with this customer now, with S's key here.
   * Otherwise why each warrant naming this customer cannot be used. Warrants for other
   * customers are not described: who else X deals with is not this customer's business.
   */
  find(manager: X509Certificate, customer: X509Certificate, customerIssuer: X509Certificate | undefined, at: Date): WarrantLookup {
    this.reloadIfChanged();
    const problems: string[] = [];
    const checked = this.revocationList(manager, at);
    if ('problem' in checked) return { problems: [checked.problem] };
    const revocations = checked.list;
    for (const w of this.warrants) {
      if (!w.issuerChain[0]!.raw.equals(manager.raw)) continue;
      if (!coversCustomer(w.warrant.policy, customer, customerIssuer)) continue;
      const p = warrantProblems(w.warrant, { manager, customer, customerIssuer, at, revocations });
      if (!w.key) p.push(`warrant ${w.warrant.serial} is for a key this server does not hold`);
      if (p.length === 0) return { found: w };
      problems.push(...p);
    }
    return { problems };
  }
}
