import { createHash } from 'node:crypto';
import { checkGenuine, type GenuineCache, type GenuineOptions, type GenuineVerdict } from './genuine.ts';
import type { ProcReader } from './proc-reader.ts';
import { parseStat, parseStatus } from './process.ts';

/**
 * What a full genuineness check found about one process, kept across scans (the daemon's): the start
 * time, exe link and /proc/PID/maps text it was judged on, and the SSH client address read then.
 */
interface Remembered {
  startTimeTicks: number;
  /** Field 23 of /proc/PID/stat: moves with every mapping made or removed (and with the heap). */
  vsize: string;
  exe: string;
  /** SHA-256 of the maps text (a real mosh-server's is several kB; 1000 of them would weigh). */
  maps: string;
  /** undefined until the session's details were read; then the address (or null when there was none). */
  clientAddress?: string | null;
}

/** A remembered process that still matches: the verdict, and what this scan read of it. */
export interface Recalled {
  verdict: GenuineVerdict & { genuine: true };
  uid: number;
  gids: number[];
  startTimeTicks: number;
  /** As first read (SSH_CONNECTION is fixed when the process starts); undefined = not read yet. */
  clientAddress: string | null | undefined;
}

/**
 * Verdicts of genuine processes that outlive one scan, so that a daemon watching 1000 sessions does not
 * redo every check of every process on every reconcile. A process is recalled only while its start time
 * and exe link are what the full check saw (a new pid or an exec means a full check again), while its
 * mappings are too (the maps text is compared, by digest, whenever the size of its address space has
 * moved: a library loaded later is checked like one loaded at start), and only when it is not traced
 * now; its uid and groups are read afresh each time. Only genuine verdicts are kept: every refusal is
 * checked in full on every scan. Files above the exe and the mappings are not re-examined while the
 * process is unchanged (only root can change their ownership). Entries of processes that no longer hold
 * a socket in range are dropped.
 */
export interface ProcessMemory {
  /** The remembered verdict of pid if it still holds, else undefined (and the entry is dropped). */
  recall(pid: number, reader: ProcReader): Recalled | undefined;
  /** checkGenuine, remembering a genuine verdict with what it was judged on. */
  check(pid: number, reader: ProcReader, options: GenuineOptions, cache: GenuineCache): GenuineVerdict;
  /** Records the client address read for a remembered pid. */
  noteClientAddress(pid: number, address: string | undefined): void;
  /** Drops every entry but those of `pids` (the holders the last scan saw). */
  keepOnly(pids: ReadonlySet<number>): void;
  /** How many processes are remembered (for tests and logs). */
  size(): number;
}

/** Start time (field 22) and vsize (field 23) of /proc/PID/stat, or undefined if it cannot be read. */
function statOf(pid: number, reader: ProcReader): { startTimeTicks: number; vsize: string } | undefined {
  try {
    const file = `/proc/${pid}/stat`;
    const text = reader.readText(file);
    const vsize = text.slice(text.lastIndexOf(')') + 2).split(' ')[20];
    if (vsize === undefined || !/^\d+$/.test(vsize)) return undefined;
    return { startTimeTicks: parseStat(text, file).startTimeTicks, vsize };
  } catch {
    return undefined;
  }
}

/** The SHA-256 of a text, in hex. */
function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** An empty memory. */
export function createProcessMemory(): ProcessMemory {
  const entries = new Map<number, Remembered>();
  return {
    recall(pid, reader) {
      const entry = entries.get(pid);
      if (entry === undefined) return undefined;
      try {
        const stat = statOf(pid, reader);
        const same =
          stat !== undefined &&
          stat.startTimeTicks === entry.startTimeTicks &&
          reader.readLink(`/proc/${pid}/exe`) === entry.exe &&
          (stat.vsize === entry.vsize || digest(reader.readText(`/proc/${pid}/maps`)) === entry.maps);
        const status = same
          ? parseStatus(reader.readText(`/proc/${pid}/status`), `/proc/${pid}/status`)
          : undefined;
        if (stat !== undefined && status !== undefined && status.tracerPid === 0) {
          entry.vsize = stat.vsize;
          return {
            verdict: { genuine: true, exe: entry.exe },
            uid: status.realUid,
            gids: [...new Set([status.realGid, ...status.groups])],
            startTimeTicks: stat.startTimeTicks,
            clientAddress: entry.clientAddress,
          };
        }
      } catch {
        // Gone or unreadable: the full check decides what that means.
      }
      entries.delete(pid);
      return undefined;
    },

    check(pid, reader, options, cache) {
      const stat = statOf(pid, reader);
      const mapsFile = `/proc/${pid}/maps`;
      let maps: string | undefined;
      const recording: ProcReader = {
        ...reader,
        readText: (path) => {
          const text = reader.readText(path);
          if (path === mapsFile) maps = text;
          return text;
        },
      };
      const verdict = checkGenuine(pid, recording, options, cache);
      if (verdict.genuine && maps !== undefined && stat !== undefined) {
        entries.set(pid, { ...stat, exe: verdict.exe, maps: digest(maps) });
      } else entries.delete(pid);
      return verdict;
    },

    noteClientAddress(pid, address) {
      const entry = entries.get(pid);
      if (entry !== undefined) entry.clientAddress = address ?? null;
    },

    keepOnly(pids) {
      for (const pid of entries.keys()) if (!pids.has(pid)) entries.delete(pid);
    },

    size: () => entries.size,
  };
}
