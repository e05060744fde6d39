// What moshwall costs at scale, per backend, each in a lab of its own (test/e2e/lab.ts; the admin firewall
// of each backend is set up inside the lab's namespaces only):
//   changes   one allow and one revoke of one port through the Backend API, timed inside the lab (no
//             nsenter in the figure) with 0, 100 and 1000 rules of ours already there; median and p99
//   converge  `moshwall daemon` running, 1000 genuine sessions started at once: the time until all 1000
//             ports are in the firewall (listed through the backend), and after killing them all, the
//             time until none of ours is left
//   idle      the daemon's CPU (% of one core, utime+stime from /proc/PID/stat) over a window with the
//             1000 sessions live, and its VmRSS and VmHWM (peak) then
//   connect   (set-based backends) a real `mosh` through the admin's default-deny firewall, as
//             bench/connect.ts measures it: wide open vs daemon+shim, and daemon+shim with the 1000 live
//
// The sessions are a tiny C program (bench/fixtures/fake-mosh-server.c) installed root-owned as
// `mosh-server` in a root-owned directory of the lab and run as ten lab users: moshwall judges them with
// the same genuineness check as a real mosh-server (and the bench checks, with `moshwall status`, that it
// counts every one as genuine). A real mosh-server ends itself after 60 s without a client.
//
// Prints the tables and writes them to bench/results/scale.md, keeping the rows there of backends not
// run now (a run replaces only its own backends' rows). Needs root, gcc, and `npm run build` (run
// it as `npm run bench:scale`). Options: --backends ufw,nftables,… (default all profiles), --sessions N
// (1000), --runs N (50), --counts 0,100,1000, --idle-s S (30), --connect-runs N (5; 0 skips it), --shells
// (each session with a stand-in shell beside it, a process of its user holding no socket), --help.
// The parts: scale/profiles.ts (each backend's setup), scale/measure.ts (the lab runs), scale/report.ts.
// Prints figures; never passes or fails on them.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LabError, run } from '../test/e2e/_exec.ts';
import { missingClientTools } from '../test/e2e/_mosh-client.ts';
import { requireRoot } from '../test/e2e/lab.ts';
import { runBench } from './_run.ts';
import { type BackendResult, benchBackend, compileFake } from './scale/measure.ts';
import { parseOptions, RESULTS } from './scale/profiles.ts';
import { earlierReport, machine, report } from './scale/report.ts';

/** The usage: this file's opening comment, without its comment marks. */
function usage(): string {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  const lines = text.split('\n');
  const end = lines.findIndex((line) => !line.startsWith('//'));
  return `${lines
    .slice(0, end)
    .map((line) => line.replace(/^\/\/ ?/, ''))
    .join('\n')}\n`;
}

async function main(): Promise<number> {
  if (process.argv.includes('--help')) {
    process.stdout.write(usage());
    return 0;
  }
  requireRoot();
  const options = parseOptions();
  if (options.connectRuns > 0 && missingClientTools().length > 0)
    throw new LabError(
      `${missingClientTools().join(', ')} not found (apt-get install tmux mosh), or pass --connect-runs 0`,
    );
  const hz = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  const say = (text: string) => process.stdout.write(`${text}\n`);
  const fake = compileFake();
  const results: BackendResult[] = [];
  // Read before the first write: the rows of backends not run now are kept from it.
  const earlier = earlierReport();
  try {
    for (const profile of options.backends) {
      results.push(await benchBackend(profile, options, fake.binary, hz, say));
      // What is done so far, in case a later backend fails.
      mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
      writeFileSync(RESULTS, report(results, earlier, options, machine()));
    }
  } finally {
    fake.remove();
  }
  const text = report(results, earlier, options, machine());
  say('');
  process.stdout.write(text);
  mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  writeFileSync(RESULTS, text);
  say(`\nwritten to ${RESULTS}`);
  return 0;
}

runBench('bench/scale.ts', main);
