// Where a connect's time goes on the server side, through the shim (issue 13): in the lab (real UFW, the
// default runtime fast path, `moshwall daemon --verbose`), interleaved runs of `mosh-server new` started
// locally as a lab user, the way sshd starts it:
//   direct        /usr/bin/mosh-server: bind, print MOSH CONNECT, detach (no moshwall in the way)
//   perl shim     /usr/local/bin/mosh-server as `moshwall install` puts it where perl is (the default)
//   node shim     the bundle itself as the shim (hosts without perl)
// The shim's cost is its run minus the direct run. It is split into: the interpreter's start (`perl -e 0`,
// `node -e 0`, and for Node the bundle's load: `moshwall --version` minus `node -e 0`), the daemon's
// work for the request as it logs it (quick-open: narrowed scan + policy, rules listing, firewall
// change), and the rest (the socket round trip, the shim's reading and writing). Prints a table and
// writes bench/results/shim.md. Needs root and `npm run build` (`npm run bench:shim`); --runs N (15).
import { fileURLToPath } from 'node:url';
import { installShim, removeShim, startDaemon } from '../test/e2e/_daemon.ts';
import { LabError } from '../test/e2e/_exec.ts';
import { createLab, type Lab, requireRoot } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { printAndWrite, runBench } from './_run.ts';
import { table } from './scale/report.ts';

const CONFIG = 'backend = "ufw"\nport_range = "60000:61000"\n';
const RESULTS = fileURLToPath(new URL('./results/shim.md', import.meta.url));
const PATHS = ['direct', 'perl shim', 'node shim'] as const;
type Path = (typeof PATHS)[number];

/** The value after --runs, else 15. */
function runsOption(): number {
  const index = process.argv.indexOf('--runs');
  const value = index >= 0 ? Number(process.argv[index + 1]) : 15;
  if (!Number.isInteger(value) || value < 1) throw new LabError('--runs must be a whole number ≥ 1');
  return value;
}

/** Milliseconds one command takes in the server host as alice (median of `times` runs). */
async function commandMs(lab: Lab, argv: string[], times: number): Promise<number> {
  const samples: number[] = [];
  for (let run = 0; run < times; run += 1) {
    const begun = performance.now();
    const result = await lab.runServer(argv, { user: 'alice' });
    samples.push(performance.now() - begun);
    if (result.exitCode !== 0)
      throw new LabError(`${argv.join(' ')}: exit ${result.exitCode} ${result.stderr}`);
  }
  return median(samples);
}

/** A number with one decimal. */
const ms = (value: number) => value.toFixed(1);

runBench('bench/shim', async () => {
  requireRoot();
  const runs = runsOption();
  const lab = await createLab();
  try {
    const daemon = await startDaemon(lab, CONFIG);
    const samples: Record<Path, number[]> = { direct: [], 'perl shim': [], 'node shim': [] };
    const daemonWork = { scan: [] as number[], list: [] as number[], change: [] as number[] };
    let port = 60300;
    for (let run = 0; run < runs + 1; run += 1) {
      for (const path of run % 2 === 0 ? PATHS : [...PATHS].reverse()) {
        port += 1;
        if (path === 'perl shim') await installShim(lab, 'perl');
        if (path === 'node shim') await installShim(lab, 'node');
        const from = daemon.lines().length;
        const begun = performance.now();
        const server = await lab.startMoshServer('alice', {
          port,
          via: 'local',
          binary: path === 'direct' ? '/usr/bin/mosh-server' : '/usr/local/bin/mosh-server',
        });
        const took = performance.now() - begun;
        if (path !== 'direct') {
          await removeShim(lab);
          const quick = await daemon.waitForLine(new RegExp(`^debug quick-open port=${port} `), { from });
          const field = (name: string) => Number(new RegExp(`${name}=([\\d.]+)`).exec(quick.text)?.[1]);
          // The first run of each path warms caches: not counted.
          if (run > 0) {
            daemonWork.scan.push(field('scanMs'));
            daemonWork.list.push(field('listMs'));
            daemonWork.change.push(field('changeMs'));
          }
        }
        if (run > 0) samples[path].push(took);
        await lab.killServerProcess(server.pid);
      }
    }
    await daemon.stop();
    const perlStart = await commandMs(lab, ['perl', '-e', '0'], runs);
    const nodeStart = await commandMs(lab, ['node', '-e', '0'], runs);
    const bundle = await commandMs(
      lab,
      ['node', fileURLToPath(new URL('../dist/moshwall.js', import.meta.url)), '--version'],
      runs,
    );
    const trueMs = await commandMs(lab, ['true'], runs);
    const direct = median(samples.direct);
    const work = median(daemonWork.scan) + median(daemonWork.list) + median(daemonWork.change);
    const row = (path: 'perl shim' | 'node shim'): string[] => {
      const cost = median(samples[path]) - direct;
      const start = path === 'perl shim' ? perlStart - trueMs : nodeStart - trueMs;
      const load = path === 'node shim' ? bundle - nodeStart : 0;
      const rest = cost - start - load - work;
      return [
        path,
        ms(median(samples[path])),
        ms(cost),
        ms(start),
        ms(load),
        ms(median(daemonWork.scan)),
        ms(median(daemonWork.list)),
        ms(median(daemonWork.change)),
        ms(rest),
      ];
    };
    const lines = [
      `# Where the shim's time goes (${new Date().toISOString()})`,
      '',
      `Lab: real UFW with the default runtime fast path, \`moshwall daemon\`, ${runs} interleaved runs per path (one warm-up run each not counted), medians in ms. \`mosh-server new\` started locally as a lab user (through nsenter, the same for every path: \`true\` alone takes ${ms(trueMs)} ms). Direct: ${ms(direct)} ms.`,
      '',
      table(
        [
          'path',
          'run',
          'shim cost',
          'interpreter start',
          'bundle load',
          'daemon: scan + policy',
          'daemon: listing',
          'daemon: firewall change',
          'socket round trip and the rest',
        ],
        [row('perl shim'), row('node shim')],
      ),
      '',
      'Shim cost = the run minus the direct run. Interpreter start = `perl -e 0` / `node -e 0` minus `true`; bundle load = `moshwall --version` minus `node -e 0`. The daemon figures are its own (debug quick-open line): the scan narrowed to the port, the rule listing, the `ipset restore`.',
      '',
    ];
    printAndWrite(RESULTS, lines.join('\n'));
  } finally {
    await lab.destroy();
  }
});
