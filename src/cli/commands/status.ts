import { collectStatus } from '../../engine.ts';
import { type StatusReport, uninspectedText } from '../../status.ts';
import type { Command } from '../command.ts';
import { formatAge, table, terminalText } from '../format.ts';

/** Human-readable status: firewall line, sessions table, our rules, refusals, admin rules in range. */
function statusText(status: StatusReport): string[] {
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
        ['USER', 'PID', 'PORT', 'LISTEN', 'CLIENT', 'AGE', 'RULE'],
        ...status.sessions.map((session) => [
          session.user,
          String(session.pid),
          String(session.port),
          session.localAddress,
          session.clientAddress ?? '-',
          formatAge(session.ageSeconds),
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

export const statusCommand: Command = {
  name: 'status',
  summary: 'Show sessions, their rule state, rules of ours (live and stale) and refusals',
  description: `Reads /proc and the firewall and changes nothing. Each session's RULE column says:
open (our rule is in place), missing (the next sync adds it), covered (an admin rule already allows
it), conflict (an admin rule has the same match, e.g. a deny; moshwall leaves the port alone), or
unfiltered (the firewall is inactive). Rules of ours with no session are marked STALE. Processes
whose open files root may not read are listed with the read that failed: a root one is ignored, any
other one has every socket in the range owned by its uids refused.`,
  options: [{ name: 'json', kind: 'flag', description: 'print the status as JSON' }],
  needsRoot: true,
  async run(context, options) {
    const status = await collectStatus(context.engine(), Date.now());
    if (options.json === true) context.out(JSON.stringify(status, null, 2));
    else context.out(statusText(status).join('\n'));
    return 0;
  },
};
