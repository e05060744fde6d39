// The only place the e2e lab spawns processes: argv arrays, no shell, a timeout on every call.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';

/** What a finished command left behind; a death by signal N reads as exit code 128 + N, like a shell. */
export interface Result {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  /** The whole environment of the child (nothing is inherited from this process). */
  env?: Record<string, string>;
  input?: string;
  /**
   * For lab infrastructure (holder, sshd): send stdout and stderr to this file, take no input, and do not
   * keep this process alive, so a test that forgets destroy() still ends and the exit safety net runs.
   */
  logFile?: string;
}

/** A long-running child: its pid, its output so far, and its end. */
export interface Started {
  pid: number;
  argv: string[];
  output(): { stdout: string; stderr: string };
  /** Resolves when the child has exited and been reaped (never rejects). */
  done: Promise<Result>;
  child: ChildProcess;
}

export const DEFAULT_TIMEOUT_MS = 20_000;
export const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const BASE_ENV: Record<string, string> = { PATH: BASE_PATH, LANG: 'C' };

/** Output kept per stream; more than this is a runaway, and the oldest bytes are dropped. */
const MAX_KEPT = 1024 * 1024;

/** An error from the lab, with the command and what it printed. */
export class LabError extends Error {
  override name = 'LabError';
}

/** The argv as one readable line for error messages (never run). */
export function showArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ');
}

/** Exit code of a child that ended by `signal`: 128 + its number, as a shell reports it. */
function signalCode(signal: NodeJS.Signals | null): number {
  return signal === null ? 1 : 128 + (constants.signals[signal] ?? 0);
}

/** Spawns argv without a shell and keeps the last MAX_KEPT bytes of each stream. */
export function start(argv: readonly string[], options: RunOptions = {}): Started {
  const [file, ...args] = argv;
  if (file === undefined) throw new LabError('Refusing to run an empty argv');
  if (options.logFile !== undefined) return startLogged(file, args, options.logFile, options.env);
  const child = spawn(file, args, {
    shell: false,
    env: options.env ?? BASE_ENV,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout = (stdout + chunk).slice(-MAX_KEPT);
  });
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-MAX_KEPT);
  });
  child.stdin.on('error', () => {
    // The child may exit without reading its input; its exit code tells the story.
  });
  child.stdin.end(options.input ?? '');
  const done = new Promise<Result>((resolve) => {
    child.on('error', (error) => resolve({ exitCode: 127, stdout, stderr: `${stderr}${error.message}\n` }));
    child.on('close', (code, signal) => resolve({ exitCode: code ?? signalCode(signal), stdout, stderr }));
  });
  const pid = child.pid ?? -1;
  return { pid, argv: [...argv], output: () => ({ stdout, stderr }), done, child };
}

/** A child writing to `logFile`, neither holding this process open nor read through pipes. */
function startLogged(
  file: string,
  args: string[],
  logFile: string,
  env: Record<string, string> | undefined,
): Started {
  const fd = openSync(logFile, 'a', 0o644);
  let child: ChildProcess;
  try {
    child = spawn(file, args, { shell: false, env: env ?? BASE_ENV, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  child.unref();
  const output = () => {
    try {
      return { stdout: '', stderr: readFileSync(logFile, 'utf8').slice(-MAX_KEPT) };
    } catch {
      return { stdout: '', stderr: '' };
    }
  };
  const done = new Promise<Result>((resolve) => {
    child.on('error', (error) => resolve({ exitCode: 127, ...output(), stderr: error.message }));
    child.on('exit', (code, signal) => resolve({ exitCode: code ?? signalCode(signal), ...output() }));
  });
  return { pid: child.pid ?? -1, argv: [file, ...args], output, done, child };
}

/** Run options from a lab call's options: `env` as given, timeout and input only when set. */
export function passOn(
  opts: { timeoutMs?: number; input?: string },
  env: Record<string, string>,
): RunOptions {
  return {
    env,
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    ...(opts.input === undefined ? {} : { input: opts.input }),
  };
}

/** A text file's first line, or `unreadable`. */
function firstLine(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n')[0] ?? '';
  } catch {
    return 'unreadable';
  }
}

/**
 * What the machine was doing when a command ran out of time, for the error: the child's state and
 * where it sleeps (D = waiting on the kernel, e.g. a stalled disk), the load, and CPU and I/O pressure.
 */
export function stallFacts(pid: number | undefined): string {
  const state =
    pid === undefined ? 'gone' : (/^\d+ \(.*\) (\S)/s.exec(firstLine(`/proc/${pid}/stat`))?.[1] ?? 'gone');
  const wchan = pid === undefined ? '' : firstLine(`/proc/${pid}/wchan`);
  return [
    `child state ${state}${wchan === '' || wchan === '0' ? '' : ` in ${wchan}`}`,
    `loadavg ${firstLine('/proc/loadavg')}`,
    `cpu pressure ${firstLine('/proc/pressure/cpu')}`,
    `io pressure ${firstLine('/proc/pressure/io')}`,
  ].join('; ');
}

/** Runs argv to its end under a timeout (SIGKILL, then a LabError naming the command and its output). */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<Result> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = start(argv, options);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([started.done, timedOut]);
  clearTimeout(timer);
  if (outcome !== 'timeout') return outcome;
  const facts = stallFacts(started.child.pid);
  const killedAt = performance.now();
  started.child.kill('SIGKILL');
  await started.done;
  const reapedMs = Math.round(performance.now() - killedAt);
  const { stdout, stderr } = started.output();
  throw new LabError(
    `${showArgv(argv)} did not finish within ${timeoutMs} ms (${facts}; reaped ${reapedMs} ms after SIGKILL)\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`,
  );
}

/** Runs argv and throws a LabError with its output unless it exits 0. */
export async function runOk(argv: readonly string[], options: RunOptions = {}): Promise<Result> {
  const result = await run(argv, options);
  if (result.exitCode !== 0) {
    throw new LabError(
      `${showArgv(argv)} exited ${result.exitCode}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-2000)}`,
    );
  }
  return result;
}

/** Synchronous run for the exit-time safety net, where no promise will ever settle. */
export function runSync(argv: readonly string[], timeoutMs = 5000): Result {
  const [file, ...args] = argv;
  if (file === undefined) throw new LabError('Refusing to run an empty argv');
  const result = spawnSync(file, args, { shell: false, env: BASE_ENV, timeout: timeoutMs, encoding: 'utf8' });
  if (result.error) return { exitCode: 127, stdout: result.stdout ?? '', stderr: result.error.message };
  return {
    exitCode: result.status ?? signalCode(result.signal),
    stdout: result.stdout,
    stderr: result.stderr,
  };
}
