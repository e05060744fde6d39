import type { MoshSession, RefusedHolder } from '../model.ts';

/** What the holder watch reads of the host, per process. */
export interface HolderEdges {
  /** Whether pid still exists (a signal-0 probe: costs no /proc read). */
  alive(pid: number): boolean;
  /** The tracer and real and effective uids of pid, or undefined when it cannot be read (gone). */
  status(pid: number): { tracerPid: number; realUid: number; effectiveUid: number } | undefined;
  /**
   * The pids whose status the watch reads from now on (called at every track): an edge that keeps a
   * file open per holder closes the others'. Optional.
   */
  watching?(pids: ReadonlySet<number>): void;
  /**
   * A process other than `known` whose real or effective uid is one of `uids` and that holds one of
   * the `inodes` (a session's socket, taken or handed out beside its genuine holder), or undefined.
   * Optional: without it, such a sharer is found at the next full reconcile only.
   */
  sharer?(
    inodes: ReadonlySet<number>,
    uids: ReadonlySet<number>,
    known: ReadonlySet<number>,
  ): { pid: number; inode: number } | undefined;
  /**
   * Whether no unprivileged process can reach into another at all: Yama's ptrace_scope 2 or 3, where
   * ptrace, pidfd_getfd, process_vm_writev and /proc/PID/mem all need CAP_SYS_PTRACE. Asked at every
   * track. Optional: without it, never.
   */
  locked?(): boolean;
}

/** How often the watch looks, and how many status files it may read per second. */
export interface HolderWatchLimits {
  /**
   * Every open session's holder is probed for existence this often, unless the status reads come round
   * about as often (statusesCoverAlive).
   */
  aliveEveryMs: number;
  /** Each holder's status (tracer, uid) is read once per this many ms, round-robin over the sessions… */
  statusEveryMs: number;
  /** …within this many status reads per second at most (past it, each holder is read less often). */
  statusReadsPerSecond: number;
  /**
   * …and at least this many a second, when there are fewer holders than that (each is then read at
   * every check: a session's end is found at the next poll, not the next existence probe). Default 0.
   */
  minStatusReadsPerSecond?: number;
  /** How often the session owners' other processes are looked through for a session's socket. */
  sharersEveryMs: number;
  /**
   * Status reads and sharer looks at most this often when the edges say the host is locked (no user
   * can attach to, or take a socket from, even their own process: then neither finds what a user did).
   */
  lockedEveryMs?: number;
}

export const DEFAULT_HOLDER_WATCH: HolderWatchLimits = {
  aliveEveryMs: 1000,
  statusEveryMs: 1500,
  statusReadsPerSecond: 700,
  minStatusReadsPerSecond: 100,
  sharersEveryMs: 1500,
  lockedEveryMs: 10000,
};

/**
 * The tracer and real and effective uids in a /proc/PID/status text, found directly (the watch reads
 * these often: a full parse costs three times the read); undefined when a line is missing.
 */
export function holderStatus(
  text: string,
): { tracerPid: number; realUid: number; effectiveUid: number } | undefined {
  const tracer = /\nTracerPid:\t(\d+)\n/.exec(text);
  const uids = /\nUid:\t(\d+)\t(\d+)\t/.exec(text);
  if (tracer === null || uids === null) return undefined;
  return { tracerPid: Number(tracer[1]), realUid: Number(uids[1]), effectiveUid: Number(uids[2]) };
}

/** What the sharer look remembers of an owner's process it walked: its fd count then, and which look. */
export interface WalkedProcess {
  fds: number;
  look: number;
}

/** Every owner's process is walked at least once per this many looks, whatever its fd count says. */
export const SHARER_FULL_WALK_EVERY = 10;

/**
 * Whether the sharer look walks an owner's process's fd tables at look number `look`: when it is new
 * to the look, when its fd count (the size of /proc/PID/fd, kernel 6.2 on; 0 before) moved or is
 * unknown, and in any case once every SHARER_FULL_WALK_EVERY looks (spread by pid): for a socket taken
 * and moved over an fd closed in between (the same count), or taken into the fd table of a thread of
 * its own (unshare(CLONE_FILES)), which the count does not show.
 */
export function sharerWalkDue(
  before: WalkedProcess | undefined,
  now: { pid: number; fds: number },
  look: number,
): boolean {
  if (before === undefined || now.fds === 0 || before.fds !== now.fds) return true;
  return look - before.look >= SHARER_FULL_WALK_EVERY || (look + now.pid) % SHARER_FULL_WALK_EVERY === 0;
}

/**
 * Whether the status reads alone find a holder gone about as soon as the existence probes would (a
 * status read of a process that ended fails): each holder's status comes round within 1.5 × aliveEveryMs.
 * The probes then add nothing but their cost (a kill(0) per holder a second: 0.14 % of a core at 1000
 * sessions here); they run when the status reads are slower (past the budget, or on a locked host).
 */
export function statusesCoverAlive(holders: number, perSecond: number, limits: HolderWatchLimits): boolean {
  return perSecond > 0 && (holders * 1000) / perSecond <= limits.aliveEveryMs * 1.5;
}

/**
 * Watches the genuine holders of the open sessions between reconciles, cheaply, so a port does not stay
 * open for long after its socket leaves genuine hands: each holder is probed for existence every
 * `aliveEveryMs` (the genuine mosh-server gone while its socket lives on means someone else holds it)
 * unless its status reads come as often, and its status is read round-robin, each once per
 * `statusEveryMs` within a budget of reads per second (a tracer attached, the uid changed), and every `sharersEveryMs` the other processes of the
 * sessions' owners are looked through for a session's socket (taken with pidfd_getfd while the genuine
 * server lives on: only its owner, or root, may do that). On a locked host (Yama ptrace_scope 2 or 3:
 * no user can attach to or take a socket from even their own process) the status reads and looks slow
 * to `lockedEveryMs`: what they look for can then only be done by root or by code already inside the
 * server. `check` returns why a full reconcile is due, or undefined; the reconcile then walks every
 * holder and decides. Pure over its edges; the caller passes the time.
 */
export function createHolderWatch(edges: HolderEdges, limits: HolderWatchLimits = DEFAULT_HOLDER_WATCH) {
  let sessions: MoshSession[] = [];
  let refused: RefusedHolder[] = [];
  let inodes = new Map<number, number>();
  /** For the sharer look: the pids it skips (the tracked holders), the owners and sockets it looks for. */
  let known = new Set<number>();
  let owners = new Set<number>();
  let sockets = new Set<number>();
  let cursor = 0;
  let lastSharers = Number.NEGATIVE_INFINITY;
  let lastAlive = Number.NEGATIVE_INFINITY;
  let lastStatus = Number.NEGATIVE_INFINITY;
  let owed = 0;
  let locked = false;
  /** An interval of the limits, stretched to lockedEveryMs while the host is locked. */
  const paced = (everyMs: number) => (locked ? Math.max(everyMs, limits.lockedEveryMs ?? everyMs) : everyMs);
  return {
    /** How often status reads and sharer looks go now, and whether the host is locked (for the log). */
    pace(): { statusEveryMs: number; sharersEveryMs: number; locked: boolean } {
      return {
        statusEveryMs: paced(limits.statusEveryMs),
        sharersEveryMs: paced(limits.sharersEveryMs),
        locked,
      };
    },
    /**
     * The sessions the last reconcile opened (their holders are what is watched), the holders it
     * refused (one that ends may have been the only reason: a helper that held the socket a moment),
     * and the sockets of the sessions' ports (inode → port) that the sharer look searches for.
     */
    track(
      current: readonly MoshSession[],
      now: number,
      refusedNow: readonly RefusedHolder[] = [],
      socketPorts: ReadonlyMap<number, number> = new Map(),
    ): void {
      sessions = [...current];
      refused = [...refusedNow];
      locked = edges.locked?.() ?? false;
      edges.watching?.(new Set(sessions.map((session) => session.pid)));
      inodes = new Map(socketPorts);
      known = new Set([...sessions.map((session) => session.pid), ...refused.map((holder) => holder.pid)]);
      owners = new Set(sessions.map((session) => session.uid));
      sockets = new Set(inodes.keys());
      cursor = 0;
      lastSharers = now;
      lastAlive = now;
      lastStatus = now;
      owed = 0;
    },
    check(now: number): string | undefined {
      // Every call: the few refused holders, so a transient one (mosh-server's utempter helper, which
      // inherits the socket for a moment) costs its session a poll, not the resync.
      const ended = refused.find((holder) => !edges.alive(holder.pid));
      if (ended !== undefined) {
        refused = [];
        return `refused holder pid ${ended.pid} of port ${ended.port} ended`;
      }
      if (sessions.length === 0) return undefined;
      const perSecond = Math.min(
        limits.statusReadsPerSecond,
        Math.max(
          limits.minStatusReadsPerSecond ?? 0,
          (sessions.length * 1000) / Math.max(1, paced(limits.statusEveryMs)),
        ),
      );
      if (now - lastAlive >= limits.aliveEveryMs && !statusesCoverAlive(sessions.length, perSecond, limits)) {
        lastAlive = now;
        const gone = sessions.find((session) => !edges.alive(session.pid));
        if (gone !== undefined) return `holder pid ${gone.pid} of port ${gone.port} ended`;
      }
      owed = Math.min(sessions.length, owed + ((now - lastStatus) / 1000) * perSecond);
      lastStatus = now;
      for (; owed >= 1; owed -= 1) {
        const session = sessions[cursor % sessions.length] as MoshSession;
        cursor = (cursor + 1) % sessions.length;
        const status = edges.status(session.pid);
        if (status === undefined) return `holder pid ${session.pid} of port ${session.port} ended`;
        if (status.tracerPid !== 0) {
          return `holder pid ${session.pid} of port ${session.port} is traced by pid ${status.tracerPid}`;
        }
        if (status.realUid !== session.uid || status.effectiveUid !== session.uid) {
          return `holder pid ${session.pid} of port ${session.port} changed uid`;
        }
      }
      if (
        edges.sharer !== undefined &&
        inodes.size > 0 &&
        now - lastSharers >= paced(limits.sharersEveryMs)
      ) {
        lastSharers = now;
        const found = edges.sharer(sockets, owners, known);
        if (found !== undefined) {
          return `pid ${found.pid} also holds the socket of port ${inodes.get(found.inode) ?? '?'}`;
        }
      }
      return undefined;
    },
  };
}
