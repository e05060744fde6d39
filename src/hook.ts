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
