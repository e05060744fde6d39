// How soon a port closes once its socket leaves genuine hands (issue 11 §1), each way a local user can
// do it to their own live mosh-server on a host without Yama: (1) take its socket (pidfd_getfd, python)
// and end the server; (2) take it and keep the server running; (3) attach a tracer (strace -p). In the
// e2e lab, `moshwall daemon` with a plain UFW config (runtime fast path); per way N sessions (--runs,
// default 10): the time from the change to the daemon's `info closed port=P` line (for (2) from the
// moment python printed that it holds the socket). Writes results/takeover.md; prints figures, never
// passes or fails on them. Needs root (`sudo npm run bench:takeover`).
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { GRAB_SCRIPT } from '../test/e2e/_attacks.ts';
import { startDaemon } from '../test/e2e/_daemon.ts';
import { waitUntil } from '../test/e2e/_poll.ts';
import { createLab, type Lab } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { markdownTable, printAndWrite, runBench } from './_run.ts';

const RESULTS = fileURLToPath(new URL('./results/takeover.md', import.meta.url));
const CONFIG = 'backend = "ufw"\nport_range = "60000:61000"\n';

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
  const runsAt = process.argv.indexOf('--runs');
  const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 10;
  const lab = await createLab();
  const rows: string[][] = [];
  try {
    const daemon = await startDaemon(lab, CONFIG);
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
    await lab.destroy();
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, kernel ${release()}, node ${process.version}`;
  printAndWrite(
    RESULTS,
    [
      '# How soon a port closes once its socket leaves genuine hands',
      '',
      `${new Date().toISOString()}, ${machine}. \`bench/takeover.ts --runs ${runs}\`: the e2e lab's UFW`,
      '(runtime fast path), `moshwall daemon` with its default holder watch; alice does each thing to her',
      "own live mosh-server; time from the change to the daemon's `info closed port=P` line. p99 is the",
      'nearest-rank 99th percentile (with 10 runs: the slowest).',
      '',
      ...markdownTable(['way', 'runs', 'p50', 'p99', 'fastest'], rows),
      '',
    ].join('\n'),
  );
});
