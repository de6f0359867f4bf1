/**
 * `qtm server start` in its own process, as a user runs it; resolves once it logs the URL it
 * listens on. The request log keeps accumulating in `log()` for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { QTM_BIN, ROOT } from '../helpers.js';

export interface ServerProcess {
  readonly child: ChildProcess;
  /** https://localhost:PORT (the TLS certificate names localhost). */
  readonly url: string;
  log(): string;
  stop(): Promise<void>;
}

export function startServerProcess(args: string[], env: Record<string, string>): Promise<ServerProcess> {
  return startListeningProcess(['server', 'start', '--port', '0', ...args], env);
}

/**
 * Any qtm service (`server start`, `ttp start`) started with --port 0; with `fdLimit`, under
 * `ulimit -n` (the soft file-descriptor limit).
 */
export async function startListeningProcess(args: string[], env: Record<string, string>, o: { fdLimit?: number } = {}): Promise<ServerProcess> {
  const [command, argv] = o.fdLimit === undefined
    ? [process.execPath, [QTM_BIN, ...args]]
    : ['sh', ['-c', `ulimit -n ${o.fdLimit} && exec "$0" "$@"`, process.execPath, QTM_BIN, ...args]];
  const child = spawn(command, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d;
      const m = /"event":"listening","url":"https:\/\/127\.0\.0\.1:(\d+)"/.exec(log);
      if (m) resolve(`https://localhost:${m[1]}`);
    });
    child.once('exit', (code) => reject(new Error(`qtm ${args.slice(0, 2).join(' ')} exited ${code}: ${log}`)));
  });
  return {
    child, url,
    log: () => log,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
