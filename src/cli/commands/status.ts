import { collectStatus } from '../../engine.ts';
import { describeError, UsageError } from '../../errors.ts';
import { type StatusReport, uninspectedText, withOpenTimes } from '../../status.ts';
import type { Command, CommandContext, StatusEdges } from '../command.ts';
import { formatAge, table, terminalText } from '../format.ts';
/** Human-readable status: firewall line, sessions table, our rules, refusals, admin rules in range. */
export function statusText(status: StatusReport, nowMs: number): string[] {
  const lines = [
    `firewall: ${status.backend} ${status.firewall.active ? 'active' : 'INACTIVE'}, IPv6 ${status.firewall.ipv6 ? 'on' : 'off'}`,
  ];
  // The UFW fast path's state (hook in the files, loaded in the kernel, sets, members) and what is wrong.
  lines.push(...status.firewall.detail.filter((line) => line.startsWith('fast path:')));
  lines.push(...(status.firewall.problems ?? []).map((problem) => `PROBLEM: ${problem}`));
  lines.push('', `sessions (${status.sessions.length}):`);
  if (status.sessions.length > 0) {
    lines.push(
      table([
        ['USER', 'PID', 'PORT', 'LISTEN', 'CLIENT', 'AGE', 'OPENED', 'RULE'],
        ...status.sessions.map((session) => [
          session.user,
          String(session.pid),
          String(session.port),
          session.localAddress,
          session.clientAddress ?? 'unknown',
          formatAge(session.ageSeconds),
          session.openedAtMs === null ? 'unknown' : `${formatAge((nowMs - session.openedAtMs) / 1000)} ago`,
          session.rule,
        ]),
      ]),
    );
  }
  lines.push('', `rules of ours (${status.rules.length}):`);
  for (const rule of status.rules) {
    lines.push(
      `  ${rule.port}/udp ${rule.family} from ${rule.source}  ${rule.state === 'stale' ? 'STALE (no session; next sync removes it)' : 'live'}`,
    );
  }
  if (status.refused.length > 0) {
    lines.push('', `refused (${status.refused.length}):`);
    for (const holder of status.refused) {
      lines.push(
        `  ${holder.port}/udp pid ${holder.pid} user ${terminalText(holder.user)} exe ${terminalText(holder.exe)}: ${terminalText(holder.reason)}`,
      );
    }
  }
  if (status.uninspected.length > 0) {
    lines.push('', `processes whose fds could not be read (${status.uninspected.length}):`);
    for (const blind of status.uninspected) lines.push(`  ${terminalText(uninspectedText(blind))}`);
  }
  if (status.foreignInRange.length > 0) {
    lines.push('', 'rules not ours that match UDP in the range (never changed by moshwall):');
    for (const rule of status.foreignInRange) lines.push(`  ${terminalText(rule.raw)}`);
  }
  for (const warning of status.warnings) lines.push('', `warning: ${terminalText(warning)}`);
  if (status.ptrace && !status.ptrace.injectionBlocked) lines.push('', `warning: ${status.ptrace.detail}`);
  return lines;
}

const DEFAULT_INTERVAL_S = 2;

/** --interval in ms (default DEFAULT_INTERVAL_S); a UsageError when it is no number of seconds in 0.2..3600. */
export function parseInterval(value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_INTERVAL_S * 1000;
  const seconds = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds >= 0.2 && seconds <= 3600))
    throw new UsageError(
      `--interval must be a number of seconds from 0.2 to 3600, got ${JSON.stringify(value)}`,
    );
  return Math.round(seconds * 1000);
}

/**
 * Redraws `render()` every intervalMs (in place on a terminal; one block after another, or one JSON line
 * each, otherwise) until SIGINT; a round that fails shows its error and the next one tries again.
 * Resolves with 0 once interrupted.
 */
export function watch(
  context: Pick<CommandContext, 'out'>,
  edges: StatusEdges,
  intervalMs: number,
  render: () => Promise<string>,
  json: boolean,
): Promise<number> {
  return new Promise((resolve) => {
    let stopped = false;
    let timer: ReturnType<StatusEdges['clock']['setTimeout']> | undefined;
    let first = true;
    const release = edges.onInterrupt(() => {
      stopped = true;
      edges.clock.clear(timer);
      release();
      resolve(0);
    });
    const round = async () => {
      let text: string;
      try {
        text = await render();
      } catch (error) {
        text = `status failed: ${describeError(error)} (trying again in ${intervalMs / 1000} s)`;
      }
      if (stopped) return;
      if (edges.isTerminal && !json) edges.clearScreen();
      else if (!first && !json) context.out('');
      first = false;
      const stamp = new Date(edges.wallNow()).toISOString();
      context.out(json ? text : `${text}\n\n(every ${intervalMs / 1000} s, ${stamp}; Ctrl-C ends)`);
      timer = edges.clock.setTimeout(() => void round(), intervalMs);
    };
    void round();
  });
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'Show sessions, their rule state, rules of ours (live and stale) and refusals',
  description: `Reads /proc and the firewall and changes nothing. Each session's RULE column says:
open (our rule is in place), missing (the next sync adds it), covered (an admin rule already allows
it), conflict (an admin rule has the same match, e.g. a deny; moshwall leaves the port alone), or
unfiltered (the firewall is inactive). Rules of ours with no session are marked STALE. Processes
whose open files root may not read are listed with the read that failed: a root one is ignored, any
other one has every socket in the range owned by its uids refused.`,
  options: [
    { name: 'json', kind: 'flag', description: 'print the status as JSON' },
    { name: 'watch', kind: 'flag', description: 'redraw the status every interval until Ctrl-C' },
    {
      name: 'interval',
      kind: 'value',
      placeholder: 'SECONDS',
      description: `seconds between redraws with --watch (default ${DEFAULT_INTERVAL_S}, 0.2 to 3600)`,
    },
  ],
  needsRoot: true,
  async run(context, options) {
    const intervalMs = parseInterval(options.interval);
    const edges = context.statusEdges;
    const render = async () => {
      const nowMs = edges?.wallNow() ?? Date.now();
      const opened = await edges?.openedPorts(context.config);
      const status = withOpenTimes(await collectStatus(context.engine(), nowMs), opened);
      return options.json === true
        ? JSON.stringify(status, null, options.watch === true ? undefined : 2)
        : statusText(status, nowMs).join('\n');
    };
    if (options.watch !== true) {
      context.out(await render());
      return 0;
    }
    if (edges === undefined) throw new UsageError('--watch needs a terminal host (not available here)');
    return watch(context, edges, intervalMs, render, options.json === true);
  },
};
