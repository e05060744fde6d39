import { closeSync, openSync, readlinkSync, readSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type HolderEdges, holderStatus, sharerWalkDue, type WalkedProcess } from '../daemon/holder-watch.ts';
import { identifyPeers, socketInode } from '../daemon/peer.ts';
import type { PeerIdentity } from '../daemon/server.ts';
import { readRealUid } from '../discovery/details.ts';
import { readPtraceScope } from '../discovery/host-reads.ts';
import type { ProcReader } from '../discovery/proc-reader.ts';
import { holdersOf } from '../discovery/sockets.ts';
import type { Runner } from '../exec.ts';
import { parseLimits } from '../hook.ts';

/** The file descriptor behind an accepted Unix socket (Node keeps it on the socket's handle). */
function descriptorOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The inodes of the sockets among pid's open files, or undefined when its fd table cannot be read. */
function socketInodesOf(reader: ProcReader, pid: number): Set<number> | undefined {
  try {
    const inodes = new Set<number>();
    for (const name of reader.listDir(`/proc/${pid}/fd`)) {
      try {
        const inode = socketInode(reader.readLink(`/proc/${pid}/fd/${name}`));
        if (inode !== undefined) inodes.add(inode);
      } catch {
        // An fd closed while we looked: not the one we want.
      }
    }
    return inodes;
  } catch {
    return undefined;
  }
}

/** Peer identity from the host: our end's inode from /proc/self/fd, the peer's uid via ss and /proc. */
export function createHostPeerIdentity(reader: ProcReader, run: Runner): PeerIdentity {
  return {
    inodeOf(socket) {
      const fd = descriptorOf(socket);
      if (fd === undefined) return undefined;
      try {
        return socketInode(readlinkSync(`/proc/self/fd/${fd}`));
      } catch {
        return undefined;
      }
    },
    identify: (inodes) =>
      identifyPeers(
        {
          run,
          realUid: (pid) => readRealUid(reader, pid),
          socketInodesOf: (pid) => socketInodesOf(reader, pid),
        },
        inodes,
      ),
  };
}

/** How much of a /proc/PID/status the watch reads: its tracer and uid lines come within the first few hundred bytes. */
const STATUS_HEAD_BYTES = 1024;
/** At most this many status files are kept open (past it, the others are opened for each read)… */
const MAX_OPEN_STATUS_FILES = 4096;
/** …and never more than this share of the daemon's open-file limit (a low LimitNOFILE, a container). */
const STATUS_FILES_SHARE_OF_LIMIT = 0.25;

/**
 * How many status files may be kept open: MAX_OPEN_STATUS_FILES, or a quarter of the soft open-file
 * limit in /proc/self/limits when that is lower (64 when it cannot be read).
 */
export function statusFileBudget(limitsText: string | undefined): number {
  const soft = parseLimits(limitsText ?? '').get('Max open files')?.soft;
  if (soft === undefined) return 64;
  return Math.min(MAX_OPEN_STATUS_FILES, Math.floor(soft * STATUS_FILES_SHARE_OF_LIMIT));
}

/** The text of a file, or undefined when it cannot be read. */
function attemptText(reader: ProcReader, path: string): string | undefined {
  try {
    return reader.readText(path);
  } catch {
    return undefined;
  }
}

/** The tracer and uids in pid's status, read the usual way (open, read, close); undefined when unreadable. */
function statusOf(reader: ProcReader, pid: number): ReturnType<typeof holderStatus> {
  try {
    return holderStatus(reader.readText(`/proc/${pid}/status`));
  } catch {
    return undefined;
  }
}

/** True for the errors of a process (or the system) out of file descriptors. */
function outOfFiles(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EMFILE' || code === 'ENFILE';
}

/**
 * The watched holders' /proc/PID/status files, each opened once and read again from its start (a
 * pread: no path walk, ~2 µs against ~6 µs for open, read, close). An open file stays bound to the
 * process it was opened for: once that process is gone, a read fails (ESRCH) even if its pid is reused.
 * Within statusFileBudget; past it, or out of descriptors, a status is read the usual way.
 */
function createStatusFiles(reader: ProcReader) {
  const open = new Map<number, number>();
  const head = Buffer.allocUnsafe(STATUS_HEAD_BYTES);
  let budget: number | undefined;
  /** Closes pid's file, if one is open. */
  const close = (pid: number) => {
    const fd = open.get(pid);
    open.delete(pid);
    if (fd !== undefined) closeSync(fd);
  };
  /** pid's kept file: opened now if the budget allows; undefined past it. */
  const fileOf = (pid: number): number | undefined => {
    const kept = open.get(pid);
    if (kept !== undefined) return kept;
    budget ??= statusFileBudget(attemptText(reader, '/proc/self/limits'));
    if (open.size >= budget) return undefined;
    try {
      const fd = openSync(`/proc/${pid}/status`, 'r');
      open.set(pid, fd);
      return fd;
    } catch (error) {
      if (outOfFiles(error)) budget = open.size;
      throw error;
    }
  };
  return {
    /** The tracer and uids of pid from its open status file, or undefined when it cannot be read. */
    read(pid: number): ReturnType<typeof holderStatus> {
      try {
        const fd = fileOf(pid);
        if (fd === undefined) return statusOf(reader, pid);
        const length = readSync(fd, head, 0, STATUS_HEAD_BYTES, 0);
        const status = holderStatus(head.toString('latin1', 0, length));
        // A name long enough to push the lines past the head (escaped, up to 64 bytes: not in practice).
        if (status === undefined && length === STATUS_HEAD_BYTES) return statusOf(reader, pid);
        return status;
      } catch (error) {
        close(pid);
        // Out of descriptors says nothing of the process: read it the usual way.
        return outOfFiles(error) ? statusOf(reader, pid) : undefined;
      }
    },
    /** Closes the files of every pid not in `pids`. */
    keepOnly(pids: ReadonlySet<number>): void {
      for (const pid of [...open.keys()]) if (!pids.has(pid)) close(pid);
    },
  };
}

/**
 * An owner's process as the sharer look sees it cheaply, or undefined when it is not one of `uids`'
 * (or is gone): the owner of /proc/PID/fd is the process's effective uid (one stat, no text made),
 * except for a process that is not dumpable, which /proc shows as root: only for those is the status
 * read (real and effective uid). Its size is the number of open fds (kernel 6.2 on; 0 before).
 */
function ownersProcess(
  reader: ProcReader,
  pid: number,
  uids: ReadonlySet<number>,
): { pid: number; fds: number } | undefined {
  try {
    const fd = statSync(`/proc/${pid}/fd`);
    if (!uids.has(fd.uid)) {
      if (fd.uid !== 0) return undefined;
      const status = statusOf(reader, pid);
      if (status === undefined || !(uids.has(status.realUid) || uids.has(status.effectiveUid)))
        return undefined;
    }
    return { pid, fds: fd.size };
  } catch {
    return undefined;
  }
}

/**
 * The look for a sharer (HolderEdges.sharer) over the host: the owners' processes found cheaply, their
 * fd tables walked when sharerWalkDue says so (a process whose fd count has not moved since its last
 * walk is skipped, up to SHARER_FULL_WALK_EVERY looks).
 */
function createSharerLook(reader: ProcReader): NonNullable<HolderEdges['sharer']> {
  let look = 0;
  let walked = new Map<number, WalkedProcess>();
  return (inodes, uids, known) => {
    look += 1;
    const seen = new Map<number, WalkedProcess>();
    const due = (pid: number) => {
      if (known.has(pid)) return false;
      const now = ownersProcess(reader, pid, uids);
      if (now === undefined) return false;
      const before = walked.get(pid);
      const walk = sharerWalkDue(before, now, look);
      seen.set(pid, walk || before === undefined ? { fds: now.fds, look } : before);
      return walk;
    };
    try {
      const { holders } = holdersOf(reader, inodes, due);
      walked = seen;
      for (const [inode, pids] of holders) {
        const pid = pids.find((each) => !known.has(each));
        if (pid !== undefined) return { pid, inode };
      }
    } catch {
      // /proc unreadable: the next full reconcile says so.
    }
    return undefined;
  };
}

/**
 * The holder watch's reads of the host: a signal-0 probe for existence, the holders' status files
 * (kept open), the sessions' owners' processes' fd tables for a sharer of a session's socket, and
 * Yama's ptrace_scope (2 or more: locked).
 */
export function hostHolderEdges(reader: ProcReader): HolderEdges {
  const statusFiles = createStatusFiles(reader);
  return {
    alive(pid) {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
      }
    },
    status: (pid) => statusFiles.read(pid),
    watching: (pids) => statusFiles.keepOnly(pids),
    sharer: createSharerLook(reader),
    locked: () => (readPtraceScope(reader) ?? 0) >= 2,
  };
}
