import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONNTRACK_FIX,
  CONNTRACK_MISSING,
  createFlowCleaner,
  deleteFlowsArgv,
  flowFilters,
  parseDeleteResult,
  parseFlowPeers,
  parseVersion,
} from '../../src/conntrack.ts';
import { ExecError } from '../../src/errors.ts';
import type { ExecResult } from '../../src/exec.ts';
import { type StatusReport, withFlowPeers } from '../../src/status.ts';
import { v4, v6 } from '../support/builders.ts';
import { createRecordingRunner, inOrder, notInstalled } from './backends/recording-runner.ts';

// What conntrack v1.4.7 (Debian bookworm) printed, run for real in a network namespace.
const DELETED_ONE = {
  exitCode: 0,
  stdout:
    'udp      17 29 src=192.0.2.2 dst=192.0.2.1 sport=20321 dport=60001 [UNREPLIED] src=192.0.2.1 dst=192.0.2.2 sport=60001 dport=20321 mark=0 use=1\n',
  stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n',
};
const DELETED_NONE = {
  exitCode: 1,
  stdout: '',
  stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n',
};
const NOT_ROOT = {
  exitCode: 1,
  stdout: '',
  stderr:
    'conntrack v1.4.7 (conntrack-tools): Operation failed: sorry, you must be root or get CAP_NET_ADMIN capability to do this\n',
};
const VERSION = { exitCode: 0, stdout: 'conntrack v1.4.7 (conntrack-tools)\n', stderr: '' };

const result = (answer: { exitCode: number; stdout: string; stderr: string }): ExecResult => ({
  argv: ['conntrack', '-D'],
  durationMs: 3,
  ...answer,
});

describe('deleteFlowsArgv', () => {
  it('deletes by UDP destination port and family, from anywhere', () => {
    assert.deepEqual(deleteFlowsArgv(v4(60001)), [
      ...['conntrack', '-D', '-p', 'udp', '--orig-port-dst', '60001', '-f', 'ipv4'],
    ]);
    assert.deepEqual(deleteFlowsArgv(v6(61000)), [
      ...['conntrack', '-D', '-p', 'udp', '--orig-port-dst', '61000', '-f', 'ipv6'],
    ]);
  });

  it('adds the source network when the rule had one', () => {
    assert.deepEqual(deleteFlowsArgv(v4(60002, '198.51.100.0/24')), [
      ...['conntrack', '-D', '-p', 'udp', '--orig-port-dst', '60002', '-f', 'ipv4'],
      ...['--orig-src', '198.51.100.0/24'],
    ]);
    assert.deepEqual(deleteFlowsArgv(v6(60003, '2001:db8:1::/48')), [
      ...['conntrack', '-D', '-p', 'udp', '--orig-port-dst', '60003', '-f', 'ipv6'],
      ...['--orig-src', '2001:db8:1::/48'],
    ]);
  });

  for (const [name, spec] of [
    ['port 0', v4(0)],
    ['port 65536', v4(65536)],
    ['a fractional port', v4(60000.5)],
    ['host bits set', v4(60001, '10.0.0.1/8')],
    ['not a CIDR', v4(60001, '-F')],
    ['a v6 network on a v4 rule', v4(60001, '::/0')],
  ] as const) {
    it(`refuses ${name}, so no broader or odd delete is ever run`, () => {
      assert.throws(() => deleteFlowsArgv(spec), ExecError);
    });
  }
});

describe('flowFilters', () => {
  it('drops duplicates and networks that a delete from anywhere of the same port and family covers', () => {
    assert.deepEqual(
      flowFilters([
        v4(60001, '10.0.0.0/8'),
        v4(60001),
        v4(60001),
        v6(60001, '2001:db8::/32'),
        v4(60002, '10.0.0.0/8'),
        v4(60002, '192.0.2.0/24'),
      ]),
      [v4(60001), v6(60001, '2001:db8::/32'), v4(60002, '10.0.0.0/8'), v4(60002, '192.0.2.0/24')],
    );
  });
});

describe('parseDeleteResult', () => {
  it('reads the count of deleted entries', () => {
    assert.equal(parseDeleteResult(result(DELETED_ONE)), 1);
    assert.equal(
      parseDeleteResult(
        result({
          ...DELETED_ONE,
          stderr: 'conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted.\n',
        }),
      ),
      12,
    );
  });

  it('takes exit 1 with "0 flow entries have been deleted" as nothing to delete, not an error', () => {
    assert.equal(parseDeleteResult(result(DELETED_NONE)), 0);
  });

  it("throws with the tool's words on any other failure", () => {
    assert.throws(() => parseDeleteResult(result(NOT_ROOT)), /exited 1: .*CAP_NET_ADMIN/);
    assert.throws(() => parseDeleteResult(result({ exitCode: 0, stdout: '', stderr: '' })), /no output/);
    assert.throws(
      () => parseDeleteResult(result({ ...DELETED_ONE, exitCode: 1 })),
      /exited 1/,
      'exit 1 with entries deleted is not a known answer',
    );
  });
});

describe('parseVersion', () => {
  it('reads the version line', () => {
    assert.equal(parseVersion(VERSION.stdout), '1.4.7');
    assert.equal(parseVersion('something else'), undefined);
  });
});

describe('createFlowCleaner (golden commands)', () => {
  it('probes, then deletes the flows of each revoked rule with the exact argv, timeout and nothing else', async () => {
    const { runner, calls } = createRecordingRunner(
      inOrder([VERSION, DELETED_ONE, DELETED_NONE, DELETED_NONE, DELETED_ONE]),
    );
    const cleaner = createFlowCleaner(runner, 15000);
    assert.deepEqual(await cleaner.probe(), { available: true, version: '1.4.7' });
    const outcomes = await cleaner.forget([
      v4(60001),
      v6(60001),
      v4(60001, '10.0.0.0/8'),
      v4(60002, '192.0.2.0/24'),
      v6(60003, '2001:db8::/32'),
    ]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [
        ['conntrack', '--version'],
        ['conntrack', '-D', '-p', 'udp', '--orig-port-dst', '60001', '-f', 'ipv4'],
        ['conntrack', '-D', '-p', 'udp', '--orig-port-dst', '60001', '-f', 'ipv6'],
        [
          'conntrack',
          '-D',
          '-p',
          'udp',
          '--orig-port-dst',
          '60002',
          '-f',
          'ipv4',
          '--orig-src',
          '192.0.2.0/24',
        ],
        [
          'conntrack',
          '-D',
          '-p',
          'udp',
          '--orig-port-dst',
          '60003',
          '-f',
          'ipv6',
          '--orig-src',
          '2001:db8::/32',
        ],
      ],
    );
    assert.ok(calls.every((call) => call.options.timeoutMs === 15000 && call.options.input === undefined));
    assert.deepEqual(
      outcomes.map((outcome) => [outcome.spec.port, outcome.spec.family, outcome.ok && outcome.deleted]),
      [
        [60001, 'v4', 1],
        [60001, 'v6', 0],
        [60002, 'v4', 0],
        [60003, 'v6', 1],
      ],
    );
  });

  it('reports one failed delete and still runs the others', async () => {
    const { runner, calls } = createRecordingRunner(inOrder([NOT_ROOT, DELETED_ONE]));
    const outcomes = await createFlowCleaner(runner, 1000).forget([v4(60001), v4(60002)]);
    assert.equal(calls.length, 2);
    const [first, second] = outcomes;
    assert.ok(first && !first.ok && !first.missing && /CAP_NET_ADMIN/.test(first.reason));
    assert.ok(second?.ok && second.deleted === 1);
  });

  it('without the tool: the probe says what is missing, why and the fix; forget tries once, then stops', async () => {
    const { runner, calls } = createRecordingRunner((argv) => notInstalled(argv));
    const cleaner = createFlowCleaner(runner, 1000);
    assert.deepEqual(await cleaner.probe(), {
      available: false,
      problem: CONNTRACK_MISSING,
      fix: CONNTRACK_FIX,
    });
    assert.match(CONNTRACK_MISSING, /not installed: .*ESTABLISHED.*binds that port next/);
    const specs = [60001, 60002, 60003, 60004, 60005, 60006].map((port) => v4(port));
    calls.length = 0;
    const outcomes = await cleaner.forget(specs);
    assert.equal(calls.length, 1, 'the first ran; the rest were not tried');
    assert.equal(outcomes.length, 6);
    for (const outcome of outcomes) {
      assert.ok(!outcome.ok && outcome.missing && outcome.reason.includes(CONNTRACK_FIX));
    }
  });

  it('a tool that answers --version oddly is reported as not usable', async () => {
    const { runner } = createRecordingRunner(inOrder([{ exitCode: 2, stdout: '', stderr: 'odd' }]));
    const probe = await createFlowCleaner(runner, 1000).probe();
    assert.equal(probe.available, false);
    assert.match(probe.problem ?? '', /conntrack --version exited 2 \(odd\): when a session ends/);
  });
});

describe('parseFlowPeers (status: the client address a session uses now)', () => {
  it('takes the source of the flow to the port with the most time left, per family', () => {
    const text = [
      'udp      17 12 src=198.51.100.7 dst=192.0.2.1 sport=40000 dport=60001 src=192.0.2.1 dst=198.51.100.7 sport=60001 dport=40000 [ASSURED] mark=0 use=1',
      'udp      17 170 src=203.0.113.9 dst=192.0.2.1 sport=41000 dport=60001 src=192.0.2.1 dst=203.0.113.9 sport=60001 dport=41000 [ASSURED] mark=0 use=1',
      'udp      17 29 src=192.0.2.2 dst=192.0.2.1 sport=5353 dport=60999 [UNREPLIED] src=192.0.2.1 dst=192.0.2.2 sport=60999 dport=5353 mark=0 use=1',
      'conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.',
    ].join('\n');
    assert.deepEqual([...parseFlowPeers(text, 'v4', new Set([60001, 60002]))], [['60001/v4', '203.0.113.9']]);
  });

  it('the status takes the conntrack peer over the login address, and says where it came from', () => {
    const status = {
      sessions: [
        { port: 60001, family: 'v4', clientAddress: '192.0.2.2', clientAddressFrom: 'login' },
        { port: 60002, family: 'v4', clientAddress: null, clientAddressFrom: null },
      ],
    } as unknown as StatusReport;
    const peered = withFlowPeers(status, new Map([['60001/v4', '203.0.113.9']]));
    assert.deepEqual(
      peered.sessions.map((each) => [each.clientAddress, each.clientAddressFrom]),
      [
        ['203.0.113.9', 'conntrack'],
        [null, null],
      ],
    );
  });
});
