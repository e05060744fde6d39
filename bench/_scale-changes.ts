// The in-lab half of bench/scale.ts: run as root INSIDE the lab's server host (so the timings hold no
// nsenter), it builds the configured backend exactly as moshwall does (createBackend over runCommand)
// and times one allow and one revoke of one UDP port through the Backend API, with 0, 100, 1000… rules
// of ours already in place, plus one listRules. Prints one JSON object on stdout; every rule it made is
// revoked again before it exits (also on failure).
//   argv: CONFIG_FILE JSON_OPTIONS   (options: Request below)
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { createBackend } from '../src/backends/select.ts';
import { loadConfig } from '../src/config.ts';
import { ourSpecs } from '../src/engine.ts';
import { runCommand } from '../src/exec.ts';
import type { Backend } from '../src/firewall.ts';
import type { RuleSpec } from '../src/rules.ts';
import { runBench } from './_run.ts';

/** What scale.ts asks for. */
export interface Request {
  /** Existing rules of ours, ascending (e.g. [0, 100, 1000]). */
  counts: number[];
  /** Timed allow+revoke pairs per count (a count may have its own in runsAt). */
  runs: number;
  runsAt?: Record<string, number>;
  /** First port of the preloaded rules; they take firstPort … firstPort+count-1. */
  firstPort: number;
  /** The port allowed and revoked in the timed runs (outside the preloaded ones). */
  probePort: number;
  /**
   * How the preloaded rules are made: through the backend in one allow() call ("api"), or (UFW) by
   * making one through ufw and writing ufw's own lines for the others into user.rules, then `ufw reload`.
   */
  preload: 'api' | 'ufw-rules-file';
  /** At most this many specs per preload allow() call ("api"; default: all in one call). */
  preloadBatch?: number;
}

/** What one count measured, in ms. */
export interface CountResult {
  count: number;
  /** Rules of ours the backend listed before the timed runs (= count, checked). */
  listed: number;
  allowMs: number[];
  revokeMs: number[];
  listMs: number[];
  /** How long making the preload took (ms), and how. */
  preloadMs: number;
}

const spec = (port: number): RuleSpec => ({ port, family: 'v4', source: '0.0.0.0/0' });

/** Milliseconds `work` took. */
async function timed(work: () => Promise<unknown>): Promise<number> {
  const startedAt = performance.now();
  await work();
  return performance.now() - startedAt;
}

/** Ports of ours the backend lists now. */
async function ourPorts(backend: Backend): Promise<number[]> {
  return ourSpecs(await backend.listRules()).map((each) => each.port);
}

/** Runs ufw (root, LANG=C) or throws with its output. */
async function ufw(args: string[]): Promise<void> {
  const result = await runCommand(['ufw', ...args], { timeoutMs: 600_000, env: { LANG: 'C' } });
  if (result.exitCode !== 0) throw new Error(`ufw ${args.join(' ')}: ${result.stderr}${result.stdout}`);
}

/**
 * Brings ufw to ports first…first+count-1 of ours: one rule made by ufw itself (through the backend), its
 * block of user.rules lines repeated with the port changed for the others, then one `ufw reload`, which
 * loads them exactly as ufw would have after `count` separate `ufw allow` calls (minutes at 1000).
 */
async function preloadUfwFile(backend: Backend, first: number, count: number): Promise<void> {
  const file = '/etc/ufw/user.rules';
  await backend.allow([spec(first)]);
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`### tuple ### allow udp ${first} `));
  if (start < 0) throw new Error(`ufw wrote no tuple for port ${first} in ${file}`);
  let end = start + 1;
  while (end < lines.length && lines[end] !== '' && !lines[end]?.startsWith('### tuple')) end += 1;
  const block = lines.slice(start, end);
  const port = new RegExp(`\\b${first}\\b`, 'g');
  const copies: string[] = [];
  for (let offset = 1; offset < count; offset += 1) {
    copies.push('', ...block.map((line) => line.replace(port, String(first + offset))));
  }
  lines.splice(end, 0, ...copies);
  writeFileSync(file, lines.join('\n'));
  await ufw(['reload']);
}

async function main(): Promise<void> {
  const [configFile, json] = process.argv.slice(2);
  if (configFile === undefined || json === undefined) throw new Error('usage: CONFIG_FILE JSON_OPTIONS');
  const request = JSON.parse(json) as Request;
  const config = loadConfig(configFile, {});
  // The running kernel's release, as the daemon passes it (nftables revokes by expiry on 6.12+).
  const backend = createBackend(config, runCommand, undefined, { kernelRelease: release() });
  const probe = await backend.probe();
  if (!probe.installed || !probe.active) throw new Error(`${backend.name}: ${probe.detail.join('; ')}`);
  if ((await ourPorts(backend)).length > 0) throw new Error(`${backend.name} already has rules of ours`);
  const results: CountResult[] = [];
  let loaded = 0;
  try {
    for (const count of request.counts) {
      const preloadMs = await timed(async () => {
        if (count === loaded) return;
        if (request.preload === 'ufw-rules-file') {
          if (loaded > 0)
            await backend.revoke(Array.from({ length: loaded }, (_, i) => spec(request.firstPort + i)));
          loaded = 0;
          await preloadUfwFile(backend, request.firstPort, count);
        } else {
          const more = Array.from({ length: count - loaded }, (_, i) => spec(request.firstPort + loaded + i));
          const batch = request.preloadBatch ?? more.length;
          for (let from = 0; from < more.length; from += batch)
            await backend.allow(more.slice(from, from + batch));
        }
        loaded = count;
      });
      const listed = (await ourPorts(backend)).length;
      if (listed !== count)
        throw new Error(`${backend.name} lists ${listed} rules of ours, expected ${count}`);
      const result: CountResult = { count, listed, allowMs: [], revokeMs: [], listMs: [], preloadMs };
      const runs = request.runsAt?.[String(count)] ?? request.runs;
      // One untimed pair first: page cache, the tool's first start.
      await backend.allow([spec(request.probePort)]);
      await backend.revoke([spec(request.probePort)]);
      for (let run = 0; run < runs; run += 1) {
        result.allowMs.push(await timed(() => backend.allow([spec(request.probePort)])));
        result.revokeMs.push(await timed(() => backend.revoke([spec(request.probePort)])));
        if (run < 10) result.listMs.push(await timed(() => backend.listRules()));
      }
      const after = await ourPorts(backend);
      if (after.length !== count || after.includes(request.probePort))
        throw new Error(`after the runs ${backend.name} lists ${after.length} rules of ours`);
      results.push(result);
      process.stderr.write(`  ${backend.name}: ${count} existing rules done (${runs} runs)\n`);
    }
  } finally {
    const left = ourSpecs(await backend.listRules());
    if (left.length > 0) {
      if (request.preload === 'ufw-rules-file' && left.length > 20) {
        // As fast as it was made: ufw's own lines out of user.rules, then one reload.
        const file = '/etc/ufw/user.rules';
        const lines = readFileSync(file, 'utf8').split('\n');
        const kept: string[] = [];
        let skipping = false;
        for (const line of lines) {
          if (line.startsWith('### tuple ### ')) skipping = / comment=6d6f736877616c6c$/.test(line);
          else if (line === '' || line.startsWith('### ')) skipping = false;
          if (!skipping) kept.push(line);
        }
        writeFileSync(file, kept.join('\n').replace(/\n{3,}/g, '\n\n'));
        await ufw(['reload']);
      } else {
        const batch = request.preloadBatch ?? left.length;
        for (let from = 0; from < left.length; from += batch)
          await backend.revoke(left.slice(from, from + batch));
      }
    }
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

runBench('bench/_scale-changes.ts', main);
