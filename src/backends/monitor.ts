import { type Clock, systemClock, type Timer } from '../clock.ts';
import type { LineWatcher } from '../exec.ts';
import { keepWatching } from './kernel/watch.ts';

/*
 * Watching the kernel's nf_tables for changes with `nft monitor rules`, for the nftables backend and for
 * iptables-nft (whose rules are nf_tables rules too). nft prints one line per added or deleted rule:
 *   insert rule inet filter input jump moshwall_input comment "moshwall"
 *   delete rule inet filter input handle 7
 * Any reload of the admin's ruleset (`flush ruleset`, `iptables-restore`) deletes rules, so rule events
 * are enough; they also spare us nft 1.0.6's `nft monitor`, which segfaults printing an element of a
 * concatenated-range set. Lines about rules moshwall itself adds are ours and ignored (so our own
 * changes cause no reconcile); any other line means someone else changed the ruleset, and onChange is
 * called at the start and, if more came, at the end of each burst of such lines.
 */

/** One line of `nft monitor`, split into its leading words; undefined for other lines. */
export interface MonitorEvent {
  /** add, insert, create, delete, flush, replace… */
  verb: string;
  /** table, chain, rule, set, element, map… */
  object: string;
  family: string;
  table: string;
  /** The chain or set name (absent for a table). */
  name?: string;
  /** The words after the name, trimmed. */
  rest: string;
}

const EVENT =
  /^(\w+) (table|chain|rule|set|map|element|flowtable|obj\w*|counter|quota|limit|ct \w+) (\S+) (\S+)(?: (\S+))?(.*)$/;

/** The words of a `nft monitor` line, or undefined for a comment, a blank or an unknown line. */
export function parseMonitorLine(line: string): MonitorEvent | undefined {
  const match = EVENT.exec(line.trim());
  if (match === null) return undefined;
  const [, verb = '', object = '', family = '', table = '', name, rest = ''] = match;
  // nft sometimes prints a rule's handle before its body ("add rule … input handle 11 meta …").
  const body = rest.trim().replace(/^handle \d+(?:\s+|$)/, '');
  return { verb, object, family, table, ...(name === undefined ? {} : { name }), rest: body };
}

/** The line itself when it reports someone else's change, or undefined (ours, a comment, a blank). */
export function foreignChange(line: string, isOurs: (event: MonitorEvent) => boolean): string | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const event = parseMonitorLine(text);
  return event !== undefined && isOurs(event) ? undefined : text;
}

export interface MonitorOptions {
  watcher: LineWatcher;
  /** The monitor's argv, e.g. ["nft", "monitor"]. */
  argv: string[];
  isOurs: (event: MonitorEvent) => boolean;
  onChange: (what: string) => void;
  /** First delay before restarting a monitor that ended (doubling up to a minute); default 1000 ms. */
  restartMs?: number;
  /**
   * A burst of foreign lines (a reload prints one per rule, and an admin's two restores follow each other)
   * is reported at its first line and, if more came, once more this long after it; default 100 ms.
   */
  burstMs?: number;
  clock?: Clock;
}

/**
 * Runs the monitor and calls onChange for foreign changes, at the first line of a burst and once after it
 * when more lines came (so a reconcile always starts after the last change); the kernel's keepWatching
 * restarts it when it ends (see kernel/watch.ts).
 */
export function watchMonitor(options: MonitorOptions): { close(): void } {
  const { watcher, argv, isOurs, onChange } = options;
  const clock = options.clock ?? systemClock;
  const burstMs = options.burstMs ?? 100;
  let burst: Timer | undefined;
  /** A foreign line that came during the burst, reported when it ends. */
  let pending: string | undefined;
  let closed = false;
  const report = (change: string): void => {
    if (burst !== undefined) {
      pending = change;
      return;
    }
    onChange(change);
    burst = clock.setTimeout(() => {
      burst = undefined;
      const last = pending;
      pending = undefined;
      if (last !== undefined && !closed) onChange(`${last} (and more)`);
    }, burstMs);
  };
  const watch = keepWatching({
    watcher,
    argv,
    label: argv.slice(0, 2).join(' '),
    onLine: (line) => {
      const change = foreignChange(line, isOurs);
      if (change !== undefined) report(change);
    },
    onChange,
    firstDelayMs: options.restartMs ?? 1000,
    maxDelayMs: 60_000,
    clock,
  });
  return {
    close() {
      closed = true;
      clock.clear(burst);
      watch.close();
    },
  };
}
