import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  createIptablesBackend,
  type IptablesVariant,
  restoreInputProblem,
} from '../../../src/backends/iptables.ts';
import { FirewallError } from '../../../src/errors.ts';
import { v4, v6 } from '../../support/builders.ts';
import {
  assertRefusedBeforeAnyCommand,
  type CannedAnswer,
  capturedRuns,
  notInstalled,
  recordedBackend,
} from './recording-runner.ts';

const FIXTURES = new URL('../../fixtures/iptables/', import.meta.url);
const input = (name: string) => readFileSync(new URL(`inputs/${name}.txt`, FIXTURES), 'utf8');
/** real(name): the answer real iptables gave in that run (test/fixtures/iptables/outputs.json, see capture.sh). */
const { real } = capturedRuns(FIXTURES);
const TIMEOUT = 4321;

function backendWith(answers: CannedAnswer[], variant?: IptablesVariant) {
  return recordedBackend(answers, (runner) => {
    const options = { runner, timeoutMs: TIMEOUT };
    return createIptablesBackend(variant === undefined ? options : { ...options, variant });
  });
}

for (const variant of ['nft', 'legacy'] as const) {
  const ipt = `iptables-${variant}`;
  const ip6t = `ip6tables-${variant}`;
  const save4 = [`${ipt}-save`, '-t', 'filter'];
  const save6 = [`${ip6t}-save`, '-t', 'filter'];
  const restore4 = [`${ipt}-restore`, '--noflush', '-w'];
  const restore6 = [`${ip6t}-restore`, '--noflush', '-w'];

  describe(`iptables backend (${variant}): golden commands over a lifecycle`, () => {
    it('probe → allow v4+v6 → revoke (one absent) → revoke again → allow after the jump was lost', async () => {
      const { backend, calls } = backendWith(
        [
          real(`version-${variant}`),
          real(`save-${variant}-v4-baseline`),
          real(`save-${variant}-v6-baseline`),
          real(`save-${variant}-v4-baseline`),
          real(`save-${variant}-v6-baseline`),
          real(`restore-${variant}-allow-v4-1`),
          real(`restore-${variant}-allow-v6-1`),
          real(`save-${variant}-v4-after-allow-1`),
          real(`restore-${variant}-revoke-v4-1`),
          real(`save-${variant}-v4-after-revoke-1`),
          real(`save-${variant}-v4-jump-gone`),
          real(`restore-${variant}-allow-v4-2`),
        ],
        variant,
      );
      const probe = await backend.probe();
      const specs = [
        v4(60001),
        v6(60001),
        v4(60002, '10.0.0.0/8'),
        v6(60002, '2001:db8::/32'),
        v4(60003, '192.0.2.7/32'),
      ];
      const allowed = await backend.allow(specs);
      const revoked = await backend.revoke([v4(60001), v4(60002, '10.0.0.0/8'), v4(60009)]);
      const revokedAgain = await backend.revoke([v4(60001)]);
      const allowedAgain = await backend.allow([v4(60004)]);

      assert.deepEqual(
        calls.map((call) => call.argv),
        [
          [ipt, '--version'],
          save4,
          save6,
          save4,
          save6,
          restore4,
          restore6,
          save4,
          restore4,
          save4,
          save4,
          restore4,
        ],
      );
      assert.deepEqual(
        calls.map((call) => call.options.input),
        [
          ...[
            undefined,
            undefined,
            undefined,
            undefined,
            undefined,
            input('allow-v4-1'),
            input('allow-v6-1'),
          ],
          ...[undefined, input('revoke-v4-1'), undefined, undefined, input('allow-v4-2')],
        ],
      );
      for (const call of calls) {
        const { input: text, ...rest } = call.options;
        assert.deepEqual(rest, { timeoutMs: TIMEOUT });
        if (text !== undefined)
          assert.equal(restoreInputProblem(text, call.argv[0]?.startsWith('ip6') ? 'v6' : 'v4'), undefined);
      }
      assert.deepEqual(probe, {
        installed: true,
        active: true,
        ipv6: true,
        detail: [
          variant === 'nft' ? 'iptables v1.8.9 (nf_tables)' : 'iptables v1.8.9 (legacy)',
          `${ipt} INPUT: drops input: policy DROP`,
          `${ip6t} INPUT: drops input: policy DROP`,
          `IPv6: yes (${ip6t})`,
          "moshwall's rules: chain moshwall-input, jumped to from INPUT position 1 (filter table)",
          'runtime only: not written to any rules file; a reboot or restore of saved rules removes them; sync re-adds them',
          variant === 'nft'
            ? 'the daemon watches `nft monitor rules` (iptables-nft rules are nf_tables rules; needs the nft command) and re-adds them at once'
            : 'the daemon re-adds them at its next resync (iptables-legacy has no change events)',
        ],
      });
      assert.deepEqual(
        allowed.map((change) => [change.kind, change.argv, change.specs]),
        [
          ['allow', restore4, [v4(60001), v4(60002, '10.0.0.0/8'), v4(60003, '192.0.2.7/32')]],
          ['allow', restore6, [v6(60001), v6(60002, '2001:db8::/32')]],
        ],
      );
      assert.deepEqual(
        revoked.map((change) => [change.kind, change.specs]),
        [['revoke', [v4(60001), v4(60002, '10.0.0.0/8')]]],
      );
      assert.deepEqual(revokedAgain, []);
      assert.deepEqual(
        allowedAgain.map((change) => change.specs),
        [[v4(60004)]],
      );
    });
  });
}

describe('iptables backend: commands', () => {
  it('without a variant runs the system’s iptables, ip6tables and their save/restore', async () => {
    const { backend, calls } = backendWith([
      real('version-nft'),
      real('save-nft-v4-baseline'),
      real('save-nft-v6-baseline'),
      real('save-nft-v4-baseline'),
      real('restore-nft-allow-v4-1'),
    ]);
    await backend.probe();
    await backend.allow([v4(60001), v4(60002, '10.0.0.0/8'), v4(60003, '192.0.2.7/32')]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [
        ['iptables', '--version'],
        ['iptables-save', '-t', 'filter'],
        ['ip6tables-save', '-t', 'filter'],
        ['iptables-save', '-t', 'filter'],
        ['iptables-restore', '--noflush', '-w'],
      ],
    );
  });

  it('allow of rules already in force, listRules and empty batches change nothing', async () => {
    const { backend, calls } = backendWith([
      real('save-nft-v4-after-allow-1'),
      real('save-nft-v4-after-allow-1'),
      real('save-nft-v6-after-allow-1'),
    ]);
    assert.deepEqual(await backend.allow([v4(60001), v4(60002, '10.0.0.0/8')]), []);
    await backend.listRules();
    assert.deepEqual(await backend.allow([]), []);
    assert.deepEqual(await backend.revoke([]), []);
    assert.deepEqual(
      calls.map((call) => call.argv[0]),
      ['iptables-save', 'iptables-save', 'ip6tables-save'],
    );
  });

  it('invalid specs are refused before any command runs', async () => {
    await assertRefusedBeforeAnyCommand(backendWith([]), [
      v4(60001, '0.0.0.0/0\nCOMMIT\n*filter\n-F INPUT'),
      v6(60001, '2001:db8::1/32'),
    ]);
  });
});

describe('iptables backend: failures', () => {
  it('a refused commit is a FirewallError with what iptables-restore said and the input', async () => {
    const { backend } = backendWith([
      real('save-nft-v4-after-allow-1'),
      real('restore-nft-revoke-v4-missing'),
    ]);
    await assert.rejects(backend.revoke([v4(60001)]), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.match(
        error.message,
        /^iptables-restore refused to revoke v4 udp port\(s\) 60001 \(exit 1\): iptables-nft-restore: line 2 failed/,
      );
      assert.match(String(error.context.input), /^\*filter\n-D moshwall-input -p udp -m udp --dport 60001 /);
      return true;
    });
  });

  it('when the v6 commit fails after the v4 one, the error says v4 took effect', async () => {
    const { backend } = backendWith([
      real('save-nft-v4-baseline'),
      real('save-nft-v6-baseline'),
      real('restore-nft-allow-v4-1'),
      real('restore-nft-revoke-v4-missing'),
    ]);
    await assert.rejects(
      backend.allow([v4(60001), v6(60001)]),
      /\(1 of 2 iptables-restore steps had succeeded; applied: allow v4 udp 60001; not applied: allow v6 udp 60001\)$/,
    );
  });

  it('an unreadable v4 table (not root) is an error; an unreadable v6 one means no IPv6', async () => {
    const { backend } = backendWith([
      real('save-nft-not-root'),
      real('version-nft'),
      real('save-nft-not-root'),
      real('save-nft-v4-after-allow-1'),
      real('save-nft-not-root'),
      real('save-nft-not-root'),
    ]);
    await assert.rejects(
      backend.listRules(),
      /Cannot read the v4 firewall: .*Permission denied \(you must be root\)/,
    );
    const probe = await backend.probe();
    assert.deepEqual([probe.installed, probe.active], [false, false]);
    const rules = await backend.listRules();
    assert.ok(rules.length > 0 && rules.every((rule) => rule.family === 'v4'));
    assert.deepEqual(await backend.revoke([v6(60001)]), []);
  });

  it('a missing iptables is "not installed", not an error', async () => {
    const { backend } = backendWith([notInstalled(['iptables', '--version'])]);
    const probe = await backend.probe();
    assert.equal(probe.installed, false);
    assert.match(probe.detail.join('\n'), /iptables is not installed/);
  });
});
