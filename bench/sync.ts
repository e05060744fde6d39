// How long one `moshwall sync` takes, as an admin or a timer runs it (the whole CLI process: node
// start-up, /proc scan, ufw calls), in the e2e lab with a real UFW and real mosh-servers:
//   1. idle: no session, N runs
//   2. converge 0 → 50: 50 genuine mosh-servers just started, the one sync that opens all 50
//   3. steady: 50 live sessions, all open, nothing to change, N runs
//   4. close 50 → 0: all 50 killed, the one sync that closes them
// Prints a table (median, min, max; per-rule cost for 2 and 4) and writes it to bench/results/sync.md.
// Needs root and `npm run build` (run as `npm run bench:sync`). Prints figures; never passes or fails on them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isGone } from '../test/e2e/_procfs.ts';
import { createLab, type Lab, type MoshServer, type Result } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { runBench } from './_run.ts';

const RUNS = 15;
const SESSIONS = 50;
const FIRST_PORT = 60100;
/** Ten lab users with five sessions each: under the default max_sessions_per_user (10). */
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
/** An unconnected mosh-server exits after 60 s: cases 2 and 3 must be done well before. */
const SESSION_BUDGET_MS = 50_000;
const RESULTS = fileURLToPath(new URL('./results/sync.md', import.meta.url));

interface Row {
  name: string;
  samples: number[];
  /** Rules changed by each run, for the per-rule cost. */
  rules?: number;
}

/** Milliseconds `work` took, and its result. */
async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const startedAt = performance.now();
  const result = await work();
  return [performance.now() - startedAt, result];
}

/** Throws with the output unless a moshwall run exited 0 and its summary line matches. */
function expectSummary(result: Result, summary: RegExp, what: string): void {
  if (result.exitCode !== 0 || !summary.test(result.stdout)) {
    throw new Error(
      `${what}: expected exit 0 and ${summary}, got exit ${result.exitCode}\n${result.stdout}${result.stderr}`,
    );
  }
}

/** `sync` N times, each checked against `summary`; the wall time of each run. */
async function syncRuns(lab: Lab, runs: number, summary: RegExp, what: string): Promise<number[]> {
  const samples: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const [ms, result] = await timed(() => lab.moshwall(['sync']));
    expectSummary(result, summary, `${what}, run ${run + 1}`);
    samples.push(ms);
  }
  return samples;
}

/** Starts SESSIONS genuine mosh-servers (in the server host, as the users would), ten at a time. */
async function startSessions(lab: Lab): Promise<MoshServer[]> {
  const servers: MoshServer[] = [];
  for (let batch = 0; batch < SESSIONS; batch += 10) {
    const started = await Promise.all(
      Array.from({ length: Math.min(10, SESSIONS - batch) }, (_, offset) => {
        const index = batch + offset;
        const user = USERS[index % USERS.length] ?? 'alice';
        return lab.startMoshServer(user, { via: 'local', port: FIRST_PORT + index });
      }),
    );
    servers.push(...started);
  }
  return servers;
}

/** One decimal. */
const ms = (value: number) => value.toFixed(1);

/**
 * The results as an aligned Markdown table (as biome formats it); per-rule cost is the run's time over
 * the rules it changed, and the same after taking away the idle median (what each rule adds).
 */
function table(rows: Row[], idleMedian: number): string {
  const header = ['case', 'runs', 'median ms', 'min ms', 'max ms', 'per rule ms', 'per rule ms, minus idle'];
  const body = rows.map((row) => {
    const middle = median(row.samples);
    return [
      row.name,
      String(row.samples.length),
      ms(middle),
      ms(Math.min(...row.samples)),
      ms(Math.max(...row.samples)),
      row.rules === undefined ? '' : ms(middle / row.rules),
      row.rules === undefined ? '' : ms((middle - idleMedian) / row.rules),
    ];
  });
  const widths = header.map((title, column) =>
    Math.max(title.length, ...body.map((cells) => (cells[column] ?? '').length)),
  );
  // The first column is text (left-aligned), the others are figures (right-aligned).
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...body.map(line)].join('\n');
}

/** nproc, CPU, kernel, node and ufw versions. */
async function machine(lab: Lab): Promise<string> {
  const ufw = (await lab.ufw(['version'])).stdout.split('\n')[0]?.trim() ?? 'ufw ?';
  const mosh = execFileSync('mosh-server', ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim();
  return [
    `nproc ${availableParallelism()} (${cpus()[0]?.model ?? 'unknown CPU'})`,
    `Linux ${release()}`,
    `node ${process.version}`,
    ufw,
    mosh ?? 'mosh-server ?',
  ].join(', ');
}

async function main(): Promise<void> {
  const lab = await createLab({ users: USERS });
  try {
    const rows: Row[] = [];
    // Reference rows: entering the lab, and the CLI doing nothing but start.
    rows.push({
      name: 'reference: nsenter + /bin/true',
      samples: await repeat(RUNS, async () => (await timed(() => lab.runServer(['true'])))[0]),
    });
    rows.push({
      name: 'reference: moshwall --version',
      samples: await repeat(RUNS, async () => (await timed(() => lab.moshwall(['--version'])))[0]),
    });

    await syncRuns(lab, 1, /0 session\(s\), 0 rule\(s\) kept, nothing to change/, 'warm-up');
    const idle = await syncRuns(lab, RUNS, /^0 session\(s\), 0 rule\(s\) kept, nothing to change$/m, 'idle');
    rows.push({ name: '1. idle (0 sessions)', samples: idle });

    const startedAt = performance.now();
    const servers = await startSessions(lab);
    const startMs = performance.now() - startedAt;
    const [convergeMs, converge] = await timed(() => lab.moshwall(['sync']));
    expectSummary(converge, /^50 session\(s\), 0 rule\(s\) kept, 50 opened, 0 closed$/m, 'converge');
    rows.push({ name: '2. converge 0 → 50 (opens 50)', samples: [convergeMs], rules: SESSIONS });

    const ours = (await lab.ufwTuples()).filter((tuple) => tuple.comment === 'moshwall');
    const gone = servers.filter((server) => isGone(server.pid));
    if (ours.length !== SESSIONS || gone.length > 0) {
      throw new Error(`before steady state: ${ours.length} rules of ours, ${gone.length} sessions gone`);
    }
    const steady = await syncRuns(
      lab,
      RUNS,
      /^50 session\(s\), 50 rule\(s\) kept, nothing to change$/m,
      'steady state',
    );
    const elapsed = performance.now() - startedAt;
    if (elapsed > SESSION_BUDGET_MS) {
      throw new Error(`cases 2-3 took ${Math.round(elapsed)} ms, too close to mosh-server's 60 s self-exit`);
    }
    rows.push({ name: '3. steady (50 live, all open)', samples: steady });

    await Promise.all(servers.map((server) => lab.killServerProcess(server.pid)));
    const [closeMs, close] = await timed(() => lab.moshwall(['sync']));
    expectSummary(close, /^0 session\(s\), 0 rule\(s\) kept, 0 opened, 50 closed$/m, 'close');
    rows.push({ name: '4. close 50 → 0 (closes 50)', samples: [closeMs], rules: SESSIONS });

    const idleMedian = median(idle);
    const report = [
      `# moshwall sync: wall time of one CLI run (${new Date().toISOString()})`,
      '',
      `Machine: ${await machine(lab)}.`,
      '',
      table(rows, idleMedian),
      '',
      `Each figure is one whole \`node dist/moshwall.js sync\` process, started from outside the lab through`,
      `nsenter (first reference row), so it includes node's start-up (second row). Sessions were genuine`,
      `mosh-servers of ${USERS.length} lab users, one IPv4 rule each; the ${SESSIONS} of them started in ${Math.round(startMs)} ms.`,
      `One warm-up sync ran before case 1. Cases 2 and 4 are single runs.`,
      '',
    ].join('\n');
    process.stdout.write(report);
    mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
    writeFileSync(RESULTS, report);
    process.stdout.write(`\nwritten to ${RESULTS}\n`);
  } finally {
    await lab.destroy();
  }
}

/** Awaits `work` `times` times in a row and collects its results. */
async function repeat(times: number, work: () => Promise<number>): Promise<number[]> {
  const results: number[] = [];
  for (let index = 0; index < times; index += 1) results.push(await work());
  return results;
}

runBench('bench/sync.ts', main);
