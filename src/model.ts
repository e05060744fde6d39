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
}

/** What a scan of /proc found: verified sessions and holders that failed verification. */
export interface ScanResult {
  sessions: MoshSession[];
  refused: RefusedHolder[];
}

/** An inclusive port range. */
export interface PortRange {
  first: number;
  last: number;
}
