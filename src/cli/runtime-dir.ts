import { lstatSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { MoshwallError } from '../errors.ts';

/**
 * Makes sure the directory of `file` (the daemon's socket) exists (created 0755 if missing, so every
 * user can reach the socket) and is a real directory owned by root and not writable by group or
 * others, so nobody else can swap what is in it. Locks live in their own 0700 directory (lockfile.ts).
 */
export function ensureRuntimeDirectory(file: string): void {
  const directory = dirname(file);
  try {
    mkdirSync(directory, { mode: 0o755 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new MoshwallError('EINTERNAL', `Cannot create ${directory}`, {
        context: { directory },
        cause: error,
      });
    }
  }
  const facts = lstatSync(directory);
  if (!facts.isDirectory() || facts.uid !== 0 || (facts.mode & 0o022) !== 0) {
    throw new MoshwallError(
      'EUNSAFE',
      `${directory} must be a directory owned by root and not writable by group or others; refusing to use it (remove it; moshwall makes it anew)`,
      { context: { directory, uid: facts.uid, mode: (facts.mode & 0o7777).toString(8) } },
    );
  }
}
