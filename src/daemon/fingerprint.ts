import { parseProcNetUdp } from '../discovery/udp.ts';
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
