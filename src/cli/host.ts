import { closeSync, existsSync, fstatSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { constants, release, setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { createBackend } from '../backends/select.ts';
import { systemClock } from '../clock.ts';
import { type Config, DEFAULT_CONFIG, loadConfig } from '../config.ts';
import { createFlowCleaner } from '../conntrack.ts';
import type { DaemonDeps } from '../daemon/daemon.ts';
import type { DaemonMetrics } from '../daemon/metrics.ts';
import type { OpenedPort } from '../daemon/protocol.ts';
import { startSocketServer } from '../daemon/server.ts';
import { rootOnlyPathProblem } from '../discovery/genuine.ts';
import {
  hostHasIpv6,
  ioUringDisabled,
  readGroups,
  readPtraceScope,
  readSocketCounts,
  readUdp,
} from '../discovery/host-reads.ts';
import { createProcessMemory } from '../discovery/memory.ts';
import { createHostProcReader, type ProcReader } from '../discovery/proc-reader.ts';
import { scanSessions } from '../discovery/scan.ts';
import { holdersOf } from '../discovery/sockets.ts';
import { parseV6Only } from '../discovery/ss.ts';
import type { DoctorFacts } from '../doctor.ts';
import type { EngineDeps } from '../engine.ts';
import { flushOurs } from '../engine.ts';
import { describeError } from '../errors.ts';
import {
  flockDescriptor,
  runCommand,
  runCommandSync,
  spawnDetached,
  spawnPipedStdout,
  watchLines,
} from '../exec.ts';
import { limitOptions, parseLimits, watchUntilDeadline } from '../hook.ts';
import { readDeadline, writeDeadline } from '../hook-deadline.ts';
import { applySteps, pathState } from '../install/apply.ts';
import { modeIfAny, readTextIfAny } from '../install/host-files.ts';
import type { Manifest } from '../install/plan.ts';
import {
  describeHolders,
  ensureLockDirectory,
  findLockHolders,
  holdLock,
  openLockFile,
} from '../lockfile.ts';
import type { Logger } from '../log.ts';
import { probeMetrics } from '../metrics/probe.ts';
import { startMetricsServer } from '../metrics/server.ts';
import type { UninspectedProcess } from '../model.ts';
import { PTRACE_SCOPE_PATH } from '../ptrace.ts';
import { askDaemon } from '../shim/daemon-client.ts';
import { runShim } from '../shim/shim.ts';
import type { HostActions, StatusEdges } from './command.ts';
import { createHostPeerIdentity, hostHolderEdges } from './host-daemon.ts';
import { type HostEdges, type ShimInvocation, VERSION } from './run.ts';
import { ensureRuntimeDirectory } from './runtime-dir.ts';

/** The engine's real edges: /proc, the ufw command, the flock lock. */
function engine(config: Config, log: Logger, metrics?: DaemonMetrics): EngineDeps {
  const reader = createHostProcReader();
  // Genuine verdicts kept across this engine's scans (a daemon's many reconciles; see memory.ts).
  const memory = createProcessMemory();
  const scanOptions = {
    range: config.portRange,
    serverNames: config.moshServerNames,
    allowForeignNamespaces: config.allowForeignNamespaces,
    memory,
    v6Only: () => parseV6Only(runCommandSync(['ss', '-Hluna', '-e'], config.commandTimeoutMs)),
  };
  return {
    config,
    log,
    backend: createBackend(
      config,
      metrics ? metrics.timedRunner(runCommand, () => performance.now()) : runCommand,
      watchLines,
      { kernelRelease: release() },
    ),
    flows: createFlowCleaner(runCommand, config.commandTimeoutMs),
    scan: () => scanSessions(reader, scanOptions),
    scanPort: (port) => scanSessions(reader, { ...scanOptions, port }),
    groups: () => readGroups(reader),
    lock: (path, timeoutMs) => {
      sharedSocketDirectory(config, path);
      return holdLock(path, timeoutMs);
    },
    lockHolder: (path) => describeHolders(findLockHolders(path)),
    readPtraceScope: () => readPtraceScope(reader),
  };
}

/**
 * A lock_file configured beside the socket (the old default /run/moshwall/lock): that directory is
 * made 0755 for the socket's sake first, so creating the lock's directory never makes it 0700.
 */
function sharedSocketDirectory(config: Config, lockFile: string): void {
  if (dirname(lockFile) === dirname(config.socketPath)) ensureRuntimeDirectory(lockFile);
}

/** The path with every symlink resolved, or the path itself when it cannot be (the check then says why). */
function resolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** What doctor judges, read from this host; a failure to list rules becomes a finding, not a crash. */
async function doctorFacts(config: Config, log: Logger, isRoot: boolean): Promise<DoctorFacts> {
  const deps = engine(config, log);
  const reader = createHostProcReader();
  const probe = await deps.backend.probe().catch((error: unknown) => ({
    installed: false,
    active: false,
    ipv6: false,
    detail: [error instanceof Error ? error.message : String(error)],
  }));
  let rules: DoctorFacts['rules'] = [];
  if (probe.installed) {
    rules = await deps.backend
      .listRules()
      .catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  }
  return {
    isRoot,
    config,
    backendName: deps.backend.name,
    probe,
    rules,
    moshServerProblem: rootOnlyPathProblem(resolved(config.moshServer), reader, 'mosh-server'),
    hostHasIpv6: hostHasIpv6(reader),
    conntrack: await deps.flows?.probe(),
    ptrace: { scope: readPtraceScope(createHostProcReader()) },
    ...(isRoot ? { uninspected: uninspectedProcesses(reader) } : {}),
    ioUringDisabled: ioUringDisabled(reader),
    ...(config.metricsListen === undefined ? {} : { metrics: await probeMetrics(config.metricsListen) }),
  };
}

/** The processes whose fds cannot be read now (a walk of every process, whatever sockets exist). */
function uninspectedProcesses(reader: ProcReader): UninspectedProcess[] | Error {
  try {
    return holdersOf(reader, new Set()).uninspected;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** The daemon's real edges: /proc/net reads, process signals, the Unix socket server. */
function daemon(config: Config, log: Logger, reloadConfig: () => Config): DaemonDeps {
  const reader = createHostProcReader();
  return {
    config,
    reloadConfig,
    log,
    makeEngine: (current, metrics) => engine(current, log, metrics),
    readUdp: () => readUdp(reader),
    readSocketCounts: () => readSocketCounts(reader),
    onSignal: (signal, handler) => process.on(signal, handler),
    startServer: async (path, handle) => {
      ensureRuntimeDirectory(path);
      return startSocketServer(path, handle, log, createHostPeerIdentity(reader, runCommand));
    },
    holderEdges: hostHolderEdges(reader),
    startMetrics: (listen, render) => startMetricsServer(listen, render),
    wallNow: () => Date.now(),
    clock: systemClock,
    version: VERSION,
  };
}

/** The config for the shim: a broken config must not break mosh, so it warns and uses the defaults. */
function shimConfig(invocation: ShimInvocation): Config {
  try {
    return loadConfig(invocation.configPath, invocation.env);
  } catch (error) {
    invocation.warn(`moshwall: ${describeError(error)}; the shim uses the defaults`);
    return DEFAULT_CONFIG;
  }
}

/** The exit code a shell would report for a child's status. */
function exitCodeOf(status: { code: number | null; signal: NodeJS.Signals | null }): number {
  if (status.code !== null) return status.code;
  return 128 + (status.signal ? (constants.signals[status.signal] ?? 0) : 0);
}

/** Runs the shim for real: the configured mosh-server, the daemon's socket, our stdout. */
async function shim(invocation: ShimInvocation): Promise<number> {
  const config = shimConfig(invocation);
  const same = (a: string, b: string) => {
    try {
      return realpathSync(a) === realpathSync(b);
    } catch {
      return false;
    }
  };
  if (same(config.moshServer, invocation.selfPath)) {
    invocation.warn(
      `moshwall: mosh_server (${config.moshServer}) is the shim itself; set it to the real mosh-server`,
    );
    return 1;
  }
  const status = await runShim({
    startServer: () => spawnPipedStdout([config.moshServer, ...invocation.args], invocation.env),
    askDaemon: (port) => askDaemon(config.socketPath, { op: 'open', port }, config.shimTimeoutMs),
    writeStdout: invocation.passThrough,
    warn: invocation.warn,
  });
  return exitCodeOf(status);
}

/** Debian's perl (perl-base, Essential): the installed shim runs under it where it exists. */
const PERL = '/usr/bin/perl';

/** The login-hook watcher's own lock, beside moshwall's lock (one watcher at most). */
function hookLockFile(config: Config): string {
  return join(dirname(config.lockFile), 'hook.lock');
}

const host: HostActions = {
  installFacts: (layout, selfPath) => ({
    layout,
    selfPath: realpathSync(selfPath),
    nodePath: realpathSync(process.execPath),
    nodeProblem: rootOnlyPathProblem(realpathSync(process.execPath), createHostProcReader(), 'node'),
    state: pathState,
    systemdRunning: existsSync('/run/systemd/system'),
    perl: existsSync(PERL) ? PERL : undefined,
    yama: existsSync(PTRACE_SCOPE_PATH),
    readText: readTextIfAny,
    modeOf: modeIfAny,
  }),
  applySteps: (steps, config, log, say) =>
    applySteps(steps, {
      runner: runCommand,
      timeoutMs: config.commandTimeoutMs,
      flush: async () => (await flushOurs(engine(config, log))).flatMap((change) => change.specs).length,
      say,
    }),
  readManifest: (layout) => {
    try {
      return JSON.parse(readFileSync(layout.manifest, 'utf8')) as Manifest;
    } catch {
      return undefined;
    }
  },
  startHook: async (config, selfPath, configPath) => {
    sharedSocketDirectory(config, config.lockFile);
    ensureLockDirectory(config.lockFile);
    // The deadline first, then the lock: a watcher that is ending re-reads the deadline after letting go.
    writeDeadline(config.lockFile, Math.max(readDeadline(config.lockFile), Date.now() + config.hookWatchMs));
    const fd = openLockFile(hookLockFile(config));
    try {
      // Taken without waiting: when a watcher holds it, that one sees the new deadline; none is started.
      if (!(await flockDescriptor(fd, 0))) return;
      // The watcher runs at nice 0 (forked from this thread), whatever the login's nice was.
      resetNice();
      const configArgs = configPath === undefined ? [] : ['--config', configPath];
      spawnDetached([process.execPath, selfPath, ...configArgs, 'hook', '--watch', '--holding-lock'], fd);
    } finally {
      closeSync(fd);
    }
  },
  watchHook: async (config, log, holdingLock) => {
    resetNice();
    await raiseOwnLimits(log);
    const reader = createHostProcReader();
    const lockFile = hookLockFile(config);
    let fd = holdingLock ? inheritedLock(lockFile) : undefined;
    let runs = 0;
    // Keep watching while a hook has extended the deadline; exit when another watcher holds the lock.
    for (;;) {
      if (fd === undefined) {
        if (Date.now() > readDeadline(config.lockFile)) return runs;
        const candidate = openLockFile(lockFile);
        if (!(await flockDescriptor(candidate, 0))) {
          closeSync(candidate);
          return runs;
        }
        fd = candidate;
      }
      try {
        runs += await watchUntilDeadline({
          config,
          engine: engine(config, log),
          readUdp: () => readUdp(reader),
          readDeadline: () => readDeadline(config.lockFile),
          now: () => Date.now(),
          sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        });
      } finally {
        closeSync(fd);
        fd = undefined;
      }
    }
  },
};

/**
 * Raises this process's limits to at least WATCHER_LIMITS through prlimit, so a user's `ulimit` (CPU
 * seconds, address space, open files, file size) in the login that ran `sudo moshwall hook` cannot kill
 * or starve the root watcher. Without CAP_SYS_RESOURCE a lowered hard limit stays; the rest still apply.
 */
async function raiseOwnLimits(log: Logger): Promise<void> {
  const prlimit = (options: string[]) =>
    runCommand(['prlimit', `--pid=${process.pid}`, ...options], { timeoutMs: 5000 });
  try {
    const current = parseLimits(createHostProcReader().readText('/proc/self/limits'));
    const wanted = limitOptions(current, true);
    if (wanted.length === 0 || (await prlimit(wanted)).exitCode === 0) return;
    const possible = limitOptions(current, false);
    if (possible.length > 0) await prlimit(possible);
    log.warn('watcher-limits', { reason: 'a hard limit below what the watcher needs could not be raised' });
  } catch (error) {
    log.warn('watcher-limits', { error: describeError(error) });
  }
}

/** Sets this thread's nice value back to 0 (root may lower it); left as it is where that is not allowed. */
function resetNice(): void {
  try {
    setPriority(0);
  } catch {
    // Without CAP_SYS_NICE (a container): the watcher still works, only at the user's priority.
  }
}

/** The descriptor 3 a hook passed down when it is an open `hook.lock` (then we hold its lock), else undefined. */
function inheritedLock(lockFile: string): number | undefined {
  try {
    const passed = fstatSync(3);
    const expected = statSync(lockFile);
    return passed.ino === expected.ino && passed.dev === expected.dev ? 3 : undefined;
  } catch {
    return undefined;
  }
}

/** Why moshwall's running file, the node running it, or its config could be changed by a user other than root (like sshd's StrictModes). */
function unsafeFiles(selfPath: string, config: Config): string | undefined {
  const reader = createHostProcReader();
  let self: string;
  try {
    self = realpathSync(selfPath);
  } catch {
    return `cannot resolve ${selfPath}`;
  }
  const problem = rootOnlyPathProblem(self, reader, 'moshwall');
  if (problem) return problem;
  // The interpreter running us as root is as much our code as the bundle is.
  const node = rootOnlyPathProblem(resolved(process.execPath), reader, 'node');
  if (node) return node;
  if (config.source === '(defaults)') return undefined;
  try {
    return rootOnlyPathProblem(realpathSync(config.source), reader, 'config file');
  } catch {
    return `cannot resolve ${config.source}`;
  }
}

/** The daemon's list of ports it opened (1 s at most; a 1 MiB answer), or undefined when none answers. */
async function openedPorts(config: Config): Promise<OpenedPort[] | undefined> {
  try {
    const answer = await askDaemon(config.socketPath, { op: 'opened' }, 1000, 1024 * 1024);
    return answer.ok && answer.op === 'opened' ? answer.opened : undefined;
  } catch {
    return undefined;
  }
}

/** status's real edges: the daemon's socket, Date.now, ref'd timers, SIGINT/SIGTERM, the terminal. */
const status: StatusEdges = {
  openedPorts,
  wallNow: () => Date.now(),
  clock: {
    ...systemClock,
    // --watch's only pending work is its timer: it must keep the process alive.
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
  },
  onInterrupt: (handler) => {
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  },
  isTerminal: process.stdout.isTTY === true,
  clearScreen: () => process.stdout.write('\x1b[H\x1b[2J'),
};

export const hostEdges: HostEdges = { engine, doctorFacts, daemon, shim, host, unsafeFiles, status };
