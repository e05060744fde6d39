// Watching the lab from outside, for the demo's timeline and the bench: which UDP ports in the mosh range
// are bound in the server host (its /proc/net/udp{,6}) and which rules of ours UFW has (user.rules and
// user6.rules), sampled every few milliseconds, each change stamped with performance.now(). Reads files
// only; never changes anything.
import { readFileSync } from 'node:fs';
import { pollFor } from './_poll.ts';
import type { Lab } from './lab.ts';

export type WatchKind = 'bound' | 'unbound' | 'rule' | 'rule-gone';

/** One change seen by the watch. */
export interface WatchEvent {
  at: number;
  port: number;
  kind: WatchKind;
}

export interface PortWatch {
  events(): WatchEvent[];
  /** The first event of `kind` for `port` at or after `since` (performance.now()), if seen. */
  first(kind: WatchKind, port: number, since?: number): WatchEvent | undefined;
  /** Waits until such an event is seen or `ms` pass. */
  waitFor(kind: WatchKind, port: number, since: number, ms: number): Promise<WatchEvent | undefined>;
  stop(): void;
}

const OUR_COMMENT = ` comment=${Buffer.from('moshwall').toString('hex')}`;

/** Local ports in [first, last] of the sockets in a /proc/net/udp or udp6 text. */
export function udpPortsInRange(text: string, first: number, last: number): Set<number> {
  const ports = new Set<number>();
  for (const line of text.split('\n').slice(1)) {
    const local = line.trim().split(/\s+/)[1];
    const port = Number.parseInt(local?.split(':').at(-1) ?? '', 16);
    if (port >= first && port <= last) ports.add(port);
  }
  return ports;
}

/** Destination ports of the rules carrying our comment in a ufw user rules text. */
export function ourRulePorts(text: string): Set<number> {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('### tuple ### ') || !line.endsWith(OUR_COMMENT)) continue;
    const port = Number(line.split(' ')[5]);
    if (Number.isInteger(port)) ports.add(port);
  }
  return ports;
}

/** Reads a file, or '' when it cannot be read (a rules file is replaced while ufw writes it). */
function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Starts sampling every `everyMs` (default 2 ms) until stop(); ports in `range` (default 60000:61000). */
export function watchPorts(lab: Lab, range: [number, number] = [60000, 61000], everyMs = 2): PortWatch {
  const [first, last] = range;
  const holder = lab.server.holderPid;
  const events: WatchEvent[] = [];
  let bound = new Set<number>();
  let rules = new Set<number>();
  const diff = (before: Set<number>, after: Set<number>, added: WatchKind, gone: WatchKind, at: number) => {
    for (const port of after) if (!before.has(port)) events.push({ at, port, kind: added });
    for (const port of before) if (!after.has(port)) events.push({ at, port, kind: gone });
  };
  const sample = () => {
    const at = performance.now();
    const nowBound = new Set([
      ...udpPortsInRange(readOr(`/proc/${holder}/net/udp`), first, last),
      ...udpPortsInRange(readOr(`/proc/${holder}/net/udp6`), first, last),
    ]);
    const nowRules = new Set([
      ...ourRulePorts(readOr(lab.serverPath('/etc/ufw/user.rules'))),
      ...ourRulePorts(readOr(lab.serverPath('/etc/ufw/user6.rules'))),
    ]);
    diff(bound, nowBound, 'bound', 'unbound', at);
    diff(rules, nowRules, 'rule', 'rule-gone', at);
    bound = nowBound;
    rules = nowRules;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  const watch: PortWatch = {
    events: () => [...events],
    first: (kind, port, since = 0) =>
      events.find((event) => event.kind === kind && event.port === port && event.at >= since),
    waitFor: (kind, port, since, ms) => pollFor(() => watch.first(kind, port, since), ms, everyMs),
    stop: () => clearInterval(timer),
  };
  return watch;
}

/** Host pids of the processes holding UDP `port` in the server host (from `ss -uanp`), [] if none. */
export async function serverPidsOnPort(lab: Lab, port: number): Promise<number[]> {
  const result = await lab.runServer(['ss', '-H', '-u', '-a', '-n', '-p', 'sport', '=', `:${port}`]);
  const pids = [...result.stdout.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1]));
  return [...new Set(pids)]
    .map((nsPid) => lab.hostPid(nsPid))
    .filter((pid): pid is number => pid !== undefined);
}
