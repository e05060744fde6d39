import { ProcError } from '../errors.ts';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../net.ts';

/** The fields of /proc/PID/stat that discovery uses. */
export interface ProcStat {
  pid: number;
  /** Command name as the kernel keeps it (may contain spaces and ')'). */
  comm: string;
  /** Field 22: start time after boot, in clock ticks. */
  startTimeTicks: number;
}

/** The fields of /proc/PID/status that discovery uses. */
export interface ProcStatus {
  realUid: number;
  effectiveUid: number;
  realGid: number;
  effectiveGid: number;
  /** Supplementary groups, in the kernel's order. */
  groups: number[];
  /** Pid of the tracer, 0 when not traced. */
  tracerPid: number;
  /** Pid of the parent. */
  parentPid: number;
}

/** One line of /proc/PID/maps. */
export interface MapEntry {
  /** Start and end address, hex exactly as printed (maps pads to 8 digits; map_files names do not). */
  start: string;
  end: string;
  /** "r-xp" and the like. */
  perms: string;
  offset: string;
  /** "major:minor" in hex, as printed. */
  device: string;
  inode: number;
  /** Path of the mapped file, "[heap]"-style pseudo names, or '' for anonymous memory. */
  pathname: string;
  /** The pathname ended in " (deleted)" (removed from pathname). */
  deleted: boolean;
}

const DELETED_SUFFIX = ' (deleted)';
const MAPS_LINE =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][sp]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)(?: +(.*))?$/;

/** A ProcError for a file that does not read as the kernel writes it. */
function malformed(what: string, source: string, text: string, line?: number): ProcError {
  const where = line === undefined ? source : `line ${line} of ${source}`;
  return new ProcError(`Malformed ${what} in ${where}: ${JSON.stringify(text)}`, {
    file: source,
    line,
    text,
  });
}

/** Lines of a /proc text, without the empty piece after the final newline. */
function linesOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** pid, comm and start time (field 22) of /proc/PID/stat; comm ends at the LAST ')'. */
export function parseStat(text: string, source = '/proc/PID/stat'): ProcStat {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const open = body.indexOf(' (');
  const close = body.lastIndexOf(')');
  const pid = body.slice(0, open);
  if (open < 1 || close < open || !/^\d+$/.test(pid) || body[close + 1] !== ' ') {
    throw malformed('stat', source, text);
  }
  // Fields after the comm start at field 3 (state), so field 22 is at index 19.
  const startTime = body.slice(close + 2).split(' ')[19];
  if (startTime === undefined || !/^\d+$/.test(startTime)) throw malformed('stat', source, text);
  return { pid: Number(pid), comm: body.slice(open + 2, close), startTimeTicks: Number(startTime) };
}

/** Uid, Gid (real and effective), Groups, TracerPid and PPid of /proc/PID/status. */
export function parseStatus(text: string, source = '/proc/PID/status'): ProcStatus {
  const fields = new Map<string, string>();
  for (const line of linesOf(text)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const numbers = (key: string, count: number | 'any'): number[] => {
    const value = fields.get(key);
    if (value === undefined) throw malformed(`status (no ${key} line)`, source, text);
    const parts = value === '' ? [] : value.split(/\s+/);
    if ((count !== 'any' && parts.length !== count) || !parts.every((part) => /^\d+$/.test(part))) {
      throw malformed(`status (${key} line)`, source, `${key}:\t${value}`);
    }
    return parts.map(Number);
  };
  const [realUid = 0, effectiveUid = 0] = numbers('Uid', 4);
  const [realGid = 0, effectiveGid = 0] = numbers('Gid', 4);
  const [tracerPid = 0] = numbers('TracerPid', 1);
  const groups = numbers('Groups', 'any');
  const [parentPid = 0] = numbers('PPid', 1);
  return { realUid, effectiveUid, realGid, effectiveGid, groups, tracerPid, parentPid };
}

/** The real, effective, saved and filesystem uid of /proc/PID/status, without repeats. */
export function parseUids(text: string, source = '/proc/PID/status'): number[] {
  const line = linesOf(text).find((candidate) => candidate.startsWith('Uid:'));
  const parts = line?.slice('Uid:'.length).trim().split(/\s+/) ?? [];
  if (parts.length !== 4 || !parts.every((part) => /^\d+$/.test(part))) {
    throw malformed('status (Uid line)', source, line ?? '(no Uid line)');
  }
  return [...new Set(parts.map(Number))];
}

/** Every mapping of /proc/PID/maps, " (deleted)" split off the pathname into `deleted`. */
export function parseMaps(text: string, source = '/proc/PID/maps'): MapEntry[] {
  return linesOf(text).map((line, index) => {
    const match = MAPS_LINE.exec(line);
    if (match === null) throw malformed('mapping', source, line, index + 1);
    const [, start = '', end = '', perms = '', offset = '', device = '', inode = '', named = ''] = match;
    const deleted = named.endsWith(DELETED_SUFFIX);
    const pathname = deleted ? named.slice(0, -DELETED_SUFFIX.length) : named;
    return { start, end, perms, offset, device, inode: Number(inode), pathname, deleted };
  });
}

/** The variables of /proc/PID/environ (NUL-separated NAME=value); the first of duplicates wins. */
export function parseEnviron(text: string, source = '/proc/PID/environ'): Map<string, string> {
  const entries = text.split('\0');
  if (entries.at(-1) === '') entries.pop();
  const environment = new Map<string, string>();
  for (const [index, entry] of entries.entries()) {
    const equals = entry.indexOf('=');
    if (equals < 1) throw malformed('environment entry', source, entry, index + 1);
    const name = entry.slice(0, equals);
    if (!environment.has(name)) environment.set(name, entry.slice(equals + 1));
  }
  return environment;
}

/**
 * The client address of SSH_CONNECTION ("CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT") in canonical
 * text, or undefined unless the value has exactly that shape with real IP literals. A link-local
 * zone ("fe80::1%eth0") is dropped: a firewall matches on the address alone.
 */
export function parseSshConnection(value: string): string | undefined {
  const fields = value.trim().split(/\s+/);
  if (fields.length !== 4) return undefined;
  const [client = '', clientPort = '', server = '', serverPort = ''] = fields;
  if (!isPort(clientPort) || !isPort(serverPort) || canonicalAddress(server) === undefined) return undefined;
  return canonicalAddress(client);
}

/** Whether text is a decimal port 1–65535. */
function isPort(text: string): boolean {
  return /^[1-9][0-9]{0,4}$/.test(text) && Number(text) <= 65535;
}

/** Canonical text of an IPv4 or IPv6 literal (zone id dropped), or undefined. */
function canonicalAddress(text: string): string | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return formatIPv4(v4);
  const percent = text.indexOf('%');
  const zone = percent < 0 ? '' : text.slice(percent + 1);
  if (percent >= 0 && !/^[A-Za-z0-9_.-]+$/.test(zone)) return undefined;
  const v6 = parseIPv6(percent < 0 ? text : text.slice(0, percent));
  return v6 === undefined ? undefined : formatIPv6(v6);
}

/** Boot time in seconds since the Unix epoch: the "btime" line of /proc/stat. */
export function parseBootTime(text: string, source = '/proc/stat'): number {
  const line = linesOf(text).find((candidate) => candidate.startsWith('btime '));
  const value = line?.slice('btime '.length).trim();
  if (value === undefined || !/^\d+$/.test(value)) {
    throw malformed('boot time', source, line ?? '(no btime line)');
  }
  return Number(value);
}
