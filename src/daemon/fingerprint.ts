import { describeError } from '../errors.ts';
import type { Family, PortRange } from '../model.ts';

const SPACE = 0x20;

/** Index of the first character at or after `from` that is not a space (or the end). */
function skipSpaces(line: string, from: number): number {
  let index = from;
  while (index < line.length && line.charCodeAt(index) === SPACE) index += 1;
  return index;
}

/** Index just past the token that starts at `from` (the next space, or the end). */
function tokenEnd(line: string, from: number): number {
  const space = line.indexOf(' ', from);
  return space < 0 ? line.length : space;
}

/**
 * "family:port:inode" for every socket line of one /proc/net/udp{,6} text whose local port is in the
 * range, read straight from the columns (local address:port is field 2, the inode field 10), without
 * the full parse of discovery/udp.ts: the daemon runs this every poll, over every socket. A line that
 * does not read as a socket line is kept whole, so that any change to it still changes the fingerprint
 * (the reconcile it triggers parses the file properly and reports it).
 */
function socketKeys(text: string, family: Family, range: PortRange, keys: string[]): void {
  let start = text.indexOf('\n') + 1;
  while (start > 0 && start < text.length) {
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline;
    const line = text.slice(start, end);
    start = end + 1;
    const localStart = skipSpaces(line, line.indexOf(':') + 1);
    const localEnd = tokenEnd(line, localStart);
    const port = Number.parseInt(line.slice(localEnd - 4, localEnd), 16);
    if (localStart === 0 || line.charCodeAt(localEnd - 5) !== 0x3a || !Number.isInteger(port)) {
      if (line.trim() !== '') keys.push(`?${line}`);
      continue;
    }
    if (port < range.first || port > range.last) continue;
    let fieldStart = localStart;
    for (let field = 2; field < 10; field += 1) fieldStart = skipSpaces(line, tokenEnd(line, fieldStart));
    keys.push(`${family}:${port}:${line.slice(fieldStart, tokenEnd(line, fieldStart))}`);
  }
}

/**
 * A short text that changes exactly when the set of UDP sockets in the range changes (family, port,
 * inode), from the texts of /proc/net/udp and /proc/net/udp6 (undefined when IPv6 is off).
 */
export function socketFingerprint(udp: string, udp6: string | undefined, range: PortRange): string {
  const keys: string[] = [];
  socketKeys(udp, 'v4', range, keys);
  if (udp6 !== undefined) socketKeys(udp6, 'v6', range, keys);
  return keys.sort().join(',');
}

/** Whether a fingerprint (of socketFingerprint) lists a socket on `port`, in either family. */
export function fingerprintHasPort(fingerprint: string | undefined, port: number): boolean {
  if (fingerprint === undefined) return false;
  return fingerprint.split(',').some((key) => key.split(':')[1] === String(port));
}

/** Socket inode → port, for the sockets of a fingerprint (of socketFingerprint) on one of `ports`. */
export function socketsOnPorts(
  fingerprint: string | undefined,
  ports: ReadonlySet<number>,
): Map<number, number> {
  const found = new Map<number, number>();
  if (fingerprint === undefined || fingerprint.startsWith('error: ')) return found;
  for (const key of fingerprint.split(',')) {
    const [family, port, inode] = key.split(':');
    if ((family === 'v4' || family === 'v6') && ports.has(Number(port)) && /^\d+$/.test(inode ?? '')) {
      found.set(Number(inode), Number(port));
    }
  }
  return found;
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
