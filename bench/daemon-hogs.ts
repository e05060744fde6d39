// What a hostile local user costs the daemon (issue 10 #4 #5): in the e2e lab, with `moshwall daemon`
// running, an unprivileged lab user (1) writes 4 MiB of `1\n` on one connection and never reads a reply —
// the daemon's RSS before and after is printed; (2) holds 70 connections kept alive with empty lines
// while another user pings — each ping's round trip is printed. Writes results/daemon-hogs.md. Needs root
// (`sudo npm run bench:daemon-hogs`). Prints figures; never passes or fails on them.
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SOCKET, ping, startDaemon } from '../test/e2e/_daemon.ts';
import { createLab } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { markdownTable, printAndWrite, runBench } from './_run.ts';

const HOG = fileURLToPath(new URL('../test/e2e/fixtures/socket-hog.mjs', import.meta.url));
const RESULTS = fileURLToPath(new URL('./results/daemon-hogs.md', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The resident memory of pid in MiB (VmRSS). */
function rssMiB(pid: number): number {
  const kib = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
  return kib / 1024;
}

runBench('bench/daemon-hogs', async () => {
  const lab = await createLab();
  try {
    const daemon = await startDaemon(lab, 'backend = "ufw"\nport_range = "60000:61000"\n', {
      verbose: false,
    });
    await sleep(1000);
    const before = rssMiB(daemon.pid);
    const flood = await lab.runServer(
      [process.execPath, HOG, 'flood', DEFAULT_SOCKET, String(4 * 1024 * 1024), '3000'],
      { user: 'alice', timeoutMs: 30_000 },
    );
    const written = (JSON.parse(flood.stdout) as { written: number }).written;
    const afterFlood = rssMiB(daemon.pid);
    const hog = await lab.startServer(
      [process.execPath, HOG, 'idle', DEFAULT_SOCKET, '70', '12000', '1000'],
      {
        user: 'alice',
      },
    );
    await sleep(1500);
    const pings: number[] = [];
    for (let round = 0; round < 8; round += 1) {
      const start = performance.now();
      const reply = await ping(lab, 'bob');
      pings.push(reply.ok === true ? performance.now() - start : Number.NaN);
      await sleep(1000);
    }
    await hog.done;
    await daemon.stop();
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, kernel ${release()}, node ${process.version}`;
    const text = [
      '# The daemon against a hostile local user',
      '',
      `${new Date().toISOString()}, ${machine}`,
      '',
      ...markdownTable(
        ['case', 'figure'],
        [
          [
            `one connection writes ${4 * 1024 * 1024} bytes of \`1\\n\`, never reads (it got ${written} bytes in)`,
            `daemon RSS ${before.toFixed(1)} → ${afterFlood.toFixed(1)} MiB`,
          ],
          [
            "70 idle connections of one user, empty line each second; another user's ping (round trip incl. spawning the client)",
            `median ${median(pings).toFixed(0)} ms, max ${Math.max(...pings).toFixed(0)} ms, ${pings.filter(Number.isNaN).length} of ${pings.length} failed`,
          ],
        ],
      ),
      '',
    ].join('\n');
    printAndWrite(RESULTS, text);
  } finally {
    await lab.destroy();
  }
});
