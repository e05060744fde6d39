import type { FirewallRule, RuleSpec } from '../../src/backends/types.ts';
import type { MoshSession } from '../../src/model.ts';

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
