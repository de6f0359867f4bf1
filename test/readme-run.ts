/**
 * Runs a markdown file's shell blocks (test/readme-blocks.ts) in a fresh temporary directory,
 * with `qtm` on PATH the way the README puts it there (`npm link`, into a temporary npm prefix so
 * the machine's global npm is untouched), and reports the first command that failed with its
 * README line and the block's output. Also starts the throwaway PostgreSQL cluster a block
 * marked `needs postgres` asks for.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildScript, type ReadmeBlock } from './readme-blocks.js';

export interface RunOptions {
  readonly clone: string;
  /** Extra environment (the harness's own is built from scratch: PATH, HOME, LANG). */
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
  /** Set up the temporary npm prefix and put its bin/ first on PATH (for `npm link`). */
  readonly npmPrefix?: boolean;
}

export interface RunResult {
  readonly ok: boolean;
  /** What went wrong, with the README line and the failing block's output. */
  readonly problem?: string;
  readonly log: string;
  readonly seconds: number;
  /** Processes the README started in the background and left running at its end. */
  readonly leftover: string[];
  /** Seconds spent in each block, by README line. */
  readonly blockSeconds: ReadonlyMap<number, number>;
}

export interface Postgres {
  readonly url: string;
  stop(): void;
}

/** The newest /usr/lib/postgresql/N/bin, where Debian puts initdb and pg_ctl. */
export function postgresBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin');
  return undefined;
}

/**
 * A throwaway PostgreSQL cluster owned by the `postgres` user (initdb refuses root, and tests run
 * as root), listening only on a Unix socket in its own temporary directory.
 */
export function startPostgres(): Postgres {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const dir = mkdtempSync(join(tmpdir(), 'qtm-readme-pg-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(sock);
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    for (const d of [dir, data, sock]) chownSync(d, id('-u'), id('-g'));
  }
  const run = (cmd: string, args: string[]) => {
    const r = asRoot ? spawnSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { encoding: 'utf8' }) : spawnSync(join(bin, cmd), args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr || r.stdout}`);
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-o', `-k ${sock} -c listen_addresses= -c fsync=off`, 'start']);
  return {
    url: `postgresql://postgres@/postgres?host=${encodeURIComponent(sock)}`,
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function groupMembers(pgid: number): string[] {
  const r = spawnSync('pgrep', ['-a', '-g', String(pgid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

function endGroup(pgid: number): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pgid, s);
    } catch {
      /* the group is gone */
    }
  };
  signal('SIGTERM');
  return new Promise((resolve) => {
    const start = Date.now();
    const poll = () => {
      if (!groupMembers(pgid).length) return resolve();
      if (Date.now() - start > 5000) {
        signal('SIGKILL');
        return resolve();
      }
      setTimeout(poll, 100);
    };
    poll();
  });
}

export async function runBlocks(blocks: readonly ReadmeBlock[], opts: RunOptions): Promise<RunResult & { dir: string; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'qtm-readme-'));
  const work = join(dir, 'work');
  const home = join(dir, 'home');
  const prefix = join(dir, 'npm-prefix');
  mkdirSync(work);
  mkdirSync(home);
  let pg: Postgres | undefined;
  const cleanup = () => {
    pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  if (blocks.some((b) => !b.skip && b.needs.includes('postgres'))) pg = startPostgres();
  const script = buildScript(blocks, { clone: opts.clone, ...(pg ? { postgresUrl: pg.url } : {}) });
  writeFileSync(join(dir, 'readme.sh'), script.text);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    ...(process.env.PCSCLITE_CSOCK_NAME ? { PCSCLITE_CSOCK_NAME: process.env.PCSCLITE_CSOCK_NAME } : {}),
    ...opts.env,
  };
  if (opts.npmPrefix) {
    mkdirSync(join(prefix, 'lib'), { recursive: true });
    mkdirSync(join(prefix, 'bin'));
    Object.assign(env, {
      PATH: `${join(prefix, 'bin')}:${env.PATH}`,
      // `npm link` installs into this prefix, not the machine's global one.
      npm_config_prefix: prefix,
      // The checkout under test is built already; `npm link` would otherwise run `prepare`
      // (the TypeScript build) again, rewriting dist/ under the tests that are running from it.
      npm_config_ignore_scripts: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    });
  }
  const logFile = join(dir, 'readme.log');
  const fd = openSync(logFile, 'w');
  const started = Date.now();
  const child = spawn('bash', [join(dir, 'readme.sh')], { cwd: work, env, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  const pgid = child.pid!;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, opts.timeoutMs ?? 300_000);
  const status = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  clearTimeout(timer);
  const seconds = (Date.now() - started) / 1000;
  const leftover = groupMembers(pgid);
  await endGroup(pgid);
  const log = readFileSync(logFile, 'utf8');
  const lines = log.split('\n');

  // The output of each block, and how long it took (from the ::readme-block markers).
  const blockSeconds = new Map<number, number>();
  let current = 0;
  let since = 0;
  const outputOf = new Map<number, string[]>();
  for (const l of lines) {
    const m = /^::readme-(block (\d+)|done) ([\d.]+)$/.exec(l);
    if (m) {
      if (current) blockSeconds.set(current, Number(m[3]) - since);
      if (m[2]) {
        current = Number(m[2]);
        since = Number(m[3]);
        outputOf.set(current, []);
      }
    } else if (!l.startsWith('::readme-')) {
      outputOf.get(current)?.push(l);
    }
  }
  const tail = (n: number) => (outputOf.get(n) ?? []).slice(-60).join('\n').trimEnd();
  let problem: string | undefined;
  const fail = lines.find((l) => l.startsWith('::readme-fail '));
  const expect = lines.find((l) => l.startsWith('::readme-expect '));
  const bg = lines.find((l) => /^::readme-bg-/.test(l));
  if (timedOut) problem = `timed out after ${seconds.toFixed(0)} s in the block at README line ${current}`;
  else if (expect) {
    const [, line, want, got] = expect.split(' ');
    problem = `README line ${line}: expected exit ${want}, got ${got}`;
  } else if (bg) {
    const [kind, line] = bg.split(' ');
    problem = `README line ${line}: the background command ${kind === '::readme-bg-exited' ? 'exited before it was ready' : 'never listened (60 s)'}`;
  } else if (fail) {
    const [, scriptLine, code] = fail.split(' ');
    problem = `README line ${script.readmeLine[Number(scriptLine) - 1] || `? (script line ${scriptLine})`}: exit ${code}`;
  } else if (status !== 0 || !lines.some((l) => l.startsWith('::readme-done '))) problem = `bash exited ${status} in the block at README line ${current}`;
  if (problem) problem += ` (block at README line ${current})\n--- output of that block ---\n${tail(current)}`;
  return { ok: !problem, ...(problem ? { problem } : {}), log, seconds, leftover, blockSeconds, dir, cleanup };
}
