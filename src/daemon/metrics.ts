import type { SyncReport } from '../engine.ts';
import type { Runner } from '../exec.ts';
import { createRegistry, type Labels, type Registry } from '../metrics/registry.ts';
import type { DaemonResponse } from './protocol.ts';

/** Bucket bounds in seconds: a firewall command or a reconcile takes ms to seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The firewall tools a command label may name; anything else is "other" (bounded cardinality). */
const COMMANDS = new Set([
  'ufw',
  'nft',
  'iptables',
  'ip6tables',
  'iptables-save',
  'ip6tables-save',
  'iptables-restore',
  'ip6tables-restore',
  'iptables-nft',
  'iptables-legacy',
  'ip6tables-nft',
  'ip6tables-legacy',
  'firewall-cmd',
  'ipset',
  'conntrack',
]);

/** The bounded reason label for a refusal's free-text reason (see discovery/genuine.ts, policy.ts). */
export function refusalReason(reason: string): string {
  const rules: Array<[RegExp, string]> = [
    [/also held by/, 'shared'],
    [/could not be inspected/, 'uninspected'],
    [/not in allow_users or allow_groups/, 'policy'],
    [/max_sessions_per_user/, 'per_user_cap'],
    [/IPv6 only/, 'ipv6_off'],
    [/^cannot read pid/, 'unreadable'],
    [/exited$/, 'exited'],
    [/traced by/, 'traced'],
    [/namespace/, 'namespace'],
    [/is not named/, 'not_mosh_server'],
    [/deleted|root sees at that path|owned by uid|writable by|not a regular file/, 'untrusted_binary'],
    [/^cannot verify pid/, 'unverified'],
  ];
  return rules.find(([pattern]) => pattern.test(reason))?.[1] ?? 'other';
}

/** The bounded outcome label of one shim request's answer. */
export function requestOutcome(response: DaemonResponse): string {
  if (response.ok) return response.op === 'open' ? response.state : response.op;
  if (response.port === undefined) return 'bad_request';
  if (response.error.startsWith('reconcile failed')) return 'failed';
  if (response.error.startsWith('an admin rule decides')) return 'conflict';
  return 'refused';
}

/** What the daemon counts, in one registry; every method is cheap and never throws on odd input. */
export interface DaemonMetrics {
  readonly registry: Registry;
  /** A reconcile ended well after `seconds`, with this report, at monotonic time `now` (ms). */
  reconciled(report: SyncReport, seconds: number, now: number): void;
  /** A shim request's quick open (a narrowed reconcile): counts the rules it added. */
  quickOpened(report: SyncReport): void;
  reconcileFailed(seconds: number): void;
  /** The shim's request answered after `seconds` (from its arrival to the answer). */
  requestAnswered(response: DaemonResponse, seconds: number): void;
  /** A runner that times each firewall command and counts its failures. */
  timedRunner(run: Runner, now: () => number): Runner;
  render(): string;
}

export interface DaemonMetricsOptions {
  version: string;
  backend: () => string;
  now: () => number;
  /** Holders the holder watch verifies between reconciles now (undefined when it is off). */
  watchedHolders?: () => number;
  /** Add a `user` label to the sessions gauge (off by default: cardinality and privacy). */
  userLabel?: boolean;
}

/** The daemon's metrics over a fresh registry. */
export function createDaemonMetrics(options: DaemonMetricsOptions): DaemonMetrics {
  const registry = createRegistry();
  let lastGood: number | undefined;
  let refusedBefore = new Set<string>();
  registry.collectedGauge(
    'moshwall_build_info',
    'moshwall version and firewall backend (value 1).',
    ['version', 'backend'],
    () => [[{ version: options.version, backend: options.backend() }, 1]],
  );
  const sessionLabels = options.userLabel ? ['family', 'user'] : ['family'];
  const sessions = registry.gauge(
    'moshwall_sessions',
    'Live verified mosh sessions after the last good reconcile.',
    sessionLabels,
  );
  const rules = registry.gauge('moshwall_rules', 'Firewall rules of ours after the last good reconcile.', [
    'family',
  ]);
  const opens = registry.counter('moshwall_opens_total', 'Ports opened (rules added).', ['family']);
  const closes = registry.counter('moshwall_closes_total', 'Ports closed (rules removed).', ['family']);
  const refusals = registry.counter(
    'moshwall_refusals_total',
    'Holders of a port in the range refused, counted once while they hold it.',
    ['reason'],
  );
  const reconcileSeconds = registry.histogram(
    'moshwall_reconcile_duration_seconds',
    'Time one reconcile took.',
    DURATION_BUCKETS,
    ['result'],
  );
  const openLatency = registry.histogram(
    'moshwall_open_latency_seconds',
    "Time from the shim's request (sent once mosh-server has bound its port) to the daemon's answer.",
    DURATION_BUCKETS,
    ['outcome'],
  );
  const requests = registry.counter('moshwall_shim_requests_total', 'Shim requests answered, by outcome.', [
    'outcome',
  ]);
  const commandSeconds = registry.histogram(
    'moshwall_firewall_command_duration_seconds',
    'Time one firewall command took.',
    DURATION_BUCKETS,
    ['command'],
  );
  const commandFailures = registry.counter(
    'moshwall_firewall_command_failures_total',
    'Firewall commands that exited non-zero, timed out or could not start.',
    ['command'],
  );
  registry.collectedGauge(
    'moshwall_last_good_reconcile_age_seconds',
    'Seconds since the last reconcile that ended well (absent before the first).',
    [],
    () => (lastGood === undefined ? [] : [[{}, (options.now() - lastGood) / 1000]]),
  );
  const watched = options.watchedHolders;
  if (watched)
    registry.collectedGauge(
      'moshwall_holder_watch_holders',
      'Session holders the holder watch verifies between reconciles.',
      [],
      () => [[{}, watched()]],
    );

  /** Counts per family (and user when asked) of the report's sessions, zero families kept. */
  const setSessions = (report: SyncReport) => {
    const counts = new Map<string, [Labels, number]>();
    for (const family of ['v4', 'v6']) if (!options.userLabel) counts.set(family, [{ family }, 0]);
    for (const { session } of report.sessions) {
      const labels: Labels = options.userLabel
        ? { family: session.family, user: session.user }
        : { family: session.family };
      const key = JSON.stringify(labels);
      counts.set(key, [labels, (counts.get(key)?.[1] ?? 0) + 1]);
    }
    for (const [labels, count] of counts.values()) sessions.set(labels, count);
  };

  return {
    registry,
    reconciled(report, seconds, now) {
      lastGood = now;
      reconcileSeconds.observe({ result: 'ok' }, seconds);
      setSessions(report);
      const ours = { v4: 0, v6: 0 } as Record<string, number>;
      for (const spec of [...report.plan.keep, ...report.plan.allow])
        ours[spec.family] = (ours[spec.family] ?? 0) + 1;
      for (const [family, count] of Object.entries(ours)) rules.set({ family }, count);
      for (const change of report.applied)
        for (const spec of change.specs)
          (change.kind === 'allow' ? opens : closes).inc({ family: spec.family });
      const refusedNow = new Set<string>();
      for (const holder of report.refused) {
        const key = `${holder.pid}:${holder.port}:${holder.family}`;
        refusedNow.add(key);
        if (!refusedBefore.has(key)) refusals.inc({ reason: refusalReason(holder.reason) });
      }
      refusedBefore = refusedNow;
    },
    quickOpened(report) {
      for (const change of report.applied)
        for (const spec of change.specs) if (change.kind === 'allow') opens.inc({ family: spec.family });
    },
    reconcileFailed(seconds) {
      reconcileSeconds.observe({ result: 'failed' }, seconds);
    },
    requestAnswered(response, seconds) {
      const outcome = requestOutcome(response);
      requests.inc({ outcome });
      if (outcome !== 'ping' && outcome !== 'opened' && outcome !== 'bad_request')
        openLatency.observe({ outcome }, seconds);
    },
    timedRunner(run, now) {
      return async (argv, runOptions) => {
        const base = (argv[0] ?? '').split('/').pop() ?? '';
        const command = COMMANDS.has(base) ? base : 'other';
        const started = now();
        try {
          const result = await run(argv, runOptions);
          if (result.exitCode !== 0) commandFailures.inc({ command });
          return result;
        } catch (error) {
          commandFailures.inc({ command });
          throw error;
        } finally {
          commandSeconds.observe({ command }, (now() - started) / 1000);
        }
      };
    },
    render: () => registry.render(),
  };
}
