import { ProcError } from '../errors.ts';
import type {
  Family,
  MoshSession,
  PortRange,
  RefusedHolder,
  ScanResult,
  UdpSocket,
  UninspectedProcess,
} from '../model.ts';
import { isLoopback } from '../net.ts';
import { readProcessDetails, readRealUid } from './details.ts';
import { errnoCode, procReadFix } from './errno.ts';
import { checkGenuine, createGenuineCache, type GenuineVerdict } from './genuine.ts';
import type { ProcessMemory, Recalled } from './memory.ts';
import type { ProcReader } from './proc-reader.ts';
import { parseBootTime, parseStatus } from './process.ts';
import { holdersOf } from './sockets.ts';
import { parseProcNetUdp } from './udp.ts';
import { parsePasswd } from './users.ts';

export interface ScanOptions {
  range: PortRange;
  serverNames: string[];
  /** Accept holders in another user or mount namespace than the host's (allow_foreign_namespaces). */
  allowForeignNamespaces?: boolean;
  /** sysconf(_SC_CLK_TCK): the unit of the start time in /proc/PID/stat. Default 100. */
  clockTicksPerSecond?: number;
  /** Genuine verdicts kept from earlier scans (the daemon's; see memory.ts); none by default. */
  memory?: ProcessMemory;
  /**
   * Inodes of the UDP sockets with IPV6_V6ONLY set (not in /proc: the edge asks `ss`); throws when that
   * cannot be known. Called only when a refused "::" holder shares a port with a session.
   */
  v6Only?: () => ReadonlySet<number>;
  /**
   * Only this port's sockets, and only the processes that can hold them without another user's help
   * (see holderCandidates): the shim's quick look at its one port. The daemon's full scans follow it.
   */
  port?: number;
}

/**
 * The processes a narrowed scan walks: those whose /proc directory belongs to one of the sockets'
 * owners, or to root (a process that made itself non-dumpable shows as root there, so it is walked
 * too). Another user's process holds such a socket only if the owner handed it over (SCM_RIGHTS, a
 * tracer): the full scan right after sees it. A pid that cannot be stat'ed is walked (the walk decides).
 */
function holderCandidates(reader: ProcReader, owners: ReadonlySet<number>): (pid: number) => boolean {
  return (pid) => {
    try {
      const { uid } = reader.stat(`/proc/${pid}`);
      return uid === 0 || owners.has(uid);
    } catch {
      return true;
    }
  };
}

/**
 * Root-only helpers mosh-server starts that briefly inherit its UDP socket (mosh does not set
 * close-on-exec on it): libutempter's setgid utmp helper. Such a holder does not count against the
 * session when it passes the same root-only checks as mosh-server and its parent is a genuine holder.
 */
const HELPER_NAMES = ['utempter'];

const UDP_FILES: Record<Family, string> = { v4: '/proc/net/udp', v6: '/proc/net/udp6' };

/**
 * The mosh sessions in the range: UDP sockets in range whose every holder is a genuine mosh-server,
 * and a RefusedHolder for every other holder (or for a socket nobody visible holds). Holders that
 * exit mid-scan are not counted. A socket owned by a uid of a non-root process whose fds could not be
 * read is refused (that process may hold it). Throws ProcError when the socket tables or /proc cannot
 * be read: a failed scan must never read as "no sessions".
 */
export function scanSessions(reader: ProcReader, options: ScanOptions): ScanResult {
  const { first, last } = options.range;
  const { port } = options;
  const sockets = [...readSockets(reader, 'v4'), ...readSockets(reader, 'v6')]
    .filter((socket) => socket.localPort >= first && socket.localPort <= last)
    .filter((socket) => port === undefined || socket.localPort === port)
    .sort(bySocket);
  if (sockets.length === 0) {
    if (port === undefined) options.memory?.keepOnly(new Set());
    return { sessions: [], refused: [], uninspected: [] };
  }

  const scan = startScan(reader, options);
  const { holders, uninspected } = holdersOf(
    reader,
    new Set(sockets.map((socket) => socket.inode)),
    port === undefined ? undefined : holderCandidates(reader, new Set(sockets.map((socket) => socket.uid))),
  );
  const result: ScanResult = { sessions: [], refused: [], uninspected };
  const held = new Map<number, number>();
  for (const pids of holders.values()) for (const pid of pids) held.set(pid, (held.get(pid) ?? 0) + 1);
  for (const socket of sockets) {
    const judged = judgeSocket(scan, socket, holders.get(socket.inode) ?? [], held);
    const blocked = blindSpotRefusals(scan, socket, uninspected);
    if (judged.session !== undefined && blocked.length === 0) result.sessions.push(judged.session);
    result.refused.push(...judged.refused, ...blocked);
  }
  markUnreachable(reader, result.refused);
  markV6Only(options, sockets, result);
  // A narrowed scan saw a few holders only: what the memory knows of the others stays.
  if (port === undefined) options.memory?.keepOnly(new Set([...holders.values()].flat()));
  result.sessions.sort(byPlace);
  result.refused.sort(byPlace);
  return result;
}

/** What one scan knows and remembers: the reader, options, verdicts by pid, names, boot time. */
interface Scan {
  reader: ProcReader;
  options: ScanOptions;
  verdictOf(pid: number): GenuineVerdict;
  /** uid, groups, start time and client address of a holder (from memory when it was recalled). */
  detailsOf(pid: number): ReturnType<typeof readProcessDetails>;
  /** True when pid is a root-only helper (utempter) that a genuine holder in `parents` started. */
  isHelperOf(pid: number, parents: number[]): boolean;
  userName(uid: number): string;
  bootTime(): number;
}

/** A scan's memory: each pid judged once, /etc/passwd and /proc/stat read on first use. */
function startScan(reader: ProcReader, options: ScanOptions): Scan {
  const cache = createGenuineCache();
  const verdicts = new Map<number, GenuineVerdict>();
  const recalled = new Map<number, Recalled>();
  const { memory } = options;
  /** The verdict on pid: recalled from memory when it still holds, else a full check. */
  const genuineOptions = {
    serverNames: options.serverNames,
    allowForeignNamespaces: options.allowForeignNamespaces === true,
  };
  const judge = (pid: number): GenuineVerdict => {
    if (memory === undefined) return checkGenuine(pid, reader, genuineOptions, cache);
    const known = memory.recall(pid, reader);
    if (known !== undefined) {
      recalled.set(pid, known);
      return known.verdict;
    }
    return memory.check(pid, reader, genuineOptions, cache);
  };
  let names: Map<number, string> | undefined;
  let bootTime: number | undefined;
  return {
    reader,
    options,
    verdictOf(pid) {
      const verdict = verdicts.get(pid) ?? judge(pid);
      verdicts.set(pid, verdict);
      return verdict;
    },
    detailsOf(pid) {
      const known = recalled.get(pid);
      if (known !== undefined && known.clientAddress !== undefined) {
        const { uid, gids, startTimeTicks, clientAddress } = known;
        return clientAddress === null
          ? { uid, gids, startTimeTicks }
          : { uid, gids, startTimeTicks, clientAddress };
      }
      const details = readProcessDetails(reader, pid);
      if (details !== undefined && !('reason' in details))
        memory?.noteClientAddress(pid, details.clientAddress);
      return details;
    },
    isHelperOf(pid, parents) {
      if (parents.length === 0) return false;
      const helper = checkGenuine(pid, reader, { ...genuineOptions, serverNames: HELPER_NAMES }, cache);
      if (!helper.genuine) return false;
      try {
        const file = `/proc/${pid}/status`;
        return parents.includes(parseStatus(reader.readText(file), file).parentPid);
      } catch {
        return false;
      }
    },
    userName(uid) {
      names ??= readPasswd(reader);
      return names.get(uid) ?? String(uid);
    },
    bootTime() {
      bootTime ??= parseBootTime(readRequired(reader, '/proc/stat'), '/proc/stat');
      return bootTime;
    },
  };
}

/**
 * One socket in range: a session when every holder still present is genuine; otherwise a refusal
 * for each holder that is not (or for the socket itself when no holder was found). A genuine
 * mosh-server binds exactly one socket; one holding several in the range (`held`: pid → count) was
 * handed the others by a process that may keep a copy where /proc cannot show it (an io_uring ring
 * whose fd was closed), so none of them counts.
 */
function judgeSocket(
  scan: Scan,
  socket: UdpSocket,
  pids: number[],
  held: ReadonlyMap<number, number>,
): { session?: MoshSession; refused: RefusedHolder[] } {
  const place = { port: socket.localPort, family: socket.family, localAddress: socket.localAddress };
  const refusal = (pid: number, uid: number, exe: string, reason: string): RefusedHolder => ({
    pid,
    uid,
    user: scan.userName(uid),
    ...place,
    exe,
    reason,
  });
  if (pids.length === 0) {
    return {
      refused: [refusal(0, socket.uid, '', `no process holding socket inode ${socket.inode} was found`)],
    };
  }
  const judged = pids
    .map((pid) => ({ pid, verdict: scan.verdictOf(pid) }))
    .filter(({ verdict }) => verdict.genuine || !verdict.vanished);
  const genuinePids = judged.filter(({ verdict }) => verdict.genuine).map(({ pid }) => pid);
  const present = judged.filter(({ pid, verdict }) => verdict.genuine || !scan.isHelperOf(pid, genuinePids));
  const refused = present.flatMap(({ pid, verdict }) =>
    verdict.genuine
      ? []
      : [refusal(pid, readRealUid(scan.reader, pid) ?? socket.uid, verdict.exe, verdict.reason)],
  );
  if (refused.length > 0) return { refused };
  const handed = present.filter(({ pid, verdict }) => verdict.genuine && (held.get(pid) ?? 0) > 1);
  if (handed.length > 0) {
    return {
      refused: handed.map(({ pid, verdict }) =>
        refusal(
          pid,
          readRealUid(scan.reader, pid) ?? socket.uid,
          verdict.exe,
          `mosh-server pid ${pid} holds ${held.get(pid)} UDP sockets in the range; it binds one itself, so another process handed it the others and may keep a copy /proc cannot show`,
        ),
      ),
    };
  }
  // mosh-server's parent exits right after forking: the first holder still readable is the session.
  let holder: (typeof present)[number] | undefined;
  let details: ReturnType<typeof readProcessDetails>;
  for (const candidate of present) {
    details = scan.detailsOf(candidate.pid);
    if (details !== undefined) {
      holder = candidate;
      break;
    }
  }
  if (holder === undefined || details === undefined) return { refused: [] };
  if ('reason' in details)
    return { refused: [refusal(holder.pid, socket.uid, holder.verdict.exe, details.reason)] };
  const ticks = scan.options.clockTicksPerSecond ?? 100;
  const session: MoshSession = {
    pid: holder.pid,
    uid: details.uid,
    user: scan.userName(details.uid),
    gids: details.gids,
    ...place,
    exe: holder.verdict.exe,
    startedAtMs: Math.round(scan.bootTime() * 1000 + (details.startTimeTicks * 1000) / ticks),
  };
  if (details.clientAddress !== undefined) session.clientAddress = details.clientAddress;
  return { session, refused: [] };
}

/**
 * Refusals of a socket that a process we could not read may hold: a non-root uninspected process whose
 * uids include the socket's owner (or whose uids are unknown). Root ones are ignored: root gains nothing
 * from holding a socket, it can change the firewall itself.
 */
function blindSpotRefusals(
  scan: Scan,
  socket: UdpSocket,
  uninspected: UninspectedProcess[],
): RefusedHolder[] {
  return uninspected
    .filter((blind) => !blind.root && (blind.uids.length === 0 || blind.uids.includes(socket.uid)))
    .map((blind) => ({
      pid: blind.pid,
      uid: blind.uids[0] ?? socket.uid,
      user: scan.userName(blind.uids[0] ?? socket.uid),
      port: socket.localPort,
      family: socket.family,
      localAddress: socket.localAddress,
      exe: blind.exe,
      reason: `a holder could not be inspected: pid ${blind.pid} (${uidText(blind)}) may hold this socket (uid ${socket.uid}); reading ${blind.path} failed (${blind.code})`,
    }));
}

/** "uid 1000" / "uids 1000,0" / "uid unknown" for a reason text. */
function uidText(blind: UninspectedProcess): string {
  if (blind.uids.length === 0) return 'uid unknown';
  return `${blind.uids.length === 1 ? 'uid' : 'uids'} ${blind.uids.join(',')}`;
}

/**
 * Marks refused holders bound to a loopback address as unreachable from outside, unless some interface
 * routes to loopback (net.ipv4.conf.*.route_localnet = 1, or unreadable: then nothing is marked).
 * ::1 is never routed from outside.
 */
function markUnreachable(reader: ProcReader, refused: RefusedHolder[]): void {
  const loopback = refused.filter((holder) => isLoopback(holder.localAddress));
  if (loopback.length === 0) return;
  const v4Routed = routesToLoopback(reader);
  for (const holder of loopback) {
    const v4 = holder.family === 'v4' || holder.localAddress.includes('.');
    if (!v4 || !v4Routed) holder.unreachable = true;
  }
}

/**
 * Marks refused "::" holders whose every socket on that port is IPV6_V6ONLY, when a session shares the
 * port: they receive no IPv4. When that cannot be known nothing is marked (they count as dual-stack).
 */
function markV6Only(options: ScanOptions, sockets: UdpSocket[], result: ScanResult): void {
  const wildcard = (holder: Pick<RefusedHolder, 'family' | 'localAddress'>) =>
    holder.family === 'v6' && holder.localAddress === '::';
  const sessionPorts = new Set(result.sessions.map((session) => session.port));
  const candidates = result.refused.filter((holder) => wildcard(holder) && sessionPorts.has(holder.port));
  if (candidates.length === 0 || options.v6Only === undefined) return;
  let v6Only: ReadonlySet<number>;
  try {
    v6Only = options.v6Only();
  } catch {
    return;
  }
  for (const holder of candidates) {
    const inodes = sockets
      .filter((socket) => wildcard(socket) && socket.localPort === holder.port)
      .map((socket) => socket.inode);
    if (inodes.length > 0 && inodes.every((inode) => v6Only.has(inode))) holder.v6only = true;
  }
}

/** Whether any interface (or "all") has route_localnet on; true when that cannot be read (fail safe). */
function routesToLoopback(reader: ProcReader): boolean {
  const base = '/proc/sys/net/ipv4/conf';
  try {
    return reader
      .listDir(base)
      .some((name) => reader.readText(`${base}/${name}/route_localnet`).trim() !== '0');
  } catch {
    return true;
  }
}

/** The sockets of /proc/net/udp or udp6; a missing udp6 is IPv6 switched off, any other failure throws. */
function readSockets(reader: ProcReader, family: Family): UdpSocket[] {
  const file = UDP_FILES[family];
  let text: string;
  try {
    text = reader.readText(file);
  } catch (error) {
    if (family === 'v6' && errnoCode(error) === 'ENOENT') return [];
    throw readError(file, error);
  }
  return parseProcNetUdp(text, family, file);
}

/** uid → name from /etc/passwd; a system without the file has no names, only numbers. */
function readPasswd(reader: ProcReader): Map<number, string> {
  let text: string;
  try {
    text = reader.readText('/etc/passwd');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return new Map();
    throw readError('/etc/passwd', error);
  }
  return parsePasswd(text, '/etc/passwd');
}

/** The text of a file the scan cannot do without. */
function readRequired(reader: ProcReader, file: string): string {
  try {
    return reader.readText(file);
  } catch (error) {
    throw readError(file, error);
  }
}

/** A ProcError for a file that could not be read: which file and why. */
function readError(file: string, error: unknown): ProcError {
  const code = errnoCode(error);
  const why = code ?? (error instanceof Error ? error.message : String(error));
  return new ProcError(
    `Cannot read ${file} (${why}); nothing is decided without it; ${procReadFix(code)}`,
    { file, code },
    error,
  );
}

/** Order of sockets: port, then v4 before v6, then address. */
function bySocket(a: UdpSocket, b: UdpSocket): number {
  return (
    compare(a.localPort, b.localPort) ||
    compare(a.family, b.family) ||
    compare(a.localAddress, b.localAddress)
  );
}

type Place = Pick<MoshSession, 'port' | 'family' | 'localAddress' | 'pid'>;

/** Order of sessions and refused holders: port, family, address, then pid. */
function byPlace(a: Place, b: Place): number {
  return (
    compare(a.port, b.port) ||
    compare(a.family, b.family) ||
    compare(a.localAddress, b.localAddress) ||
    compare(a.pid, b.pid)
  );
}

/** -1, 0 or 1 by plain < on numbers or strings ("v4" < "v6"), independent of the locale. */
function compare<T extends number | string>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
