import { spawn, spawnSync } from 'node:child_process';
import { ExecError } from './errors.ts';

/** What a finished child process left behind. */
export interface ExecResult {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface ExecOptions {
  /** Kill the child (SIGKILL) after this long; always set, there is no "forever". */
  timeoutMs: number;
  /** Extra environment on top of a minimal, fixed one (PATH, LANG=C, LC_ALL=C). */
  env?: Record<string, string>;
  input?: string;
}

/** Runs argv[0] with argv[1..] (no shell); resolves with the result whatever the exit code. */
export type Runner = (argv: string[], options: ExecOptions) => Promise<ExecResult>;

const FIXED_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C',
  LC_ALL: 'C',
};

/** Largest output kept from one child; more is a sign of something wrong, not data we need. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/**
 * Runs argv to the end synchronously, like runCommand (no shell, LANG=C, SIGKILL after timeoutMs), for
 * the rare read a synchronous /proc scan needs (`ss` for IPV6_V6ONLY). Throws ExecError when it cannot
 * start, is killed, or exits non-zero.
 */
export function runCommandSync(argv: string[], timeoutMs: number): string {
  const [file, ...args] = argv;
  if (file === undefined) throw new ExecError('Refusing to run an empty command', {});
  const result = spawnSync(file, args, {
    shell: false,
    env: FIXED_ENV,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: MAX_OUTPUT_BYTES,
    encoding: 'utf8',
  });
  if (result.error !== undefined || result.status !== 0) {
    const why = result.error?.message ?? `exit ${result.status ?? result.signal}: ${result.stderr.trim()}`;
    throw new ExecError(`${argv.join(' ')} failed (${why})`, { argv: argv.join(' ') }, result.error);
  }
  return result.stdout;
}

/** The Runner of the real machine: spawns without a shell, under a timeout, LANG=C. */
export const runCommand: Runner = (argv, options) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      reject(new ExecError('Refusing to run an empty command', {}));
      return;
    }
    const startedAt = performance.now();
    const child = spawn(file, args, {
      shell: false,
      env: { ...FIXED_ENV, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes > MAX_OUTPUT_BYTES) child.kill('SIGKILL');
      else into.push(chunk);
    };
    child.stdout.on('data', collect(stdout));
    child.stderr.on('data', collect(stderr));
    child.stdin.on('error', () => {
      // The child may exit before reading its input; its exit code tells the story.
    });
    child.stdin.end(options.input ?? '');
    child.on('error', (error) => {
      clearTimeout(timer);
      const message = `Could not run ${file} (is it installed, on PATH and executable?)`;
      reject(new ExecError(message, { command: argv.join(' ') }, error));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const command = argv.join(' ');
      if (timedOut) {
        reject(
          new ExecError(
            `${file} did not finish within ${options.timeoutMs} ms (killed); if it is only slow, raise command_timeout_ms`,
            { command },
          ),
        );
        return;
      }
      if (code === null) {
        reject(new ExecError(`${file} was killed by ${signal ?? 'a signal'}`, { command }));
        return;
      }
      resolve({
        argv,
        exitCode: code,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        durationMs: performance.now() - startedAt,
      });
    });
  });

/** Releases a held lock; safe to call more than once. */
export type ReleaseLock = () => Promise<void>;

/**
 * Takes an exclusive flock(2) on the open file description of `fd` through util-linux `flock`, which
 * gets it as its fd 3, locks it and exits: the lock stays with the description we still hold, so it is
 * released when we close `fd` (or die). Never waits longer than `timeoutMs` (0: not at all). Resolves
 * true when the lock is ours, false when another holder kept it that long.
 */
export function flockDescriptor(fd: number, timeoutMs: number): Promise<boolean> {
  const notAcquired = 75;
  const wait = timeoutMs <= 0 ? ['--nonblock'] : ['--wait', String(timeoutMs / 1000)];
  const argv = ['flock', '--exclusive', ...wait, '--conflict-exit-code', String(notAcquired), '3'];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] ?? 'flock', argv.slice(1), {
      shell: false,
      env: FIXED_ENV,
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    // flock keeps its own time; this only guards against a flock that never returns.
    const guard = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 10_000);
    child.on('error', (error) => {
      clearTimeout(guard);
      reject(new ExecError('Could not run flock to take the lock', { fd }, error));
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      if (code === 0) resolve(true);
      else if (code === notAcquired) resolve(false);
      else
        reject(
          new ExecError('flock failed to take the lock', {
            exitCode: code ?? -1,
            signal: signal ?? undefined,
            stderr: stderr.trim(),
          }),
        );
    });
  });
}

/** A child whose stdout we read while stdin and stderr stay the caller's own. */
export interface PipedChild {
  stdout: import('node:stream').Readable;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts argv (no shell) with our stdin and stderr passed straight through and stdout piped to us,
 * keeping the caller's environment (the shim runs the real mosh-server as the user would have).
 */
export function spawnPipedStdout(argv: string[], env: NodeJS.ProcessEnv): PipedChild {
  const [file, ...args] = argv;
  if (file === undefined) throw new ExecError('Refusing to run an empty command', {});
  const child = spawn(file, args, { shell: false, env, stdio: ['inherit', 'pipe', 'inherit'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', (error) =>
      reject(new ExecError(`Could not run ${file}`, { command: argv.join(' ') }, error)),
    );
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { stdout: child.stdout, exited };
}

/** A long-running child whose stdout lines we are told of (e.g. `nft monitor`); close() ends it. */
export interface LineWatch {
  close(): void;
}

/** Starts argv and calls onLine per stdout line, onExit once when it ends; the edge for firewall watchers. */
export type LineWatcher = (
  argv: string[],
  onLine: (line: string) => void,
  onExit: (why: string) => void,
) => LineWatch;

/** The LineWatcher of the real machine: no shell, fixed env (LANG=C), stderr discarded, SIGTERM on close. */
export const watchLines: LineWatcher = (argv, onLine, onExit) => {
  const [file, ...args] = argv;
  if (file === undefined) throw new ExecError('Refusing to run an empty command', {});
  const child = spawn(file, args, { shell: false, env: FIXED_ENV, stdio: ['ignore', 'pipe', 'ignore'] });
  let ended = false;
  const end = (why: string) => {
    if (ended) return;
    ended = true;
    onExit(why);
  };
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    if (pending.length > 64 * 1024) pending = '';
    for (const line of lines) onLine(line);
  });
  child.once('error', (error) => end(`could not run ${file}: ${error.message}`));
  child.once('exit', (code, signal) => end(`${file} exited (${signal ?? `code ${code}`})`));
  return {
    close: () => {
      ended = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
};

/**
 * Starts argv (no shell) in a new session with no stdio, and does not wait for it; `passFd`, when
 * given, becomes the child's fd 3 (e.g. a lock the child goes on holding).
 */
export function spawnDetached(argv: string[], passFd?: number): void {
  const [file, ...args] = argv;
  if (file === undefined) throw new ExecError('Refusing to run an empty command', {});
  const stdio: Array<'ignore' | number> = ['ignore', 'ignore', 'ignore'];
  if (passFd !== undefined) stdio.push(passFd);
  const child = spawn(file, args, { shell: false, env: FIXED_ENV, stdio, detached: true });
  child.on('error', () => {
    // Nothing to report to: the caller has returned; the daemon's poll or the next login catches up.
  });
  child.unref();
}
