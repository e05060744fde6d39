import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import { decide, familiesOf, type GroupDirectory } from '../../src/policy.ts';
import { anySpec, session } from '../support/builders.ts';

const groups: GroupDirectory = {
  gidOf: (name) => ({ mosh: 2000, staff: 50 })[name],
  membersOf: (name) => (name === 'staff' ? ['carol'] : []),
};

describe('familiesOf', () => {
  const cases: [string, 'v4' | 'v6', string[]][] = [
    ['0.0.0.0', 'v4', ['v4']],
    ['192.0.2.1', 'v4', ['v4']],
    ['::', 'v6', ['v4', 'v6']],
    ['2001:db8::1', 'v6', ['v6']],
    ['::ffff:192.0.2.1', 'v6', ['v4']],
  ];
  for (const [localAddress, family, expected] of cases) {
    it(`${localAddress} (${family}) receives on ${expected.join('+')}`, () => {
      assert.deepEqual(familiesOf({ family, localAddress }), expected);
    });
  }
});

describe('decide', () => {
  it('lets everyone through by default, from anywhere, in the families the socket receives', () => {
    const decision = decide(
      {
        sessions: [session({ port: 60001 }), session({ port: 60002, family: 'v6', localAddress: '::' })],
        refused: [],
      },
      DEFAULT_CONFIG,
      groups,
      true,
    );
    assert.deepEqual(decision.wanted, [anySpec(60001), anySpec(60002), anySpec(60002, 'v6')]);
    assert.deepEqual(decision.refused, []);
  });

  it('drops IPv6 when the firewall has it off, and warns for an IPv6-only socket', () => {
    const decision = decide(
      {
        sessions: [
          session({ port: 60002, family: 'v6', localAddress: '::' }),
          session({ port: 60003, family: 'v6', localAddress: '2001:db8::1' }),
        ],
        refused: [],
      },
      DEFAULT_CONFIG,
      groups,
      false,
    );
    assert.deepEqual(decision.wanted, [anySpec(60002)]);
    assert.match(decision.warnings[0] ?? '', /port 60003 .* IPv6 only/);
  });

  it('applies allow_users and allow_groups (by process gid or /etc/group membership)', () => {
    const config = { ...DEFAULT_CONFIG, allowUsers: ['alice'], allowGroups: ['mosh', 'staff'] };
    const decision = decide(
      {
        sessions: [
          session({ port: 60001, user: 'alice' }),
          session({ port: 60002, user: 'bob', gids: [1002, 2000] }),
          session({ port: 60003, user: 'carol', gids: [1003] }),
          session({ port: 60004, user: 'eve', gids: [1004] }),
        ],
        refused: [],
      },
      config,
      groups,
      false,
    );
    assert.deepEqual(
      decision.wanted.map((spec) => spec.port),
      [60001, 60002, 60003],
    );
    assert.equal(decision.refused.length, 1);
    assert.match(decision.refused[0]?.reason ?? '', /user eve is not in allow_users or allow_groups/);
  });

  it('caps ports per user, keeping the oldest sessions', () => {
    const config = { ...DEFAULT_CONFIG, maxSessionsPerUser: 2 };
    const decision = decide(
      {
        sessions: [
          session({ port: 60003, startedAtMs: 3 }),
          session({ port: 60001, startedAtMs: 1 }),
          session({ port: 60002, startedAtMs: 2 }),
          session({ port: 60004, user: 'bob', startedAtMs: 4 }),
        ],
        refused: [],
      },
      config,
      groups,
      false,
    );
    assert.deepEqual(
      decision.wanted.map((spec) => spec.port),
      [60001, 60002, 60004],
    );
    assert.match(decision.refused[0]?.reason ?? '', /alice already holds 2 ports/);
    assert.equal(decision.refused[0]?.port, 60003);
  });

  it('writes one spec per configured source network of the matching family', () => {
    const config = {
      ...DEFAULT_CONFIG,
      sourceNetworks: ['192.0.2.0/24', '198.51.100.0/24', '2001:db8::/32'],
    };
    const decision = decide(
      { sessions: [session({ port: 60001, family: 'v6', localAddress: '::' })], refused: [] },
      config,
      groups,
      true,
    );
    assert.deepEqual(decision.wanted, [
      { port: 60001, family: 'v4', source: '192.0.2.0/24' },
      { port: 60001, family: 'v4', source: '198.51.100.0/24' },
      { port: 60001, family: 'v6', source: '2001:db8::/32' },
    ]);
  });

  it('keeps a port closed while a process that failed verification also holds it (another address)', () => {
    const genuine = session({ port: 60080, family: 'v6', localAddress: '2001:db8::1' });
    const impostor = {
      ...session({ port: 60080, family: 'v6', localAddress: 'fe80::1', user: 'bob', pid: 777 }),
      reason: 'executable /usr/bin/python3.11 is not named mosh-server',
    };
    const decision = decide({ sessions: [genuine], refused: [impostor] }, DEFAULT_CONFIG, groups, true);
    assert.deepEqual(decision.wanted, []);
    assert.match(
      decision.refused[1]?.reason ?? '',
      /port 60080 is also held by pid 777 .*would expose that process/,
    );
    const otherFamily = { ...impostor, family: 'v4' as const, localAddress: '192.0.2.1' };
    assert.deepEqual(
      decide({ sessions: [genuine], refused: [otherFamily] }, DEFAULT_CONFIG, groups, true).wanted,
      [anySpec(60080, 'v6')],
      'a holder in a family the session does not receive on does not matter',
    );
  });

  it('passes the scan refusals through', () => {
    const refusedHolder = { ...session({ port: 60009 }), reason: 'traced by pid 1' };
    const decision = decide({ sessions: [], refused: [refusedHolder] }, DEFAULT_CONFIG, groups, true);
    assert.deepEqual(decision.refused, [refusedHolder]);
    assert.deepEqual(decision.wanted, []);
  });
});

describe('decide: a squatter outside traffic cannot reach (issue 10 #6)', () => {
  it('opens the genuine session though an unreachable (loopback) refused holder shares its port', () => {
    const genuine = session({ port: 60090, localAddress: '192.0.2.1' });
    const squatter = {
      ...session({ port: 60090, localAddress: '127.0.0.1', user: 'bob', pid: 778 }),
      reason: 'executable /usr/bin/socat is not named mosh-server',
      unreachable: true as const,
    };
    const decision = decide({ sessions: [genuine], refused: [squatter] }, DEFAULT_CONFIG, groups, true);
    assert.deepEqual(decision.wanted, [anySpec(60090, 'v4')]);
    assert.deepEqual(decision.refused, [squatter], 'the squatter is still listed as refused');
    const { unreachable: _, ...reachable } = squatter;
    assert.deepEqual(
      decide({ sessions: [genuine], refused: [reachable] }, DEFAULT_CONFIG, groups, true).wanted,
      [],
      'the same holder counts when it could be reached',
    );
  });
});

describe('decide: a squatter on [::] with IPV6_V6ONLY (issue 10 #6)', () => {
  it('does not keep an IPv4 session closed, and still keeps an IPv6 one closed', () => {
    const squatter = {
      ...session({ port: 60091, family: 'v6', localAddress: '::', user: 'bob', pid: 779 }),
      reason: 'executable /usr/bin/python3.11 is not named mosh-server',
      v6only: true as const,
    };
    const v4 = session({ port: 60091, localAddress: '192.0.2.1' });
    assert.deepEqual(decide({ sessions: [v4], refused: [squatter] }, DEFAULT_CONFIG, groups, true).wanted, [
      anySpec(60091, 'v4'),
    ]);
    const v6 = session({ port: 60091, family: 'v6', localAddress: '2001:db8::1' });
    assert.deepEqual(
      decide({ sessions: [v6], refused: [squatter] }, DEFAULT_CONFIG, groups, true).wanted,
      [],
    );
  });
});
