import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import { type DoctorFacts, diagnose } from '../../src/doctor.ts';
import { rule } from '../support/builders.ts';

/** Facts of a healthy host with this backend and these rules. */
function facts(overrides: Partial<DoctorFacts>): DoctorFacts {
  return {
    isRoot: true,
    config: DEFAULT_CONFIG,
    backendName: 'nftables',
    probe: { installed: true, active: true, ipv6: true, detail: ['nftables v1.0.6'] },
    rules: [],
    moshServerProblem: undefined,
    hostHasIpv6: true,
    ...overrides,
  };
}

const rangeFindings = (f: DoctorFacts) =>
  diagnose(f)
    .filter((finding) => finding.check === 'range')
    .map((finding) => [finding.level, finding.message]);

describe('doctor: rules that could block the mosh range', () => {
  const reject = {
    ports: 'any' as const,
    action: 'reject' as const,
    protocol: 'any' as const,
    raw: 'inet t INPUT handle 11: reject',
  };

  it('warns about a reject the firewall evaluates before our accept, once per rule text', () => {
    const rules = [rule({ ...reject, family: 'v4' }), rule({ ...reject, family: 'v6' })];
    assert.deepEqual(rangeFindings(facts({ rules })), [
      [
        'warn',
        'a rule that is not an allow matches UDP in 60000:61000; sessions on its ports cannot connect: inet t INPUT handle 11: reject',
      ],
    ]);
  });

  it('says nothing of a catch-all reject below our jump (RHEL layouts, `-A INPUT -j REJECT`)', () => {
    const rules = [rule({ ...reject, afterOurs: true }), rule({ ...reject, family: 'v6', afterOurs: true })];
    assert.deepEqual(rangeFindings(facts({ rules })), [
      ['ok', 'no admin rule opens or blocks 60000:61000/udp as a whole'],
    ]);
  });
});

describe('doctor: a backend that is not installed', () => {
  for (const [backendName, fix] of [
    ['nftables', /^install nftables \(apt-get install nftables\)/],
    ['iptables', /^install iptables \(apt-get install iptables\)/],
    ['auto', /^install ufw, firewalld, nftables or iptables/],
  ] as const) {
    it(`${backendName}: names the package to install`, () => {
      const probe = { installed: false, active: false, ipv6: false, detail: ['nft is not installed'] };
      const finding = diagnose(facts({ backendName, probe })).find((each) => each.check === 'firewall');
      assert.equal(finding?.level, 'fail');
      assert.match(finding?.fix ?? '', fix);
    });
  }
});
