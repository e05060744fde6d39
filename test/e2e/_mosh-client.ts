// The real mosh client in the lab: /usr/bin/mosh (perl: ssh, then mosh-client) needs a terminal, so it
// runs in a tmux server of its own, started in the client's netns, with its socket in the lab directory.
// Its screen is read with `tmux capture-pane`, keys go in with `tmux send-keys`, and close() ends that
// tmux server and the pane's process by their pids (the lab's teardown would too: they live in its netns).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_ENV, BASE_PATH, LabError, run, runOk, showArgv } from './_exec.ts';
import { labPaths } from './_files.ts';
import { pollFor, waitUntil } from './_poll.ts';
import { isGone, signalPid, startTimeOf } from './_procfs.ts';

/** What the client needs of a lab (a Lab, or a booted guest's client side): its key lives at labPaths(dir). */
export interface MoshClientLab {
  dir: string;
  server: { v4: string; v6?: string | undefined };
  runClient(
    argv: string[],
    opts?: { env?: Record<string, string>; timeoutMs?: number },
  ): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

export interface MoshClientOptions {
  /** The lab user to log in as. */
  user: string;
  /**
   * The remote command (mosh's `-- command…`); by default a line echo that prints `READY-<nonce>` first
   * and answers every line typed with `echo-reply:<line>`, until Ctrl-D.
   */
  command?: string[];
  /** The text that shows the session is up (the remote command printed it); default `READY-<nonce>`. */
  readyText?: string;
  /** The server address to reach (default the server's IPv4 address). */
  family?: 'v4' | 'v6';
}

/** A real mosh session, seen from the client's terminal. */
export interface MoshClient {
  /** A fresh random word of this session, in the default command's READY line. */
  nonce: string;
  readyText: string;
  /** performance.now() just before `mosh` was launched. */
  launchedAt: number;
  /** Host pid of the tmux server that holds the terminal (in the client's netns). */
  tmuxPid: number;
  /** The visible screen of the terminal, as text. */
  screen(): Promise<string>;
  /**
   * Polls the screen until `text` appears; resolves with performance.now() of the first screen that had
   * it. Throws a LabError with the last screen after `timeoutMs`.
   */
  waitForText(text: string | RegExp, timeoutMs: number, everyMs?: number): Promise<number>;
  /** Polls until the session is up (readyText on screen); resolves with performance.now() then. */
  waitReady(timeoutMs?: number, everyMs?: number): Promise<number>;
  /** Types text literally (no Enter). */
  type(text: string): Promise<void>;
  /** Presses keys by tmux name: "Enter", "C-d"… */
  press(...keys: string[]): Promise<void>;
  /** Types a line into the default command and waits for its `echo-reply:` from the server. */
  echo(line: string, timeoutMs?: number): Promise<void>;
  /** The UDP port mosh-client talks to (from its command line), once mosh has started it. */
  serverPort(): number | undefined;
  /**
   * Waits until the terminal's process (mosh, then mosh-client) has ended. (Its exit status is not
   * reported: tmux 3.3 here sometimes never reaps it, so "[mosh is exiting.]" on screen is the evidence.)
   */
  waitEnded(timeoutMs?: number): Promise<void>;
  /** Ends the tmux server and the pane's process, by pid; idempotent, never throws for a gone process. */
  close(): Promise<void>;
}

const TMUX_TIMEOUT_MS = 5000;
let clientCount = 0;

/** The client tools this helper needs that are not installed (in the lab's PATH), e.g. ["tmux"]. */
export function missingClientTools(): string[] {
  return ['tmux', 'mosh', 'mosh-client'].filter(
    (tool) => !BASE_PATH.split(':').some((dir) => existsSync(join(dir, tool))),
  );
}

/** One word of argv as /usr/bin/mosh's shellwords split of --ssh would keep it, or a LabError. */
function plainWord(word: string): string {
  if (!/^[\w@%+=:,./-]+$/.test(word)) {
    throw new LabError(`"${word}" cannot go into mosh's --ssh command (it splits on spaces and quotes)`);
  }
  return word;
}

/** The default remote command: READY-<nonce>, then one `echo-reply:<line>` per line, until end of input. */
export function echoCommand(nonce: string): string[] {
  return ['sh', '-c', `echo READY-${nonce}; while IFS= read -r line; do echo "echo-reply:$line"; done`];
}

/** The argv of mosh-client's process (/proc/PID/cmdline), or [] when it cannot be read. */
function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1')
      .split('\0')
      .filter((word) => word !== '');
  } catch {
    return [];
  }
}

/**
 * Launches `mosh user@server -- command` in a new tmux server in the client's netns and returns at
 * once (mosh is then connecting: see waitReady). LANG=C.UTF-8, as mosh-client needs a UTF-8 locale.
 */
export async function startMoshClient(lab: MoshClientLab, options: MoshClientOptions): Promise<MoshClient> {
  clientCount += 1;
  const nonce = randomBytes(6).toString('hex');
  const readyText = options.readyText ?? `READY-${nonce}`;
  const command = options.command ?? echoCommand(nonce);
  const socket = join(lab.dir, `tmux-${process.pid}-${clientCount}.sock`);
  const host = options.family === 'v6' ? lab.server.v6 : lab.server.v4;
  if (host === undefined) throw new LabError('A mosh client over IPv6 needs a lab made with ipv6: true');
  const ssh = [
    ...['ssh', '-F', '/dev/null', '-i', plainWord(labPaths(lab.dir).clientKey)],
    ...['-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes'],
    ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
    ...['-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5'],
  ].join(' ');
  const mosh = ['mosh', `--ssh=${ssh}`, `${options.user}@${host}`, '--', ...command];
  const tmux = (args: string[]) => ['tmux', '-S', socket, ...args];
  // One tmux invocation: a config-less server whose pane stays after mosh ends (its last screen stays
  // readable), then the session running mosh directly (argv, no shell).
  const launch = tmux([
    ...['-f', '/dev/null', 'start-server', ';', 'set-option', '-g', 'remain-on-exit', 'on', ';'],
    ...['new-session', '-d', '-s', 'mosh', '-x', '120', '-y', '40', ...mosh],
  ]);
  const launchedAt = performance.now();
  const started = await lab.runClient(launch, {
    env: { LANG: 'C.UTF-8', TERM: 'xterm-256color' },
    timeoutMs: TMUX_TIMEOUT_MS,
  });
  if (started.exitCode !== 0) {
    throw new LabError(`${showArgv(launch)} exited ${started.exitCode}: ${started.stderr}`);
  }
  /** Runs a tmux command against this server (from the host: its socket is a plain path). */
  const control = async (args: string[]) =>
    (await runOk(tmux(args), { env: { ...BASE_ENV, LANG: 'C.UTF-8' }, timeoutMs: TMUX_TIMEOUT_MS })).stdout;
  const pids = await control(['display-message', '-p', '-t', 'mosh', '#{pid} #{pane_pid}']).catch(
    async (error: unknown) => {
      await run(tmux(['kill-server']), { env: { ...BASE_ENV }, timeoutMs: TMUX_TIMEOUT_MS });
      throw error;
    },
  );
  const [tmuxPid, panePid] = pids.trim().split(' ').map(Number);
  if (!tmuxPid || !panePid) throw new LabError(`tmux on ${socket} did not report its pids: "${pids}"`);
  const identity = { tmux: startTimeOf(tmuxPid), pane: startTimeOf(panePid) };
  let closed = false;

  const client: MoshClient = {
    nonce,
    readyText,
    launchedAt,
    tmuxPid,

    async screen() {
      return control(['capture-pane', '-p', '-t', 'mosh']);
    },

    async waitForText(text, timeoutMs, everyMs = 20) {
      let last = '';
      const seenAt = await pollFor(
        async () => {
          last = await client.screen();
          const at = performance.now();
          return (typeof text === 'string' ? last.includes(text) : text.test(last)) ? at : undefined;
        },
        timeoutMs,
        everyMs,
      );
      if (seenAt !== undefined) return seenAt;
      throw new LabError(
        `"${String(text)}" did not appear in the mosh client's terminal within ${timeoutMs} ms; screen:\n${last.trimEnd()}`,
      );
    },

    waitReady(timeoutMs = 15_000, everyMs = 20) {
      return client.waitForText(readyText, timeoutMs, everyMs);
    },

    async type(text) {
      await control(['send-keys', '-t', 'mosh', '-l', text]);
    },

    async press(...keys) {
      await control(['send-keys', '-t', 'mosh', ...keys]);
    },

    async echo(line, timeoutMs = 10_000) {
      await client.type(line);
      await client.press('Enter');
      await client.waitForText(`echo-reply:${line}`, timeoutMs);
    },

    serverPort() {
      // mosh execs mosh-client in place of itself: `mosh-client -# <args> | <ip> <port>`.
      const argv = cmdlineOf(panePid);
      if (!argv[0]?.endsWith('mosh-client')) return undefined;
      const port = Number(argv.at(-1));
      return Number.isInteger(port) && port > 0 ? port : undefined;
    },

    async waitEnded(timeoutMs = 10_000) {
      const dead = async () => {
        const result = await run(tmux(['display-message', '-p', '-t', 'mosh', '#{pane_dead}']), {
          env: { ...BASE_ENV },
          timeoutMs: TMUX_TIMEOUT_MS,
        });
        return result.exitCode !== 0 || result.stdout.trim() === '1';
      };
      if (!(await waitUntil(dead, timeoutMs))) {
        const screen = await client.screen().catch(() => '');
        throw new LabError(`mosh did not end within ${timeoutMs} ms; screen:\n${screen.trimEnd()}`);
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      await run(tmux(['kill-server']), { env: { ...BASE_ENV }, timeoutMs: TMUX_TIMEOUT_MS }).catch(() => {});
      for (const [pid, startTime] of [
        [tmuxPid, identity.tmux],
        [panePid, identity.pane],
      ] as const) {
        const same = () => startTime !== undefined && startTimeOf(pid) === startTime && !isGone(pid);
        if (!(await waitUntil(() => !same(), 2000))) signalPid(pid, 'SIGKILL');
        await waitUntil(() => !same(), 2000);
      }
    },
  };
  return client;
}
