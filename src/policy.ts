import type { Config } from './config.ts';
import type { Family, MoshSession, RefusedHolder, ScanResult } from './model.ts';
import { anywhere, isV4Mapped } from './net.ts';
import { type RuleSpec, uniqueSpecs } from './rules.ts';

/** Group facts policy needs: gid of a group name and its listed members (from /etc/group). */
export interface GroupDirectory {
  gidOf(name: string): number | undefined;
  membersOf(name: string): string[];
}

/** A session that policy lets through, with the rule specs it needs. */
export interface AllowedSession {
  session: MoshSession;
  specs: RuleSpec[];
}

/** What policy decided: sessions that get a port, everything refused (with why), and the union of specs. */
export interface PolicyDecision {
  allowed: AllowedSession[];
  refused: RefusedHolder[];
  wanted: RuleSpec[];
  /** Sessions that cannot be served as the firewall is configured (e.g. IPv6-only socket, IPv6 off). */
  warnings: string[];
}

/**
 * The address families a socket can receive on: a v6 wildcard is dual-stack unless known to be
 * IPV6_V6ONLY, a v4-mapped one is v4.
 */
export function familiesOf(
  session: Pick<MoshSession, 'family' | 'localAddress'> & { v6only?: true },
): Family[] {
  if (session.family === 'v4') return ['v4'];
  if (session.localAddress === '::') return session.v6only === true ? ['v6'] : ['v4', 'v6'];
  if (isV4Mapped(session.localAddress)) return ['v4'];
  return ['v6'];
}

/** Why policy refuses this user, or undefined when allow_users/allow_groups let them in. */
function userRefusal(session: MoshSession, config: Config, groups: GroupDirectory): string | undefined {
  if (config.allowUsers.length === 0 && config.allowGroups.length === 0) return undefined;
  if (config.allowUsers.includes(session.user)) return undefined;
  for (const group of config.allowGroups) {
    const gid = groups.gidOf(group);
    if (gid !== undefined && session.gids.includes(gid)) return undefined;
    if (groups.membersOf(group).includes(session.user)) return undefined;
  }
  return `user ${session.user} is not in allow_users or allow_groups`;
}

/**
 * Why a session's port must stay closed because a process that failed verification also holds that
 * port in a family the session receives on (e.g. bound to another address): a rule to the port would
 * let packets reach that process too. A holder outside traffic cannot reach (loopback, see
 * RefusedHolder.unreachable) does not count. Undefined when no such holder exists.
 */
function sharedWith(session: MoshSession, refusedHolders: RefusedHolder[]): string | undefined {
  const families = new Set(familiesOf(session));
  const other = refusedHolders.find(
    (holder) =>
      holder.port === session.port &&
      holder.unreachable !== true &&
      familiesOf(holder).some((family) => families.has(family)),
  );
  return other
    ? `port ${session.port} is also held by pid ${other.pid} (${other.reason}); opening it would expose that process`
    : undefined;
}

/** A refusal record for a verified session that policy turned away. */
function refusal(session: MoshSession, reason: string): RefusedHolder {
  const { pid, uid, user, port, family, localAddress, exe } = session;
  return { pid, uid, user, port, family, localAddress, exe, reason };
}

/** Applies users, groups, the per-user cap, IPv6 availability and source networks to a scan. */
export function decide(
  scan: ScanResult,
  config: Config,
  groups: GroupDirectory,
  ipv6: boolean,
): PolicyDecision {
  const refused = [...scan.refused];
  const warnings: string[] = [];
  const allowed: AllowedSession[] = [];
  const portsByUser = new Map<string, Set<number>>();
  const oldestFirst = [...scan.sessions].sort((a, b) => a.startedAtMs - b.startedAtMs || a.pid - b.pid);
  for (const session of oldestFirst) {
    const why = userRefusal(session, config, groups);
    if (why) {
      refused.push(refusal(session, why));
      continue;
    }
    const ports = portsByUser.get(session.user) ?? new Set<number>();
    if (
      config.maxSessionsPerUser > 0 &&
      !ports.has(session.port) &&
      ports.size >= config.maxSessionsPerUser
    ) {
      refused.push(
        refusal(session, `user ${session.user} already holds ${ports.size} ports (max_sessions_per_user)`),
      );
      continue;
    }
    const shared = sharedWith(session, scan.refused);
    if (shared) {
      refused.push(refusal(session, shared));
      continue;
    }
    const families = familiesOf(session).filter((family) => family === 'v4' || ipv6);
    if (families.length === 0) {
      warnings.push(
        `port ${session.port} (pid ${session.pid}) listens on IPv6 only, and the firewall's IPv6 is off`,
      );
      continue;
    }
    ports.add(session.port);
    portsByUser.set(session.user, ports);
    allowed.push({ session, specs: specsFor(session.port, families, config.sourceNetworks) });
  }
  return { allowed, refused, wanted: uniqueSpecs(allowed.flatMap((entry) => entry.specs)), warnings };
}

/** Rule specs for one port: each family from anywhere, or from each configured network of that family. */
function specsFor(port: number, families: Family[], sourceNetworks: string[]): RuleSpec[] {
  return families.flatMap((family) => {
    if (sourceNetworks.length === 0) return [{ port, family, source: anywhere(family) }];
    return sourceNetworks
      .filter((network) => network.includes(':') === (family === 'v6'))
      .map((source) => ({ port, family, source }));
  });
}
