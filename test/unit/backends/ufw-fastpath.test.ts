import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { assertSafeInstallUfwArgv } from '../../../src/backends/ufw/commands.ts';
import {
  fastPathRules,
  ipsetScript,
  memberOfSpec,
  parseHookLiveness,
  parseIpsetSave,
  runtimeRules,
  runtimeRulesIn,
  setHeadersDigest,
  specOfMember,
} from '../../../src/backends/ufw/fastpath.ts';
import { assertSafeUfwArgv, createUfwBackend } from '../../../src/backends/ufw.ts';
import { FirewallError } from '../../../src/errors.ts';
import { v4, v6 } from '../../support/builders.ts';
import {
  type CannedAnswer,
  capturedRuns,
  createRecordingRunner,
  notInstalled,
  recordedBackend,
} from './recording-runner.ts';

const FIXTURES = new URL('../../fixtures/ufw/', import.meta.url);
const fixture = (path: string) => readFileSync(new URL(path, FIXTURES), 'utf8');
const { real } = capturedRuns(FIXTURES);
const HOOKED_AFTER = `# BEGIN moshwall fast path (…)\n${fastPathRules('v4').join('\n')}\n# END moshwall fast path\n`;

/** /etc/ufw and /etc/default/ufw: the mixed rules (classic rules of ours on 60013, 60014, 60016 from 10/8). */
function files(extra: Record<string, string> = {}): (path: string) => string {
  const map: Record<string, string> = {
    '/etc/ufw/user.rules': fixture('mixed/user.rules'),
    '/etc/ufw/user6.rules': fixture('mixed/user6.rules'),
    '/etc/default/ufw': fixture('default-ufw'),
    ...extra,
  };
  return (path) => {
    const text = map[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
    return text;
  };
}

const ok = (stdout = ''): CannedAnswer => ({ exitCode: 0, stdout, stderr: '' });
const chain = (family: 'v4' | 'v6', rules: string[]) =>
  ok(
    `-N ${family === 'v4' ? 'ufw-after-input' : 'ufw6-after-input'}\n${rules.map((rule) => `${rule}\n`).join('')}`,
  );
const LIVE4 = chain('v4', fastPathRules('v4'));
const LIVE6 = chain('v6', fastPathRules('v6'));
const BARE4 = chain('v4', ['-A ufw-after-input -p udp -m udp --dport 137 -j ufw-skip-to-policy-input']);
const NO_CHAIN: CannedAnswer = {
  exitCode: 1,
  stdout: '',
  stderr: 'iptables: No chain/target/match by that name.\n',
};
const NO_SET: CannedAnswer = {
  exitCode: 1,
  stdout: '',
  stderr: 'ipset v7.17: The set with the given name does not exist\n',
};
const saved = (set: string, members: string[]) =>
  ok(
    `create ${set} bitmap:port range 0-65535\n${members.map((member) => `add ${set} ${member}\n`).join('')}`,
  );
const CREATES =
  'create moshwall-any4 bitmap:port range 0-65535\ncreate moshwall-any6 bitmap:port range 0-65535\n' +
  'create moshwall-net4 hash:net,port family inet\ncreate moshwall-net6 hash:net,port family inet6\n';
const LIVENESS = [
  ['iptables', '-w', '-S', 'ufw-after-input'],
  ['ip6tables', '-w', '-S', 'ufw6-after-input'],
];
const SAVES = ['moshwall-any4', 'moshwall-any6', 'moshwall-net4', 'moshwall-net6'].map((set) => [
  'ipset',
  'save',
  set,
]);

function fastBackend(answers: CannedAnswer[], readFile = files()) {
  return recordedBackend(answers, (runner) =>
    createUfwBackend({ runner, readFile, timeoutMs: 4321, fastPath: 'ipset' }),
  );
}

/** Resolves once every promise callback queued so far has run (setImmediate is not mocked). */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('ufw fast path: golden argv', () => {
  it('allow checks the hook is live in both families, then runs one ipset restore with every member', async () => {
    const { backend, calls } = fastBackend([LIVE4, LIVE6, ok()]);
    const changes = await backend.allow([v4(60040), v6(60040), v4(60042, '10.0.0.0/8'), v4(60040)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [...LIVENESS, ['ipset', '-exist', 'restore']],
    );
    assert.equal(
      calls[2]?.options.input,
      `${CREATES}add moshwall-any4 60040\nadd moshwall-any6 60040\nadd moshwall-net4 10.0.0.0/8,udp:60042\n`,
    );
    assert.ok(calls.every((call) => call.options.timeoutMs === 4321));
    assert.deepEqual(
      changes.map((change) => [change.kind, change.argv.join(' '), change.specs.length]),
      [['allow', 'ipset -exist restore', 4]],
    );
  });

  it('allow right after a listing that saw the hook live skips the check: one ipset restore', async () => {
    const { backend, calls } = fastBackend([NO_SET, NO_SET, NO_SET, NO_SET, LIVE4, LIVE6, ok()]);
    await backend.listRules();
    await backend.allow([v4(60040), v6(60040)]);
    assert.deepEqual(
      calls.slice(6).map((call) => call.argv),
      [['ipset', '-exist', 'restore']],
    );
  });

  it('allow refuses, naming the fix, when the chain is loaded without our rules; nothing stays added', async () => {
    const { backend, calls } = fastBackend([BARE4, ok(), ok()]);
    await assert.rejects(
      backend.allow([v4(60040)]),
      (error: unknown) =>
        error instanceof FirewallError &&
        error.code === 'EFIREWALL' &&
        /fast path is not in force: ufw-after-input .*moshwall install.*ufw reload/.test(error.message),
    );
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIVENESS[0], ['ipset', '-exist', 'restore'], ['ipset', '-exist', 'restore']],
      'only the family of the specs is checked; the member added beside the check is taken out again',
    );
    assert.equal(calls[1]?.options.input, `${CREATES}add moshwall-any4 60040\n`);
    assert.equal(calls[2]?.options.input, `${CREATES}del moshwall-any4 60040\n`);
  });

  it('allow with UFW not loaded at all (inactive) adds the members, as classic rules are written while inactive', async () => {
    const { backend, calls } = fastBackend([NO_CHAIN, ok()]);
    await backend.allow([v6(60041)]);
    assert.deepEqual(calls[0]?.argv, LIVENESS[1]);
    assert.equal(calls[1]?.options.input, `${CREATES}add moshwall-any6 60041\n`);
  });

  it('allow refuses a spec an admin rule has, before running anything (as classic mode does)', async () => {
    const { backend, calls } = fastBackend([]);
    await assert.rejects(backend.allow([v4(60010)]), /would take over the existing rule/);
    assert.deepEqual(calls, []);
  });

  it('listRules: admin and classic rules from the files, plus our members where the hook is live', async () => {
    const { backend, calls } = fastBackend([
      saved('moshwall-any4', ['60050']),
      saved('moshwall-any6', ['60050']),
      saved('moshwall-net4', ['10.0.0.0/8,udp:60051', '192.0.2.7,udp:60052']),
      NO_SET,
      LIVE4,
      chain('v6', []),
    ]);
    const rules = await backend.listRules();
    assert.deepEqual(
      calls.map((call) => call.argv),
      [...SAVES, ...LIVENESS],
    );
    const members = rules.filter((rule) => rule.raw.startsWith('ipset '));
    assert.deepEqual(
      members.map((rule) => [rule.family, rule.ports, rule.source, rule.ours, rule.comment, rule.raw]),
      [
        [
          'v4',
          [{ first: 60050, last: 60050 }],
          '0.0.0.0/0',
          true,
          'moshwall',
          'ipset moshwall-any4 60050 (moshwall fast path)',
        ],
        [
          'v4',
          [{ first: 60051, last: 60051 }],
          '10.0.0.0/8',
          true,
          'moshwall',
          'ipset moshwall-net4 10.0.0.0/8,udp:60051 (moshwall fast path)',
        ],
        [
          'v4',
          [{ first: 60052, last: 60052 }],
          '192.0.2.7/32',
          true,
          'moshwall',
          'ipset moshwall-net4 192.0.2.7/32,udp:60052 (moshwall fast path)',
        ],
      ],
      'the v6 member opens nothing (ufw6-after-input lacks our rules), so it is not listed',
    );
    const classicOurs = rules.filter((rule) => rule.ours && !rule.raw.startsWith('ipset '));
    assert.equal(
      classicOurs.length > 0,
      true,
      'classic rules of ours from before the switch are still listed',
    );
  });

  it('revoke is one ipset restore of every spec (-exist: absent members are no-ops) and ufw delete only for classic rules of ours', async () => {
    const { backend, calls } = fastBackend([ok(), { exitCode: 0, stdout: 'Rule deleted\n', stderr: '' }]);
    const changes = await backend.revoke([v4(60050), v4(60013), v4(60099), v4(60010)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [
        ['ipset', '-exist', 'restore'],
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
          '60013',
          'comment',
          'moshwall',
        ],
      ],
    );
    assert.equal(
      calls[0]?.options.input,
      `${CREATES}del moshwall-any4 60050\ndel moshwall-any4 60013\ndel moshwall-any4 60099\ndel moshwall-any4 60010\n`,
    );
    assert.deepEqual(
      changes.map((change) => change.kind),
      ['revoke', 'revoke'],
    );
  });

  it('a missing ipset says what to install', async () => {
    const { backend } = fastBackend([notInstalled(['ipset', 'save', 'moshwall-any4'])]);
    await assert.rejects(
      backend.listRules(),
      (error: unknown) =>
        error instanceof FirewallError &&
        /ipset is not installed, and UFW.s fast path needs it \(apt-get install ipset\)/.test(error.message),
    );
  });

  it('an ipset failure is a FirewallError with its words', async () => {
    const { backend } = fastBackend([
      LIVE4,
      { exitCode: 1, stdout: '', stderr: 'ipset v7.17: Error in line 5: Syntax error\n' },
    ]);
    await assert.rejects(
      backend.allow([v4(60040)]),
      /ipset restore \(allow 1 member\(s\)\) failed \(exit 1\): ipset v7\.17: Error in line 5/,
    );
  });

  it('classic mode with the hook still in after.rules sweeps members too (switched off)', async () => {
    const { backend, calls } = recordedBackend(
      [ok(), ok('Could not delete non-existent rule (v6)\n')],
      (runner) =>
        createUfwBackend({ runner, readFile: files({ '/etc/ufw/after.rules': HOOKED_AFTER }), timeoutMs: 1 }),
    );
    await backend.revoke([v6(60060, '2001:db8::/32')]);
    assert.deepEqual(
      calls.map((call) => call.argv.slice(0, 3)),
      [
        ['ipset', '-exist', 'restore'],
        ['ufw', 'delete', 'allow'],
      ],
      'classic mode still runs its ufw delete for every spec',
    );
    assert.equal(calls[0]?.options.input, `${CREATES}del moshwall-net6 2001:db8::/32,udp:60060\n`);
  });

  it('classic mode without the hook in after.rules runs no ipset command at all', async () => {
    const { backend, calls } = recordedBackend([ok('Could not delete non-existent rule\n')], (runner) =>
      createUfwBackend({ runner, readFile: files(), timeoutMs: 1 }),
    );
    await backend.listRules();
    await backend.revoke([v4(60060)]);
    assert.deepEqual(
      calls.map((call) => call.argv[0]),
      ['ufw'],
    );
  });

  it('probe says what the fast path is and flags a hook that is not loaded', async () => {
    const { backend } = fastBackend([
      ok('ufw 0.36.2\n'),
      ok('Status: active\n'),
      BARE4,
      LIVE6,
      NO_SET,
      NO_SET,
      NO_SET,
      NO_SET,
    ]);
    const probe = await backend.probe();
    assert.equal(probe.detail.at(-1), 'fast path chosen by: ufw_fast_path = "ipset"');
    assert.match(
      probe.detail.at(-2) ?? '',
      /^fast path: ipset sets matched by the hook in \/etc\/ufw\/after\.rules; hook in \/etc\/ufw\/after\.rules: no; in the kernel: v4 missing, v6 live; sets: none; members: 0$/,
    );
    assert.deepEqual(probe.problems, [
      'ufw_fast_path = "ipset" but /etc/ufw/after.rules has no moshwall hook: run `moshwall install`',
      "ufw-after-input is loaded without moshwall's ipset rules, so set members open nothing: run `moshwall install`",
    ]);
  });
});

describe('ufw fast path: sets and members', () => {
  it('anywhere goes to the bitmap set, a source CIDR to the net,port set', () => {
    assert.deepEqual(memberOfSpec(v4(60001)), { set: 'moshwall-any4', member: '60001' });
    assert.deepEqual(memberOfSpec(v6(60001, '2001:db8::/32')), {
      set: 'moshwall-net6',
      member: '2001:db8::/32,udp:60001',
    });
    assert.equal(ipsetScript('del', [v4(1), v4(1)]), 'del moshwall-any4 1\n');
    assert.equal(ipsetScript('add', []), '');
  });

  it('members read back as the specs they were written from, hosts printed without a prefix length', () => {
    assert.deepEqual(specOfMember('moshwall-net4', '192.0.2.7,udp:60001'), v4(60001, '192.0.2.7/32'));
    assert.deepEqual(specOfMember('moshwall-net6', '2001:db8::1,udp:60001'), v6(60001, '2001:db8::1/128'));
    assert.deepEqual(specOfMember('moshwall-any6', 'udp:60001'), v6(60001));
    for (const [set, member] of [
      ['moshwall-any4', '0'],
      ['moshwall-any4', '70000'],
      ['moshwall-net4', '10.0.0.1/8,udp:60001'],
      ['moshwall-net4', '10.0.0.0/8,tcp:60001'],
      ['moshwall-net4', '2001:db8::/32,udp:60001'],
    ] as const) {
      assert.equal(specOfMember(set, member), undefined, `${set} ${member}`);
    }
  });

  it('ipset save output: create lines skipped, foreign lines and members refused', () => {
    assert.deepEqual(
      parseIpsetSave(
        'moshwall-any4',
        'create moshwall-any4 bitmap:port range 0-65535\nadd moshwall-any4 60001\n',
      ),
      [v4(60001)],
    );
    assert.throws(() => parseIpsetSave('moshwall-any4', 'add other 1\n'), /unexpected line `add other 1`/);
    assert.throws(
      () => parseIpsetSave('moshwall-net4', 'add moshwall-net4 10.0.0.0/8,tcp:1\n'),
      /never writes/,
    );
  });

  it('hook liveness: live, missing, no chain, and a real failure', () => {
    assert.equal(
      parseHookLiveness('v4', { exitCode: 0, stdout: (LIVE4 as { stdout: string }).stdout, stderr: '' }),
      'live',
    );
    assert.equal(
      parseHookLiveness('v4', { exitCode: 0, stdout: '-N ufw-after-input\n', stderr: '' }),
      'missing',
    );
    assert.equal(
      parseHookLiveness('v6', {
        exitCode: 1,
        stdout: '',
        stderr: 'ip6tables: No chain/target/match by that name.',
      }),
      'no-chain',
    );
    assert.throws(
      () =>
        parseHookLiveness('v4', { exitCode: 4, stdout: '', stderr: 'Permission denied (you must be root)' }),
      /iptables -S ufw-after-input` failed \(exit 4\): Permission denied/,
    );
  });
});

/** `ipset -t list` text for our any4 set with these references and entries, plus a foreign set. */
function headers(references: number, entries: number): CannedAnswer {
  return ok(
    `Name: moshwall-any4\nType: bitmap:port\nRevision: 3\nHeader: range 0-65535\nSize in memory: 8264\n` +
      `References: ${references}\nNumber of entries: ${entries}\n\nName: f2b\nType: hash:ip\n` +
      `References: 1\nNumber of entries: ${entries + 7}\n`,
  );
}

describe('ufw fast path: watching our sets', () => {
  it('digests only our sets: references and member counts', () => {
    const text = (headers(2, 5) as { stdout: string }).stdout;
    assert.equal(setHeadersDigest(text), 'moshwall-any4 refs=2 entries=5');
    assert.equal(setHeadersDigest(''), '');
  });

  it('calls onChange when the hook rules go (references) or an admin flushes (entries), not otherwise', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const answers = [headers(2, 5), headers(2, 5), headers(0, 5), headers(0, 5), headers(0, 0)];
    let index = 0;
    const calls: string[] = [];
    const seen: string[] = [];
    const watched = createUfwBackend({
      runner: async (argv) => {
        calls.push(argv.join(' '));
        const answer = answers[Math.min(index++, answers.length - 1)] as {
          exitCode: number;
          stdout: string;
          stderr: string;
        };
        return { argv, durationMs: 1, ...answer };
      },
      readFile: files(),
      timeoutMs: 1,
      fastPath: 'ipset',
      watchIntervalMs: 2000,
    });
    const watch = watched.watchChanges?.((what) => seen.push(what));
    assert.ok(watch);
    await settled();
    assert.equal(index, 1, 'one quiet look at the start');
    for (let look = 1; look <= answers.length; look += 1) {
      t.mock.timers.tick(1999);
      await settled();
      assert.equal(index, look, 'no look before the interval');
      t.mock.timers.tick(1);
      await settled();
    }
    watch.close();
    t.mock.timers.tick(10_000);
    await settled();
    assert.equal(index, answers.length + 1, 'no look after close');
    assert.deepEqual(seen, [
      "moshwall's ipsets changed: moshwall-any4 refs=0 entries=5",
      "moshwall's ipsets changed: moshwall-any4 refs=0 entries=0",
    ]);
    assert.ok(calls.every((call) => call === 'ipset -t list'));
  });

  it("takes a quiet baseline after a change of ours, so our add then an admin's flush within one interval is still seen", async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    let entries = 0;
    const seen: string[] = [];
    const backend = createUfwBackend({
      runner: async (argv, options) => {
        const text = argv.join(' ');
        if (text === 'ipset -t list')
          return {
            argv,
            durationMs: 1,
            ...(headers(1, entries) as { exitCode: number; stdout: string; stderr: string }),
          };
        if (text === 'ipset -exist restore') entries += (options.input ?? '').split('\nadd ').length - 1;
        return {
          argv,
          durationMs: 1,
          ...(ok(fastPathRules('v4').join('\n')) as { exitCode: number; stdout: string; stderr: string }),
        };
      },
      readFile: files(),
      timeoutMs: 1,
      fastPath: 'ipset',
      watchIntervalMs: 200,
    });
    const watch = backend.watchChanges?.((what) => seen.push(what));
    assert.ok(watch);
    await settled();
    await backend.allow([v4(60040)]);
    await settled();
    entries = 0; // an admin's `ipset flush`, before the next interval
    assert.deepEqual(seen, []);
    t.mock.timers.tick(200);
    await settled();
    watch.close();
    assert.deepEqual(seen, ["moshwall's ipsets changed: moshwall-any4 refs=1 entries=0"]);
  });

  it('classic mode without the hook watches nothing', () => {
    const { backend, calls } = recordedBackend([], (runner) =>
      createUfwBackend({ runner, readFile: files(), timeoutMs: 1 }),
    );
    backend.watchChanges?.(() => undefined).close();
    assert.deepEqual(calls, []);
  });
});

describe('the ufw guard for install', () => {
  it('lets install run exactly `ufw reload`, and nothing else the backend may not run', () => {
    assert.doesNotThrow(() => assertSafeInstallUfwArgv(['ufw', 'reload']));
    assert.throws(() => assertSafeUfwArgv(['ufw', 'reload']), /never runs `ufw reload`/);
    for (const argv of [
      ['ufw', 'enable'],
      ['ufw', '--force', 'disable'],
      ['ufw', 'reset'],
      ['ufw', 'reload', 'now'],
    ]) {
      assert.throws(() => assertSafeInstallUfwArgv(argv), FirewallError, argv.join(' '));
    }
    assert.doesNotThrow(() => assertSafeInstallUfwArgv(['ufw', 'status']));
  });
});

describe('ufw fast path at run time (no UFW file edited)', () => {
  const RUNTIME4 = chain('v4', runtimeRules('v4'));
  const runtimeBackend = (answers: CannedAnswer[], fastPath: 'runtime' | 'auto' = 'runtime') =>
    recordedBackend(answers, (runner) =>
      createUfwBackend({ runner, readFile: files(), timeoutMs: 4321, fastPath }),
    );

  it('runtime rules are the hook rules tagged moshwall-runtime, and either set makes the chain live', () => {
    assert.deepEqual(runtimeRules('v4'), [
      '-A ufw-after-input -p udp -m set --match-set moshwall-any4 dst -m comment --comment moshwall-runtime -j ACCEPT',
      '-A ufw-after-input -p udp -m set --match-set moshwall-net4 src,dst -m comment --comment moshwall-runtime -j ACCEPT',
    ]);
    assert.equal(parseHookLiveness('v4', RUNTIME4 as never), 'live');
    assert.equal(parseHookLiveness('v4', LIVE4 as never), 'live');
    const half = chain('v4', [runtimeRules('v4')[0] ?? '']);
    assert.equal(parseHookLiveness('v4', half as never), 'missing');
    assert.deepEqual(
      runtimeRulesIn('v4', (RUNTIME4 as { stdout: string }).stdout).map((words) => words.slice(0, 2)),
      [
        ['-A', 'ufw-after-input'],
        ['-A', 'ufw-after-input'],
      ],
    );
    assert.deepEqual(runtimeRulesIn('v4', (LIVE4 as { stdout: string }).stdout), []);
  });

  it('allow into a chain UFW loaded without our rules places them (sets made first), and adds the member', async () => {
    const { backend, calls } = runtimeBackend([ok(), BARE4, ok(), ok(), ok(), ok()]);
    await backend.allow([v4(60040)]);
    assert.deepEqual(
      calls.map((call) => call.argv.join(' ')),
      [
        'iptables --version',
        'iptables -w -S ufw-after-input',
        'ipset -exist restore',
        'ipset -exist restore',
        `iptables -w ${runtimeRules('v4')[0]}`,
        `iptables -w ${runtimeRules('v4')[1]}`,
      ],
    );
    // The member beside the check, and our sets made before the rules that name them.
    assert.equal(calls[2]?.options.input, `${CREATES}add moshwall-any4 60040\n`);
    assert.equal(calls[3]?.options.input, CREATES);
  });

  it('a reconcile puts back the rules a UFW reload dropped, with no session to open (prepare)', async () => {
    const { runner, calls } = createRecordingRunner((argv) => {
      const text = argv.join(' ');
      if (text.startsWith('ipset save')) return NO_SET;
      if (text === 'iptables -w -S ufw-after-input') return BARE4;
      if (text === 'ip6tables -w -S ufw6-after-input') return NO_CHAIN;
      if (text === 'iptables --version') return ok('iptables v1.8.9 (nf_tables)\n');
      return ok(text === 'ipset -n list' ? 'moshwall-any4\n' : '');
    });
    const backend = createUfwBackend({ runner, readFile: files(), timeoutMs: 4321, fastPath: 'auto' });
    await backend.listRules();
    calls.length = 0;
    const placed = (await backend.prepare?.()) ?? [];
    assert.deepEqual(
      calls.map((call) => call.argv.join(' ')),
      [
        'ipset -exist restore',
        `iptables -w ${runtimeRules('v4')[0]}`,
        `iptables -w ${runtimeRules('v4')[1]}`,
      ],
    );
    assert.equal(placed.length, 1);
  });

  it('allow with our rules live runs only the ipset restore after the check; nothing placed twice', async () => {
    const { backend, calls } = runtimeBackend([ok(), RUNTIME4, ok()]);
    await backend.allow([v4(60040)]);
    assert.deepEqual(
      calls.map((call) => call.argv.join(' ')),
      ['iptables --version', 'iptables -w -S ufw-after-input', 'ipset -exist restore'],
    );
  });

  it('auto: ipset working means runtime; ipset missing means classic `ufw allow`', async () => {
    const fast = runtimeBackend([ok('moshwall-any4\n'), ok(), RUNTIME4, ok()], 'auto');
    await fast.backend.allow([v4(60040)]);
    assert.deepEqual(fast.calls[0]?.argv, ['ipset', '-n', 'list']);
    assert.deepEqual(fast.calls.at(-1)?.argv, ['ipset', '-exist', 'restore']);
    const classic = runtimeBackend(
      [notInstalled(['ipset', '-n', 'list']), { exitCode: 0, stdout: 'Rule added\n', stderr: '' }],
      'auto',
    );
    await classic.backend.allow([v4(60040)]);
    assert.deepEqual(classic.calls.at(-1)?.argv.slice(0, 3), ['ufw', 'allow', 'proto']);
  });

  it('flush: runtime rules deleted by their exact words, then our sets destroyed, once no member is left', async () => {
    const { backend, calls } = runtimeBackend([
      ok(),
      ...SAVES.map(() => NO_SET),
      NO_SET,
      NO_SET,
      NO_SET,
      NO_SET,
    ]);
    calls.length = 0;
    const setsNone = await backend.removeFootprint?.();
    assert.deepEqual(setsNone, []);
    const second = runtimeBackend([
      ok(),
      ok('moshwall-any4\nf2b\n'),
      ...SAVES.map(() => NO_SET),
      RUNTIME4,
      ok(),
      ok(),
      NO_CHAIN,
      ok('moshwall-any4\n'),
      ok(),
    ]);
    const removed = (await second.backend.removeFootprint?.()) ?? [];
    assert.deepEqual(
      second.calls.slice(1).map((call) => call.argv.join(' ')),
      [
        'ipset -n list',
        ...SAVES.map((argv) => argv.join(' ')),
        'iptables -w -S ufw-after-input',
        `iptables -w ${(runtimeRules('v4')[0] ?? '').replace('-A', '-D')}`,
        `iptables -w ${(runtimeRules('v4')[1] ?? '').replace('-A', '-D')}`,
        'ip6tables -w -S ufw6-after-input',
        'ipset -n list',
        'ipset destroy moshwall-any4',
      ],
    );
    assert.equal(removed.length, 3);
  });

  it('classic mode empties sets left by an earlier fast mode, then removes its rules and sets', async () => {
    let members = ['60040'];
    const runtimeLines = [...runtimeRules('v4')];
    const { runner, calls } = createRecordingRunner((argv) => {
      const text = argv.join(' ');
      if (text === 'ufw version') return real('version');
      if (text === 'ufw status') return real('status-active');
      if (text.startsWith('ufw delete')) return ok('Could not delete non-existent rule\n');
      if (text === 'ipset -n list') return ok('moshwall-any4\nf2b\n');
      if (text === 'ipset save moshwall-any4') return saved('moshwall-any4', members);
      if (text.startsWith('ipset save')) return NO_SET;
      if (text === 'iptables -w -S ufw-after-input') return chain('v4', runtimeLines);
      if (text === 'ip6tables -w -S ufw6-after-input') return NO_CHAIN;
      if (text === 'ipset -exist restore') {
        members = [];
        return ok();
      }
      if (argv[2] === '-D') runtimeLines.shift();
      return ok();
    });
    const backend = createUfwBackend({ runner, readFile: files(), timeoutMs: 4321 });
    await backend.probe();
    const rules = await backend.listRules();
    assert.ok(rules.some((rule) => rule.ours && rule.raw.includes('moshwall-any4 60040')));
    calls.length = 0;
    await backend.revoke([v4(60040)]);
    const run = calls.map((call) => call.argv.join(' '));
    assert.deepEqual(run.slice(0, 1), ['ipset -exist restore']);
    assert.deepEqual(run.slice(-6), [
      'iptables -w -S ufw-after-input',
      `iptables -w ${(runtimeRules('v4')[0] ?? '').replace('-A', '-D')}`,
      `iptables -w ${(runtimeRules('v4')[1] ?? '').replace('-A', '-D')}`,
      'ip6tables -w -S ufw6-after-input',
      'ipset -n list',
      'ipset destroy moshwall-any4',
    ]);
    assert.equal(
      run.filter((text) => text.startsWith('ufw delete')).length,
      0,
      'no classic rule of ours for the port: nothing for ufw to delete (the port counts once)',
    );
  });

  it('probe of an inactive UFW whose chains another firewall owns reports, never throws (auto can pick that one)', async () => {
    const { runner } = createRecordingRunner((argv) => {
      const text = argv.join(' ');
      if (text === 'ufw version') return real('version');
      if (text === 'ufw status') return real('status-inactive');
      if (text.startsWith('ip6tables'))
        return {
          exitCode: 1,
          stdout: '',
          stderr:
            "ip6tables v1.8.9 (nf_tables): chain `ufw6-after-input' in table `filter' is incompatible, use 'nft' tool.\n",
        };
      if (text.startsWith('iptables -w -S')) return BARE4;
      if (text.startsWith('ipset save')) return NO_SET;
      return ok('iptables v1.8.9 (nf_tables)\n');
    });
    const backend = createUfwBackend({ runner, readFile: files(), timeoutMs: 1, fastPath: 'auto' });
    const probe = await backend.probe();
    assert.equal(probe.installed, true);
    assert.equal(probe.active, false);
    assert.match(probe.detail.join('\n'), /fast path: cannot be looked at: .*incompatible/);
    assert.deepEqual(probe.problems, []);
  });

  it('the watch reports members whose chain came back without our rules though the digest stayed the same', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const seen: string[] = [];
    const watched = createUfwBackend({
      runner: async (argv) => {
        const text = argv.join(' ');
        const answer = (
          text === 'ipset -t list' ? headers(0, 1) : text.startsWith('iptables -w -S') ? BARE4 : ok()
        ) as { exitCode: number; stdout: string; stderr: string };
        return { argv, durationMs: 1, ...answer };
      },
      readFile: files(),
      timeoutMs: 1,
      fastPath: 'runtime',
      watchIntervalMs: 1000,
    });
    const watch = watched.watchChanges?.((what) => seen.push(what));
    await settled();
    assert.deepEqual(seen, [], 'the first look only takes a baseline');
    t.mock.timers.tick(1000);
    await settled();
    await settled();
    watch?.close();
    assert.deepEqual(seen, ["ufw-after-input loaded without moshwall's rules"]);
  });
});
