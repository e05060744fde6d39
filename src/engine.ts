import type { Config } from './config.ts';
import type { FlowCleaner } from './conntrack.ts';
import { LockError, NoFirewallError } from './errors.ts';
import type { ReleaseLock } from './exec.ts';
import type { AppliedChange, Backend, BackendProbe } from './firewall.ts';
import type { Logger } from './log.ts';
import type { RefusedHolder, ScanResult } from './model.ts';
import { type AllowedSession, decide, type GroupDirectory } from './policy.ts';
import { ptraceReport } from './ptrace.ts';
import { type Plan, planChanges } from './reconcile.ts';
import { type FirewallRule, type RuleSpec, specOfRule } from './rules.ts';
import { buildStatus, type StatusReport, withFlowPeers } from './status.ts';

/** Everything a reconcile touches, injected so tests can replace each edge. */
export interface EngineDeps {
  config: Config;
  backend: Backend;
  scan: () => ScanResult;
  /** The same scan narrowed to one port's sockets and their likely holders (scan.ts `port`); optional. */
  scanPort?: (port: number) => ScanResult;
  groups: () => GroupDirectory;
  lock: (path: string, timeoutMs: number) => Promise<ReleaseLock | undefined>;
  /** Yama's ptrace_scope (undefined: no Yama), for status; status leaves it out without this. */
  readPtraceScope?: () => number | undefined;
  /** Who is holding the lock at `path` ("pid 12 (moshwall, uid 0)"), asked only once a wait timed out. */
  lockHolder?: (path: string) => string | undefined;
  log: Logger;
  /** Deletes the conntrack entries of revoked rules (conntrack.ts); absent, flows are left to time out. */
  flows?: FlowCleaner;
}

/** What one sync found and did. */
export interface SyncReport {
  firewall: BackendProbe;
  dryRun: boolean;
  sessions: AllowedSession[];
  refused: RefusedHolder[];
  warnings: string[];
  plan: Plan;
  applied: AppliedChange[];
}

const EMPTY_PLAN: Plan = { allow: [], revoke: [], keep: [], deferred: [] };

/** Probes the backend; a missing tool is an error, an inactive firewall is reported by the caller. */
export async function probeOrFail(backend: Backend): Promise<BackendProbe> {
  const probe = await backend.probe();
  if (!probe.installed) {
    throw new NoFirewallError(`${backend.name} is not usable: ${probe.detail.join('; ')}`, {
      backend: backend.name,
    });
  }
  return probe;
}

/** Runs `work` while holding moshwall's lock; waits up to lockTimeoutMs for another run to finish. */
export async function withLock<T>(
  deps: Pick<EngineDeps, 'config' | 'lock' | 'lockHolder'>,
  work: () => Promise<T>,
): Promise<T> {
  const { lockFile, lockTimeoutMs } = deps.config;
  const release = await deps.lock(lockFile, lockTimeoutMs);
  if (!release) {
    const holder = deps.lockHolder?.(lockFile);
    throw new LockError(
      `Another process held ${lockFile} for more than ${lockTimeoutMs} ms${holder ? `: ${holder}` : ''}; try again when it is done, or raise lock_timeout_ms`,
      { lockFile, lockTimeoutMs, holder },
    );
  }
  try {
    return await work();
  } finally {
    await release();
  }
}

export interface SyncOptions {
  dryRun: boolean;
  /** Called once the new rules are in place, before stale ones are revoked (revokes are slow in ufw). */
  onAllowed?: (report: SyncReport) => void;
  /** A recent probe to reuse (the daemon probes once, not on every reconcile). */
  firewall?: BackendProbe;
}

/**
 * One reconcile: scan /proc, apply policy, compare with our rules, allow what is missing, revoke what
 * no session holds. Discovery or listing failing throws before anything changes.
 */
export async function syncOnce(deps: EngineDeps, options: SyncOptions): Promise<SyncReport> {
  const firewall = options.firewall ?? (await probeOrFail(deps.backend));
  const base = { firewall, dryRun: options.dryRun, applied: [] as AppliedChange[] };
  if (!firewall.active) {
    const warning = `${deps.backend.name} is inactive: nothing is blocked, so nothing was changed`;
    const report = { ...base, sessions: [], refused: [], warnings: [warning], plan: EMPTY_PLAN };
    options.onAllowed?.(report);
    return report;
  }
  const run = async (): Promise<SyncReport> => {
    const decision = decide(deps.scan(), deps.config, deps.groups(), firewall.ipv6);
    const rules = await deps.backend.listRules();
    const plan = planChanges(decision.wanted, rules);
    const report: SyncReport = { ...base, ...decision, sessions: decision.allowed, plan, applied: [] };
    for (const deferred of plan.deferred) {
      deps.log.debug('deferred', {
        port: deferred.spec.port,
        family: deferred.spec.family,
        kind: deferred.kind,
        rule: deferred.rule.raw,
      });
    }
    if (options.dryRun) return report;
    report.applied.push(...((await deps.backend.prepare?.()) ?? []));
    if (plan.allow.length > 0) report.applied.push(...(await deps.backend.allow(plan.allow)));
    logSpecs(deps.log, 'opened', plan.allow, decision.allowed);
    options.onAllowed?.(report);
    report.applied.push(...(await revokeSpecs(deps, plan.revoke)));
    return report;
  };
  return options.dryRun ? run() : withLock(deps, run);
}

export interface QuickOpenOptions {
  /** The daemon's recent probe. */
  firewall: BackendProbe;
  /** The ports of ours each uid is known to hold (the last full reconcile, and quick opens since). */
  knownPorts: (uid: number) => ReadonlySet<number>;
  /** A clock in ms, for the report's `timings` (none without it). */
  now?: () => number;
}

/** Where a quick open's time went, in ms: the narrowed scan and policy, the listing, the change. */
export interface QuickTimings {
  scanMs: number;
  listMs: number;
  changeMs: number;
}

/**
 * The shim's quick path: one port's sockets and holders are checked (every genuineness and policy rule,
 * on a narrowed scan), its rules are added, nothing is revoked. Undefined when only a full reconcile
 * may answer: no narrowed scan here, or a per-user cap this port could cross (the full reconcile's
 * oldest-first order decides then). The daemon runs a full reconcile right after either way.
 */
export async function openPortQuickly(
  deps: EngineDeps,
  port: number,
  options: QuickOpenOptions,
): Promise<(SyncReport & { timings?: QuickTimings }) | undefined> {
  const { firewall } = options;
  if (deps.scanPort === undefined || !firewall.active) return undefined;
  const now = options.now;
  const begun = now?.();
  const decision = decide(deps.scanPort(port), deps.config, deps.groups(), firewall.ipv6);
  const scanned = now?.();
  const cap = deps.config.maxSessionsPerUser;
  const crossesCap = decision.allowed.some(({ session }) => {
    const others = [...options.knownPorts(session.uid)].filter((known) => known !== port);
    return cap > 0 && others.length + 1 > cap;
  });
  if (crossesCap) return undefined;
  return withLock(deps, async () => {
    const listing = now?.();
    const rules = await deps.backend.listRules();
    const listed = now?.();
    // The narrowed scan knows nothing of other ports: only this port's missing rules are added.
    const planned = planChanges(decision.wanted, rules);
    const plan: Plan = { ...planned, revoke: [] };
    const report: SyncReport = {
      firewall,
      dryRun: false,
      ...decision,
      sessions: decision.allowed,
      plan,
      applied: [],
    };
    if (plan.allow.length > 0) report.applied.push(...(await deps.backend.allow(plan.allow)));
    const changed = now?.();
    logSpecs(deps.log, 'opened', plan.allow, decision.allowed);
    if (now === undefined) return report;
    const span = (from?: number, to?: number) => Math.round(((to ?? 0) - (from ?? 0)) * 10) / 10;
    const timings = {
      scanMs: span(begun, scanned),
      listMs: span(listing, listed),
      changeMs: span(listed, changed),
    };
    return { ...report, timings };
  });
}

/**
 * Every revoke of ours goes through here (sync, daemon, flush, uninstall): removes the rules, then the
 * conntrack entries of their ports, so an old client's established flow cannot reach whatever binds the
 * port next. The flows go even when the revoke failed part-way (deleting a live rule's entry only makes
 * its next datagram pass the rules again); failing to delete them is logged and never fails the revoke.
 */
async function revokeSpecs(deps: EngineDeps, specs: RuleSpec[]): Promise<AppliedChange[]> {
  if (specs.length === 0) return [];
  try {
    const applied = await deps.backend.revoke(specs);
    logSpecs(deps.log, 'closed', specs, []);
    return applied;
  } finally {
    await forgetFlows(deps, specs);
  }
}

/** Deletes the revoked specs' conntrack entries and logs what happened, one line per spec. */
async function forgetFlows(deps: EngineDeps, specs: RuleSpec[]): Promise<void> {
  if (deps.flows === undefined) return;
  for (const outcome of await deps.flows.forget(specs)) {
    const { port, family, source } = outcome.spec;
    if (outcome.ok) {
      const fields = { port, family, source, deleted: outcome.deleted, ms: Math.round(outcome.durationMs) };
      if (outcome.deleted > 0) deps.log.info('flows-deleted', fields);
      else deps.log.debug('flows-deleted', fields);
    } else {
      deps.log.warn('flows-kept', { port, family, source, reason: outcome.reason });
    }
  }
}

/** Says once, as a warning with its fix, when conntrack(8) is missing (the daemon calls it at start). */
export async function reportFlowTool(deps: EngineDeps): Promise<void> {
  const probe = await deps.flows?.probe();
  if (probe !== undefined && !probe.available) {
    deps.log.warn('conntrack-missing', { problem: probe.problem, fix: probe.fix });
  }
}

/** Logs one line per changed spec, with the session that wanted it when there is one. */
function logSpecs(log: Logger, event: string, specs: RuleSpec[], sessions: AllowedSession[]): void {
  for (const spec of specs) {
    const owner = sessions.find((entry) => entry.session.port === spec.port)?.session;
    log.info(event, {
      port: spec.port,
      family: spec.family,
      source: spec.source,
      user: owner?.user,
      pid: owner?.pid,
    });
  }
}

/** Every rule of ours the firewall has, as specs. */
export function ourSpecs(rules: FirewallRule[]): RuleSpec[] {
  return rules.flatMap((rule) => {
    const spec = rule.ours ? specOfRule(rule) : undefined;
    return spec ? [spec] : [];
  });
}

/** Removes every rule of ours (whatever the firewall's state); foreign rules are never touched. */
export async function flushOurs(deps: EngineDeps): Promise<AppliedChange[]> {
  await probeOrFail(deps.backend);
  return withLock(deps, async () => {
    const revoked = await revokeSpecs(deps, ourSpecs(await deps.backend.listRules()));
    // Then the chain, jump and sets that held them, so the admin's ruleset is as it was before us.
    const removed = (await deps.backend.removeFootprint?.()) ?? [];
    return [...revoked, ...removed];
  });
}

/** The status view: scan, policy, rules and the plan a sync would run, changing nothing. */
export async function collectStatus(deps: EngineDeps, nowMs: number): Promise<StatusReport> {
  const firewall = await probeOrFail(deps.backend);
  const scan = deps.scan();
  const decision = decide(scan, deps.config, deps.groups(), firewall.ipv6);
  const rules = await deps.backend.listRules();
  const plan = planChanges(decision.wanted, rules);
  const status = buildStatus({
    ...(scan.uninspected === undefined ? {} : { uninspected: scan.uninspected }),
    backend: deps.backend.name,
    firewall,
    decision,
    rules,
    plan,
    range: deps.config.portRange,
    nowMs,
  });
  if (!firewall.active) status.warnings.push(`${deps.backend.name} is inactive: nothing is blocked`);
  if (deps.flows !== undefined) {
    status.conntrack = await deps.flows.probe();
    if (status.conntrack.problem !== undefined) {
      status.warnings.push(`${status.conntrack.problem}; fix: ${status.conntrack.fix ?? ''}`);
    }
  }
  if (deps.readPtraceScope) status.ptrace = ptraceReport(deps.readPtraceScope());
  if (deps.flows?.peers !== undefined && status.conntrack?.available === true && status.sessions.length > 0)
    return withFlowPeers(status, await deps.flows.peers(status.sessions));
  return status;
}
