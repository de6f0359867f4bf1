/**
 * The bundle files of `qtm verify DIR...`, streamed in one deterministic order without ever
 * holding the list of all paths: a depth-first walk that reads one directory at a time, sorts its
 * names (by UTF-16 code unit, so the order is the same on every machine and locale), and keeps only
 * the directories on the current path open in memory. Memory is the names of the directories on
 * that path, not the tree.
 *
 * What counts as a bundle (docs/FORMATS.md, "Verifying an archive"):
 *   - a name ending in `.json` that is not a directory: regular files, and symbolic links (to be
 *     opened, and refused by the reader unless they lead to a regular file);
 *   - names starting with `.` are hidden and not looked at (neither files nor directories: editors'
 *     and rsync's temporary files, `.git`, the run's own `--state` file when kept in the tree);
 *   - symbolic links are never entered as directories, so a link loop cannot make the walk endless;
 *   - every other entry is counted as "skipped" (not a bundle by its name).
 * A directory that cannot be read is reported in the walk's order as an unusable entry, so a run
 * that could not see part of the tree never ends "all valid".
 */
import { lstat, opendir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { join, resolve } from 'node:path';

export const BUNDLE_SUFFIX = '.json';

export type WalkEntry =
  | { readonly kind: 'bundle'; readonly path: string }
  /** A directory that could not be listed: the bundles in it were not seen. */
  | { readonly kind: 'unreadable-directory'; readonly path: string; readonly error: string }
  /** A directory given as an argument that holds no bundle at all: nothing was verified there. */
  | { readonly kind: 'empty-directory'; readonly path: string };

export interface WalkCounters {
  /** Entries that are not bundles by their name (and symbolic links to anything but a `.json` name). */
  skipped: number;
}

/** One source of bundles as the user gave it: a directory to walk, or one file (or `-`). */
export type WalkRoot = { readonly kind: 'directory'; readonly path: string } | { readonly kind: 'file'; readonly path: string };

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface Frame {
  readonly dir: string;
  /** Sorted names of this directory's entries, with whether each is a directory to enter. */
  readonly names: string[];
  readonly isDir: Uint8Array;
  next: number;
}

/** Some file systems do not say an entry's type in the listing: ask lstat (never following a link). */
async function isDirectory(dir: string, e: Dirent): Promise<boolean> {
  if (e.isDirectory()) return true;
  if (e.isFile() || e.isSymbolicLink() || e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice()) return false;
  try {
    return (await lstat(join(dir, e.name))).isDirectory();
  } catch {
    return false; // gone meanwhile: as a file it is reported unreadable, by name
  }
}

async function readDirectory(dir: string, counters: WalkCounters, exclude: ReadonlySet<string>): Promise<Frame | { error: string }> {
  const entries: { name: string; dir: boolean }[] = [];
  try {
    const handle = await opendir(dir, { bufferSize: 256 });
    for await (const e of handle) {
      if (e.name.startsWith('.')) continue;
      if (await isDirectory(dir, e)) entries.push({ name: e.name, dir: true });
      else if (e.name.endsWith(BUNDLE_SUFFIX) && !(exclude.size && exclude.has(resolve(dir, e.name)))) entries.push({ name: e.name, dir: false });
      else counters.skipped++;
    }
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  entries.sort((a, b) => byCodeUnit(a.name, b.name));
  const isDir = new Uint8Array(entries.length);
  entries.forEach((e, i) => (isDir[i] = e.dir ? 1 : 0));
  return { dir, names: entries.map((e) => e.name), isDir, next: 0 };
}

/**
 * Every bundle under `roots`, in order: the roots as given, each directory depth-first with its
 * entries in sorted order (a subdirectory's bundles where its name sorts among the files).
 */
export async function* walkBundles(
  roots: readonly WalkRoot[],
  counters: WalkCounters = { skipped: 0 },
  /** Absolute paths never yielded (the run's own state file, when it is kept in the tree). */
  exclude: ReadonlySet<string> = new Set(),
): AsyncGenerator<WalkEntry> {
  for (const root of roots) {
    if (root.kind === 'file') {
      yield { kind: 'bundle', path: root.path };
      continue;
    }
    const stack: Frame[] = [];
    let found = 0;
    const first = await readDirectory(root.path, counters, exclude);
    if ('error' in first) {
      yield { kind: 'unreadable-directory', path: root.path, error: first.error };
      continue;
    }
    stack.push(first);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.next >= top.names.length) {
        stack.pop();
        continue;
      }
      const i = top.next++;
      const path = join(top.dir, top.names[i]!);
      if (!top.isDir[i]) {
        found++;
        yield { kind: 'bundle', path };
        continue;
      }
      const sub = await readDirectory(path, counters, exclude);
      if ('error' in sub) {
        found++;
        yield { kind: 'unreadable-directory', path, error: sub.error };
      } else {
        stack.push(sub);
      }
    }
    if (found === 0) yield { kind: 'empty-directory', path: root.path };
  }
}
