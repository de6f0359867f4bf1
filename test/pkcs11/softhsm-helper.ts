/**
 * A throwaway SoftHSM2 token per test: its own softhsm2.conf in a temp dir (SOFTHSM2_CONF), one
 * token, user PIN USER_PIN. Without softhsm2 the test fails in CI and is skipped locally, naming
 * the package (requireTool).
 */
import { createSoftHsm, findSoftHsmModule } from '../../src/pkcs11/softhsm.js';
import { closeModules } from '../../src/pkcs11/token.js';
import { tempDir } from '../helpers.js';

export const USER_PIN = 'test-user-pin';
export const SO_PIN = 'test-so-pin';

export interface TestToken {
  readonly dir: string;
  readonly conf: string;
  readonly module: string;
  readonly label: string;
  /** Environment for a qtm child process using this token (module and PIN included). */
  readonly env: Record<string, string>;
  uri(object: string, extra?: string): string;
}

export function requireSoftHsm(t: { skip(msg: string): void }): boolean {
  if (findSoftHsmModule()) return true;
  if (process.env.CI) throw new Error('libsofthsm2.so is required in CI but was not found (install: apt-get install softhsm2)');
  t.skip('SoftHSM2 not found; install with: apt-get install softhsm2 opensc');
  return false;
}

export function softHsmToken(t: { after(fn: () => void): void }, label = 'qtm-test'): TestToken {
  const dir = tempDir(t, 'qtm-softhsm-');
  const { conf, module } = createSoftHsm(dir, label, { so: SO_PIN, user: USER_PIN });
  const pinBefore = process.env['QTM_PKCS11_PIN'];
  process.env['QTM_PKCS11_PIN'] = USER_PIN;
  t.after(() => {
    closeModules();
    if (pinBefore === undefined) delete process.env['QTM_PKCS11_PIN'];
    else process.env['QTM_PKCS11_PIN'] = pinBefore;
  });
  return {
    dir, conf, module, label,
    env: { SOFTHSM2_CONF: conf, QTM_PKCS11_MODULE: module, QTM_PKCS11_PIN: USER_PIN },
    uri: (object, extra = '') => `pkcs11:token=${encodeURIComponent(label)};object=${encodeURIComponent(object)}${extra}`,
  };
}
