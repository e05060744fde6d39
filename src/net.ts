import type { Family } from './model.ts';

/** IP addresses and networks as text <-> bytes, without node:net: strict parsing, RFC 5952 output. */

/** Dotted-quad text of 4 bytes: [192, 0, 2, 1] → "192.0.2.1". */
export function formatIPv4(bytes: readonly number[]): string {
  return bytes.join('.');
}

/**
 * Canonical RFC 5952 text of 16 bytes: lower case, no leading zeros, the longest run of two or more
 * zero groups (the first on a tie) as "::", IPv4-mapped addresses as "::ffff:192.0.2.1".
 */
export function formatIPv6(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let index = 0; index < 16; index += 2)
    groups.push(((bytes[index] ?? 0) << 8) | (bytes[index + 1] ?? 0));
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes.slice(12, 16))}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The 4 bytes of a strict dotted quad ("192.0.2.1"; no leading zeros, no shorthand), else undefined. */
export function parseIPv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes.push(value);
  }
  return bytes;
}

/** The 16 bytes of an IPv6 literal (one "::" at most, optional trailing dotted quad), else undefined. */
export function parseIPv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? parseGroups(halves[1] ?? '', true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return groups.flatMap((group) => [group >> 8, group & 0xff]);
}

/** 16-bit groups of one side of "::"; a dotted quad is allowed only at the very end. */
function parseGroups(text: string, mayEndInIPv4: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (index === parts.length - 1 && mayEndInIPv4 && part.includes('.')) {
      const quad = parseIPv4(part);
      if (quad === undefined) return undefined;
      groups.push(((quad[0] ?? 0) << 8) | (quad[1] ?? 0), ((quad[2] ?? 0) << 8) | (quad[3] ?? 0));
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
      groups.push(Number.parseInt(part, 16));
    }
  }
  return groups;
}

/** An address or network as text, parsed: the address as given and the network it belongs to. */
export interface Cidr {
  family: Family;
  /** Canonical text of the address as given (host bits kept): "10.0.0.1", "2001:db8::1". */
  address: string;
  prefix: number;
  /** Canonical network with its prefix, host bits cleared: "10.0.0.0/8", "2001:db8::/32". */
  network: string;
  /** The address had bits set beyond the prefix ("10.0.0.1/8"). */
  hostBitsSet: boolean;
}

/** The bytes with every bit beyond `prefix` cleared. */
function maskBytes(bytes: readonly number[], prefix: number): number[] {
  return bytes.map((byte, index) => {
    const keep = Math.min(8, Math.max(0, prefix - index * 8));
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
}

/** The family and bytes of an IPv4 or IPv6 literal, or undefined. */
function parseAddress(text: string): { family: Family; bytes: number[] } | undefined {
  const v4 = parseIPv4(text);
  if (v4) return { family: 'v4', bytes: v4 };
  const v6 = parseIPv6(text);
  return v6 ? { family: 'v6', bytes: v6 } : undefined;
}

/** The family of an IP address literal, or undefined when it is not one. */
export function ipFamily(text: string): Family | undefined {
  return parseAddress(text)?.family;
}

/** Parses "address" or "address/prefix" (IPv4 or IPv6) into canonical parts, or undefined if it is not one. */
export function parseCidr(text: string): Cidr | undefined {
  const pieces = text.split('/');
  if (pieces.length > 2) return undefined;
  const [addressText = '', prefixText] = pieces;
  const parsed = parseAddress(addressText);
  if (parsed === undefined) return undefined;
  const { family, bytes } = parsed;
  const maxPrefix = family === 'v6' ? 128 : 32;
  if (prefixText !== undefined && !/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (prefix > maxPrefix) return undefined;
  const format = (value: number[]) => (family === 'v6' ? formatIPv6(value) : formatIPv4(value));
  const masked = maskBytes(bytes, prefix);
  return {
    family,
    address: format(bytes),
    prefix,
    network: `${format(masked)}/${prefix}`,
    hostBitsSet: masked.some((byte, index) => byte !== bytes[index]),
  };
}

/**
 * A network an admin wrote (config): the canonical "address/prefix" text, or a message saying why the
 * text is not a network with zero host bits.
 */
export function parseNetwork(text: string): Cidr | string {
  const cidr = parseCidr(text);
  if (cidr === undefined) return `"${text}" is not an IPv4 or IPv6 address or network`;
  if (cidr.hostBitsSet) return `"${text}" has host bits set; did you mean ${cidr.network}?`;
  return cidr;
}

/** The CIDR meaning "from anywhere" for a family. */
export function anywhere(family: Family): string {
  return family === 'v6' ? '::/0' : '0.0.0.0/0';
}

/** True when network `outer` contains every address of network `inner` (same family). */
export function cidrContains(outer: string, inner: string): boolean {
  const a = parseCidr(outer);
  const b = parseCidr(inner);
  if (!a || !b || a.family !== b.family || a.prefix > b.prefix) return false;
  const aBase = parseCidr(a.network);
  const bMasked = parseCidr(`${b.address}/${a.prefix}`);
  return aBase !== undefined && bMasked !== undefined && aBase.network === bMasked.network;
}

/** True when an IPv6 address is IPv4-mapped (::ffff:a.b.c.d). */
export function isV4Mapped(text: string): boolean {
  const bytes = parseIPv6(text) ?? [];
  return (
    bytes.length === 16 &&
    bytes.slice(0, 10).every((byte) => byte === 0) &&
    bytes[10] === 0xff &&
    bytes[11] === 0xff
  );
}

/** True for a loopback address: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x. */
export function isLoopback(text: string): boolean {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return v4[0] === 127;
  const v6 = parseIPv6(text);
  if (v6 === undefined) return false;
  if (isV4Mapped(text)) return v6[12] === 127;
  return v6.slice(0, 15).every((byte) => byte === 0) && v6[15] === 1;
}
