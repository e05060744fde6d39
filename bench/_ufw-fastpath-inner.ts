// Run by bench/ufw-fastpath.ts INSIDE the lab's server host (its netns and /etc/ufw), so the figures
// are moshwall's own, without the nsenter a command from outside would add. Prints one JSON object.

import { createUfwBackend } from '../src/backends/ufw.ts';
import { runCommand } from '../src/exec.ts';
import type { RuleSpec } from '../src/rules.ts';

const RUNS = Number(process.argv[2] ?? 50);
const SIZES = [0, 100, 1000];
const PROBE_PORT = 61000;

/** Milliseconds `work` took. */
async function timed(work: () => Promise<unknown>): Promise<number> {
  const startedAt = performance.now();
  await work();
  return performance.now() - startedAt;
}

/** `count` members: half from anywhere (ports 20000+), half from 10.x.y.0/24 networks (ports 30000+). */
function fill(count: number): RuleSpec[] {
  return Array.from(
    { length: count },
    (_, index): RuleSpec =>
      index % 2 === 0
        ? { port: 20000 + index, family: 'v4', source: '0.0.0.0/0' }
        : { port: 30000 + index, family: 'v4', source: `10.${index >> 8}.${index & 255}.0/24` },
  );
}

const backend = createUfwBackend({ runner: runCommand, timeoutMs: 15_000, fastPath: 'ipset' });
/** A backend that never lists: each allow checks the hook itself (a change not preceded by a listing). */
const cold = createUfwBackend({ runner: runCommand, timeoutMs: 15_000, fastPath: 'ipset' });
const probe: RuleSpec = { port: PROBE_PORT, family: 'v4', source: '0.0.0.0/0' };
const results: Record<string, unknown>[] = [];
for (const size of SIZES) {
  const members = fill(size);
  const batchAllow = size > 0 ? await timed(() => backend.allow(members)) : 0;
  const listed = (await backend.listRules()).filter((rule) => rule.ours).length;
  const allow: number[] = [];
  const allowCold: number[] = [];
  const revoke: number[] = [];
  const restoreOnly: number[] = [];
  const list: number[] = [];
  for (let run = 0; run < RUNS; run += 1) {
    await backend.listRules();
    allow.push(await timed(() => backend.allow([probe])));
    await backend.revoke([probe]);
    allowCold.push(await timed(() => cold.allow([probe])));
    revoke.push(await timed(() => backend.revoke([probe])));
    restoreOnly.push(
      await timed(() =>
        runCommand(['ipset', '-exist', 'restore'], {
          timeoutMs: 15_000,
          input: `add moshwall-any4 ${PROBE_PORT}\n`,
        }),
      ),
    );
    list.push(await timed(() => backend.listRules()));
  }
  await runCommand(['ipset', 'del', 'moshwall-any4', String(PROBE_PORT)], { timeoutMs: 15_000 });
  const batchRevoke = size > 0 ? await timed(() => backend.revoke(members)) : 0;
  results.push({ size, listed, batchAllow, batchRevoke, allow, allowCold, revoke, restoreOnly, list });
}
process.stdout.write(`${JSON.stringify(results)}\n`);
