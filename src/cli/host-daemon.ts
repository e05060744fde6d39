import { readlinkSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type HolderEdges, holderStatus } from '../daemon/holder-watch.ts';
import { identifyPeers, socketInode } from '../daemon/peer.ts';
import type { PeerIdentity } from '../daemon/server.ts';
import { readRealUid } from '../discovery/details.ts';
import type { ProcReader } from '../discovery/proc-reader.ts';
import { holdersOf } from '../discovery/sockets.ts';
import type { Runner } from '../exec.ts';

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

/**
 * The holder watch's reads of the host: a signal-0 probe for existence, /proc/PID/status for the rest,
 * and the sessions' owners' processes' fd tables for a sharer of a session's socket.
 */
export function hostHolderEdges(reader: ProcReader): HolderEdges {
  return {
    alive(pid) {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
      }
    },
    status(pid) {
      try {
        return holderStatus(reader.readText(`/proc/${pid}/status`));
      } catch {
        return undefined;
      }
    },
    sharer(inodes, uids, known) {
      // One status read per unknown process (its uids), fd walks only for the owners' own processes.
      const owned = (pid: number) => {
        if (known.has(pid)) return false;
        try {
          const status = holderStatus(reader.readText(`/proc/${pid}/status`));
          return status !== undefined && (uids.has(status.realUid) || uids.has(status.effectiveUid));
        } catch {
          return false;
        }
      };
      try {
        for (const [inode, pids] of holdersOf(reader, inodes, owned).holders) {
          const pid = pids.find((each) => !known.has(each));
          if (pid !== undefined) return { pid, inode };
        }
      } catch {
        // /proc unreadable: the next full reconcile says so.
      }
      return undefined;
    },
  };
}
