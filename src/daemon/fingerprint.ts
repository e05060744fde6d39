import { parseProcNetUdp } from '../discovery/udp.ts';
import { describeError } from '../errors.ts';
import type { PortRange } from '../model.ts';

/**
 * A short text that changes exactly when the set of UDP sockets in the range changes (family, port,
 * inode), from the texts of /proc/net/udp and /proc/net/udp6 (undefined when IPv6 is off).
 */
export function socketFingerprint(udp: string, udp6: string | undefined, range: PortRange): string {
  const sockets = [...parseProcNetUdp(udp, 'v4'), ...(udp6 === undefined ? [] : parseProcNetUdp(udp6, 'v6'))];
  return sockets
    .filter((socket) => socket.localPort >= range.first && socket.localPort <= range.last)
    .map((socket) => `${socket.family}:${socket.localPort}:${socket.inode}`)
    .sort()
    .join(',');
}

/**
 * The fingerprint of the sockets read now; a failed read gives a fingerprint of its own (so a
 * recovery counts as a change) instead of throwing.
 */
export function readFingerprint(
  readUdp: () => { udp: string; udp6: string | undefined },
  range: PortRange,
): string {
  try {
    const { udp, udp6 } = readUdp();
    return socketFingerprint(udp, udp6, range);
  } catch (error) {
    return `error: ${describeError(error)}`;
  }
}
