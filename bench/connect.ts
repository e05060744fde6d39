// How long a real mosh session takes to connect through the lab's default-deny UFW, with and without
// moshwall, and what the daemon costs while idle:
//   connect: interleaved runs (rotating order) of four setups, the time from launching the real `mosh`
//     client (in a terminal, tmux, on the client host) to the remote command's READY line on its screen:
//       wide open     the admin opened the whole range (`ufw allow 60000:61000/udp`), no moshwall
//       daemon+shim   `moshwall daemon` and the shim as /usr/local/bin/mosh-server
//       daemon only   `moshwall daemon` (default poll), no shim: the first packets wait for the poll
//       no moshwall   nothing opens the port: expected to time out (capped)
//   close: with the daemon, the time from killing a connected session's mosh-server to its rule being
//     gone from UFW's rules file
//   idle: the daemon's CPU (% of one core, utime+stime from /proc/PID/stat over a window) and VmRSS, with
//     no session and with 50 live mosh-servers of 10 lab users (started locally; they live 60 s unconnected)
// Prints a table and writes it to bench/results/connect.md. Needs root and `npm run build` (run it as
// `npm run bench:connect`). Options: --runs N (5), --cap-ms MS (10000), --idle-s S (10), or the
// environment variables BENCH_RUNS, BENCH_CAP_MS, BENCH_IDLE_S. Prints figures; never passes or fails on them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type Daemon, installShim, moshwall, removeShim, startDaemon } from '../test/e2e/_daemon.ts';
import { LabError, run } from '../test/e2e/_exec.ts';
import { missingClientTools, startMoshClient } from '../test/e2e/_mosh-client.ts';
import { ourRulePorts, serverPidsOnPort, watchPorts } from '../test/e2e/_observe.ts';
import { waitUntil } from '../test/e2e/_poll.ts';
import { isGone } from '../test/e2e/_procfs.ts';
import { createLab, type Lab, type MoshServer, requireRoot } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { runBench } from './_run.ts';

const MODES = ['wide open', 'daemon+shim', 'daemon only', 'no moshwall'] as const;
type Mode = (typeof MODES)[number];
// Classic UFW (one `ufw` run per change): the set-based paths, the default included, are in bench/scale.ts.
const CONFIG = 'backend = "ufw"\nport_range = "60000:61000"\nufw_fast_path = "off"\n';
const WIDE = ['60000:61000/udp'];
/** Ten lab users with five sessions each: within the default max_sessions_per_user (10). */
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
const SESSIONS = 50;
const RESULTS = fileURLToPath(new URL('./results/connect.md', import.meta.url));

interface Options {
  runs: number;
  capMs: number;
  idleS: number;
}

interface Sample {
  mode: Mode;
  /** Launch to READY on screen; undefined when it did not connect within the cap. */
  connectMs: number | undefined;
  /** Kill of mosh-server to its rule gone from user.rules (daemon setups only). */
  closeMs?: number;
}

/** A positive number from --name VALUE or the environment, else the default. */
function option(name: string, env: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const text = index >= 0 ? process.argv[index + 1] : process.env[env];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new LabError(`--${name} (or ${env}) must be a positive number, got "${text}"`);
  }
  return value;
}

/** Rules of ours in the lab's UFW, by port. */
function ourPorts(lab: Lab): Set<number> {
  const read = (file: string) => readFileSync(lab.serverPath(`/etc/ufw/${file}`), 'utf8');
  return new Set([...ourRulePorts(read('user.rules')), ...ourRulePorts(read('user6.rules'))]);
}

/** Runs an admin ufw command in the lab, or throws with its output. */
async function ufwOk(lab: Lab, args: string[]): Promise<void> {
  const result = await lab.ufw(args);
  if (result.exitCode !== 0) throw new LabError(`ufw ${args.join(' ')}: ${result.stderr}${result.stdout}`);
}

/** One connect in one setup, then the setup taken down again; the lab is as before afterwards. */
async function oneRun(lab: Lab, mode: Mode, capMs: number): Promise<Sample> {
  let daemon: Daemon | undefined;
  if (mode === 'daemon+shim') await installShim(lab);
  else await removeShim(lab);
  if (mode === 'wide open') await ufwOk(lab, ['allow', ...WIDE]);
  if (mode === 'daemon+shim' || mode === 'daemon only') daemon = await startDaemon(lab, CONFIG);
  const client = await startMoshClient(lab, { user: 'alice' });
  const sample: Sample = { mode, connectMs: undefined };
  let port: number | undefined;
  try {
    try {
      sample.connectMs = (await client.waitReady(capMs, 10)) - client.launchedAt;
    } catch (error) {
      if (!(error instanceof LabError)) throw error;
    }
    // mosh execs mosh-client once MOSH CONNECT arrived, even when no packet gets through.
    await waitUntil(() => client.serverPort() !== undefined, 5000);
    port = client.serverPort();
    if (port === undefined)
      throw new LabError(`${mode}: mosh never started mosh-client:\n${await client.screen()}`);
    if (daemon && sample.connectMs !== undefined) {
      // Close latency: kill the session's mosh-server, watch user.rules until its rule is gone.
      const servers = await serverPidsOnPort(lab, port);
      const watch = watchPorts(lab, [port, port], 1);
      const killedAt = performance.now();
      for (const pid of servers) await lab.killServerProcess(pid);
      const gone = await watch.waitFor('rule-gone', port, killedAt, 10_000);
      watch.stop();
      if (gone) sample.closeMs = gone.at - killedAt;
    }
  } finally {
    await client.close();
    for (const pid of port === undefined ? [] : await serverPidsOnPort(lab, port)) {
      await lab.killServerProcess(pid);
    }
    if (daemon) {
      await waitUntil(() => ourPorts(lab).size === 0, 10_000);
      await daemon.stop();
    }
    if (mode === 'wide open') await ufwOk(lab, ['delete', 'allow', ...WIDE]);
    if (ourPorts(lab).size > 0) await moshwall(lab, ['flush']);
  }
  return sample;
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** VmRSS of a process in MiB. */
function rssMiB(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib ?? Number.NaN) / 1024;
}

/** The daemon's CPU use over `seconds` (% of one core) and its RSS at the end. */
async function idleCost(pid: number, seconds: number, hz: number): Promise<{ cpu: number; rss: number }> {
  const before = cpuTicks(pid);
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsedS = (performance.now() - startedAt) / 1000;
  return { cpu: ((cpuTicks(pid) - before) / hz / elapsedS) * 100, rss: rssMiB(pid) };
}

/** Starts SESSIONS genuine mosh-servers in the server host (five per user), ten at a time. */
async function startSessions(lab: Lab): Promise<MoshServer[]> {
  const servers: MoshServer[] = [];
  for (let batch = 0; batch < SESSIONS; batch += 10) {
    const started = await Promise.all(
      Array.from({ length: Math.min(10, SESSIONS - batch) }, (_, offset) =>
        lab.startMoshServer(USERS[(batch + offset) % USERS.length] ?? 'alice', { via: 'local' }),
      ),
    );
    servers.push(...started);
  }
  return servers;
}

/** An aligned Markdown table: first column left, the others right. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((cells) => (cells[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

const fixed = (value: number, digits = 0) => value.toFixed(digits);

/** The connect table: per setup, connected/timeouts, median, min, max and the median's ratio to wide open. */
function connectTable(samples: Sample[], capMs: number): string {
  const wide = median(
    samples.filter((s) => s.mode === 'wide open' && s.connectMs !== undefined).map((s) => s.connectMs ?? 0),
  );
  const rows = MODES.map((mode) => {
    const runs = samples.filter((sample) => sample.mode === mode);
    const times = runs.flatMap((sample) => (sample.connectMs === undefined ? [] : [sample.connectMs]));
    const timeouts = runs.length - times.length;
    if (times.length === 0) {
      return [
        mode,
        String(runs.length),
        `0 (${timeouts} timed out at ${capMs / 1000} s)`,
        '—',
        '—',
        '—',
        '—',
      ];
    }
    const middle = median(times);
    return [
      mode,
      String(runs.length),
      timeouts === 0 ? String(times.length) : `${times.length} (${timeouts} timed out)`,
      fixed(middle),
      fixed(Math.min(...times)),
      fixed(Math.max(...times)),
      wide > 0 ? `${fixed(middle / wide, 2)}×` : '—',
    ];
  });
  return table(['setup', 'runs', 'connected', 'median ms', 'min ms', 'max ms', 'median / wide open'], rows);
}

/** nproc, CPU, kernel, node, ufw and mosh versions, and the load when the bench started. */
async function machine(lab: Lab): Promise<string> {
  const ufw = (await lab.ufw(['version'])).stdout.split('\n')[0]?.trim() ?? 'ufw ?';
  const mosh = execFileSync('mosh', ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim();
  return [
    `nproc ${availableParallelism()} (${cpus()[0]?.model ?? 'unknown CPU'})`,
    `Linux ${release()}`,
    `node ${process.version}`,
    ufw,
    mosh ?? 'mosh ?',
    `load average ${loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')} at the start`,
  ].join(', ');
}

async function main(): Promise<number> {
  requireRoot();
  const missing = missingClientTools();
  if (missing.length > 0) throw new LabError(`${missing.join(', ')} not found (apt-get install tmux mosh)`);
  const options: Options = {
    runs: Math.round(option('runs', 'BENCH_RUNS', 5)),
    capMs: option('cap-ms', 'BENCH_CAP_MS', 10_000),
    idleS: option('idle-s', 'BENCH_IDLE_S', 10),
  };
  const hz = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  const lab = await createLab({ users: USERS });
  try {
    const where = await machine(lab);
    const say = (text: string) => process.stdout.write(`${text}\n`);
    say(
      `bench:connect: ${options.runs} interleaved runs of ${MODES.length} setups (cap ${options.capMs / 1000} s)`,
    );
    // One warm-up connect (page cache, sshd's first fork), not counted.
    await oneRun(lab, 'wide open', options.capMs);
    const samples: Sample[] = [];
    for (let round = 0; round < options.runs; round += 1) {
      const order = MODES.map((_, index) => MODES[(index + round) % MODES.length] ?? 'wide open');
      for (const mode of order) {
        const sample = await oneRun(lab, mode, options.capMs);
        samples.push(sample);
        const shown = sample.connectMs === undefined ? 'timed out' : `${fixed(sample.connectMs)} ms`;
        const close =
          sample.closeMs === undefined ? '' : `, closed ${fixed(sample.closeMs)} ms after the kill`;
        say(`  round ${round + 1}: ${mode.padEnd(12)} ${shown}${close}`);
      }
    }

    say(`idle: daemon alone, then with ${SESSIONS} live sessions (${options.idleS} s windows)`);
    const daemon = await startDaemon(lab, CONFIG, { verbose: false });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idle0 = await idleCost(daemon.pid, options.idleS, hz);
    const startedAt = performance.now();
    const servers = await startSessions(lab);
    const opened = await waitUntil(() => ourPorts(lab).size === SESSIONS, 40_000, 50);
    if (!opened)
      throw new LabError(`the daemon opened ${ourPorts(lab).size} of ${SESSIONS} rules:\n${daemon.log()}`);
    const openMs = performance.now() - startedAt;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idle50 = await idleCost(daemon.pid, options.idleS, hz);
    const alive = servers.filter((server) => !isGone(server.pid)).length;
    await Promise.all(servers.map((server) => lab.killServerProcess(server.pid)));
    await waitUntil(() => ourPorts(lab).size === 0, 30_000, 50);
    await daemon.stop();

    const closes = samples.flatMap((sample) => (sample.closeMs === undefined ? [] : [sample.closeMs]));
    const report = [
      `# moshwall connect: real mosh sessions through a default-deny UFW (${new Date().toISOString()})`,
      '',
      `Machine: ${where}.`,
      '',
      `## Connect time (launching \`mosh\` → the remote command's READY on the client's screen), ${options.runs} interleaved runs each`,
      '',
      connectTable(samples, options.capMs),
      '',
      '## Close latency (daemon, with or without the shim): killing a connected mosh-server → its rule gone',
      '',
      closes.length === 0
        ? 'no sample'
        : table(
            ['runs', 'median ms', 'min ms', 'max ms'],
            [
              [
                String(closes.length),
                fixed(median(closes)),
                fixed(Math.min(...closes)),
                fixed(Math.max(...closes)),
              ],
            ],
          ),
      '',
      `## Daemon at rest (no --verbose, default poll_interval_ms 250), ${options.idleS} s windows`,
      '',
      table(
        ['live sessions', 'CPU % of one core', 'VmRSS MiB'],
        [
          ['0', fixed(idle0.cpu, 2), fixed(idle0.rss, 1)],
          [`${SESSIONS} (${alive} still alive at the end)`, fixed(idle50.cpu, 2), fixed(idle50.rss, 1)],
        ],
      ),
      '',
      `The ${SESSIONS} sessions were genuine mosh-servers of ${USERS.length} lab users, started in the server host;`,
      `the daemon had all ${SESSIONS} rules in place ${fixed(openMs / 1000, 1)} s after the first was started.`,
      `Connect times include ssh's handshake and mosh's start-up; the terminal was read every 10 ms.`,
      `One uncounted warm-up connect (wide open) ran first. Runs rotate the order of the setups each round.`,
      '',
    ].join('\n');
    say('');
    process.stdout.write(report);
    mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
    writeFileSync(RESULTS, report);
    say(`\nwritten to ${RESULTS}`);
    return 0;
  } finally {
    await lab.destroy();
  }
}

runBench('bench/connect.ts', main);
