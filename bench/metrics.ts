// What the metrics endpoint (issue 14 §1) costs an idle daemon: nftables in a lab of its own
// (bench/scale's profile), 1000 genuine stand-in sessions live (bench/fixtures/fake-mosh-server.c), then
// the daemon started again and again in turn without metrics, with `metrics_listen` set but nobody
// scraping, and with metrics scraped once a second from inside the lab (Prometheus scrapes every 15 s
// by default: once a second is the heavy case). For each: the daemon's CPU (% of one core,
// utime+stime from /proc/PID/stat) over --idle-s seconds after every port is open, its VmRSS and VmHWM,
// and with metrics the size of one scrape. Prints a table and writes bench/results/metrics.md.
// Needs root, gcc and `npm run build`. Options: --sessions N (1000), --rounds N (2), --idle-s S (20).
// Prints figures; never passes or fails on them.
import { fileURLToPath } from 'node:url';
import { startDaemon } from '../test/e2e/_daemon.ts';
import { LabError, run } from '../test/e2e/_exec.ts';
import { waitUntil } from '../test/e2e/_poll.ts';
import { createLab, type Lab, requireRoot } from '../test/e2e/lab.ts';
import { markdownTable, printAndWrite, runBench } from './_run.ts';
import {
  compileFake,
  hostPids,
  type Idle,
  idleCost,
  installFake,
  ourPortCount,
  startSessions,
} from './scale/measure.ts';
import { configText, count, listingBackend, PROFILES, USERS } from './scale/profiles.ts';

const RESULTS = fileURLToPath(new URL('./results/metrics.md', import.meta.url));
const HOG = fileURLToPath(new URL('../test/e2e/fixtures/http-hog.mjs', import.meta.url));
const PORT = 9654;
type Mode = 'off' | 'on, not scraped' | 'on, scraped every 1 s';
const MODES: Mode[] = ['off', 'on, not scraped', 'on, scraped every 1 s'];

/** A node loop in the lab that GETs /metrics once a second until killed. */
function scraperArgv(): string[] {
  const script = `const http=require('node:http');setInterval(()=>{http.get({host:'127.0.0.1',port:${PORT},path:'/metrics'},(r)=>r.resume()).on('error',()=>{})},1000)`;
  return [process.execPath, '-e', script];
}

/** One daemon run in `mode`: idle cost once every session's port is open, and the scrape size with metrics. */
async function measure(lab: Lab, mode: Mode, sessions: number, idleS: number, hz: number) {
  const profile = PROFILES.find((each) => each.name === 'nftables');
  if (!profile) throw new LabError('no nftables profile');
  const config = `${configText(profile)}${mode === 'off' ? '' : `metrics_listen = "127.0.0.1:${PORT}"\n`}`;
  const daemon = await startDaemon(lab, config, { verbose: false, readyTimeoutMs: 120_000 });
  const pids: number[] = [];
  try {
    const backend = listingBackend(lab, profile);
    if (!(await waitUntil(async () => (await ourPortCount(backend)) >= sessions, 300_000, 200)))
      throw new LabError(`not every port opened:\n${daemon.log()}`);
    let scrapeBytes: number | undefined;
    if (mode !== 'off') {
      const got = await lab.runServer([process.execPath, HOG, 'get', '127.0.0.1', String(PORT), '/metrics']);
      scrapeBytes = Buffer.byteLength(String((JSON.parse(got.stdout) as { body?: string }).body ?? ''));
    }
    if (mode === 'on, scraped every 1 s') pids.push((await lab.startServer(scraperArgv())).pid);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idle: Idle = await idleCost(daemon.pid, idleS, hz);
    return { idle, scrapeBytes };
  } finally {
    for (const pid of pids) await lab.killServerProcess(pid).catch(() => undefined);
    await daemon.stop('SIGTERM', 120_000);
  }
}

async function main(): Promise<number> {
  requireRoot();
  const sessions = count('sessions', 1000);
  const rounds = count('rounds', 2);
  const idleS = count('idle-s', 20);
  const hz = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  const profile = PROFILES.find((each) => each.name === 'nftables');
  if (!profile) throw new LabError('no nftables profile');
  const fake = compileFake();
  const rows = new Map<Mode, Array<{ idle: Idle; scrapeBytes: number | undefined }>>(
    MODES.map((mode) => [mode, []]),
  );
  const lab = await createLab({ users: USERS, ...profile.labOptions });
  let sessionPids: number[] = [];
  try {
    await profile.setUp(lab);
    installFake(lab, fake.binary);
    sessionPids = hostPids(lab, await startSessions(lab, sessions));
    for (let round = 0; round < rounds; round++) {
      for (const mode of MODES) {
        const result = await measure(lab, mode, sessions, idleS, hz);
        process.stdout.write(
          `round ${round + 1}, metrics ${mode}: ${result.idle.cpu.toFixed(2)} % CPU, VmRSS ${result.idle.rss.toFixed(1)} MiB, VmHWM ${result.idle.hwm.toFixed(1)} MiB${result.scrapeBytes === undefined ? '' : `, scrape ${result.scrapeBytes} bytes`}\n`,
        );
        rows.get(mode)?.push(result);
      }
    }
  } finally {
    await Promise.all(sessionPids.map((pid) => lab.killServerProcess(pid).catch(() => undefined)));
    await lab.destroy();
    fake.remove();
  }
  const list = (values: number[], digits: number) => values.map((value) => value.toFixed(digits)).join(', ');
  const table = markdownTable(
    ['metrics', 'idle CPU %', 'VmRSS MiB', 'VmHWM MiB', 'scrape bytes'],
    MODES.map((mode) => {
      const results = rows.get(mode) ?? [];
      const bytes = results.find((each) => each.scrapeBytes !== undefined)?.scrapeBytes;
      return [
        mode,
        list(
          results.map((each) => each.idle.cpu),
          2,
        ),
        list(
          results.map((each) => each.idle.rss),
          1,
        ),
        list(
          results.map((each) => each.idle.hwm),
          1,
        ),
        bytes === undefined ? '-' : String(bytes),
      ];
    }),
  );
  const text = `# The metrics endpoint's cost (issue 14 §1)

${new Date().toISOString().slice(0, 10)}, node ${process.version}. \`node --import tsx bench/metrics.ts --sessions ${sessions} --rounds ${rounds} --idle-s ${idleS}\`:
nftables in a lab, ${sessions} genuine sessions live, the daemon started anew for each row entry (rounds
interleaved); idle CPU is % of one core over ${idleS} s once every port is open. Each entry one run.

${table.join('\n')}
`;
  printAndWrite(RESULTS, text);
  return 0;
}

runBench('bench/metrics.ts', main);
