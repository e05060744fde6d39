import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createLab } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { printAndWrite, runBench } from './_run.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const SIZES = process.env.BENCH_SIZES ?? '0,1000,10000';
const INNER = fileURLToPath(new URL('./_conntrack-inner.ts', import.meta.url));
const TSX = fileURLToPath(import.meta.resolve('tsx'));
const RESULTS = fileURLToPath(new URL('./results/conntrack.md', import.meta.url));

interface Inner {
  results: {
    size: number;
    entries: number;
    runs: number;
    deletedTotal: number;
    runnerMs: number[];
    wallMs: number[];
    version: { version?: string };
  }[];
  versionSpawnMs: number[];
  batch: number;
  batchMs: number[];
  batchTable: number;
}

/** The 99th percentile (nearest rank). */
function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)] ?? 0;
}

const ms = (value: number) => value.toFixed(2);

runBench('bench/conntrack', async () => {
  const lab = await createLab();
  try {
    const run = await lab.runServer([process.execPath, '--import', TSX, INNER, String(RUNS), SIZES], {
      timeoutMs: 600_000,
    });
    if (run.exitCode !== 0) throw new Error(`inner bench failed: ${run.stderr}`);
    const inner = JSON.parse(run.stdout) as Inner;
    const rows = [
      '| other flows in the table | table entries before | deleted | delete, median ms | delete, p99 ms | conntrack process alone, median ms |',
      '| ------------------------ | -------------------- | ------- | ----------------- | -------------- | ---------------------------------- |',
      ...inner.results.map(
        (result) =>
          `| ${result.size} | ${result.entries} | ${result.deletedTotal}/${result.runs} | ${ms(median(result.wallMs))} | ${ms(p99(result.wallMs))} | ${ms(median(result.runnerMs))} |`,
      ),
    ];
    const version = inner.results[0]?.version.version ?? '?';
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, kernel ${release()}, node ${process.version}, conntrack ${version}`;
    const text = [
      "# Closing a port's flows: one `conntrack -D`",
      '',
      `${new Date().toISOString()}, ${RUNS} runs per row, ${machine}`,
      '',
      ...rows,
      '',
      `Bare \`conntrack --version\` spawn: median ${ms(median(inner.versionSpawnMs))} ms, p99 ${ms(p99(inner.versionSpawnMs))} ms.`,
      `One forget of ${inner.batch} revoked rules, one flow each (a flush; ${inner.batchMs.length} runs, ${inner.batchTable} other flows): median ${ms(median(inner.batchMs))} ms, max ${ms(Math.max(...inner.batchMs))} ms.`,
      '',
    ].join('\n');
    printAndWrite(RESULTS, text);
  } finally {
    await lab.destroy();
  }
});
