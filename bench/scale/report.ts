// The Markdown report of a scale run, merged with the rows an earlier report holds of backends not run now.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, release } from 'node:os';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import { SERVER_V4 } from '../../test/e2e/lab.ts';
import { median } from '../../test/support/stats.ts';
import type { BackendResult } from './measure.ts';
import { FAKE, type Options, PROFILES, RESULTS, USERS } from './profiles.ts';

/** The p-th percentile (nearest rank) of a non-empty list. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
  );
}

/** An aligned Markdown table: first column left, the others right. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((cells) => (cells[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export const ms = (value: number) =>
  Number.isNaN(value) ? '—' : value < 10 ? value.toFixed(1) : value.toFixed(0);

/** The tables of the report, by the start of their heading. */
export const SECTIONS = {
  changes: '## One change',
  converge: '## `moshwall daemon`',
  connect: '## Connect',
} as const;
export type Section = keyof typeof SECTIONS;

/**
 * What an earlier report says of each backend: its table rows (cells), when it ran and its load line,
 * and its own note line. The report of a run keeps these for the backends it did not run.
 */
export interface Earlier {
  rows: Record<Section, string[][]>;
  runs: Map<string, { date: string; load: string }>;
  notes: Map<string, string>;
}

/** The runs line of the report: per backend, when it ran and the load average (start → end). */
export const RUNS_LINE = 'Per backend, when it ran and the load average (start → end)';

/** Reads an earlier report (this script's Markdown, or the older one with a single "Load average" line). */
export function readEarlier(text: string): Earlier {
  const earlier: Earlier = {
    rows: { changes: [], converge: [], connect: [] },
    runs: new Map(),
    notes: new Map(),
  };
  const lines = text.split('\n');
  const fileDate = /\((\S+)\)$/.exec(lines[0] ?? '')?.[1] ?? '?';
  const names = new Set(PROFILES.map((profile) => profile.name));
  let section: Section | undefined;
  let tableLine = 0;
  for (const line of lines) {
    if (line.startsWith('#')) {
      section = (Object.keys(SECTIONS) as Section[]).find((key) => line.startsWith(SECTIONS[key]));
      tableLine = 0;
    } else if (line.startsWith('|')) {
      tableLine += 1;
      // The header and the rule line come first.
      if (section !== undefined && tableLine > 2)
        earlier.rows[section].push(
          line
            .split('|')
            .slice(1, -1)
            .map((cell) => cell.trim()),
        );
    } else {
      const runs = new RegExp(
        `^(?:${RUNS_LINE.replace(/[()]/g, '\\$&')}|Load average per backend \\(start → end\\)): (.*)\\.$`,
      ).exec(line);
      for (const item of runs?.[1]?.split('; ') ?? []) {
        const [, name, date, loads] = /^(\S+) (?:\((\S+)\) )?(.*)$/.exec(item) ?? [];
        if (name !== undefined && loads !== undefined)
          earlier.runs.set(name, { date: date ?? fileDate, load: loads });
      }
      const note = /^- (\S+): /.exec(line)?.[1];
      if (note !== undefined && names.has(note)) earlier.notes.set(note, line);
    }
  }
  return earlier;
}

/** The earlier report at RESULTS, or nothing when there is none. */
export function earlierReport(): Earlier {
  try {
    return readEarlier(readFileSync(RESULTS, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return readEarlier('');
    throw error;
  }
}

/** Earlier rows of backends not run now, with the rows of this run, in PROFILES order. */
export function mergeRows(earlier: string[][], fresh: string[][], ran: Set<string>): string[][] {
  const order = (row: string[]) => {
    const index = PROFILES.findIndex((profile) => profile.name === row[0]);
    return index < 0 ? PROFILES.length : index;
  };
  return [...earlier.filter((row) => !ran.has(row[0] ?? '')), ...fresh].sort((a, b) => order(a) - order(b));
}

/** The report's Markdown: this run's backends, and what `earlier` holds of the others. */
export function report(results: BackendResult[], earlier: Earlier, options: Options, where: string): string {
  const ran = new Set(results.map((each) => each.profile.name));
  const runs = new Map([...earlier.runs].filter(([name]) => !ran.has(name)));
  for (const each of results) runs.set(each.profile.name, { date: each.date, load: each.load });
  const runItems = PROFILES.flatMap((profile) => {
    const run = runs.get(profile.name);
    return run === undefined ? [] : [`${profile.name} (${run.date}) ${run.load}`];
  });
  const changeRows = mergeRows(
    earlier.rows.changes,
    results.flatMap(({ profile, changes }) =>
      changes.map((each) => [
        profile.name,
        String(each.count),
        String(each.allowMs.length),
        ms(median(each.allowMs)),
        ms(percentile(each.allowMs, 99)),
        ms(median(each.revokeMs)),
        ms(percentile(each.revokeMs, 99)),
        ms(median(each.listMs)),
      ]),
    ),
    ran,
  );
  const convergeRows = mergeRows(
    earlier.rows.converge,
    results.map(({ profile, converge: c }) => [
      profile.name,
      String(c.sessions),
      `${c.genuine} / ${c.refused}`,
      (c.openMs / 1000).toFixed(1),
      (c.closeMs / 1000).toFixed(1),
      c.idle.cpu.toFixed(2),
      c.idle.rss.toFixed(1),
      c.idle.hwm.toFixed(1),
    ]),
    ran,
  );
  const connectRows = mergeRows(
    earlier.rows.connect,
    results.flatMap(({ profile, connect, converge: c }) => {
      if (!connect) return [];
      const wide = connect['wide open'].length > 0 ? median(connect['wide open']) : Number.NaN;
      const row = (label: string, samples: number[]) => [
        profile.name,
        label,
        String(samples.length),
        ms(samples.length > 0 ? median(samples) : Number.NaN),
        samples.length > 0 ? `${(median(samples) / wide).toFixed(2)}×` : '—',
      ];
      return [
        row('wide open', connect['wide open']),
        row('daemon+shim', connect['daemon+shim']),
        row(`daemon+shim, ${c.sessions} live`, c.connectLive),
      ];
    }),
    ran,
  );
  const notes = new Map([...earlier.notes].filter(([name]) => !ran.has(name)));
  for (const { profile, converge: c } of results) {
    const capped = profile.sessionsCap !== undefined && c.sessions < options.sessions;
    const parts = [
      ...(capped ? [`${c.sessions} sessions, not ${options.sessions}: ${profile.sessionsCap?.why}`] : []),
      ...(profile.note !== undefined ? [profile.note] : []),
    ];
    if (parts.length > 0) notes.set(profile.name, `- ${profile.name}: ${parts.join('; ')}.`);
  }
  return [
    `# moshwall at scale, per backend (${new Date().toISOString()})`,
    '',
    `Machine: ${where}.`,
    `${RUNS_LINE}: ${runItems.join('; ')}.`,
    '',
    `## One change through the Backend API (timed inside the lab), with N rules of ours already there`,
    '',
    table(
      [
        'backend',
        'N',
        'runs',
        'allow median ms',
        'allow p99 ms',
        'revoke median ms',
        'revoke p99 ms',
        'listRules median ms',
      ],
      changeRows,
    ),
    '',
    `## \`moshwall daemon\` with N genuine sessions (${USERS.length} users), all started at once`,
    '',
    table(
      ['backend', 'N', 'genuine / refused', '0 → N s', 'N → 0 s', 'idle CPU %', 'VmRSS MiB', 'VmHWM MiB'],
      convergeRows,
    ),
    '',
    ...(connectRows.length > 0
      ? [
          '## Connect (launching `mosh` → READY on screen), backends whose changes take milliseconds',
          '',
          table(['backend', 'setup', 'runs', 'median ms', 'median / wide open'], connectRows),
          '',
        ]
      : []),
    'Notes:',
    '',
    `- Changes: one v4 port from anywhere allowed, then revoked, ${options.runs} times per N after one untimed pair (fewer where the runs column says so); p99 is the nearest-rank 99th percentile; listRules is the median of 10. Classic UFW's (ufw) preloaded rules are one rule made by ufw and ufw's own user.rules lines for the others with the port changed, then one \`ufw reload\` (what ${options.counts.at(-1)} \`ufw allow\` calls would leave, in seconds instead of minutes); the others preload through one allow() call.`,
    '- Profiles: ufw is classic UFW (`ufw_fast_path = "off"`, one `ufw` run per change); ufw-runtime is what a plain install gives UFW users (no ufw_fast_path: "auto", the runtime fast path: moshwall\'s ipsets matched by rules it places into UFW\'s after chains at run time, no UFW file edited); ufw-ipset is UFW with `ufw_fast_path = "ipset"` and the hook `moshwall install` adds (ports are members of moshwall\'s ipsets, matched from UFW\'s after chains); firewalld is a real firewalld (FirewallBackend=nftables) on a private system bus in the lab, ports as runtime rich rules in its default zone public.',
    `- Sessions: a small C stand-in (bench/fixtures/fake-mosh-server.c) installed root-owned as ${FAKE}, run as the lab users; each session is a detached child holding one UDP port on ${SERVER_V4}. "genuine / refused" is what \`moshwall status\` counted with all of them live. Converge times run from launching the sessions to the last port listed by the backend (polled every 100 ms from outside the lab), and from the kill to the last one gone.`,
    ...PROFILES.flatMap((profile) => {
      const note = notes.get(profile.name);
      return note === undefined ? [] : [note];
    }),
    '- Connect: "wide open" is an admin rule accepting the whole range and no daemon; "daemon+shim" is `moshwall daemon` (started for the run, given 1.5 s for its start-up) with the shim as /usr/local/bin/mosh-server, with no other session, interleaved with wide open; the last row is the same with every bench session live. One uncounted wide-open connect runs first.',
    `- Idle: the daemon (no --verbose, poll_interval_ms ${DEFAULT_CONFIG.pollIntervalMs}) over ${options.idleS} s with every session live, utime+stime of /proc/PID/stat; VmHWM is the peak RSS since the daemon started (it includes the converge).${options.shells ? ' Every session had a stand-in shell beside it (--shells).' : ''}`,
    '',
  ].join('\n');
}

/** nproc, CPU, kernel, node, tool versions. */
export function machine(): string {
  const version = (argv: string[]) => {
    try {
      return (
        execFileSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8' })
          .split('\n')[0]
          ?.trim() ?? '?'
      );
    } catch {
      return `${argv[0]} ?`;
    }
  };
  return [
    `nproc ${availableParallelism()} (${cpus()[0]?.model ?? 'unknown CPU'})`,
    `Linux ${release()}`,
    `node ${process.version}`,
    version(['ufw', 'version']),
    version(['nft', '--version']),
    version(['iptables-legacy', '--version']),
    version(['ipset', 'version']),
    // firewall-cmd --version asks the running firewalld (none on this host): the package's version.
    version(['dpkg-query', '--show', 'firewalld']).replace('\t', ' '),
    version(['mosh', '--version']),
  ].join(', ');
}
