import { ProcError } from '../errors.ts';
import { errnoCode, isDenied, isGone } from './errno.ts';
import type { ProcReader } from './proc-reader.ts';
import { parseStatus } from './process.ts';

const SOCKET_LINK = /^socket:\[(\d+)\]$/;

/**
 * Socket inode → pids (ascending) of the processes with an fd on it, for the wanted inodes only, by
 * walking /proc/[0-9]+/fd/*. A pid or fd that disappears mid-walk is skipped. A process whose fds even
 * root may not list (a container's init, say) is skipped only if it runs as root: root can change the
 * firewall itself, so its holding a socket gains it nothing. Any other failure throws, since a holder
 * we cannot see could be one that must not count.
 */
export function holdersOf(reader: ProcReader, inodes: ReadonlySet<number>): Map<number, number[]> {
  const holders = new Map<number, number[]>();
  const pids = list(reader, '/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    const fds = listFds(reader, pid);
    for (const fd of fds) {
      const target = linkIfPresent(reader, `/proc/${pid}/fd/${fd}`);
      const inode = Number(SOCKET_LINK.exec(target ?? '')?.[1] ?? Number.NaN);
      if (!inodes.has(inode)) continue;
      const pidsOfInode = holders.get(inode) ?? [];
      if (!pidsOfInode.includes(pid)) pidsOfInode.push(pid);
      holders.set(inode, pidsOfInode);
    }
  }
  return holders;
}

/** The fd names of pid: [] if it is gone or is a root process whose fds are closed to us. */
function listFds(reader: ProcReader, pid: number): string[] {
  try {
    return listIfPresent(reader, `/proc/${pid}/fd`) ?? [];
  } catch (error) {
    if (error instanceof ProcError && isDenied(String(error.context.code)) && runsAsRoot(reader, pid))
      return [];
    throw error;
  }
}

/** True when pid's real and effective uid are both 0 (from /proc/PID/status). */
function runsAsRoot(reader: ProcReader, pid: number): boolean {
  try {
    const status = parseStatus(reader.readText(`/proc/${pid}/status`), `/proc/${pid}/status`);
    return status.realUid === 0 && status.effectiveUid === 0;
  } catch {
    return false;
  }
}

/** The names in a directory that must be listable. */
function list(reader: ProcReader, path: string): string[] {
  const names = listIfPresent(reader, path);
  if (names === undefined) throw walkError(path, 'ENOENT');
  return names;
}

/** The names in a directory, or undefined if it is gone. */
function listIfPresent(reader: ProcReader, path: string): string[] | undefined {
  try {
    return reader.listDir(path);
  } catch (error) {
    if (isGone(errnoCode(error))) return undefined;
    throw walkError(path, errnoCode(error), error);
  }
}

/** The target of a link, or undefined if it is gone. */
function linkIfPresent(reader: ProcReader, path: string): string | undefined {
  try {
    return reader.readLink(path);
  } catch (error) {
    if (isGone(errnoCode(error))) return undefined;
    throw walkError(path, errnoCode(error), error);
  }
}

/** A ProcError for a failed step of the process walk. */
function walkError(path: string, code: string | undefined, cause?: unknown): ProcError {
  const hint = code === 'EACCES' || code === 'EPERM' ? ' (moshwall must run as root)' : '';
  return new ProcError(
    `Cannot read ${path} (${code ?? String(cause)})${hint}; the holders of the sockets cannot be known`,
    { file: path, code },
    cause,
  );
}
