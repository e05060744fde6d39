// What one change costs on the UFW fast path (ufw_fast_path = "ipset"), in the e2e lab with real UFW
// (iptables-nft) and real ipset: with 0, 100 and 1000 members already in our sets, RUNS times each (50):
//   allow     backend.allow of one spec right after a listing (as a reconcile does): one ipset restore
//   cold      backend.allow with no listing before: the hook check (iptables -S) beside one ipset restore
//   revoke    backend.revoke of one spec: one ipset restore (-exist: deleting a non-member is a no-op)
//   restore   the bare `ipset -exist restore` of one member (the set operation itself)
//   list      backend.listRules (user.rules files, our sets, liveness): what each reconcile reads
// and the one batch allow / revoke of all N members. Measured inside the lab's server host (no nsenter
// per command), by bench/_ufw-fastpath-inner.ts. Prints median and p99; writes results/ufw-fastpath.md.
// Needs root (run as `npm run bench:ufw-fastpath`). Prints figures; never passes or fails on them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { installLabFastPath, removeLabFastPath } from '../test/e2e/_fastpath.ts';
import { createLab } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const INNER = fileURLToPath(new URL('./_ufw-fastpath-inner.ts', import.meta.url));
const TSX = fileURLToPath(import.meta.resolve('tsx'));
const RESULTS = fileURLToPath(new URL('./results/ufw-fastpath.md', import.meta.url));

interface SizeResult {
  size: number;
  listed: number;
  batchAllow: number;
  batchRevoke: number;
  allow: number[];
  allowCold: number[];
  revoke: number[];
  restoreOnly: number[];
  list: number[];
}

/** The 99th percentile (nearest rank). */
function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)] ?? 0;
}

const ms = (value: number) => value.toFixed(2);

const OP_NAMES = {
  allow: 'allow (after a listing, as a reconcile does)',
  allowCold: 'allow (cold: checks the hook itself)',
  revoke: 'revoke',
  restoreOnly: 'bare ipset restore',
  list: 'list (listRules)',
};

/** Rows of cells as an aligned Markdown table (as biome formats it), the second row the rule. */
function alignedTable(rows: string[][]): string[] {
  const widths = (rows[0] ?? []).map((_, column) =>
    Math.max(...rows.map((row) => (row[column] ?? '').length)),
  );
  return rows.map((row, index) =>
    index === 1
      ? `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`
      : `| ${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`,
  );
}

const lab = await createLab();
try {
  await installLabFastPath(lab);
  const run = await lab.runServer([process.execPath, '--import', TSX, INNER, String(RUNS)], {
    timeoutMs: 600_000,
  });
  if (run.exitCode !== 0) throw new Error(`inner bench failed: ${run.stderr}`);
  const results = JSON.parse(run.stdout) as SizeResult[];
  const rows = alignedTable([
    ['members', 'op', 'median ms', 'p99 ms'],
    [],
    ...results.flatMap((result) => [
      ...(['allow', 'allowCold', 'revoke', 'restoreOnly', 'list'] as const).map((op) => [
        String(result.size),
        OP_NAMES[op],
        ms(median(result[op])),
        ms(p99(result[op])),
      ]),
      ...(result.size > 0
        ? [
            [String(result.size), `batch allow of all ${result.size} (one call)`, ms(result.batchAllow), ''],
            [
              String(result.size),
              `batch revoke of all ${result.size} (one call)`,
              ms(result.batchRevoke),
              '',
            ],
          ]
        : []),
    ]),
  ]);
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, kernel ${release()}, node ${process.version}`;
  const text = `# UFW fast path: one change\n\n${new Date().toISOString()}, ${RUNS} runs per row, ${machine}\n\n${rows.join('\n')}\n`;
  process.stdout.write(text);
  mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  writeFileSync(RESULTS, text);
  await removeLabFastPath(lab);
} finally {
  await lab.destroy();
}
