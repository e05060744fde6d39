import { ProcError } from '../errors.ts';
import { errnoCode, isDenied, isGone } from './errno.ts';
import type { ProcReader } from './proc-reader.ts';
import { parseEnviron, parseSshConnection, parseStat, parseStatus } from './process.ts';

/** What a session reports about its process, beyond the socket and the verdict. */
export interface ProcessDetails {
  uid: number;
  /** Primary gid first, then the supplementary groups, without repeats. */
  gids: number[];
  startTimeTicks: number;
  clientAddress?: string;
}

/**
 * uid, gids and start time of pid (from status and stat) and the SSH client address (from environ,
 * when readable). undefined if pid exited; `{ reason }` if the details cannot be read or make no sense.
 */
export function readProcessDetails(
  reader: ProcReader,
  pid: number,
): ProcessDetails | { reason: string } | undefined {
  let details: ProcessDetails;
  try {
    const status = parseStatus(reader.readText(`/proc/${pid}/status`), `/proc/${pid}/status`);
    const stat = parseStat(reader.readText(`/proc/${pid}/stat`), `/proc/${pid}/stat`);
    const gids = [...new Set([status.realGid, ...status.groups])];
    details = { uid: status.realUid, gids, startTimeTicks: stat.startTimeTicks };
  } catch (error) {
    const code = errnoCode(error);
    if (isGone(code)) return undefined;
    if (isDenied(code))
      return { reason: `cannot read pid ${pid}: permission denied (moshwall must run as root)` };
    if (error instanceof ProcError) return { reason: `cannot read pid ${pid}: ${error.message}` };
    if (code !== undefined) return { reason: `cannot read pid ${pid}: ${code}` };
    throw error;
  }
  const clientAddress = readClientAddress(reader, pid);
  if (clientAddress !== undefined) details.clientAddress = clientAddress;
  return details;
}

/** The real uid of pid from its status, or undefined if that cannot be read. */
export function readRealUid(reader: ProcReader, pid: number): number | undefined {
  const file = `/proc/${pid}/status`;
  try {
    return parseStatus(reader.readText(file), file).realUid;
  } catch (error) {
    if (errnoCode(error) === undefined && !(error instanceof ProcError)) throw error;
    return undefined;
  }
}

/** The client address of SSH_CONNECTION in /proc/PID/environ, or undefined if absent or unreadable. */
function readClientAddress(reader: ProcReader, pid: number): string | undefined {
  const file = `/proc/${pid}/environ`;
  try {
    const value = parseEnviron(reader.readText(file), file).get('SSH_CONNECTION');
    return value === undefined ? undefined : parseSshConnection(value);
  } catch (error) {
    if (errnoCode(error) === undefined && !(error instanceof ProcError)) throw error;
    return undefined;
  }
}
