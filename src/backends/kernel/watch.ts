import { type Clock, systemClock, type Timer } from '../../clock.ts';
import type { LineWatch, LineWatcher } from '../../exec.ts';

/** How to keep a firewall watcher (`nft monitor`, `dbus-monitor`) running. */
export interface KeepWatchingOptions {
  watcher: LineWatcher;
  argv: string[];
  /** Names the watcher in messages: "nft monitor", "the firewalld watcher". */
  label: string;
  onLine: (line: string) => void;
  /** Told when the watcher ended and whether it restarts (anything may have changed unseen meanwhile). */
  onChange: (what: string) => void;
  /** First delay before a restart, doubling after each end without a line in between. */
  firstDelayMs: number;
  /** The longest delay between restarts. */
  maxDelayMs: number;
  clock?: Clock;
}

/**
 * Runs the watcher and restarts it whenever it ends, after a delay that doubles up to maxDelayMs and goes
 * back to the first after a line came; a watcher that could not be run at all (not installed) is not
 * restarted: the daemon's periodic resync is then the only check. close() stops it and every timer.
 */
export function keepWatching(options: KeepWatchingOptions): { close(): void } {
  const { watcher, argv, label, onLine, onChange, firstDelayMs, maxDelayMs } = options;
  const clock = options.clock ?? systemClock;
  let delay = firstDelayMs;
  let closed = false;
  let timer: Timer | undefined;
  let current: LineWatch | undefined;
  const begin = (): void => {
    current = watcher(
      argv,
      (line) => {
        delay = firstDelayMs;
        onLine(line);
      },
      (why) => {
        if (closed) return;
        if (why.startsWith('could not run')) {
          onChange(`${label} ended (${why}); not restarting it, the periodic resync remains`);
          return;
        }
        onChange(`${label} ended (${why}); restarting it in ${Math.round(delay / 1000)} s`);
        timer = clock.setTimeout(() => {
          if (closed) return;
          begin();
          onChange(`${label} restarted`);
        }, delay);
        delay = Math.min(delay * 2, maxDelayMs);
      },
    );
  };
  begin();
  return {
    close() {
      closed = true;
      clock.clear(timer);
      current?.close();
    },
  };
}
