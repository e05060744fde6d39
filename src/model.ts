/** Values shared by discovery, policy, reconcile and the backends. Plain data only. */

export type Family = 'v4' | 'v6';

/** A UDP socket as listed in /proc/net/udp or /proc/net/udp6. */
export interface UdpSocket {
  family: Family;
  /** Local address in canonical text form ("0.0.0.0", "192.0.2.1", "::", "2001:db8::1"). */
  localAddress: string;
  localPort: number;
  /** Socket owner's uid as the kernel reports it. */
  uid: number;
  inode: number;
}

/** A UDP port held by a process that passed every genuineness check. */
export interface MoshSession {
  pid: number;
  uid: number;
  user: string;
  /** Supplementary and primary group ids of the process (from /proc/PID/status). */
  gids: number[];
  port: number;
  family: Family;
  localAddress: string;
  /** Executable path as /proc/PID/exe reads, " (deleted)" kept if the binary was upgraded away. */
  exe: string;
  /** Process start time, milliseconds since the Unix epoch. */
  startedAtMs: number;
  /** Client address from SSH_CONNECTION in the process environment, when readable. */
  clientAddress?: string;
}

/** A process holding a port in the range that is not (or not allowed as) a genuine mosh-server. */
export interface RefusedHolder {
  pid: number;
  uid: number;
  user: string;
  port: number;
  family: Family;
  localAddress: string;
  exe: string;
  reason: string;
  /**
   * Bound to a loopback address that traffic from outside can never reach (route_localnet off): it
   * does not keep a genuine session on the same port closed (a squatter on 127.0.0.1, say).
   */
  unreachable?: true;
  /**
   * A wildcard IPv6 socket ("::") with IPV6_V6ONLY set: it receives no IPv4, so it does not keep a
   * session's IPv4 port closed (a squatter on [::] beside a `mosh-server -s` bound to an IPv4 address).
   */
  v6only?: true;
}

/**
 * A process whose open files root could not read (an LSM-confined process, a container's or a sandbox's
 * init): it may hold a socket nobody can see. A root one is ignored (root can open the firewall itself);
 * any other one has every in-range socket owned by one of its uids refused.
 */
export interface UninspectedProcess {
  pid: number;
  /** Real, effective, saved and filesystem uid, without repeats; [] when even its status is unreadable. */
  uids: number[];
  /** Real and effective uid are both 0: ignored. */
  root: boolean;
  /** /proc/PID/exe as it reads, or '' when that is refused too. */
  exe: string;
  /** The read that failed and its errno code. */
  path: string;
  code: string;
}

/** What a scan of /proc found: verified sessions, holders that failed verification, blind spots. */
export interface ScanResult {
  sessions: MoshSession[];
  refused: RefusedHolder[];
  /** Processes whose fds could not be read (see UninspectedProcess), by pid; always set by scanSessions. */
  uninspected?: UninspectedProcess[];
}

/** An inclusive port range. */
export interface PortRange {
  first: number;
  last: number;
}
