import type { SyncReport } from '../engine.ts';
import type { DaemonResponse } from './protocol.ts';

/** The answer to "open port N" from the report of a reconcile that started after the request. */
export function portOutcome(report: SyncReport, port: number): DaemonResponse {
  if (!report.firewall.active) return { ok: true, op: 'open', port, state: 'unfiltered' };
  const onPort = <T extends { port: number }>(list: T[]) => list.some((entry) => entry.port === port);
  const held = report.sessions.some((entry) => entry.session.port === port);
  if (held && (onPort(report.plan.allow) || onPort(report.plan.keep))) {
    return { ok: true, op: 'open', port, state: 'open' };
  }
  const deferred = report.plan.deferred.filter((entry) => entry.spec.port === port);
  const conflict = deferred.find((entry) => entry.kind === 'conflict');
  if (conflict) return { ok: false, port, error: `an admin rule decides port ${port}: ${conflict.rule.raw}` };
  if (held && deferred.length > 0) return { ok: true, op: 'open', port, state: 'covered' };
  const refused = report.refused.find((holder) => holder.port === port);
  if (refused) return { ok: false, port, error: `port ${port} refused: ${refused.reason}` };
  return { ok: false, port, error: `no genuine mosh-server holds port ${port}` };
}
