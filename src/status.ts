import type { FlowToolProbe } from './conntrack.ts';
import type { OpenedPort } from './daemon/protocol.ts';
import type { BackendProbe } from './firewall.ts';
import type { MoshSession, PortRange, RefusedHolder, UninspectedProcess } from './model.ts';
import type { PolicyDecision } from './policy.ts';
import type { PtraceReport } from './ptrace.ts';
import type { Plan } from './reconcile.ts';
import { type FirewallRule, type RuleSpec, specKey } from './rules.ts';

/** How the firewall treats a session's port. */
export type RuleState = 'open' | 'missing' | 'covered' | 'conflict' | 'unfiltered';

export interface SessionStatus extends Omit<MoshSession, 'clientAddress'> {
  ageSeconds: number;
  rule: RuleState;
  /** The client's address, or null when unknown. */
  clientAddress: string | null;
  /** Where clientAddress came from: the freshest conntrack flow to the port, the login's SSH_CONNECTION. */
  clientAddressFrom: 'conntrack' | 'login' | null;
  /** When the daemon added this port's rule (Unix ms), or null when unknown (no daemon, or opened before it). */
  openedAtMs: number | null;
}

export interface OurRuleStatus extends RuleSpec {
  /** live: a session wants it; stale: nobody does (the next sync removes it). */
  state: 'live' | 'stale';
}

/** Everything `moshwall status` shows. */
export interface StatusReport {
  backend: string;
  firewall: BackendProbe;
  sessions: SessionStatus[];
  refused: RefusedHolder[];
  /** Processes whose fds could not be read: root ones ignored, others' sockets refused (see README). */
  uninspected: UninspectedProcess[];
  rules: OurRuleStatus[];
  /** Rules that are not ours but match UDP ports in the range. */
  foreignInRange: FirewallRule[];
  warnings: string[];
  /** Whether conntrack(8) can delete a closed port's flows (see conntrack.ts). */
  conntrack?: FlowToolProbe;
  /** Whether a user can write into their own mosh-server unseen (Yama's ptrace_scope below 2). */
  ptrace?: PtraceReport;
}

/** The state of a session's specs: missing beats conflict beats covered beats open. */
function ruleStateOf(specs: RuleSpec[], plan: Plan): RuleState {
  const keys = new Set(specs.map(specKey));
  const touches = (list: RuleSpec[]) => list.some((spec) => keys.has(specKey(spec)));
  const deferred = plan.deferred.filter((entry) => keys.has(specKey(entry.spec)));
  if (touches(plan.allow)) return 'missing';
  if (deferred.some((entry) => entry.kind === 'conflict')) return 'conflict';
  if (deferred.length > 0) return 'covered';
  return 'open';
}

/** True when a rule could let UDP in to some port of the range. */
export function touchesRange(rule: FirewallRule, range: PortRange): boolean {
  if (rule.direction !== 'in' || (rule.protocol !== 'udp' && rule.protocol !== 'any')) return false;
  if (rule.ports === 'any') return true;
  return rule.ports.some((ports) => ports.first <= range.last && ports.last >= range.first);
}

/** Assembles the status view from a decision, the firewall's rules and the plan a sync would run. */
export function buildStatus(input: {
  backend: string;
  firewall: BackendProbe;
  decision: PolicyDecision;
  rules: FirewallRule[];
  plan: Plan;
  range: PortRange;
  nowMs: number;
  uninspected?: UninspectedProcess[];
}): StatusReport {
  const { decision, plan } = input;
  const revokeKeys = new Set(plan.revoke.map(specKey));
  return {
    backend: input.backend,
    firewall: input.firewall,
    sessions: decision.allowed.map(({ session, specs }) => ({
      ...session,
      clientAddress: session.clientAddress ?? null,
      clientAddressFrom: session.clientAddress === undefined ? null : 'login',
      openedAtMs: null,
      ageSeconds: Math.max(0, Math.round((input.nowMs - session.startedAtMs) / 1000)),
      rule: input.firewall.active ? ruleStateOf(specs, plan) : 'unfiltered',
    })),
    refused: decision.refused,
    uninspected: input.uninspected ?? [],
    rules: [...plan.keep, ...plan.revoke].map((spec) => ({
      ...spec,
      state: revokeKeys.has(specKey(spec)) ? 'stale' : 'live',
    })),
    foreignInRange: input.rules.filter((rule) => !rule.ours && touchesRange(rule, input.range)),
    warnings: decision.warnings,
  };
}

/** The status with each session's client address from conntrack ("port/family" → address) where known. */
export function withFlowPeers(status: StatusReport, peers: ReadonlyMap<string, string>): StatusReport {
  return {
    ...status,
    sessions: status.sessions.map((session) => {
      const peer = peers.get(`${session.port}/${session.family}`);
      return peer === undefined
        ? session
        : { ...session, clientAddress: peer, clientAddressFrom: 'conntrack' };
    }),
  };
}

/**
 * The status with each session's openedAtMs from the daemon's list (earliest of its families); sessions
 * the list does not name, or every one when there is no list (no daemon), stay null.
 */
export function withOpenTimes(status: StatusReport, opened: readonly OpenedPort[] | undefined): StatusReport {
  if (opened === undefined) return status;
  const byPort = new Map<number, number>();
  for (const entry of opened)
    byPort.set(entry.port, Math.min(byPort.get(entry.port) ?? entry.atMs, entry.atMs));
  return {
    ...status,
    sessions: status.sessions.map((session) => ({
      ...session,
      openedAtMs: byPort.get(session.port) ?? null,
    })),
  };
}

/** One uninspected process: pid, uids, exe, the failed read, and what it means for sockets. */
export function uninspectedText(blind: UninspectedProcess): string {
  const uids = blind.uids.length === 0 ? 'uid unknown' : `uid ${blind.uids.join(',')}`;
  const meaning = blind.root
    ? 'root: ignored'
    : blind.uids.length === 0
      ? 'every socket in the range is refused'
      : `sockets in the range owned by ${uids} are refused`;
  return `pid ${blind.pid} ${uids} exe ${blind.exe === '' ? '?' : blind.exe}: reading ${blind.path} failed (${blind.code}); ${meaning}`;
}
