import type { GroupDirectory } from '../policy.ts';
import { PTRACE_SCOPE_PATH, parsePtraceScope } from '../ptrace.ts';
import { errnoCode } from './errno.ts';
import type { ProcReader } from './proc-reader.ts';
import { parseGroup } from './users.ts';

// What the engine, daemon and doctor read of the host besides the process walk, through the ProcReader
// (so each is unit-tested on the fake one).

/** The group directory of this host, from /etc/group read through the reader. */
export function readGroups(reader: ProcReader): GroupDirectory {
  const table = parseGroup(reader.readText('/etc/group'));
  return {
    gidOf: (name) => table.gidByName.get(name),
    membersOf: (name) => table.membersByName.get(name) ?? [],
  };
}

/** True when the host has an IPv6 address other than loopback (from /proc/net/if_inet6). */
export function hostHasIpv6(reader: ProcReader): boolean {
  try {
    return reader
      .readText('/proc/net/if_inet6')
      .split('\n')
      .some((line) => line.trim() !== '' && !line.startsWith('00000000000000000000000000000001'));
  } catch {
    return false;
  }
}

/** kernel.io_uring_disabled, or null when this kernel has no such setting. */
export function ioUringDisabled(reader: ProcReader): number | null {
  try {
    return Number(reader.readText('/proc/sys/kernel/io_uring_disabled').trim());
  } catch {
    return null;
  }
}

/** Reads /proc/net/udp and /proc/net/udp6 (the latter may be missing when IPv6 is off). */
export function readUdp(reader: ProcReader): { udp: string; udp6: string | undefined } {
  const udp = reader.readText('/proc/net/udp');
  let udp6: string | undefined;
  try {
    udp6 = reader.readText('/proc/net/udp6');
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  return { udp, udp6 };
}

/**
 * The UDP lines of /proc/net/sockstat and /proc/net/sockstat6 ("UDP: inuse 3 mem 1"), which change with
 * the number of UDP sockets; undefined when sockstat cannot be read (the daemon then polls in full).
 */
export function readSocketCounts(reader: ProcReader): string | undefined {
  const udpLines = (file: string) =>
    reader
      .readText(file)
      .split('\n')
      .filter((line) => line.startsWith('UDP'))
      .join(';');
  try {
    let v6 = '';
    try {
      v6 = udpLines('/proc/net/sockstat6');
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
    }
    return `${udpLines('/proc/net/sockstat')};${v6}`;
  } catch {
    return undefined;
  }
}

/** Yama's kernel.yama.ptrace_scope, or undefined when this kernel has no Yama (or it cannot be read). */
export function readPtraceScope(reader: ProcReader): number | undefined {
  try {
    return parsePtraceScope(reader.readText(PTRACE_SCOPE_PATH));
  } catch {
    return undefined;
  }
}
