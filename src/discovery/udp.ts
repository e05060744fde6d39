import { ProcError } from '../errors.ts';
import type { Family, UdpSocket } from '../model.ts';
import { formatIPv4, formatIPv6 } from '../net.ts';

/** Hex digits of a local address: one 32-bit word for v4, four for v6. */
const ADDRESS_HEX_LENGTH: Record<Family, number> = { v4: 8, v6: 32 };

/**
 * The sockets listed in /proc/net/udp (family 'v4') or /proc/net/udp6 ('v6'), addresses in canonical
 * text. The kernel prints each 32-bit word of an address as a host-order (little-endian) integer.
 * Anything but the expected header and well-formed lines throws a ProcError naming file, line and text.
 */
export function parseProcNetUdp(
  text: string,
  family: Family,
  source = family === 'v4' ? '/proc/net/udp' : '/proc/net/udp6',
): UdpSocket[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const header = lines[0] ?? '';
  if (!isHeader(header)) {
    throw new ProcError(`Unexpected header in ${source} (line 1): ${JSON.stringify(header)}`, {
      file: source,
      line: 1,
      text: header,
    });
  }
  return lines.slice(1).map((line, index) => parseLine(line, family, source, index + 2));
}

/** Whether a line is the column header the kernel prints first. */
function isHeader(line: string): boolean {
  const columns = line.trim().split(/\s+/);
  return (
    columns[0] === 'sl' &&
    columns[1] === 'local_address' &&
    (columns[2] === 'rem_address' || columns[2] === 'remote_address') &&
    columns.includes('uid') &&
    columns.includes('inode')
  );
}

/** One socket line: "sl: LOCAL:PORT REMOTE:PORT st tx:rx tr:when retrnsmt uid timeout inode …". */
function parseLine(line: string, family: Family, source: string, lineNumber: number): UdpSocket {
  const hexLength = ADDRESS_HEX_LENGTH[family];
  const address = new RegExp(`^[0-9A-Fa-f]{${hexLength}}:[0-9A-Fa-f]{4}$`);
  const [slot, local, remote, state, , , , uid, , inode] = line.trim().split(/\s+/);
  const wellFormed =
    slot !== undefined &&
    /^\d+:$/.test(slot) &&
    local !== undefined &&
    address.test(local) &&
    remote !== undefined &&
    address.test(remote) &&
    state !== undefined &&
    /^[0-9A-Fa-f]{2}$/.test(state) &&
    uid !== undefined &&
    /^\d+$/.test(uid) &&
    inode !== undefined &&
    /^\d+$/.test(inode);
  if (!wellFormed) {
    throw new ProcError(`Malformed line ${lineNumber} of ${source}: ${JSON.stringify(line)}`, {
      file: source,
      line: lineNumber,
      text: line,
    });
  }
  const bytes = addressBytes(local.slice(0, hexLength));
  return {
    family,
    localAddress: family === 'v4' ? formatIPv4(bytes) : formatIPv6(bytes),
    localPort: Number.parseInt(local.slice(hexLength + 1), 16),
    uid: Number(uid),
    inode: Number(inode),
  };
}

/** Network-order bytes of an address printed as little-endian 32-bit words ("0100007F" → 127.0.0.1). */
function addressBytes(hex: string): number[] {
  const bytes: number[] = [];
  for (let word = 0; word < hex.length; word += 8) {
    for (let byte = 3; byte >= 0; byte--) {
      bytes.push(Number.parseInt(hex.slice(word + byte * 2, word + byte * 2 + 2), 16));
    }
  }
  return bytes;
}
