import type { Runner } from '../exec.ts';

/** One Unix stream socket end as `ss -xpnH` lists it: its inode, its peer's inode, the pids holding it. */
export interface UnixSocketEnd {
  inode: number;
  peerInode: number;
  pids: number[];
}

/**
 * The socket ends in `ss -xpnH` output ("u_str ESTAB 0 0 * 5909387 * 5909388 users:(("perl",pid=7,fd=4))").
 * Lines that are not of that shape are skipped: a partial listing only leaves a peer unidentified.
 */
export function parseUnixSockets(text: string): UnixSocketEnd[] {
  const ends: UnixSocketEnd[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || fields[0] !== 'u_str') continue;
    const inode = Number(fields[5]);
    const peerInode = Number(fields[7]);
    if (!Number.isSafeInteger(inode) || !Number.isSafeInteger(peerInode) || inode <= 0) continue;
    const users = fields.slice(8).join(' ');
    const pids = [...users.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1]));
    ends.push({ inode, peerInode, pids });
  }
  return ends;
}

/** For each of our accepted sockets' inodes, the pids holding the other end (empty when not listed). */
export function peerPids(
  ends: readonly UnixSocketEnd[],
  ourInodes: readonly number[],
): Map<number, number[]> {
  const byPeer = new Map<number, UnixSocketEnd>();
  for (const end of ends) byPeer.set(end.peerInode, end);
  return new Map(
    ourInodes.map((inode) => {
      const client = byPeer.get(inode);
      return [inode, client === undefined ? [] : [...new Set(client.pids)]];
    }),
  );
}

/** The socket inode in a /proc/PID/fd link text ("socket:[123]"), or undefined. */
export function socketInode(link: string): number | undefined {
  const match = /^socket:\[(\d+)\]$/.exec(link);
  return match ? Number(match[1]) : undefined;
}

/** What identifying peers needs from the host. */
export interface PeerEdges {
  run: Runner;
  /** The real uid of pid, or undefined when it cannot be read (the process is gone). */
  realUid(pid: number): number | undefined;
  /** The inodes of the sockets pid holds (its fd links), or undefined when they cannot be read. */
  socketInodesOf(pid: number): Set<number> | undefined;
}

/**
 * The uid behind each of our accepted sockets (by our end's inode): the real uid of a process that
 * holds the other end, as `ss` lists it and /proc confirms it (a pid reused since the listing does not
 * hold that inode). A peer that cannot be identified maps to undefined.
 */
export async function identifyPeers(
  edges: PeerEdges,
  ourInodes: readonly number[],
): Promise<Map<number, number | undefined>> {
  const result = new Map<number, number | undefined>(ourInodes.map((inode) => [inode, undefined]));
  if (ourInodes.length === 0) return result;
  const listed = await edges.run(['ss', '-xpnH'], { timeoutMs: 5000 });
  if (listed.exitCode !== 0) return result;
  const ends = parseUnixSockets(listed.stdout);
  const clientInode = new Map(ends.map((end) => [end.peerInode, end.inode]));
  for (const [inode, pids] of peerPids(ends, ourInodes)) {
    const theirInode = clientInode.get(inode);
    for (const pid of pids) {
      if (theirInode === undefined || !edges.socketInodesOf(pid)?.has(theirInode)) continue;
      const uid = edges.realUid(pid);
      if (uid !== undefined) {
        result.set(inode, uid);
        break;
      }
    }
  }
  return result;
}
