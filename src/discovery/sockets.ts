import { ProcError } from '../errors.ts';
import type { UninspectedProcess } from '../model.ts';
import { errnoCode, isGone, procReadFix } from './errno.ts';
import type { ProcReader } from './proc-reader.ts';
import { parseStatus, parseUids } from './process.ts';

const SOCKET_LINK = /^socket:\[(\d+)\]$/;

/** What the walk of the process table found: who holds the wanted sockets, and whom it could not read. */
export interface HolderWalk {
  /** Socket inode → pids (ascending) of the processes with an fd on it. */
  holders: Map<number, number[]>;
  /** Processes whose fds could not be read, by pid (root ones included, marked). */
  uninspected: UninspectedProcess[];
}

/** A read inside one process's /proc directory that failed for a reason other than the process leaving. */
class ProcessUnreadable extends Error {
  readonly path: string;
  readonly code: string;

  constructor(path: string, code: string, cause: unknown) {
    super(`Cannot read ${path} (${code})`, { cause });
    this.path = path;
    this.code = code;
  }
}

/**
 * Socket inode → holders, for the wanted inodes only, by walking /proc/[0-9]+/fd/* (of the pids `only`
 * keeps; all by default). A pid or fd that
 * disappears mid-walk is skipped. A process whose fds cannot be listed or read (EACCES from an LSM, a
 * sandbox's init, EIO, …) never fails the walk: it is returned in `uninspected`, with its uids, for the
 * scan to decide what it means (scan.ts: root ignored, anyone else's sockets refused). Only /proc itself
 * being unreadable throws: then nothing can be known.
 */
export function holdersOf(
  reader: ProcReader,
  inodes: ReadonlySet<number>,
  only: (pid: number) => boolean = () => true,
): HolderWalk {
  const holders = new Map<number, number[]>();
  const uninspected: UninspectedProcess[] = [];
  const pids = listProc(reader)
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter(only)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    try {
      for (const inode of socketsOf(reader, pid, inodes)) {
        const pidsOfInode = holders.get(inode) ?? [];
        if (!pidsOfInode.includes(pid)) pidsOfInode.push(pid);
        holders.set(inode, pidsOfInode);
      }
    } catch (error) {
      if (!(error instanceof ProcessUnreadable)) throw error;
      const blind = describeUninspected(reader, pid, error);
      if (blind !== undefined) uninspected.push(blind);
    }
  }
  return { holders, uninspected };
}

/**
 * The wanted socket inodes in pid's fd tables; [] if it is gone; ProcessUnreadable if one cannot be
 * read. A thread made without CLONE_FILES has a table of its own, seen only under
 * /proc/PID/task/TID/fd: those are walked too, for processes with more than one thread that do not run
 * as root (root gains nothing from a socket; most threads share the leader's table, but /proc cannot
 * tell, so each is read).
 */
function socketsOf(reader: ProcReader, pid: number, inodes: ReadonlySet<number>): number[] {
  const found = socketsIn(reader, `/proc/${pid}/fd`, inodes);
  const tasks = attempt(() => reader.listDir(`/proc/${pid}/task`), `/proc/${pid}/task`) ?? [];
  const others = tasks.filter((tid) => tid !== String(pid));
  if (others.length === 0 || runsAsRoot(reader, pid)) return found;
  for (const tid of others) {
    for (const inode of socketsIn(reader, `/proc/${pid}/task/${tid}/fd`, inodes)) {
      if (!found.includes(inode)) found.push(inode);
    }
  }
  return found;
}

/**
 * The wanted socket inodes among the links of one fd directory ([] if it is gone), and among the fixed
 * files of every io_uring in it (listed in its fdinfo: a socket registered there and then closed is in
 * no fd table).
 */
function socketsIn(reader: ProcReader, directory: string, inodes: ReadonlySet<number>): number[] {
  const found: number[] = [];
  for (const fd of attempt(() => reader.listDir(directory), directory) ?? []) {
    const path = `${directory}/${fd}`;
    const target = attempt(() => reader.readLink(path), path);
    const held =
      target === IO_URING
        ? ringSockets(reader, `${directory.slice(0, -'/fd'.length)}/fdinfo/${fd}`)
        : [Number(SOCKET_LINK.exec(target ?? '')?.[1] ?? Number.NaN)];
    for (const inode of held) if (inodes.has(inode) && !found.includes(inode)) found.push(inode);
  }
  return found;
}

const IO_URING = 'anon_inode:[io_uring]';
const RING_TRIES = 3;

/**
 * The socket inodes among an io_uring's fixed files, from its fdinfo ("UserFiles:\tN" then one
 * "  i: path" line each). The kernel lists them only when it gets the ring's lock at once: a listing
 * still short after a few reads makes the process uninspected (EBUSY) rather than be trusted.
 */
function ringSockets(reader: ProcReader, path: string): number[] {
  for (let tries = 0; tries < RING_TRIES; tries += 1) {
    const text = attempt(() => reader.readText(path), path);
    if (text === undefined) return [];
    const lines = text.split('\n');
    const start = lines.findIndex((line) => line.startsWith('UserFiles:'));
    const count = start < 0 ? 0 : Number(lines[start]?.slice('UserFiles:'.length).trim());
    const entries: string[] = [];
    for (const line of lines.slice(start + 1)) {
      const entry = /^\s*\d+: (.*)$/.exec(line);
      if (start < 0 || entry === null) break;
      entries.push(entry[1] ?? '');
    }
    if (entries.length >= count) {
      return entries.map((entry) => Number(SOCKET_LINK.exec(entry)?.[1] ?? Number.NaN));
    }
  }
  throw new ProcessUnreadable(path, 'EBUSY', new Error(`${path} lists fewer fixed files than it counts`));
}

/** True when pid's real and effective uid are both 0; false when that cannot be read. */
function runsAsRoot(reader: ProcReader, pid: number): boolean {
  try {
    const status = parseStatus(reader.readText(`/proc/${pid}/status`), `/proc/${pid}/status`);
    return status.realUid === 0 && status.effectiveUid === 0;
  } catch {
    return false;
  }
}

/** read(), undefined when the path is gone, ProcessUnreadable for any other errno. */
function attempt<T>(read: () => T, path: string): T | undefined {
  try {
    return read();
  } catch (error) {
    const code = errnoCode(error);
    if (isGone(code)) return undefined;
    if (code === undefined) throw error;
    throw new ProcessUnreadable(path, code, error);
  }
}

/** The record of a process we could not read: uids and exe as far as they can be read; undefined if gone. */
function describeUninspected(
  reader: ProcReader,
  pid: number,
  failure: ProcessUnreadable,
): UninspectedProcess | undefined {
  const file = `/proc/${pid}/status`;
  let uids: number[] = [];
  let root = false;
  try {
    const text = reader.readText(file);
    const status = parseStatus(text, file);
    uids = parseUids(text, file);
    root = status.realUid === 0 && status.effectiveUid === 0;
  } catch (error) {
    if (isGone(errnoCode(error))) return undefined;
  }
  let exe = '';
  try {
    exe = reader.readLink(`/proc/${pid}/exe`);
  } catch {
    // Refused as well (or a kernel thread): the record says so with ''.
  }
  return { pid, uids, root, exe, path: failure.path, code: failure.code };
}

/** The names in /proc, which must be listable. */
function listProc(reader: ProcReader): string[] {
  try {
    return reader.listDir('/proc');
  } catch (error) {
    const code = errnoCode(error);
    throw new ProcError(
      `Cannot read /proc (${code ?? String(error)}); the holders of the sockets cannot be known; ${procReadFix(code)}`,
      { file: '/proc', code },
      error,
    );
  }
}
