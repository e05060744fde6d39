import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  type Stats,
  statSync,
  unlinkSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { LockError } from './errors.ts';
import { flockDescriptor, type ReleaseLock } from './exec.ts';

/** What a lock file must be before we flock it: ours alone, so no other user can open (and hold) it. */
export interface LockFileFacts {
  isFile: boolean;
  uid: number;
  mode: number;
  nlink: number;
}

/** Why an open lock file is not one only its owner (root) can open, or undefined when it is. */
export function lockFileProblem(facts: LockFileFacts, ownerUid: number): string | undefined {
  if (!facts.isFile) return 'is not a regular file';
  if (facts.uid !== ownerUid) return `is owned by uid ${facts.uid}, not ${ownerUid}`;
  if ((facts.mode & 0o077) !== 0) return `has mode ${(facts.mode & 0o7777).toString(8)}, not 600`;
  if (facts.nlink !== 1) return `has ${facts.nlink} hard links`;
  return undefined;
}

/** Why the lock's directory could let someone else replace our lock file, or undefined when it cannot. */
export function lockDirectoryProblem(facts: LockFileFacts & { isDirectory: boolean }, ownerUid: number) {
  if (!facts.isDirectory) return 'is not a directory';
  if (facts.uid !== ownerUid) return `is owned by uid ${facts.uid}, not ${ownerUid}`;
  if ((facts.mode & 0o022) !== 0) return `is writable by ${facts.mode & 0o020 ? 'group' : 'others'}`;
  return undefined;
}

/** The facts of a stat result that the checks above judge. */
function factsOf(stats: Stats) {
  return {
    isFile: stats.isFile(),
    isDirectory: stats.isDirectory(),
    uid: stats.uid,
    mode: stats.mode,
    nlink: stats.nlink,
  };
}

/**
 * Makes the lock's directory (0700; its parent 0755 if missing, e.g. /run/moshwall for the socket) and
 * checks it is a real directory of ours that nobody else can write, so nobody can swap the lock file.
 */
export function ensureLockDirectory(file: string, ownerUid = process.geteuid?.() ?? 0): void {
  const directory = dirname(file);
  try {
    mkdirSync(dirname(directory), { recursive: true, mode: 0o755 });
    mkdirSync(directory, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new LockError(`Cannot create the lock directory ${directory}`, { directory }, error);
    }
  }
  const facts = factsOf(lstatSync(directory));
  const problem = lockDirectoryProblem(facts, ownerUid);
  if (problem) {
    throw new LockError(`The lock directory ${directory} ${problem}; refusing to use it`, {
      directory,
      uid: facts.uid,
      mode: (facts.mode & 0o7777).toString(8),
    });
  }
}

/**
 * Opens `file` as a lock only we can open: created 0600 with O_NOFOLLOW in a checked directory. A file
 * that is not like that (a 0644 one `flock(1)` made in an older version, or anyone else's) is replaced
 * by a new one, so a descriptor someone opened on the old file no longer holds anything. Returns the fd.
 */
export function openLockFile(file: string, ownerUid = process.geteuid?.() ?? 0): number {
  ensureLockDirectory(file, ownerUid);
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, attempt === 0 ? flags : flags | constants.O_EXCL, 0o600);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      throw new LockError(`Cannot open the lock file ${file}`, { file, errno: code }, error);
    }
    // A umask only takes bits away from 0600, so a file we made passes; one found may not.
    const problem = lockFileProblem(factsOf(fstatSync(fd)), ownerUid);
    if (problem === undefined) return fd;
    closeSync(fd);
    try {
      unlinkSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new LockError(`The lock file ${file} ${problem} and cannot be replaced`, { file }, error);
      }
    }
  }
  throw new LockError(`Could not create the lock file ${file} (it kept being replaced)`, { file });
}

/** One process that has the lock file open: who may be holding the lock. */
export interface LockHolder {
  pid: number;
  uid: number | undefined;
  command: string;
}

/** The real uid from a /proc/PID/status text, or undefined. */
export function uidFromStatus(status: string): number | undefined {
  const match = /^Uid:\s+(\d+)/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/** One line naming who has the lock file open: "pid 12 (moshwall, uid 0)", or undefined when no one. */
export function describeHolders(holders: LockHolder[]): string | undefined {
  if (holders.length === 0) return undefined;
  return holders
    .map((holder) => `pid ${holder.pid} (${holder.command}, uid ${holder.uid ?? '?'})`)
    .join(', ');
}

/**
 * The processes (other than this one) with an open descriptor on the same file as `file`, found by
 * walking /proc/PID/fd; what can be known of a lock's holder. Unreadable entries are skipped.
 */
export function findLockHolders(file: string, self = process.pid): LockHolder[] {
  let target: Stats;
  try {
    target = statSync(file);
  } catch {
    return [];
  }
  const holders: LockHolder[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === self) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        if (!readlinkSync(`/proc/${entry}/fd/${fd}`).startsWith('/')) return false;
        const facts = statSync(`/proc/${entry}/fd/${fd}`);
        return facts.ino === target.ino && facts.dev === target.dev;
      } catch {
        return false;
      }
    });
    if (!holds) continue;
    let uid: number | undefined;
    let command = '?';
    try {
      uid = uidFromStatus(readFileSync(`/proc/${entry}/status`, 'utf8'));
      command = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      // Gone meanwhile: still named by its pid.
    }
    holders.push({ pid: Number(entry), uid, command });
  }
  return holders;
}

/**
 * Holds moshwall's lock `file` (opened as openLockFile does) for as long as the returned release is not
 * called; waits at most `timeoutMs` (0: not at all) and resolves undefined when someone else held it.
 */
export async function holdLock(file: string, timeoutMs: number): Promise<ReleaseLock | undefined> {
  const fd = openLockFile(file);
  let acquired = false;
  try {
    acquired = await flockDescriptor(fd, timeoutMs);
  } finally {
    if (!acquired) closeSync(fd);
  }
  if (!acquired) return undefined;
  let open = true;
  return async () => {
    if (open) closeSync(fd);
    open = false;
  };
}
