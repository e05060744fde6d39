// What the lab learns from /proc on the host, and how it ends its own processes (by pid, never by name).
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/** The inode of the namespace a pid lives in ("net:[4026532]" → 4026532), or undefined if it is gone. */
export function namespaceOf(pid: number, kind: 'net' | 'mnt' | 'pid'): number | undefined {
  try {
    const match = /\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/${kind}`));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The inode of a named network namespace (/run/netns/<name>), or undefined if it does not exist. */
export function namedNetnsInode(name: string): number | undefined {
  try {
    return statSync(`/run/netns/${name}`).ino;
  } catch {
    return undefined;
  }
}

/** Process start time (field 22 of /proc/PID/stat, clock ticks since boot): with the pid, a process' identity. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True when the pid has no process, or only a zombie waiting to be reaped by someone else. */
export function isGone(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^State:\s+Z/m.test(status);
  } catch {
    return true;
  }
}

/** The value of one line of /proc/PID/status ("Uid" → "61001\t61001\t61001\t61001"), if readable. */
export function statusField(pid: number, field: string): string | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(status)?.[1];
  } catch {
    return undefined;
  }
}

/** Every pid in /proc (this PID namespace's view). */
function allPids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number);
}

/** Every live pid on the host in one of the namespaces `inodes` lists (zombies are in none). */
export function pidsInNamespaces(inodes: Record<'net' | 'mnt' | 'pid', number[]>): number[] {
  const kinds = ['net', 'mnt', 'pid'] as const;
  return allPids().filter((pid) => {
    if (pid === process.pid) return false;
    return kinds.some((kind) => {
      const inode = namespaceOf(pid, kind);
      return inode !== undefined && inodes[kind].includes(inode);
    });
  });
}

/** The children of pid (from /proc/PID/task/PID/children), [] once it is gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The host pid of the process that is `nsPid` inside the PID namespace with inode `pidNs`. */
export function hostPidOf(nsPid: number, pidNs: number): number | undefined {
  return allPids().find(
    (pid) =>
      namespaceOf(pid, 'pid') === pidNs && statusField(pid, 'NSpid')?.split(/\s+/).at(-1) === String(nsPid),
  );
}

/** Sends `signal` to pid, ignoring a process that already went away. */
export function signalPid(pid: number, signal: NodeJS.Signals): void {
  // kill(0) is our process group and kill(-1) every process on the machine: never a lab pid.
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`refusing to signal pid ${pid}`);
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Blocks the thread for `ms` (only for the exit-time safety net, where nothing async runs). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True if something in the network namespace of `pid` listens on TCP `port` (from /proc/PID/net/tcp{,6}). */
export function tcpListening(pid: number, port: number, family: 'v4' | 'v6'): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  try {
    const table = readFileSync(`/proc/${pid}/net/${family === 'v4' ? 'tcp' : 'tcp6'}`, 'utf8');
    return table.split('\n').some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${hexPort}`) === true && fields[3] === '0A';
    });
  } catch {
    return false;
  }
}

/** True if a UDP socket in the network namespace of `pid` is bound to `port` (either family). */
export function udpBound(pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return ['udp', 'udp6'].some((table) => {
    try {
      return readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
        .split('\n')
        .some((line) => line.trim().split(/\s+/)[1]?.endsWith(`:${hexPort}`) === true);
    } catch {
      return false;
    }
  });
}

/**
 * UDP datagrams that got past netfilter INPUT in the network namespace of `pid`: delivered to a socket,
 * refused for lack of one, or dropped for errors (from /proc/PID/net/snmp or snmp6).
 */
export function udpArrivals(pid: number, family: 'v4' | 'v6'): number {
  if (family === 'v6') {
    const text = readFileSync(`/proc/${pid}/net/snmp6`, 'utf8');
    const value = (name: string): number =>
      Number(new RegExp(`^${name}\\s+(\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    return (
      value('Udp6InDatagrams') + value('Udp6NoPorts') + value('Udp6InErrors') + value('Udp6RcvbufErrors')
    );
  }
  const lines = readFileSync(`/proc/${pid}/net/snmp`, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('Udp: '));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const value = (name: string): number => Number(values[names.indexOf(name)] ?? 0);
  return value('InDatagrams') + value('NoPorts') + value('InErrors') + value('RcvbufErrors');
}
