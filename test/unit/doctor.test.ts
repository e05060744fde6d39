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

describe('doctor: processes whose fds cannot be read (issue 9)', () => {
  const processFindings = (f: DoctorFacts) =>
    diagnose(f)
      .filter((finding) => finding.check === 'processes')
      .map((finding) => [finding.level, finding.message]);
  const blind = { path: '/proc/1/fd/0', code: 'EACCES', exe: '' };

  it('names a root one as ignored and warns of a non-root one, saying whose sockets are refused', () => {
    const uninspected = [
      { ...blind, pid: 1, uids: [0], root: true },
      { ...blind, pid: 4242, uids: [1000], root: false, exe: '/usr/bin/sandboxed', path: '/proc/4242/fd' },
    ];
    assert.deepEqual(processFindings(facts({ uninspected })), [
      [
        'warn',
        'cannot inspect pid 4242 uid 1000 exe /usr/bin/sandboxed: reading /proc/4242/fd failed (EACCES); sockets in the range owned by uid 1000 are refused',
      ],
      ['ok', 'root processes whose fds cannot be read are ignored (root gains nothing from a socket): pid 1'],
    ]);
  });

  it('fails when /proc cannot be walked at all, and says nothing when it was not walked', () => {
    assert.deepEqual(processFindings(facts({ uninspected: new Error('Cannot read /proc (EACCES)') })), [
      ['fail', 'cannot scan /proc: Cannot read /proc (EACCES)'],
    ]);
    assert.deepEqual(processFindings(facts({})), []);
  });
});

describe('doctor: io_uring, which can hide a socket from /proc (issue 10 #11)', () => {
  const ioUring = (value: number | null) =>
    diagnose(facts({ ioUringDisabled: value }))
      .filter((finding) => finding.check === 'io_uring')
      .map((finding) => finding.level);

  it('warns while every user may make a ring, and not once it is limited or off', () => {
    assert.deepEqual(ioUring(0), ['warn']);
    assert.deepEqual(ioUring(null), ['warn']);
    assert.deepEqual(ioUring(1), ['ok']);
    assert.deepEqual(ioUring(2), ['ok']);
    assert.match(
      diagnose(facts({ ioUringDisabled: 0 })).find((finding) => finding.check === 'io_uring')?.message ?? '',
      /can hide a copy of its socket in a ring \/proc does not show/,
    );
  });
});
