// How soon a port closes once its socket leaves genuine hands (issue 11 §1), each way a local user can
// do it to their own live mosh-server on a host without Yama: (1) take its socket (pidfd_getfd, python)
// and end the server; (2) take it and keep the server running; (3) attach a tracer (strace -p). In the
// e2e lab, `moshwall daemon` with a plain UFW config (runtime fast path); per way N sessions (--runs,
// default 10): the time from the change to the daemon's `info closed port=P` line (for (2) from the
// moment python printed that it holds the socket). With --background N, N more sessions stay live
// throughout (the scale bench's stand-in mosh-server, run as its ten lab users): the watch then has N
// holders to go round; with --shells as well, each of them has a stand-in shell beside it (a process of
// its user holding no socket, as a real session has), which the look for sharers goes through. Writes results/takeover.md (results/takeover-N.md with --background N); prints
// figures, never passes or fails on them. Needs root and gcc (`sudo npm run bench:takeover`).
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { GRAB_SCRIPT } from '../test/e2e/_attacks.ts';
import { startDaemon } from '../test/e2e/_daemon.ts';
import { waitUntil } from '../test/e2e/_poll.ts';
import { createLab, type Lab } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { markdownTable, printAndWrite, runBench } from './_run.ts';
import { compileFake, hostPids, installFake, startSessions } from './scale/measure.ts';
import { RANGE, USERS } from './scale/profiles.ts';

/** The config: UFW's defaults, and with background sessions the scale bench's range and no per-user cap. */
function configFor(background: number): string {
  if (background === 0) return 'backend = "ufw"\nport_range = "60000:61000"\n';
  return `backend = "ufw"\nport_range = "${RANGE}"\nmax_sessions_per_user = 0\n`;
}

/** The value of a numeric option, or its default. */
function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** One way of taking a port out of genuine hands: does it to the server, resolves with when it happened. */
interface Way {
  name: string;
  act(lab: Lab, server: { pid: number; nsPid: number }, started: number[]): Promise<number>;
}

/** Starts python holding the server's socket (pidfd_getfd); resolves once it says it holds it. */
async function grab(lab: Lab, nsPid: number, started: number[]): Promise<number> {
  const grabber = await lab.startServer(['python3', '-c', GRAB_SCRIPT, String(nsPid)], { user: 'alice' });
  started.push(grabber.pid);
  let heldAt = 0;
  await waitUntil(
    () => {
      if (!/^holding \d+ socket:/m.test(grabber.output().stdout)) return false;
      heldAt = performance.now();
      return true;
    },
    5000,
    5,
  );
  if (heldAt === 0)
    throw new Error(`pidfd_getfd did not work here: ${grabber.output().stdout}${grabber.output().stderr}`);
  return heldAt;
}

const WAYS: Way[] = [
  {
    name: 'socket taken (pidfd_getfd), server ended',
    async act(lab, server, started) {
      await grab(lab, server.nsPid, started);
      const at = performance.now();
      await lab.killServerProcess(server.pid);
      return at;
    },
  },
  {
    name: 'socket taken (pidfd_getfd), server kept running',
    act: (lab, server, started) => grab(lab, server.nsPid, started),
  },
  {
    name: 'tracer attached (strace -p)',
    async act(lab, server, started) {
      const at = performance.now();
      const tracer = await lab.startServer(['strace', '-p', String(server.nsPid), '-o', '/dev/null'], {
        user: 'alice',
      });
      started.push(tracer.pid);
      return at;
    },
  },
];

/** The value below which `share` of the sorted values lie (nearest rank). */
function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(share * sorted.length) - 1)] ?? Number.NaN;
}

runBench('bench/takeover', async () => {
  const runs = option('--runs', 10);
  const background = option('--background', 0);
  const shells = process.argv.includes('--shells');
  if (!Number.isInteger(background) || background < 0 || background > 1000 || background % USERS.length !== 0)
    throw new Error(`--background must be a multiple of ${USERS.length} from 0 to 1000`);
  const lab = await createLab(background > 0 ? { users: USERS } : {});
  const fake = background > 0 ? compileFake() : undefined;
  const rows: string[][] = [];
  let backgroundPids: number[] = [];
  try {
    const daemon = await startDaemon(lab, configFor(background));
    if (fake !== undefined) {
      installFake(lab, fake.binary);
      backgroundPids = hostPids(lab, await startSessions(lab, background, shells));
      await daemon.waitForLine(/^info opened port=/, { timeoutMs: 60_000 });
      const opened = await waitUntil(
        () => daemon.lines().filter((line) => /^info opened port=/.test(line.text)).length >= background,
        120_000,
        100,
      );
      if (!opened) throw new Error(`the daemon did not open the ${background} background sessions`);
      process.stdout.write(`${background} background sessions open\n`);
    }
    let port = 60100;
    for (const way of WAYS) {
      const times: number[] = [];
      for (let run = 0; run < runs; run += 1) {
        port += 1;
        const started: number[] = [];
        const server = await lab.startMoshServer('alice', { port });
        started.push(server.pid);
        try {
          await daemon.waitForLine(new RegExp(`^info opened port=${port} `), { timeoutMs: 15_000 });
          const from = daemon.lines().length;
          const at = await way.act(lab, server, started);
          const closed = await daemon.waitForLine(new RegExp(`^info closed port=${port} `), {
            from,
            timeoutMs: 60_000,
          });
          times.push(closed.at - at);
        } finally {
          for (const pid of started) await lab.killServerProcess(pid).catch(() => undefined);
        }
      }
      const ms = (value: number) => `${Math.round(value)} ms`;
      rows.push([
        way.name,
        String(runs),
        ms(median(times)),
        ms(percentile(times, 0.99)),
        ms(Math.min(...times)),
      ]);
      process.stdout.write(`${way.name}: ${times.map((value) => Math.round(value)).join(', ')} ms\n`);
    }
    await daemon.stop();
  } finally {
    for (const pid of backgroundPids) await lab.killServerProcess(pid).catch(() => undefined);
    fake?.remove();
    await lab.destroy();
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, kernel ${release()}, node ${process.version}`;
  printAndWrite(
    fileURLToPath(
      new URL(
        `./results/takeover${background > 0 ? `-${background}` : ''}${shells ? '-shells' : ''}.md`,
        import.meta.url,
      ),
    ),
    [
      '# How soon a port closes once its socket leaves genuine hands',
      '',
      `${new Date().toISOString()}, ${machine}. \`bench/takeover.ts --runs ${runs}${background > 0 ? ` --background ${background}` : ''}${shells ? ' --shells' : ''}\`: the e2e lab's UFW`,
      '(runtime fast path), `moshwall daemon` with its default holder watch; alice does each thing to her',
      "own live mosh-server; time from the change to the daemon's `info closed port=P` line. p99 is the",
      'nearest-rank 99th percentile (with 10 runs: the slowest).',
      ...(background > 0
        ? [
            '',
            `${background} other sessions live throughout (the scale bench's stand-in mosh-server, ${background / USERS.length} for each of ${USERS.length} lab users, alice among them${shells ? ', each with a stand-in shell beside it' : ''}).`,
          ]
        : []),
      '',
      ...markdownTable(['way', 'runs', 'p50', 'p99', 'fastest'], rows),
      '',
    ].join('\n'),
  );
});
