import type { Clock, Timer } from '../clock.ts';
import type { Config } from '../config.ts';
import {
  type EngineDeps,
  flushOurs,
  openPortQuickly,
  probeOrFail,
  type SyncReport,
  syncOnce,
} from '../engine.ts';
import { describeError, MoshwallError } from '../errors.ts';
import type { BackendProbe } from '../firewall.ts';
import type { Logger } from '../log.ts';
import type { ListenAddress } from '../metrics/listen.ts';
import type { ScanResult } from '../model.ts';
import { fingerprintHasPort, readFingerprint, socketsOnPorts } from './fingerprint.ts';
import { createHolderWatch, DEFAULT_HOLDER_WATCH, type HolderEdges } from './holder-watch.ts';
import { createDaemonMetrics, type DaemonMetrics } from './metrics.ts';
import { portOutcome } from './outcome.ts';
import { type DaemonResponse, type OpenedPort, parseRequest } from './protocol.ts';
import { createRefusalLog } from './refusal-log.ts';
import { createScheduler } from './scheduler.ts';

/** The daemon's edges, injected: config loading, the engine, /proc/net reads, signals, the socket. */
export interface DaemonDeps {
  config: Config;
  /** Reads the config again (SIGHUP); throws a ConfigError when it is bad. */
  reloadConfig: () => Config;
  /** The engine for a config; `metrics`, when given, times the firewall commands it runs. */
  makeEngine: (config: Config, metrics?: DaemonMetrics) => EngineDeps;
  /** The texts of /proc/net/udp and /proc/net/udp6 (undefined when IPv6 is off); throws on failure. */
  readUdp: () => { udp: string; udp6: string | undefined };
  /**
   * A cheap text that changes whenever the number of UDP sockets does (the UDP lines of
   * /proc/net/sockstat{,6}), or undefined when it cannot be read. Optional: without it every poll reads
   * /proc/net/udp{,6}, whose text the kernel formats anew for every socket (about 2 ms at 1000).
   */
  readSocketCounts?: () => string | undefined;
  /** With socket counts, read the socket tables in full at least every this many polls (FULL_POLL_EVERY). */
  fullPollEvery?: number;
  log: Logger;
  onSignal: (signal: 'SIGHUP' | 'SIGTERM' | 'SIGINT', handler: () => void) => void;
  startServer: (
    path: string,
    handle: (line: string) => Promise<DaemonResponse>,
  ) => Promise<{ close(): void }>;
  /**
   * Reads of the open sessions' holders between reconciles (existence, tracer, uid); optional: without
   * it a change of hands is noticed at the next reconcile only.
   */
  holderEdges?: HolderEdges;
  /**
   * Serves `render()` as GET /metrics at `listen` (config metrics_listen); optional: without it, or
   * without metrics_listen, nothing listens. A failure to bind is logged and the daemon runs on.
   */
  startMetrics?: (
    listen: ListenAddress,
    render: () => string,
  ) => Promise<{ address: ListenAddress; close(): Promise<void> | void }>;
  /** Wall-clock time in Unix ms, for when a port was opened (`status`); Date.now when absent. */
  wallNow?: () => number;
  /** Time and the poll's timer (the machine's clock in production, a manual one in tests). */
  clock: Clock;
  version: string;
}

const MAX_BACKOFF_MS = 30000;
/** How often, and how far apart, a shim request whose port was refused is looked at again. */
const REFUSAL_RETRIES = 3;
const REFUSAL_RETRY_MS = 150;

/**
 * How long after a quick open its full reconcile runs: after the answer is written and the client's
 * first packets are through (that reconcile's scan and listing would compete with the connect for CPU),
 * well within the 2 s a change of hands gets.
 */
const QUICK_FOLLOW_UP_MS = 500;

/** True when the report refused a holder of `port`. */
function refusesPort(report: SyncReport, port: number): boolean {
  return report.refused.some((holder) => holder.port === port);
}
/**
 * With socket counts, the polls that read the socket tables in full: every one whose count changed, and
 * at least every FULL_POLL_EVERY-th (2 s at the default 250 ms), for a socket that closed while another
 * opened in between (same count).
 */
export const FULL_POLL_EVERY = 8;

/** Records the rules a report added, as opened at `nowMs`. */
function noteAdded(openedAt: Map<string, OpenedPort>, report: SyncReport, nowMs: number): void {
  for (const change of report.applied) {
    if (change.kind !== 'allow') continue;
    for (const spec of change.specs)
      openedAt.set(`${spec.port}/${spec.family}`, { port: spec.port, family: spec.family, atMs: nowMs });
  }
}

/** Records the rules a full reconcile added (at `nowMs`) and forgets those no longer kept. */
export function noteOpened(openedAt: Map<string, OpenedPort>, report: SyncReport, nowMs: number): void {
  noteAdded(openedAt, report, nowMs);
  const live = new Set(
    [...report.plan.keep, ...report.plan.allow].map((spec) => `${spec.port}/${spec.family}`),
  );
  for (const key of openedAt.keys()) if (!live.has(key)) openedAt.delete(key);
}

/**
 * The holder watch's edges under a config: with allow_foreign_namespaces, never locked (a user who owns
 * the user namespace a server runs in may ptrace it there whatever Yama's ptrace_scope says).
 */
function watchEdges(edges: HolderEdges, config: Config): HolderEdges {
  return config.allowForeignNamespaces ? { ...edges, locked: () => false } : edges;
}

/** The last full scan of a reconcile, the sockets it began with, and how many resyncs reused it since. */
export interface LastScan {
  result: ScanResult;
  fingerprint: string;
  reuses: number;
}

/** The reason the poll gives a periodic resync (the only reconcile that may reuse a scan). */
const PERIODIC_RESYNC = 'periodic resync';

/** A resync reuses the last scan at most this many times in a row: /proc is walked at least every 10th. */
export const RESYNC_SCAN_REUSES = 9;

/**
 * Whether a reconcile may decide on the last scan instead of walking /proc again: only a periodic
 * resync that nothing else asked for, with the holder watch on (it sees a holder end, a tracer, a uid
 * change and a sharer among the owners' processes between scans), the same sockets in range as that
 * scan began with, nothing refused or left uninspected by it (a refused holder may let go of its copy
 * of a socket without ending), and fewer than RESYNC_SCAN_REUSES reuses since it ran. The resync's
 * firewall listing and plan run either way: a rule removed behind our back is still put back.
 */
export function mayReuseScan(
  last: LastScan | undefined,
  seen: string,
  onlyResync: boolean,
  watched: boolean,
): last is LastScan {
  return (
    last !== undefined &&
    onlyResync &&
    watched &&
    last.fingerprint === seen &&
    last.result.refused.length === 0 &&
    (last.result.uninspected?.length ?? 0) === 0 &&
    last.reuses < RESYNC_SCAN_REUSES
  );
}

/** Errors after which running on makes no sense: the admin must fix something first. */
function isFatal(error: unknown): boolean {
  return error instanceof MoshwallError && (error.code === 'ENOFIREWALL' || error.code === 'ECONFIG');
}

/**
 * Runs until SIGTERM/SIGINT: reconciles at start (sweeping stale rules), whenever the sockets in the
 * range or the firewall's rule files change, at least every resync interval, and for every shim
 * request, which it answers once the port's rule is in place. Resolves with the exit code.
 */
export async function runDaemon(deps: DaemonDeps): Promise<number> {
  const { log } = deps;
  let config = deps.config;
  let probe: BackendProbe | undefined;
  let probedAt = 0;
  let lastRunAt = Number.NEGATIVE_INFINITY;
  let lastFingerprint: string | undefined;
  let lastToken: string | undefined;
  /** The sockets the reconcile going now saw when it began (its scan sees at least those still there). */
  let runningSeen: string | undefined;
  let lastCounts: string | undefined;
  let pollsSinceFull = 0;
  let failures = 0;
  let retryAt = 0;
  let stopping = false;
  /** The backend's change watcher (started after the first good reconcile), closed on reload and stop. */
  let watch: { close(): void } | undefined;
  const refusalLog = createRefusalLog();
  /** The holder watch, paced by the config's watch_interval_ms (made again on SIGHUP). */
  const watchFor = (current: Config) =>
    deps.holderEdges === undefined
      ? undefined
      : createHolderWatch(watchEdges(deps.holderEdges, current), {
          ...DEFAULT_HOLDER_WATCH,
          statusEveryMs: current.watchIntervalMs,
          sharersEveryMs: current.watchIntervalMs,
        });
  let holders = watchFor(config);
  /** Whether the watch ran locked (Yama ptrace_scope ≥ 2) at the last track: its pace is logged on a change. */
  let watchLocked = false;
  /** The ports of ours per uid: the last full reconcile's, and the quick opens since (per-user caps). */
  let knownPorts = new Map<number, Set<number>>();
  /** Adds the report's sessions to knownPorts. */
  const rememberPorts = (report: SyncReport) => {
    for (const { session } of report.sessions) {
      const ports = knownPorts.get(session.uid) ?? new Set<number>();
      ports.add(session.port);
      knownPorts.set(session.uid, ports);
    }
  };
  /** One firewall change at a time: full reconciles and the shim's quick opens take turns. */
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const mine = turn.then(work, work);
    turn = mine.catch(() => undefined);
    return mine;
  };
  let trackedHolders = 0;
  const metrics = createDaemonMetrics({
    version: deps.version,
    backend: () => engine.backend.name,
    now: () => deps.clock.now(),
    ...(holders ? { watchedHolders: () => trackedHolders } : {}),
    userLabel: config.metricsUserLabel,
  });
  let metricsServer: { close(): Promise<void> | void } | undefined;
  /** When each rule of ours was added by this daemon ("port/family" → Unix ms). */
  const openedAt = new Map<string, OpenedPort>();
  const wallNow = deps.wallNow ?? (() => Date.now());
  let engine = deps.makeEngine(config, metrics);

  /** Logs each refused holder once while it holds its socket, within each user's share of lines. */
  const logRefusals = (report: SyncReport) => {
    for (const line of refusalLog(report.refused, deps.clock.now())) log.warn(line.event, line.fields);
    for (const warning of report.warnings) log.debug('warning', { warning });
  };

  const scheduler = createScheduler((onAllowed) => exclusive(() => fullReconcile(onAllowed)));

  /** The last full scan, for a resync that nothing else asked for (mayReuseScan). */
  let lastScan: LastScan | undefined;
  /** Whether anything but the periodic resync asked for a reconcile since the last one began. */
  let scanAsked = true;
  /** Marks the next reconcile as asked for by more than the resync: it walks /proc in full. */
  const needsScan = () => {
    scanAsked = true;
  };

  /** One full reconcile (see runDaemon): probe when due, scan, change the firewall, track the holders. */
  async function fullReconcile(onAllowed: (report: SyncReport) => void): Promise<SyncReport> {
    const startedAt = deps.clock.now();
    const resyncOnly = !scanAsked;
    scanAsked = false;
    if (!probe || startedAt - probedAt >= config.resyncIntervalMs) {
      probe = await probeOrFail(engine.backend);
      probedAt = startedAt;
      if (!probe.active) log.warn('firewall-inactive', { backend: engine.backend.name });
    }
    // What this reconcile sees, so the next poll compares against it: a session that came and went
    // between two polls but was served by a shim request still counts as a change afterwards.
    const seenCounts = deps.readSocketCounts?.();
    const seen = readFingerprint(deps.readUdp, config.portRange);
    runningSeen = seen;
    const reused = mayReuseScan(lastScan, seen, resyncOnly, holders !== undefined) ? lastScan : undefined;
    let scanned: ScanResult | undefined;
    const scan = () => {
      if (reused !== undefined) return reused.result;
      scanned = engine.scan();
      return scanned;
    };
    try {
      const report = await syncOnce({ ...engine, scan }, { dryRun: false, firewall: probe, onAllowed });
      if (scanned !== undefined) lastScan = { result: scanned, fingerprint: seen, reuses: 0 };
      else if (reused !== undefined) reused.reuses += 1;
      lastFingerprint = seen;
      lastCounts = seenCounts;
      lastToken = engine.backend.changeToken?.();
      lastRunAt = startedAt;
      failures = 0;
      if (watch === undefined && !stopping) {
        watch = engine.backend.watchChanges?.((what) => reconcile(`firewall changed: ${what}`)) ?? {
          close() {},
        };
      }
      logRefusals(report);
      knownPorts = new Map();
      rememberPorts(report);
      metrics.reconciled(report, (deps.clock.now() - startedAt) / 1000, deps.clock.now());
      noteOpened(openedAt, report, wallNow());
      trackedHolders = report.sessions.length;
      holders?.track(
        report.sessions.map((allowed) => allowed.session),
        deps.clock.now(),
        report.refused,
        socketsOnPorts(seen, new Set(report.sessions.map((allowed) => allowed.session.port))),
      );
      const pace = holders?.pace();
      if (pace !== undefined && pace.locked !== watchLocked) {
        watchLocked = pace.locked;
        log.info('holder-watch', {
          everyMs: pace.statusEveryMs,
          reason: pace.locked
            ? 'ptrace_scope 2 or more: no user can attach to or take a socket from a mosh-server'
            : 'users can attach to their own processes',
        });
      }
      log.debug('reconciled', {
        sessions: report.sessions.length,
        ms: Math.round(deps.clock.now() - startedAt),
        ...(reused === undefined ? {} : { scan: 'reused' }),
      });
      return report;
    } catch (error) {
      probe = undefined;
      lastScan = undefined;
      metrics.reconcileFailed((deps.clock.now() - startedAt) / 1000);
      throw error;
    } finally {
      runningSeen = undefined;
    }
  }

  /** The quick opens' pending follow-up timers (cleared on stop). */
  const followUps = new Set<Timer>();
  /**
   * The shim's quick path (engine openPortQuickly): its one port checked and opened, no full scan; a
   * full reconcile follows QUICK_FOLLOW_UP_MS later. Undefined when the full path must answer (no probe
   * yet, a cap, a refusal or no session on the port: the full path looks again, with its retries).
   */
  const openQuickly = async (port: number): Promise<SyncReport | undefined> => {
    const firewall = probe;
    if (firewall === undefined || fingerprintHasPort(runningSeen, port)) return undefined;
    try {
      const report = await exclusive(() =>
        openPortQuickly(engine, port, {
          firewall,
          knownPorts: (uid) => knownPorts.get(uid) ?? new Set(),
          now: deps.clock.now,
        }),
      );
      if (report?.timings !== undefined) log.debug('quick-open', { port, ...report.timings });
      if (report === undefined || !report.sessions.some(({ session }) => session.port === port))
        return undefined;
      rememberPorts(report);
      metrics.quickOpened(report);
      noteAdded(openedAt, report, wallNow());
      // The poll would see the new socket and reconcile in full right away, in the middle of the
      // client's connect: the follow-up below does it once the connect is through.
      lastCounts = deps.readSocketCounts?.();
      lastFingerprint = readFingerprint(deps.readUdp, config.portRange);
      return report;
    } catch (error) {
      log.debug('quick-open-failed', { port, error: describeError(error) });
      return undefined;
    } finally {
      if (!stopping) {
        const followUp = deps.clock.setTimeout(() => {
          followUps.delete(followUp);
          reconcile(`full check after the shim's request for port ${port}`);
        }, QUICK_FOLLOW_UP_MS);
        followUps.add(followUp);
      }
    }
  };

  let fatal: unknown;
  let stop: (code: number) => void = () => {};
  const stopped = new Promise<number>((resolve) => {
    stop = resolve;
  });

  /**
   * Queues a reconcile; a failure is logged, retried with backoff, or ends the daemon if fatal. None
   * once stopping: on_stop = "flush" must be the last change (a late one would put a live rule back).
   */
  const reconcile = (reason: string) => {
    if (stopping) return;
    if (reason !== PERIODIC_RESYNC) needsScan();
    log.debug('reconcile', { reason });
    scheduler.request().catch((error: unknown) => {
      failures++;
      lastFingerprint = undefined;
      retryAt = deps.clock.now() + Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(failures, 10));
      log.error('reconcile-failed', {
        error: describeError(error),
        retryInMs: Math.round(retryAt - deps.clock.now()),
      });
      if (isFatal(error) && !stopping) {
        fatal = error;
        void shutdown('fatal');
      }
    });
  };

  /** The cheap check run every poll interval: only a change (or the resync timer) costs a reconcile. */
  const tick = () => {
    if (stopping || deps.clock.now() < retryAt) return;
    const counts = deps.readSocketCounts?.();
    pollsSinceFull += 1;
    const full =
      counts === undefined ||
      counts !== lastCounts ||
      lastFingerprint === undefined ||
      pollsSinceFull >= (deps.fullPollEvery ?? FULL_POLL_EVERY);
    if (full) {
      lastCounts = counts;
      pollsSinceFull = 0;
    }
    const fingerprint = full ? readFingerprint(deps.readUdp, config.portRange) : lastFingerprint;
    const token = engine.backend.changeToken?.();
    if (fingerprint !== lastFingerprint) {
      lastFingerprint = fingerprint;
      reconcile('sockets changed');
    } else if (token !== lastToken) {
      lastToken = token;
      reconcile('firewall rules changed');
    } else if (deps.clock.now() - lastRunAt >= config.resyncIntervalMs) {
      lastRunAt = deps.clock.now();
      reconcile(PERIODIC_RESYNC);
    } else {
      const changed = holders?.check(deps.clock.now());
      if (changed !== undefined) {
        log.info('holder-changed', { reason: changed });
        holders?.track([], deps.clock.now());
        reconcile(changed);
      }
    }
  };

  const handle = async (line: string): Promise<DaemonResponse> => {
    const arrived = deps.clock.now();
    const response = await answer(line);
    metrics.requestAnswered(response, (deps.clock.now() - arrived) / 1000);
    return response;
  };

  /** The report of a full reconcile that serves a shim request for `port` (with retries after a refusal). */
  const servedInFull = async (port: number): Promise<SyncReport> => {
    // A reconcile that began with this port's socket already bound serves the request as well as a new one.
    needsScan();
    let report = await scheduler.request(() => fingerprintHasPort(runningSeen, port));
    // A refusal may come from a process that held the socket for a moment only (the utempter helper
    // mosh-server runs inherits it; the parent ending after its fork): look again, shortly after.
    for (let retry = 0; retry < REFUSAL_RETRIES && refusesPort(report, port) && !stopping; retry++) {
      await new Promise<void>((resolve) => deps.clock.setTimeout(resolve, REFUSAL_RETRY_MS));
      if (stopping) break;
      needsScan();
      report = await scheduler.request(() => false);
    }
    return report;
  };

  /** The reply to one shim request line. */
  const answer = async (line: string): Promise<DaemonResponse> => {
    const request = parseRequest(line, config.portRange);
    if ('error' in request) {
      log.warn('bad-request', { error: request.error });
      return { ok: false, error: request.error };
    }
    if (request.op === 'ping') return { ok: true, op: 'ping', version: deps.version };
    if (request.op === 'opened') return { ok: true, op: 'opened', opened: [...openedAt.values()] };
    if (stopping) return { ok: false, port: request.port, error: 'the daemon is stopping' };
    let response: DaemonResponse;
    try {
      response = portOutcome(
        (await openQuickly(request.port)) ?? (await servedInFull(request.port)),
        request.port,
      );
    } catch (error) {
      response = { ok: false, port: request.port, error: `reconcile failed: ${describeError(error)}` };
    }
    if (response.ok)
      log.info('request-served', {
        port: request.port,
        state: 'state' in response ? response.state : undefined,
      });
    else log.warn('request-refused', { port: request.port, error: response.error });
    return response;
  };

  let server: { close(): void } | undefined;
  let timer: Timer | undefined;

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal, onStop: config.onStop });
    deps.clock.clear(timer);
    for (const followUp of followUps) deps.clock.clear(followUp);
    watch?.close();
    server?.close();
    await metricsServer?.close();
    // The reconciles and quick opens already going end first; none starts after (reconcile, answer).
    await scheduler.idle();
    await exclusive(async () => {});
    let code = fatal === undefined ? 0 : 1;
    if (fatal instanceof MoshwallError && fatal.code === 'ENOFIREWALL') code = 4;
    if (config.onStop === 'flush' && fatal === undefined) {
      try {
        const removed = await flushOurs(engine);
        log.info('flushed', { rules: removed.flatMap((change) => change.specs).length });
      } catch (error) {
        log.error('flush-failed', { error: describeError(error) });
        code = 1;
      }
    }
    log.info('stopped', { code });
    stop(code);
  };

  deps.onSignal('SIGTERM', () => void shutdown('SIGTERM'));
  deps.onSignal('SIGINT', () => void shutdown('SIGINT'));
  deps.onSignal('SIGHUP', () => {
    try {
      const next = deps.reloadConfig();
      if (next.socketPath !== config.socketPath) {
        log.warn('reload-partial', { reason: 'socket_path changes take effect at the next restart' });
      }
      if (
        JSON.stringify(next.metricsListen) !== JSON.stringify(config.metricsListen) ||
        next.metricsUserLabel !== config.metricsUserLabel
      ) {
        log.warn('reload-partial', {
          reason: 'metrics_listen and metrics_user_label changes take effect at the next restart',
        });
      }
      config = {
        ...next,
        socketPath: config.socketPath,
        metricsUserLabel: config.metricsUserLabel,
        ...(config.metricsListen === undefined ? {} : { metricsListen: config.metricsListen }),
      };
      if (config.metricsListen === undefined) delete config.metricsListen;
      engine = deps.makeEngine(config, metrics);
      holders = watchFor(config);
      lastScan = undefined;
      watch?.close();
      watch = undefined;
      probe = undefined;
      log.info('reloaded', { source: config.source });
      reconcile('config reloaded');
    } catch (error) {
      log.error('reload-failed', { error: describeError(error), keeping: config.source });
    }
  });

  log.info('starting', {
    backend: engine.backend.name,
    socket: config.socketPath,
    pollMs: config.pollIntervalMs,
  });
  server = await deps.startServer(config.socketPath, handle);
  if (config.metricsListen !== undefined && deps.startMetrics !== undefined) {
    try {
      const started = await deps.startMetrics(config.metricsListen, () => metrics.render());
      metricsServer = started;
      log.info('metrics-listening', { host: started.address.host, port: started.address.port });
    } catch (error) {
      log.error('metrics-failed', { error: describeError(error) });
    }
  }
  tick();
  timer = deps.clock.setInterval(tick, config.pollIntervalMs);
  return stopped;
}
