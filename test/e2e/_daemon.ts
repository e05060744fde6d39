// `moshwall daemon` in the lab for the daemon-*.test.ts files, the demo and the bench: start it with a
// config of its own, watch its log lines (each stamped with performance.now() as it arrives), signal it by
// its pid, install the mosh-server shim, and talk to its socket as root or as a lab user.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError, type Result } from './_exec.ts';
import { waitUntil } from './_poll.ts';
import { isGone, signalPid } from './_procfs.ts';
import type { Lab, ServerProcess } from './lab.ts';

/** One line the daemon wrote to stderr, and when this process read it (performance.now()). */
export interface LogLine {
  at: number;
  text: string;
}

export interface Daemon {
  /** Host pid of the daemon (node) itself. */
  pid: number;
  /** Its config file as the server host sees it (SERVER_CONFIG). */
  configPath: string;
  /** Replaces the text of its config file (then SIGHUP reloads it). */
  rewriteConfig(toml: string): void;
  process: ServerProcess;
  /** Every log line so far. */
  lines(): LogLine[];
  /** The log so far as one text (for assertion messages). */
  log(): string;
  /**
   * Waits for a log line matching `pattern`, among the lines from index `from` on (default 0); throws a
   * LabError with the log after `timeoutMs`.
   */
  waitForLine(pattern: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<LogLine>;
  /** Sends a signal to the daemon (by its pid, if it still runs). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal` (default SIGTERM) and resolves with how the daemon ended. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Result>;
  /** Whether the daemon process still runs. */
  running(): boolean;
}

export interface DaemonOptions {
  /**
   * Log debug lines too (default true: waits and timelines need "reconciled"). Without, the daemon counts
   * as ready once it answers ping (its first reconcile may still be running).
   */
  verbose?: boolean;
  /** How long to wait for the first reconcile (default 15 s). */
  readyTimeoutMs?: number;
}

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SOCKET_CLIENT = fileURLToPath(new URL('./fixtures/socket-client.mjs', import.meta.url));
export const SHIM_PATH = '/usr/local/bin/mosh-server';
export const DEFAULT_SOCKET = '/run/moshwall/moshwall.sock';

/**
 * Where the daemon's config lives: moshwall's default path, in the server host's own /etc (an overlay
 * of the lab), root-owned all the way up as moshwall demands of a config it runs as root with. The
 * shim, run by the lab users, reads the same file, as it would on a real host.
 */
export const SERVER_CONFIG = '/etc/moshwall/moshwall.toml';
const CLI = join(REPO, 'dist', 'moshwall.js');

/** Writes `toml` to SERVER_CONFIG in the server host (mode 0644, in a 0755 root directory). */
export function writeServerConfig(lab: Lab, toml: string): void {
  if (!existsSync(CLI)) throw new LabError(`${CLI} is missing: run \`npm run build\` first`);
  const directory = lab.serverPath(dirname(SERVER_CONFIG));
  mkdirSync(directory, { recursive: true, mode: 0o755 });
  chmodSync(directory, 0o755);
  writeFileSync(lab.serverPath(SERVER_CONFIG), toml, { mode: 0o644 });
}

/** argv of the built CLI with SERVER_CONFIG, to run as root in the server host. */
export function moshwallArgv(args: string[]): string[] {
  return [process.execPath, CLI, '--config', SERVER_CONFIG, ...args];
}

/** Runs the built CLI as root in the server host with SERVER_CONFIG (written by startDaemon or writeServerConfig). */
export function moshwall(lab: Lab, args: string[]): Promise<Result> {
  return lab.runServer(moshwallArgv(args));
}

/**
 * Starts `moshwall [--verbose] daemon` as root in the server host with `toml` as its config, and waits
 * until its first reconcile (which sweeps stale rules) has finished. Throws with its log if it ends first.
 */
export async function startDaemon(lab: Lab, toml: string, options: DaemonOptions = {}): Promise<Daemon> {
  writeServerConfig(lab, toml);
  const started = await lab.startServer(
    moshwallArgv([...(options.verbose === false ? [] : ['--verbose']), 'daemon']),
  );
  if (started.pid <= 0) {
    const ended = await started.done;
    throw new LabError(`moshwall daemon ended at once (exit ${ended.exitCode}): ${ended.stderr}`);
  }
  const lines: LogLine[] = [];
  let partial = '';
  const take = (text: string) => {
    const at = performance.now();
    partial += text;
    let newline = partial.indexOf('\n');
    while (newline >= 0) {
      lines.push({ at, text: partial.slice(0, newline) });
      partial = partial.slice(newline + 1);
      newline = partial.indexOf('\n');
    }
  };
  // What arrived before this listener (nothing async ran in between, so no chunk is lost or seen twice).
  take(started.output().stderr);
  started.child.stderr?.on('data', (chunk: string) => take(chunk));
  let exited = false;
  void started.done.then(() => {
    exited = true;
  });

  const daemon: Daemon = {
    pid: started.pid,
    configPath: SERVER_CONFIG,
    rewriteConfig: (text) => writeServerConfig(lab, text),
    process: started,
    lines: () => [...lines],
    log: () => lines.map((line) => line.text).join('\n'),

    async waitForLine(pattern, opts = {}) {
      const from = opts.from ?? 0;
      let found: LogLine | undefined;
      const seen = await waitUntil(
        () => {
          found = lines.slice(from).find((line) => pattern.test(line.text));
          return found !== undefined || exited;
        },
        opts.timeoutMs ?? 10_000,
        5,
      );
      found ??= lines.slice(from).find((line) => pattern.test(line.text));
      if (seen && found) return found;
      throw new LabError(
        `moshwall daemon${exited ? ' (ended)' : ''} logged no line matching ${pattern}:\n${daemon.log()}`,
      );
    },

    signal(signal) {
      if (!exited && !isGone(started.pid)) signalPid(started.pid, signal);
    },

    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      daemon.signal(signal);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), timeoutMs);
      });
      const outcome = await Promise.race([started.done, late]);
      clearTimeout(timer);
      if (outcome === 'late') {
        signalPid(started.pid, 'SIGKILL');
        await started.done;
        throw new LabError(
          `moshwall daemon did not stop within ${timeoutMs} ms of ${signal}:\n${daemon.log()}`,
        );
      }
      return outcome;
    },

    running: () => !exited && !isGone(started.pid),
  };
  const readyMs = options.readyTimeoutMs ?? 15_000;
  if (options.verbose === false) {
    // Without debug lines: "starting" is logged just before the socket listens; then ping must answer.
    await daemon.waitForLine(/^info starting /, { timeoutMs: readyMs });
    const answers = async () =>
      (await exchange(lab, '{"op":"ping"}\n', { timeoutMs: 1000 })).replies.length > 0;
    if (!(await waitUntil(answers, readyMs, 50)))
      throw new LabError(`moshwall daemon does not answer ping:\n${daemon.log()}`);
  } else {
    await daemon.waitForLine(/^debug reconciled /, { timeoutMs: readyMs });
  }
  return daemon;
}

/** Installs the shim in the server host as /usr/local/bin/mosh-server (sshd finds it first): perl by default. */
export async function installShim(lab: Lab, kind: 'perl' | 'node' = 'perl'): Promise<void> {
  // What `moshwall install` links where perl is (the perl shim), or the bundle itself (Node).
  const target =
    kind === 'perl' ? join(REPO, 'src', 'shim', 'mosh-server.pl') : join(REPO, 'dist', 'moshwall.js');
  const result = await lab.runServer(['ln', '-sf', target, SHIM_PATH]);
  if (result.exitCode !== 0) throw new LabError(`Cannot install the shim: ${result.stderr}`);
}

/** Removes the shim from the server host again (mosh then runs /usr/bin/mosh-server directly). */
export async function removeShim(lab: Lab): Promise<void> {
  const result = await lab.runServer(['rm', '-f', SHIM_PATH]);
  if (result.exitCode !== 0) throw new LabError(`Cannot remove the shim: ${result.stderr}`);
}

/** What one connection to the daemon's socket got back. */
export interface Exchange {
  connected: boolean;
  /** Reply lines, as text. */
  replies: string[];
  closedByServer: boolean;
  error?: string;
}

export interface ExchangeOptions {
  /** A lab user to connect as (default root). */
  user?: string;
  /** Reply lines to wait for (default 1). */
  replies?: number;
  timeoutMs?: number;
  socketPath?: string;
}

/** Connects to the daemon's socket in the server host, sends `payload` as is, and collects the replies. */
export async function exchange(
  lab: Lab,
  payload: string | Buffer,
  opts: ExchangeOptions = {},
): Promise<Exchange> {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const argv = [
    process.execPath,
    SOCKET_CLIENT,
    opts.socketPath ?? DEFAULT_SOCKET,
    bytes.toString('base64'),
    String(opts.replies ?? 1),
    String(timeoutMs),
  ];
  const result = await lab.runServer(argv, {
    timeoutMs: timeoutMs + 10_000,
    ...(opts.user === undefined ? {} : { user: opts.user }),
  });
  if (result.exitCode !== 0) {
    throw new LabError(`socket client exited ${result.exitCode}: ${result.stderr}${result.stdout}`);
  }
  return JSON.parse(result.stdout) as Exchange;
}

/** The parsed replies of an exchange (a line that is not JSON fails the parse, as it should). */
export function replyObjects(outcome: Exchange): Array<Record<string, unknown>> {
  return outcome.replies.map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** True when `reply` answers a ping: ok, op "ping" and a version (whatever the build says it is). */
export function isPong(reply: Record<string, unknown>): boolean {
  return reply.ok === true && reply.op === 'ping' && /^\d+\.\d+\.\d+/.test(String(reply.version));
}

/** `{"op":"ping"}` over the socket; resolves with the one reply, parsed. */
export async function ping(lab: Lab, user?: string): Promise<Record<string, unknown>> {
  const outcome = await exchange(lab, '{"op":"ping"}\n', user === undefined ? {} : { user });
  const [reply] = replyObjects(outcome);
  if (!reply) throw new LabError(`No answer to ping: ${JSON.stringify(outcome)}`);
  return reply;
}

/** A file's cleanup: ends the server-host processes it started (by pid), then its daemon, if any. */
export async function endStarted(
  lab: Lab,
  pids: readonly number[],
  daemon: Daemon | undefined,
): Promise<void> {
  for (const pid of pids) await lab.killServerProcess(pid).catch(() => undefined);
  await daemon?.stop().catch(() => undefined);
}
