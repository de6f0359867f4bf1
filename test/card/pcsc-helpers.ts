import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { QTM_BIN, qtm, ROOT, which } from '../helpers.js';

export const READER = 'Virtual PCD 00 00';

function vpcdReachable(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port: 35963 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * PC/SC tests need pcscd with the vsmartcard vpcd driver. In CI (.ci/run installs and starts
 * them) their absence fails the test; locally the test is skipped with what to do.
 */
export async function requirePcscd(t: { skip(msg: string): void }): Promise<boolean> {
  const problem = !which('pcscd')
    ? 'pcscd is not installed (apt-get install pcscd vsmartcard-vpcd libpcsclite-dev)'
    : !(await vpcdReachable())
      ? 'pcscd with the vpcd driver is not listening on 127.0.0.1:35963 (start it: sudo pcscd)'
      : undefined;
  if (!problem) return true;
  if (process.env.CI) throw new Error(`PC/SC test cannot run in CI: ${problem}`);
  t.skip(problem);
  return false;
}

/** Starts `qtm card emulate` and waits until pcscd reports the card in the reader. */
export async function startEmulator(cardFile: string, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [QTM_BIN, 'card', 'emulate', '--card', cardFile, '--create', ...extra], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`emulator exited: ${stderr}`);
    const r = qtm(['card', 'list-readers', '--json']);
    if (r.status === 0 && JSON.parse(r.stdout).readers.some((x: { name: string; cardPresent: boolean }) => x.name === READER && x.cardPresent)) return child;
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill();
  throw new Error(`the virtual card never appeared in "${READER}": ${stderr}`);
}

export async function stopEmulator(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((res) => child.once('exit', res));
  child.kill('SIGTERM');
  await done;
  // Give pcscd a moment to see the card leave before the next test plugs one in.
  await new Promise((res) => setTimeout(res, 300));
}
