import { type SyncReport, syncOnce } from '../../engine.ts';
import type { Command } from '../command.ts';
import { describeApplied, describeSpec, terminalText } from '../format.ts';

/** The JSON shape of a sync report (documented in README "JSON output"). */
export function syncReportJson(report: SyncReport): object {
  return {
    dryRun: report.dryRun,
    firewall: { active: report.firewall.active, ipv6: report.firewall.ipv6 },
    opened: report.plan.allow,
    closed: report.plan.revoke,
    kept: report.plan.keep,
    deferred: report.plan.deferred.map((entry) => ({
      ...entry.spec,
      kind: entry.kind,
      rule: entry.rule.raw,
    })),
    sessions: report.sessions.map(({ session }) => session),
    refused: report.refused,
    warnings: report.warnings,
  };
}

/** Human-readable lines for a sync report. */
function syncReportText(report: SyncReport, verbose: boolean): string[] {
  const verb = report.dryRun ? 'would ' : '';
  const lines = [
    ...report.plan.allow.map((spec) => `${verb}open   ${describeSpec(spec)}`),
    ...report.plan.revoke.map((spec) => `${verb}close  ${describeSpec(spec)}`),
    ...report.plan.deferred.map(
      (entry) =>
        `leave  ${describeSpec(entry.spec)}: ${entry.kind === 'covered' ? 'already allowed by' : 'an admin rule has this match:'} ${entry.rule.raw}`,
    ),
    ...report.refused.map(
      (holder) =>
        `refuse ${holder.port}/udp pid ${holder.pid} (${terminalText(holder.user)}): ${terminalText(holder.reason)}`,
    ),
    ...report.warnings.map((warning) => `warning: ${warning}`),
  ];
  if (verbose) lines.push(...describeApplied(report.applied));
  const changes = report.plan.allow.length + report.plan.revoke.length;
  lines.push(
    `${report.sessions.length} session(s), ${report.plan.keep.length} rule(s) kept, ${changes === 0 ? 'nothing to change' : `${report.plan.allow.length} ${verb}opened, ${report.plan.revoke.length} ${verb}closed`}`,
  );
  return lines;
}

export const syncCommand: Command = {
  name: 'sync',
  summary: 'Open the ports of live mosh sessions and close the rest of ours, once',
  description: `Scans /proc for genuine mosh-server processes, applies the policy, then adds the rules
that are missing and removes rules of ours that no session holds. Rules without moshwall's tag
are never changed. A second run at the same moment waits for the first, then finds nothing to do.
If the firewall is inactive nothing is blocked: sync changes nothing and exits 0 with a warning.`,
  options: [
    { name: 'dry-run', kind: 'flag', description: 'show what would change, change nothing' },
    { name: 'json', kind: 'flag', description: 'print the report as JSON' },
  ],
  needsRoot: true,
  async run(context, options) {
    const report = await syncOnce(context.engine(), { dryRun: options['dry-run'] === true });
    if (options.json === true) context.out(JSON.stringify(syncReportJson(report), null, 2));
    else context.out(syncReportText(report, context.verbose).join('\n'));
    return 0;
  },
};
