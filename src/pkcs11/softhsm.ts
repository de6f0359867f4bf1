/**
 * Throwaway SoftHSM2 tokens, for tests and `qtm demo --pkcs11`: a softhsm2.conf in a directory
 * of its own, named by SOFTHSM2_CONF, and a token initialised through PKCS#11 (C_InitToken and
 * C_InitPIN; softhsm2-util is not needed).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { ck, ckr, closeModules, loadModule } from './token.js';

export const SOFTHSM_MODULE_CANDIDATES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib64/pkcs11/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];

export function findSoftHsmModule(): string | undefined {
  return SOFTHSM_MODULE_CANDIDATES.find((p) => existsSync(p));
}

/** Writes DIR/softhsm2.conf with DIR/tokens as the token directory; returns the conf path. */
export function writeSoftHsmConf(dir: string): string {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
  return conf;
}

/**
 * Initialises a new token LABEL in the SoftHSM2 of the current SOFTHSM2_CONF (SoftHSM always
 * offers one free slot), with a security officer PIN and a user PIN.
 */
export function initSoftHsmToken(module: string, label: string, soPin: string, userPin: string): void {
  const p11 = loadModule(module);
  const free = p11.C_GetSlotList(true).find((slot) => !(p11.C_GetTokenInfo(slot).flags & 0x400));
  if (!free) throw new InputError('SoftHSM2 offers no free slot for a new token', 'check SOFTHSM2_CONF');
  p11.C_InitToken(free, soPin, label.padEnd(32));
  // SoftHSM gives the new token another slot ID: find it again by its label.
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trimEnd() === label);
  if (!slot) throw new Error(`token ${label} not found after C_InitToken`);
  const session = p11.C_OpenSession(slot, ck('CKF_RW_SESSION') | ck('CKF_SERIAL_SESSION'));
  try {
    p11.C_Login(session, ck('CKU_SO'), soPin);
    p11.C_InitPIN(session, userPin);
    p11.C_Logout(session);
  } catch (err) {
    throw new InputError(`cannot set the user PIN of the new token ${label} (${ckr(err) ?? (err as Error).message})`, 'SoftHSM2 PINs are 4 to 255 characters');
  } finally {
    p11.C_CloseSession(session);
  }
}

/**
 * A fresh SoftHSM2 in DIR with one token: points SOFTHSM2_CONF at it (unloading any module this
 * process loaded under another configuration) and returns what a child process needs.
 */
export function createSoftHsm(dir: string, label: string, pins: { so: string; user: string }): { conf: string; module: string } {
  const module = findSoftHsmModule();
  if (!module) throw new InputError('SoftHSM2 is not installed', 'install it: apt-get install softhsm2');
  closeModules();
  const conf = writeSoftHsmConf(dir);
  process.env['SOFTHSM2_CONF'] = conf;
  initSoftHsmToken(module, label, pins.so, pins.user);
  return { conf, module };
}
