import type { MoshSession } from '../../src/model.ts';
import type { FirewallRule, RuleSpec } from '../../src/rules.ts';

/** A rule as a backend would list it; override what the test is about. */
export function rule(overrides: Partial<FirewallRule> & Pick<FirewallRule, 'ports'>): FirewallRule {
  const family = overrides.family ?? 'v4';
  const any = family === 'v4' ? '0.0.0.0/0' : '::/0';
  return {
    family,
    action: 'allow',
    direction: 'in',
    protocol: 'udp',
    source: any,
    destination: any,
    comment: '',
    ours: false,
    raw: `test rule ${JSON.stringify(overrides.ports)}`,
    ...overrides,
  };
}

/** A rule of ours for one spec. */
export function ourRule(spec: RuleSpec): FirewallRule {
  return rule({
    family: spec.family,
    source: spec.source,
    ports: [{ first: spec.port, last: spec.port }],
    comment: 'moshwall',
    ours: true,
  });
}

/** A verified session; override what the test is about. */
export function session(overrides: Partial<MoshSession> & Pick<MoshSession, 'port'>): MoshSession {
  return {
    pid: 1000 + overrides.port,
    uid: 1001,
    user: 'alice',
    gids: [1001],
    family: 'v4',
    localAddress: '0.0.0.0',
    exe: '/usr/bin/mosh-server',
    startedAtMs: 1_700_000_000_000,
    ...overrides,
  };
}

/** The "from anywhere" spec of a port and family. */
export function anySpec(port: number, family: 'v4' | 'v6' = 'v4'): RuleSpec {
  return { port, family, source: family === 'v4' ? '0.0.0.0/0' : '::/0' };
}

/** A v4 spec of a port, from `source` (anywhere unless given). */
export const v4 = (port: number, source = '0.0.0.0/0'): RuleSpec => ({ port, family: 'v4', source });

/** A v6 spec of a port, from `source` (anywhere unless given). */
export const v6 = (port: number, source = '::/0'): RuleSpec => ({ port, family: 'v6', source });

/** One line per rule with every field coverage decisions read, for comparing listed rules as text. */
export function ruleSummary(rule: FirewallRule): string {
  const ports =
    rule.ports === 'any'
      ? 'any'
      : rule.ports
          .map((range) => (range.first === range.last ? `${range.first}` : `${range.first}-${range.last}`))
          .join(',');
  const extras = [
    rule.interface === undefined ? '' : ` on ${rule.interface}`,
    rule.sourcePorts === undefined ? '' : ` sport ${rule.sourcePorts}`,
    rule.destination === '0.0.0.0/0' || rule.destination === '::/0' ? '' : ` to ${rule.destination}`,
    rule.comment === '' ? '' : ` "${rule.comment}"`,
  ].join('');
  return `${rule.ours ? 'OURS ' : ''}${rule.family} ${rule.action} ${rule.protocol} ${ports} from ${rule.source}${extras}`;
}
