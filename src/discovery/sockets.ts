import { ProcError } from '../errors.ts';
import { errnoCode, isGone } from './errno.ts';
import type { ProcReader } from './proc-reader.ts';

const SOCKET_LINK = /^socket:\[(\d+)\]$/;

/**
 * Socket inode → pids (ascending) of the processes with an fd on it, for the wanted inodes only, by
 * walking /proc/[0-9]+/fd/*. A pid or fd that disappears mid-walk is skipped; any other failure
 * throws, since a holder we cannot see could be one that must not count.
 */
export function holdersOf(reader: ProcReader, inodes: ReadonlySet<number>): Map<number, number[]> {
  const holders = new Map<number, number[]>();
  const pids = list(reader, '/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    const fds = listIfPresent(reader, `/proc/${pid}/fd`) ?? [];
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
