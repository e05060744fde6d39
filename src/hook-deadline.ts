import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

// The login hook's deadline file: each hook records the latest time its watcher must keep watching to;
// the one watcher reads it. Beside moshwall's lock, in the root-only lock directory.

/** The file where hooks leave the latest deadline for the watcher, beside the lock. */
export function deadlineFile(lockFile: string): string {
  return join(dirname(lockFile), 'hook-deadline');
}

/** Records `deadline` atomically, through a temporary name no other hook uses at the same time. */
export function writeDeadline(lockFile: string, deadline: number): void {
  const file = deadlineFile(lockFile);
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  writeFileSync(temporary, `${deadline}\n`, { mode: 0o600, flag: 'wx' });
  try {
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** The deadline recorded there (epoch ms), or 0. */
export function readDeadline(lockFile: string): number {
  try {
    const value = Number(readFileSync(deadlineFile(lockFile), 'utf8').trim());
    return Number.isFinite(value) ? value : 0;
  } catch {
    return 0;
  }
}
