/**
 * An exclusive lock on a data directory: the file `LOCK` holding the owner's pid. Node has no
 * flock(2), so the lock is created with link(2), which fails atomically if `LOCK` exists, from a
 * temp file that already holds the pid (a crash can never leave an empty, unreadable lock).
 *
 * A lock whose pid is not running (the owner was killed with -9) is stale and is taken over, with a
 * warning. Limits: two processes taking over the *same* stale lock at the same instant can both
 * succeed (removing the stale file and creating a new one is not one atomic step), and a pid reused
 * by an unrelated process makes the lock look held (safe: we refuse to start, naming the pid).
 */
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from './errors.js';
import type { Logger } from './logger.js';

export const LOCK_FILE = 'LOCK';

export interface DirectoryLock {
  readonly file: string;
  release(): Promise<void>;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(file: string): Promise<number | null | 'gone'> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

export async function acquireDirectoryLock(dir: string, logger: Logger): Promise<DirectoryLock> {
  const file = join(dir, LOCK_FILE);
  const temp = join(dir, `${LOCK_FILE}.${process.pid}.tmp`);
  await writeFile(temp, `${process.pid}\n`);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(temp, file);
        return { file, release: () => unlinkIfPresent(file) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = await readOwner(file);
      if (owner === 'gone') continue;
      // Our own pid means another open of this directory inside this process: still held.
      if (owner === null || owner === process.pid || processAlive(owner)) {
        throw new StorageError({ code: 'LOCKED', file, pid: owner });
      }
      logger.warn('taking over a stale lock', { file, pid: owner });
      await unlinkIfPresent(file);
    }
    throw new StorageError({ code: 'LOCKED', file, pid: null });
  } finally {
    await unlinkIfPresent(temp);
  }
}
