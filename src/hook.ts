import type { Config } from './config.ts';
import { readFingerprint } from './daemon/fingerprint.ts';
import { type EngineDeps, syncOnce } from './engine.ts';
import { describeError } from './errors.ts';

/** The watcher's edges: the engine, /proc/net reads, the shared deadline, a clock and a sleep. */
export interface HookWatchDeps {
  config: Config;
  engine: EngineDeps;
  readUdp: () => { udp: string; udp6: string | undefined };
  /** The latest deadline any hook asked for (epoch ms); 0 when none. */
  readDeadline: () => number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

/**
 * The background half of `moshwall hook`: reconciles now, then whenever the sockets in the range
 * change, until the latest hook's deadline has passed. Returns how many reconciles it ran.
 */
export async function watchUntilDeadline(deps: HookWatchDeps): Promise<number> {
  const { config, engine } = deps;
  let last: string | undefined;
  let runs = 0;
  while (deps.now() <= deps.readDeadline() || runs === 0) {
    const fingerprint = readFingerprint(deps.readUdp, config.portRange);
    if (fingerprint !== last) {
      try {
        await syncOnce(engine, { dryRun: false });
        last = fingerprint;
      } catch (error) {
        engine.log.error('reconcile-failed', { error: describeError(error) });
      }
      runs++;
    }
    await deps.sleep(config.pollIntervalMs);
  }
  return runs;
}

/** A resource limit as /proc/PID/limits shows it; Infinity for "unlimited". */
export interface ResourceLimit {
  soft: number;
  hard: number;
}

/** The limits the watcher needs at least (prlimit's option → /proc/PID/limits row, value). */
export const WATCHER_LIMITS: ReadonlyArray<{ option: string; row: string; value: number }> = [
  { option: 'cpu', row: 'Max cpu time', value: Number.POSITIVE_INFINITY },
  { option: 'as', row: 'Max address space', value: Number.POSITIVE_INFINITY },
  { option: 'data', row: 'Max data size', value: Number.POSITIVE_INFINITY },
  { option: 'fsize', row: 'Max file size', value: Number.POSITIVE_INFINITY },
  { option: 'nofile', row: 'Max open files', value: 4096 },
];

/** The rows of a /proc/PID/limits text, by name ("Max open files" → {soft, hard}). */
export function parseLimits(text: string): Map<string, ResourceLimit> {
  const limits = new Map<string, ResourceLimit>();
  const value = (word: string) => (word === 'unlimited' ? Number.POSITIVE_INFINITY : Number(word));
  for (const line of text.split('\n').slice(1)) {
    const match = /^(.+?)\s{2,}(unlimited|\d+)\s+(unlimited|\d+)/.exec(line);
    if (match?.[1] && match[2] && match[3]) {
      limits.set(match[1].trim(), { soft: value(match[2]), hard: value(match[3]) });
    }
  }
  return limits;
}

/**
 * The prlimit options that give the watcher at least WATCHER_LIMITS, whatever a user's `ulimit` left it:
 * a soft limit is raised up to its hard one freely; a lower hard limit too where `raiseHard` (root with
 * CAP_SYS_RESOURCE), else the soft limit goes as high as the hard one allows. Empty when all suffice.
 */
export function limitOptions(current: Map<string, ResourceLimit>, raiseHard: boolean): string[] {
  const word = (value: number) => (value === Number.POSITIVE_INFINITY ? 'unlimited' : String(value));
  const options: string[] = [];
  for (const { option, row, value } of WATCHER_LIMITS) {
    const limit = current.get(row);
    if (!limit || limit.soft >= value) continue;
    if (limit.hard >= value) options.push(`--${option}=${word(value)}:`);
    else if (raiseHard) options.push(`--${option}=${word(value)}:${word(value)}`);
    else if (limit.soft < limit.hard) options.push(`--${option}=${word(limit.hard)}:`);
  }
  return options;
}
