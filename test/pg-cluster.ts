/**
 * A throwaway PostgreSQL cluster for the tests (Debian package `postgresql`): initdb in a
 * temporary directory, a server listening only on a Unix socket in that directory, a fresh
 * database per test, everything stopped and removed at the end. PostgreSQL refuses to run as
 * root: as root the binaries run as the `postgres` user (runuser), the directory chowned to it.
 * Missing PostgreSQL skips the test locally, naming the package, and fails it when CI=true.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

const INSTALL = 'apt-get install postgresql (Debian package postgresql)';

/** initdb's folder: on PATH, or Debian's /usr/lib/postgresql/<version>/bin. */
function binDir(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim();
  // A link on PATH (/usr/local/bin/initdb) leads to the folder with pg_ctl and psql beside it.
  if (onPath) return dirname(realpathSync(onPath));
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(base, versions[0]!, 'bin') : undefined;
}

export interface PgCluster {
  /** A new empty database; its URL (Unix socket, trust authentication). */
  database(): Promise<string>;
  /** Runs SQL as the superuser with psql (as an administrator or an attacker would). */
  psql(url: string, sql: string): { status: number | null; stdout: string; stderr: string };
  readonly bin: string;
  stop(): Promise<void>;
}

/** Starts a cluster for a test file, or skips `t` (returns undefined) when PostgreSQL is missing. */
export async function startPgCluster(t: { skip(msg: string): void }): Promise<PgCluster | undefined> {
  const bin = binDir();
  if (!bin) {
    if (process.env.CI) throw new Error(`PostgreSQL (initdb) is required in CI but was not found (install: ${INSTALL})`);
    t.skip(`PostgreSQL (initdb) not found; install with: ${INSTALL}`);
    return undefined;
  }
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'qtm-pg-'));
  const asOwner = (cmd: string, args: string[]) => {
    const r = root ? spawnSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { encoding: 'utf8' }) : spawnSync(join(bin, cmd), args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}${r.stdout}`);
    return r;
  };
  if (root) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0) throw new Error('running as root, PostgreSQL needs the `postgres` user (the Debian package makes it)');
    chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
  }
  const data = join(dir, 'data');
  try {
    asOwner('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
    asOwner('pg_ctl', ['-D', data, '-w', '-l', join(dir, 'server.log'), '-o', `-c listen_addresses= -k ${dir} -c fsync=off -c max_connections=200`, 'start']);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  // Should the test process end without stop() (a hook that never ran), the cluster goes with it.
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    try {
      asOwner('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once('exit', () => {
    try {
      stopNow();
    } catch {
      // exiting anyway
    }
  });
  const url = (db: string) => `postgres://postgres@localhost/${db}?host=${encodeURIComponent(dir)}`;
  let n = 0;
  return {
    bin,
    async database() {
      const name = `qtm_${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    psql(dbUrl: string, sql: string) {
      const db = new URL(dbUrl).pathname.slice(1);
      const args = ['-h', dir, '-U', 'postgres', '-d', db, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql];
      const r = root && userInfo().uid === 0
        ? spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'psql'), ...args], { encoding: 'utf8' })
        : spawnSync(join(bin, 'psql'), args, { encoding: 'utf8' });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    async stop() {
      stopNow();
    },
  };
}
