import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readIdentity } from '../src/pki/key-files.js';

/** The repository root (tests run from dist/test/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'fixtures');
export const FIXTURE_PASSPHRASE = 'qtm-fixture-only';
export const QTM_BIN = join(ROOT, 'dist', 'bin', 'qtm.js');

export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

export function fixtureText(...parts: string[]): string {
  return readFileSync(fixture(...parts), 'utf8');
}

export function fixtureIdentity(name: string) {
  return readIdentity(fixture('keys', name), FIXTURE_PASSPHRASE);
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the qtm CLI as a user would, without a TTY. */
export function qtm(args: string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}): RunResult {
  const spawnOpts: SpawnSyncOptions = {
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...opts.env },
    input: opts.input ?? '',
    encoding: 'utf8',
    timeout: 120_000,
  };
  const r = spawnSync(process.execPath, [QTM_BIN, ...args], spawnOpts);
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** As qtm(), without blocking this process: for a CLI run while the test keeps sockets of its own busy. */
export function qtmAsync(args: string[], opts: { env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [QTM_BIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

export function tempDir(t: { after(fn: () => void): void }, prefix = 'qtm-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * For tests that need a system part (openssl, jq, pcscd...): in CI a missing part fails the
 * test loudly; locally the test is skipped with a note saying what to install.
 */
export function requireTool(t: { skip(msg: string): void }, cmd: string, install: string): boolean {
  if (which(cmd)) return true;
  if (process.env.CI) throw new Error(`${cmd} is required in CI but was not found (install: ${install})`);
  t.skip(`${cmd} not found; install with: ${install}`);
  return false;
}

/** An async iterable's items in an array (Array.fromAsync is Node 22). */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
