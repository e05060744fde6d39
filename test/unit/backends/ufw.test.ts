import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  allowArgv,
  assertSafeUfwArgv,
  createUfwBackend,
  parseUfwDefaults,
  parseUfwOutput,
  parseUfwStatus,
  planUfwCalls,
  revokeArgv,
  ufwArgvProblem,
} from '../../../src/backends/ufw.ts';
import { ExecError, FirewallError, MoshwallError } from '../../../src/errors.ts';
import type { RuleSpec } from '../../../src/rules.ts';
import { v4, v6 } from '../../support/builders.ts';
import {
  type CannedAnswer,
  capturedRuns,
  createRecordingRunner,
  inOrder,
  notInstalled,
  recordedBackend,
} from './recording-runner.ts';

const FIXTURES = new URL('../../fixtures/ufw/', import.meta.url);
const fixture = (path: string) => readFileSync(new URL(path, FIXTURES), 'utf8');
/** real(name): the answer real ufw gave in that run (test/fixtures/ufw/outputs.json, see capture.sh). */
const { outputs, real } = capturedRuns(FIXTURES);

const enoent = (path: string) =>
  Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });

/** A readFile over fixture files standing in for /etc/ufw/* and /etc/default/ufw. */
function files(map: Record<string, string>): (path: string) => string {
  return (path) => {
    const name = map[path];
    if (name === undefined) throw enoent(path);
    return fixture(name);
  };
}

const MIXED = files({
  '/etc/ufw/user.rules': 'mixed/user.rules',
  '/etc/ufw/user6.rules': 'mixed/user6.rules',
  '/etc/default/ufw': 'default-ufw',
});
const IPV6_OFF = files({
  '/etc/ufw/user.rules': 'ipv6-off/user.rules',
  '/etc/default/ufw': 'ipv6-off/default-ufw',
});

const TAIL = ['comment', 'moshwall'];
/** `ipset -n list` on a host without sets of ours (classic mode's look for leftovers). */
const NO_SETS: CannedAnswer = { exitCode: 0, stdout: 'f2b-sshd\n', stderr: '' };

function backendWith(answers: CannedAnswer[], readFile = MIXED, timeoutMs = 4321) {
  return recordedBackend(answers, (runner) => createUfwBackend({ runner, readFile, timeoutMs }));
}

describe('ufw backend: golden argv over a lifecycle', () => {
  it('allow v4+v6 → allow v4 only → allow source CIDRs → revoke all runs exactly these commands', async () => {
    const { backend, calls } = backendWith([
      real('allow-active-new'),
      real('allow-active-v4-new'),
      real('allow-active-cidr-new'),
      real('allow-active-v6-new'),
      real('delete-active-found'),
      real('delete-active-v4-found'),
      real('delete-active-cidr-found'),
      real('delete-active-v6-found'),
    ]);
    const both = [v4(60040), v6(60040)];
    const cidrs = [v4(60042, '10.0.0.0/8'), v6(60042, '2001:db8::/32')];
    const allowed = [
      ...(await backend.allow(both)),
      ...(await backend.allow([v4(60041)])),
      ...(await backend.allow(cidrs)),
    ];
    const revoked = await backend.revoke([...both, v4(60041), ...cidrs]);

    const expected = [
      ['ufw', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60040', ...TAIL],
      ['ufw', 'allow', 'proto', 'udp', 'from', '0.0.0.0/0', 'to', 'any', 'port', '60041', ...TAIL],
      ['ufw', 'allow', 'proto', 'udp', 'from', '10.0.0.0/8', 'to', 'any', 'port', '60042', ...TAIL],
      ['ufw', 'allow', 'proto', 'udp', 'from', '2001:db8::/32', 'to', 'any', 'port', '60042', ...TAIL],
      ['ufw', 'delete', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60040', ...TAIL],
      ['ufw', 'delete', 'allow', 'proto', 'udp', 'from', '0.0.0.0/0', 'to', 'any', 'port', '60041', ...TAIL],
      ['ufw', 'delete', 'allow', 'proto', 'udp', 'from', '10.0.0.0/8', 'to', 'any', 'port', '60042', ...TAIL],
      [
        'ufw',
        'delete',
        'allow',
        'proto',
        'udp',
        'from',
        '2001:db8::/32',
        'to',
        'any',
        'port',
        '60042',
        ...TAIL,
      ],
    ];
    assert.deepEqual(
      calls.map((call) => call.argv),
      expected,
    );
    for (const call of calls) {
      assert.deepEqual(call.options, { timeoutMs: 4321, env: { LANG: 'C', LC_ALL: 'C' } });
    }
    assert.deepEqual(
      [...allowed, ...revoked].map((change) => change.argv),
      expected,
    );
    assert.deepEqual(
      allowed.map((change) => change.specs),
      [both, [v4(60041)], [cidrs[0]], [cidrs[1]]],
    );
    assert.deepEqual(
      revoked.map((change) => change.kind),
      ['revoke', 'revoke', 'revoke', 'revoke'],
    );
    assert.equal(allowed[0]?.output, 'Rule added\nRule added (v6)');
  });

  it('never runs anything but allow/delete of our shape, and every delete carries our comment', async () => {
    const { backend, calls } = backendWith([
      real('version'),
      real('status-active'),
      NO_SETS,
      real('allow-active-new'),
      real('delete-active-found'),
      real('delete-active-missing'),
    ]);
    await backend.probe();
    await backend.listRules();
    await backend.allow([v4(60040), v6(60040)]);
    await backend.revoke([v4(60040), v6(60040)]);
    await backend.revoke([v4(60040), v6(60040)]);
    assert.deepEqual(
      calls.map((call) => call.argv.slice(0, 3).join(' ')),
      [
        'ufw version',
        'ufw status',
        'ipset -n list',
        'ufw allow proto',
        'ufw delete allow',
        'ufw delete allow',
      ],
    );
    const words = calls.flatMap((call) => call.argv);
    for (const forbidden of [
      'enable',
      'disable',
      'reset',
      'reload',
      '--force',
      'insert',
      'prepend',
      'route',
    ]) {
      assert.ok(!words.includes(forbidden), forbidden);
    }
    for (const call of calls.filter((c) => c.argv[1] === 'delete'))
      assert.deepEqual(call.argv.slice(-2), TAIL);
  });

  it('listRules and empty batches run no command at all', async () => {
    const { backend, calls } = backendWith([]);
    await backend.listRules();
    assert.deepEqual(await backend.allow([]), []);
    assert.deepEqual(await backend.revoke([]), []);
    assert.deepEqual(calls, []);
  });
});

describe('ufw backend: reading what ufw says', () => {
  const succeeded: [string, 'allow' | 'revoke', RuleSpec[], string][] = [
    ['allow, rule already there', 'allow', [v4(60040), v6(60040)], 'allow-active-existing'],
    ['allow, v4 there and v6 added', 'allow', [v4(60040), v6(60040)], 'allow-active-existing-v4-new-v6'],
    ['allow while ufw is inactive ("Rules updated")', 'allow', [v4(60040), v6(60040)], 'allow-inactive-new'],
    ['allow while inactive, rule already there', 'allow', [v4(60040), v6(60040)], 'allow-inactive-existing'],
    ['delete of a rule that is gone', 'revoke', [v4(60040), v6(60040)], 'delete-active-missing'],
    ['delete while inactive', 'revoke', [v4(60040), v6(60040)], 'delete-inactive-found'],
    ['delete while inactive, rule gone', 'revoke', [v4(60040), v6(60040)], 'delete-inactive-missing'],
    [
      'delete of an admin rule with our comment (none found)',
      'revoke',
      [v4(60010), v6(60010)],
      'delete-active-admin-plain',
    ],
  ];
  for (const [name, kind, specs, output] of succeeded) {
    it(`accepts ${name}`, async () => {
      const { backend, calls } = backendWith([real(output)]);
      const changes = await backend[kind](specs);
      assert.equal(calls.length, 1);
      assert.deepEqual(changes[0]?.specs, specs);
    });
  }

  const failed: [string, 'allow' | 'revoke', RuleSpec[], CannedAnswer, RegExp][] = [
    [
      'an adoption ("Rule updated")',
      'allow',
      [v4(60040), v6(60040)],
      real('allow-active-adopt-plain'),
      /changed an existing rule/,
    ],
    [
      'an adoption of a deny',
      'allow',
      [v4(60041), v6(60041)],
      real('allow-active-adopt-deny'),
      /Rule updated/,
    ],
    [
      'an ERROR with exit 1',
      'allow',
      [v4(60040), v6(60040)],
      real('allow-error-bad-port'),
      /failed with exit code 1: ERROR: Bad port/,
    ],
    [
      'IPv6 off in ufw on a delete',
      'revoke',
      [v6(60040)],
      real('delete-ipv6-off-v6'),
      /IPv6 support not enabled/,
    ],
    [
      'a combined call that reports v4 only',
      'allow',
      [v4(60040), v6(60040)],
      real('allow-ipv6-off-any'),
      /0 result lines for v6/,
    ],
    [
      'an added line on a delete',
      'revoke',
      [v4(60040)],
      real('allow-active-v4-new'),
      /unexpected line: `Rule added`/,
    ],
    [
      'a v6 line on a v4-only call',
      'allow',
      [v4(60040)],
      real('allow-active-v6-new'),
      /unexpected line: `Rule added \(v6\)`/,
    ],
    [
      'no output at all',
      'allow',
      [v4(60040)],
      { exitCode: 0, stdout: '', stderr: '' },
      /0 result lines for v4/,
    ],
    [
      'ERROR despite exit 0',
      'allow',
      [v4(60040)],
      { exitCode: 0, stdout: 'Rule added\n', stderr: 'ERROR: odd\n' },
      /ERROR: odd/,
    ],
    [
      'an unknown line',
      'allow',
      [v4(60040)],
      { exitCode: 0, stdout: 'Rule added\nRule frobbed\n', stderr: '' },
      /unexpected line/,
    ],
    [
      'a non-zero exit without words',
      'allow',
      [v4(60040)],
      { exitCode: 3, stdout: '', stderr: '' },
      /exit code 3: no output/,
    ],
    [
      'a spawn failure',
      'allow',
      [v4(60040)],
      new ExecError('ufw did not finish within 4321 ms', {}),
      /did not finish/,
    ],
  ];
  for (const [name, kind, specs, answer, message] of failed) {
    it(`throws on ${name}`, async () => {
      const { backend } = backendWith([answer]);
      await assert.rejects(backend[kind](specs), (error: unknown) => {
        assert.ok(error instanceof MoshwallError, String(error));
        assert.match(error.message, message);
        if (!(answer instanceof Error)) {
          assert.equal(error.code, 'EFIREWALL');
          assert.equal(error.context.exitCode, answer.exitCode);
          assert.equal(error.context.stderr, answer.stderr.trim());
          assert.match(String(error.context.argv), /^ufw (delete )?allow proto udp .* comment moshwall$/);
        }
        return true;
      });
    });
  }

  it('says how many calls of a batch had succeeded when a later one fails', async () => {
    const { backend, calls } = backendWith([real('allow-active-v4-new'), real('allow-error-bad-port')]);
    await assert.rejects(backend.allow([v4(60040), v4(60041)]), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.match(
        error.message,
        /\(1 of 2 ufw steps had succeeded; applied: allow v4 udp 60040; not applied: allow v4 udp 60041\)$/,
      );
      assert.equal(error.context.completed, 1);
      return true;
    });
    assert.equal(calls.length, 2);
  });

  it('ignores WARN lines', () => {
    assert.deepEqual(
      parseUfwOutput('WARN: Rule changed after normalization\nRule added\n').map((line) => line.kind),
      ['warning', 'added'],
    );
  });
});

describe('ufw backend: never taking over a rule that is not ours', () => {
  const conflicts: [string, RuleSpec[], RegExp][] = [
    ['a plain admin rule', [v4(60010), v6(60010)], /allow udp 60010 0\.0\.0\.0\/0 any 0\.0\.0\.0\/0 in/],
    ['a commented admin rule', [v4(60011)], /comment=61646d696e206d6f7368/],
    ['an admin deny', [v6(60030)], /deny udp 60030 ::\/0/],
    ['an admin rule with a source', [v4(60080, '10.0.0.0/8')], /10\.0\.0\.0\/8/],
  ];
  for (const [name, specs, rule] of conflicts) {
    it(`refuses to allow the spec of ${name}, running nothing`, async () => {
      const { backend, calls } = backendWith([real('allow-active-new')]);
      await assert.rejects(backend.allow([v4(60040), ...specs]), (error: unknown) => {
        assert.ok(error instanceof FirewallError);
        assert.match(
          error.message,
          /^Refusing to allow .* ufw would take over the existing rule `.*`, which is not ours$/,
        );
        assert.match(String(error.context.rule), rule);
        return true;
      });
      assert.deepEqual(calls, []);
    });
  }

  const fine: [string, RuleSpec[]][] = [
    ['a port inside an admin range', [v4(60150), v6(60150)]],
    ['the port of an interface rule', [v4(60020)]],
    ['the port of an admin rule, from another source', [v4(60010, '192.0.2.0/24')]],
    ['the port of an admin source rule, from anywhere', [v4(60080)]],
    ['a spec we already have', [v4(60013), v6(60013)]],
  ];
  for (const [name, specs] of fine) {
    it(`allows ${name}`, async () => {
      const { backend, calls } = backendWith(
        specs.length === 2 ? [real('allow-active-existing')] : [real('allow-active-v4-new')],
      );
      await backend.allow(specs);
      assert.equal(calls.length, 1);
    });
  }
});

describe('ufw backend: IPv6 setting', () => {
  it('refuses v6 specs with IPV6=no, running nothing', async () => {
    const { backend, calls } = backendWith([], IPV6_OFF);
    await assert.rejects(backend.allow([v4(60040), v6(60040)]), /Cannot open v6 port 60040: .*IPV6=yes/);
    assert.deepEqual(calls, []);
  });

  it('revokes only v4 with IPV6=no, with an explicit v4 source', async () => {
    const { backend, calls } = backendWith([real('delete-active-v4-found')], IPV6_OFF);
    await backend.revoke([v4(60040), v6(60040), v6(60041)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [
        [
          'ufw',
          'delete',
          'allow',
          'proto',
          'udp',
          'from',
          '0.0.0.0/0',
          'to',
          'any',
          'port',
          '60040',
          ...TAIL,
        ],
      ],
    );
  });

  it('does not read user6.rules with IPV6=no', async () => {
    const read: string[] = [];
    const readFile = (path: string) => {
      read.push(path);
      return IPV6_OFF(path);
    };
    const backend = createUfwBackend({
      runner: createRecordingRunner(inOrder([])).runner,
      readFile,
      timeoutMs: 1,
    });
    const rules = await backend.listRules();
    // after.rules only to see whether a fast-path hook is left over (it is not: no ipset command runs).
    assert.deepEqual(read.sort(), ['/etc/default/ufw', '/etc/ufw/after.rules', '/etc/ufw/user.rules']);
    assert.deepEqual(
      rules.map((rule) => `${rule.family} ${rule.ours}`),
      ['v4 true'],
    );
  });

  it('fails when user6.rules is missing with IPV6=yes', async () => {
    const readFile = files({ '/etc/ufw/user.rules': 'mixed/user.rules', '/etc/default/ufw': 'default-ufw' });
    const backend = createUfwBackend({
      runner: createRecordingRunner(inOrder([])).runner,
      readFile,
      timeoutMs: 1,
    });
    await assert.rejects(backend.listRules(), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.equal(error.context.path, '/etc/ufw/user6.rules');
      assert.ok(error.cause instanceof Error);
      return true;
    });
  });

  it('uses rulesDir and defaultsFile', async () => {
    const readFile = files({
      '/srv/ufw/user.rules': 'mixed/user.rules',
      '/srv/ufw/user6.rules': 'mixed/user6.rules',
      '/srv/default': 'default-ufw',
    });
    const runner = createRecordingRunner(inOrder([])).runner;
    const backend = createUfwBackend({
      runner,
      readFile,
      rulesDir: '/srv/ufw',
      defaultsFile: '/srv/default',
      timeoutMs: 1,
    });
    assert.equal((await backend.listRules()).filter((rule) => rule.ours).length, 5);
  });

  const defaults: [string, boolean][] = [
    ['IPV6=yes\n', true],
    ['IPV6=no\n', false],
    ['IPV6="yes"\n', true],
    ['ipv6=YES\n', true],
    ['# IPV6=yes\n', false],
    ['IPV6=yes\nIPV6=no\n', false],
    ['IPV6=yes # trailing words, which ufw keeps in the value\n', false],
    ['  IPV6=yes\n', false],
    ["IPV6='yes'\n", false],
    ['', false],
    [fixture('default-ufw'), true],
    [fixture('ipv6-off/default-ufw'), false],
  ];
  for (const [text, ipv6] of defaults) {
    it(`reads ${JSON.stringify(text.slice(0, 24))} as ipv6=${ipv6}`, () => {
      assert.equal(parseUfwDefaults(text).ipv6, ipv6);
    });
  }
});

describe('ufw backend: probe', () => {
  it('reports an active firewall with IPv6', async () => {
    const { backend, calls } = backendWith([real('version'), real('status-verbose-active'), NO_SETS]);
    assert.deepEqual(await backend.probe(), {
      installed: true,
      active: true,
      ipv6: true,
      detail: [
        'ufw 0.36.2',
        'status: active',
        'IPv6: yes (IPV6= in /etc/default/ufw)',
        'rules: /etc/ufw/user.rules, /etc/ufw/user6.rules',
        'fast path: ufw_fast_path = "off"',
      ],
    });
    // Classic mode looks once for sets an earlier fast mode left (none here).
    assert.deepEqual(
      calls.map((call) => call.argv),
      [
        ['ufw', 'version'],
        ['ufw', 'status'],
        ['ipset', '-n', 'list'],
      ],
    );
  });

  it('reports an inactive firewall without IPv6', async () => {
    const { backend } = backendWith([real('version'), real('status-inactive'), NO_SETS], IPV6_OFF);
    const probe = await backend.probe();
    assert.equal(probe.active, false);
    assert.equal(probe.ipv6, false);
    assert.deepEqual(probe.detail.slice(1), [
      'status: inactive',
      'IPv6: no (IPV6= in /etc/default/ufw)',
      'rules: /etc/ufw/user.rules',
      'fast path: ufw_fast_path = "off"',
    ]);
  });

  it('reports ufw missing without throwing', async () => {
    const { backend, calls } = backendWith([notInstalled(['ufw', 'version'])]);
    const probe = await backend.probe();
    assert.equal(probe.installed, false);
    assert.equal(probe.active, false);
    assert.match(probe.detail.join(' '), /ufw is not installed .*apt install ufw/);
    assert.equal(calls.length, 1);
  });

  it('reports a failing `ufw version` as not installed', async () => {
    const { backend } = backendWith([{ exitCode: 1, stdout: '', stderr: 'Traceback: broken\n' }]);
    const probe = await backend.probe();
    assert.equal(probe.installed, false);
    assert.match(probe.detail.join(' '), /exit 1\): Traceback: broken/);
  });

  it('rethrows other spawn failures (a timeout is not "missing")', async () => {
    const { backend } = backendWith([new ExecError('ufw did not finish within 1 ms', {})]);
    await assert.rejects(backend.probe(), ExecError);
  });

  it('throws when `ufw status` fails (not root)', async () => {
    const { backend } = backendWith([real('version'), real('status-not-root')]);
    await assert.rejects(backend.probe(), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.match(error.message, /You need to be root/);
      assert.equal(error.context.exitCode, 1);
      return true;
    });
  });

  it('says IPv6 is off when the defaults file is missing', async () => {
    const readFile = files({ '/etc/ufw/user.rules': 'mixed/user.rules' });
    const { runner } = createRecordingRunner(inOrder([real('version'), real('status-active-empty')]));
    const probe = await createUfwBackend({ runner, readFile, timeoutMs: 1 }).probe();
    assert.equal(probe.ipv6, false);
    assert.ok(probe.detail.includes('IPv6: no (/etc/default/ufw is missing)'));
  });

  const statuses: [string, boolean | undefined][] = [
    [outputs.get('status-active')?.stdout ?? '', true],
    [outputs.get('status-verbose-active')?.stdout ?? '', true],
    [outputs.get('status-inactive')?.stdout ?? '', false],
    [outputs.get('status-verbose-inactive')?.stdout ?? '', false],
    ['\nStatus: active\n', true],
    ['Status: activ\n', undefined],
    ['Statut : actif\n', undefined],
    ['', undefined],
  ];
  for (const [stdout, active] of statuses) {
    it(`reads status ${JSON.stringify(stdout.slice(0, 20))} as ${active}`, () => {
      assert.equal(parseUfwStatus(stdout), active);
    });
  }
});

describe('planUfwCalls / allowArgv / revokeArgv', () => {
  const words = (port: number, from?: string) => [
    'proto',
    'udp',
    ...(from === undefined ? [] : ['from', from]),
    'to',
    'any',
    'port',
    String(port),
    ...TAIL,
  ];
  const table: [string, RuleSpec[], string[][]][] = [
    ['both families from anywhere: one call', [v6(1), v4(1)], [words(1)]],
    ['v4 only', [v4(2)], [words(2, '0.0.0.0/0')]],
    ['v6 only', [v6(3)], [words(3, '::/0')]],
    ['duplicates dropped', [v4(4), v4(4), v6(4), v6(4)], [words(4)]],
    ['ports in order of first mention', [v4(9), v4(5), v6(9)], [words(9), words(5, '0.0.0.0/0')]],
    ['CIDRs get their own calls', [v4(6, '10.0.0.0/8'), v4(6), v6(6)], [words(6), words(6, '10.0.0.0/8')]],
    [
      'a v4 CIDR with v6 anywhere does not combine',
      [v4(7, '10.0.0.0/8'), v6(7)],
      [words(7, '10.0.0.0/8'), words(7, '::/0')],
    ],
    ['host source', [v4(8, '192.0.2.7/32')], [words(8, '192.0.2.7/32')]],
    ['nothing', [], []],
  ];
  for (const [name, specs, expected] of table) {
    it(name, () => {
      assert.deepEqual(
        allowArgv(specs),
        expected.map((rest) => ['ufw', 'allow', ...rest]),
      );
      assert.deepEqual(
        revokeArgv(specs),
        expected.map((rest) => ['ufw', 'delete', 'allow', ...rest]),
      );
    });
  }

  it('names the families ufw will report on', () => {
    assert.deepEqual(
      planUfwCalls('allow', [v4(1), v6(1), v6(2)]).map((call) => call.families),
      [['v4', 'v6'], ['v6']],
    );
  });

  const invalid: [string, RuleSpec][] = [
    ['port 0', v4(0)],
    ['port 65536', v4(65536)],
    ['fractional port', v4(1.5)],
    ['NaN port', v4(Number.NaN)],
    ['source with host bits', v4(1, '10.0.0.1/8')],
    ['bare address', v4(1, '10.0.0.1')],
    ['"any"', v4(1, 'any')],
    ['v6 source on v4 spec', v4(1, '::/0')],
    ['non-canonical v6', v6(1, '2001:DB8::/32')],
    ['shell words', v4(1, '0.0.0.0/0 comment x')],
    ['option-looking source', v4(1, '--force')],
  ];
  for (const [name, spec] of invalid) {
    it(`refuses ${name} before building argv`, () => {
      assert.throws(() => allowArgv([v4(2), spec]), FirewallError);
      assert.throws(() => revokeArgv([spec]), FirewallError);
    });
  }
});

describe('argv guard: only allow/delete of our shape, status, version, show', () => {
  const allowed: string[][] = [
    ['ufw', 'version'],
    ['ufw', 'status'],
    ['ufw', 'status', 'verbose'],
    ['ufw', 'show', 'added'],
    ['ufw', 'allow', ...['proto', 'udp', 'to', 'any', 'port', '60001'], ...TAIL],
    ['ufw', 'allow', ...['proto', 'udp', 'from', '10.0.0.0/8', 'to', 'any', 'port', '60001'], ...TAIL],
    ['ufw', 'delete', 'allow', ...['proto', 'udp', 'from', '::/0', 'to', 'any', 'port', '65535'], ...TAIL],
  ];
  for (const argv of allowed) {
    it(`lets \`${argv.join(' ')}\` run`, () => assert.equal(ufwArgvProblem(argv), undefined));
  }
  const refused: string[][] = [
    ['ufw', 'enable'],
    ['ufw', '--force', 'enable'],
    ['ufw', 'disable'],
    ['ufw', 'reset'],
    ['ufw', '--force', 'reset'],
    ['ufw', 'reload'],
    ['ufw', 'default', 'allow', 'incoming'],
    ['ufw', 'logging', 'off'],
    ['ufw', 'insert', '1', 'allow', '60001/udp'],
    ['ufw', 'route', 'allow', '60001/udp'],
    ['ufw', 'deny', ...['proto', 'udp', 'to', 'any', 'port', '60001'], ...TAIL],
    ['ufw', 'delete', '3'],
    ['ufw', 'delete', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60001'],
    ['ufw', 'delete', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60001', 'comment', 'admin'],
    ['ufw', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60001'],
    ['ufw', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60000:61000', ...TAIL],
    ['ufw', 'allow', 'proto', 'udp', 'to', 'any', 'port', '0', ...TAIL],
    ['ufw', 'allow', 'proto', 'udp', 'to', 'any', 'port', '060001', ...TAIL],
    ['ufw', 'allow', 'proto', 'tcp', 'to', 'any', 'port', '60001', ...TAIL],
    ['ufw', 'allow', 'proto', 'udp', 'from', '10.0.0.1/8', 'to', 'any', 'port', '60001', ...TAIL],
    ['ufw', 'allow', 'proto', 'udp', 'from', 'any', 'to', 'any', 'port', '60001', ...TAIL],
    ['ufw', 'allow', 'in', 'on', 'eth0', 'proto', 'udp', 'to', 'any', 'port', '60001', ...TAIL],
    ['ufw', 'status', 'numbered', 'extra'],
    ['ufw', 'show', 'anything'],
    ['ufw'],
    ['sh', '-c', 'ufw status'],
    ['/usr/sbin/ufw', 'status'],
  ];
  for (const argv of refused) {
    it(`refuses \`${argv.join(' ')}\``, () => assert.match(ufwArgvProblem(argv) ?? '', /./));
  }

  it('passes every argv the backend builds and throws a FirewallError for the rest', () => {
    // Every argv the backend can build passes the guard, and the guard's refusal is a FirewallError.
    for (const argv of [...allowArgv([v4(1), v6(1), v4(2, '10.0.0.0/8')]), ...revokeArgv([v6(3)])]) {
      assert.equal(ufwArgvProblem(argv), undefined, argv.join(' '));
    }
    assert.throws(
      () => assertSafeUfwArgv(['ufw', 'reload']),
      (error: unknown) => {
        assert.ok(error instanceof FirewallError);
        assert.match(error.message, /never runs `ufw reload`/);
        assert.equal(error.context.argv, 'ufw reload');
        return true;
      },
    );
  });
});
