import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  createNftablesBackend,
  kernelUpdatesTimeouts,
  NFT_LISTING_TRUSTED_MS,
  nftScriptProblem,
} from '../../../src/backends/nftables.ts';
import { systemClock } from '../../../src/clock.ts';
import { FirewallError } from '../../../src/errors.ts';
import type { RuleSpec } from '../../../src/rules.ts';
import { v4, v6 } from '../../support/builders.ts';
import {
  assertRefusedBeforeAnyCommand,
  type CannedAnswer,
  capturedRuns,
  notInstalled,
  recordedBackend,
} from './recording-runner.ts';

const FIXTURES = new URL('../../fixtures/nftables/', import.meta.url);
const script = (name: string) => readFileSync(new URL(`scripts/${name}.nft`, FIXTURES), 'utf8');
/** real(name): the answer real nft gave in that run (test/fixtures/nftables/outputs.json, see capture.sh). */
const { real } = capturedRuns(FIXTURES);
const LIST = ['nft', '-j', 'list', 'ruleset'];
const APPLY = ['nft', '-f', '-'];
const TIMEOUT = 4321;

type Placement = Pick<Parameters<typeof createNftablesBackend>[0], 'table' | 'chain'>;

/**
 * The backend over recorded answers, with a clock that moves past NFT_LISTING_TRUSTED_MS at every look:
 * these golden sequences are the full path (list, plan, apply); the quick path has its own tests below.
 */
function backendWith(answers: CannedAnswer[], placement: Placement = {}) {
  let ms = 0;
  const now = () => {
    ms += NFT_LISTING_TRUSTED_MS + 1;
    return ms;
  };
  return recordedBackend(answers, (runner) =>
    createNftablesBackend({ runner, timeoutMs: TIMEOUT, clock: { ...systemClock, now }, ...placement }),
  );
}

const ALLOW_1 = [
  v4(60001),
  v6(60001),
  v4(60002, '10.0.0.0/8'),
  v6(60002, '2001:db8::/32'),
  v4(60003, '192.0.2.7/32'),
  v4(60003),
];
const ALLOW_2 = [v4(60001), v4(60002, '10.1.0.0/16'), v4(60002)];
const REVOKE_1 = [v4(60001), v6(60001), v4(60002, '10.0.0.0/8'), v4(60009)];

describe('nftables backend: golden commands over a lifecycle', () => {
  it('probe → allow → allow (overlapping sources) → revoke → revoke again → allow after the jump was lost', async () => {
    const { backend, calls } = backendWith([
      real('version'),
      real('list-debian-drop'),
      real('list-debian-drop'),
      real('apply-allow-1'),
      real('list-after-allow-1'),
      real('apply-allow-2'),
      real('list-after-allow-2'),
      real('apply-revoke-1'),
      real('list-after-revoke-1'),
      real('list-jump-gone'),
      real('apply-allow-3'),
    ]);
    const probe = await backend.probe();
    const allowed1 = await backend.allow(ALLOW_1);
    const allowed2 = await backend.allow(ALLOW_2);
    const revoked = await backend.revoke(REVOKE_1);
    const revokedAgain = await backend.revoke(REVOKE_1);
    const allowed3 = await backend.allow([v4(60003)]);

    assert.deepEqual(
      calls.map((call) => call.argv),
      [['nft', '--version'], LIST, LIST, APPLY, LIST, APPLY, LIST, APPLY, LIST, LIST, APPLY],
    );
    const inputs = calls.map((call) => call.options.input);
    assert.deepEqual(inputs, [
      ...[undefined, undefined, undefined, script('allow-1'), undefined, script('allow-2'), undefined],
      ...[script('revoke-1'), undefined, undefined, script('allow-3')],
    ]);
    for (const call of calls) {
      const { input, ...rest } = call.options;
      assert.deepEqual(rest, { timeoutMs: TIMEOUT });
      if (input !== undefined) assert.equal(nftScriptProblem(input), undefined);
    }
    assert.deepEqual(probe, {
      installed: true,
      active: true,
      ipv6: true,
      detail: [
        'nftables v1.0.6 (Lester Gooch #5)',
        'input chain inet filter input: drops input: policy drop',
        "moshwall's rules: jump to moshwall_input at the top of inet filter input",
        'IPv6: yes (an inet table)',
        "runtime only: a reboot or a reload of the admin's ruleset removes moshwall's rules; sync re-adds them",
        'the daemon watches `nft monitor rules` and re-adds them at once after a reload; moshwall never writes /etc/nftables.conf',
      ],
    });
    // Each change reports the specs it added or removed, once each; already present or absent ones are left out.
    assert.deepEqual(
      allowed1.map((change) => [change.kind, change.argv, change.specs]),
      [
        [
          'allow',
          APPLY,
          [
            v4(60001),
            v4(60003),
            v6(60001),
            v4(60002, '10.0.0.0/8'),
            v6(60002, '2001:db8::/32'),
            v4(60003, '192.0.2.7/32'),
          ],
        ],
      ],
    );
    assert.deepEqual(
      allowed2.map((change) => change.specs),
      [[v4(60002, '10.1.0.0/16'), v4(60002)]],
    );
    assert.deepEqual(
      revoked.map((change) => [change.kind, change.specs]),
      [['revoke', [v4(60001), v6(60001), v4(60002, '10.0.0.0/8')]]],
    );
    assert.deepEqual(revokedAgain, []);
    assert.deepEqual(
      allowed3.map((change) => change.specs),
      [[v4(60003)]],
    );
  });

  it('allow of specs already in force, listRules and empty batches run no change at all', async () => {
    const { backend, calls } = backendWith([real('list-after-allow-1'), real('list-after-allow-1')]);
    assert.deepEqual(await backend.allow([v4(60001), v6(60001), v4(60002, '10.0.0.0/8')]), []);
    await backend.listRules();
    assert.deepEqual(await backend.allow([]), []);
    assert.deepEqual(await backend.revoke([]), []);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIST, LIST],
    );
  });

  it('an ip table gets the port set without meta nfproto, and refuses v6 specs before running anything', async () => {
    const { backend, calls } = backendWith([
      real('list-ip-only'),
      real('apply-allow-ip-only'),
      real('list-ip-only'),
    ]);
    await backend.allow([v4(60001)]);
    assert.equal(calls[1]?.options.input, script('allow-ip-only'));
    await assert.rejects(backend.allow([v4(60002), v6(60002)]), /filters v4 only/);
    assert.equal(calls.length, 3);
  });

  it('a configured table and chain are used where discovery finds two candidates', async () => {
    const { backend, calls } = backendWith(
      [real('version'), real('list-split'), real('list-split'), real('apply-allow-ip-only')],
      { table: { family: 'ip6', name: 'filter6' }, chain: 'input' },
    );
    const probe = await backend.probe();
    assert.deepEqual([probe.active, probe.ipv6], [true, true]);
    assert.ok(
      probe.detail.includes("moshwall's rules: jump to moshwall_input at the top of ip6 filter6 input"),
    );
    assert.ok(
      probe.detail.some((line) => line.startsWith('ip filter4 input also drops input (policy drop)')),
    );
    await backend.allow([v6(60001, '2001:db8::/32')]);
    assert.equal(
      calls[3]?.options.input,
      [
        'add chain ip6 filter6 moshwall_input',
        'add set ip6 filter6 moshwall_v6_net32 { type ipv6_addr . inet_service; flags interval, timeout; }',
        'add rule ip6 filter6 moshwall_input ip6 saddr . udp dport @moshwall_v6_net32 accept comment "moshwall"',
        'insert rule ip6 filter6 input jump moshwall_input comment "moshwall"',
        'add element ip6 filter6 moshwall_v6_net32 { 2001:db8::/32 . 60001 }',
        '',
      ].join('\n'),
    );
  });

  it('invalid specs are refused before any command runs', async () => {
    await assertRefusedBeforeAnyCommand(backendWith([]), [
      v4(60001, '0.0.0.0/0 } ; flush ruleset'),
      { port: 60001, family: 'v5', source: '0.0.0.0/0' } as unknown as RuleSpec,
    ]);
  });

  it('names that cannot be written in a script are refused at construction', () => {
    const { runner } = backendWith([]);
    for (const placement of [
      { table: { family: 'inet' as const, name: 'filter; flush ruleset' } },
      { table: { family: 'bridge' as unknown as 'inet', name: 'filter' } },
      { chain: 'input }' },
      { chain: '9input' },
    ]) {
      assert.throws(() => createNftablesBackend({ runner, timeoutMs: 1, ...placement }), FirewallError);
    }
  });
});

describe('nftables backend: failures', () => {
  it('a refused transaction is a FirewallError with nft’s first error line and the script', async () => {
    const { backend } = backendWith([real('list-after-allow-1'), real('apply-revoke-1-again')]);
    await assert.rejects(backend.revoke([v4(60001)]), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.match(
        error.message,
        /^nft refused to revoke udp port\(s\) 60001 \(exit 1\), nothing changed: .*Error: Could not process rule: No such file or directory/,
      );
      assert.equal(error.context.script, 'delete element inet filter moshwall_v4_any { 60001 }\n');
      return true;
    });
  });

  it('a listing that fails (not root) is a FirewallError, never an empty firewall', async () => {
    const { backend } = backendWith([
      real('list-not-root'),
      real('list-not-root'),
      real('version'),
      real('list-not-root'),
    ]);
    await assert.rejects(
      backend.listRules(),
      /`nft -j list ruleset` failed \(exit 1\): .*Operation not permitted/,
    );
    await assert.rejects(backend.allow([v4(60001)]), FirewallError);
    await assert.rejects(backend.probe(), FirewallError);
  });

  it('a missing nft is "not installed", not an error', async () => {
    const { backend } = backendWith([notInstalled(['nft', '--version'])]);
    const probe = await backend.probe();
    assert.equal(probe.installed, false);
    assert.match(probe.detail.join('\n'), /nft is not installed/);
  });

  it('allow refuses when no chain can be chosen, naming the candidates; revoke still works', async () => {
    const { backend, calls } = backendWith([real('list-split'), real('list-split')]);
    await assert.rejects(
      backend.allow([v4(60001)]),
      /Cannot open ports with nftables: several input chains drop input \(ip filter4 input, ip6 filter6 input\); configure/,
    );
    assert.deepEqual(await backend.revoke([v4(60001)]), []);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIST, LIST],
    );
  });

  it('a ruleset only iptables-nft blocks in is not an active nftables (auto then picks iptables)', async () => {
    const { backend } = backendWith([real('version'), real('list-iptables-nft')]);
    const probe = await backend.probe();
    assert.deepEqual([probe.installed, probe.active], [true, false]);
    assert.match(probe.detail.join('\n'), /belongs to iptables-nft/);
  });

  it('allow refuses to add to iptables-nft’s table, pointing at the iptables backend', async () => {
    const { backend } = backendWith([real('list-iptables-nft')]);
    await assert.rejects(
      backend.allow([v4(60001)]),
      /ip filter INPUT \(iptables-nft \(use the iptables backend\)\) drops input/,
    );
  });
});

describe('nftables backend: which admin rules come after our jump', () => {
  /** The listing after allow-1, with our jump moved below the admin's rules of the input chain. */
  const jumpLast = () => {
    const answer = real('list-after-allow-1');
    assert.ok(!(answer instanceof Error));
    const listing = JSON.parse(answer.stdout) as { nftables: Record<string, Record<string, unknown>>[] };
    const isJump = (object: Record<string, Record<string, unknown>>) =>
      object.rule?.chain === 'input' && object.rule.comment === 'moshwall';
    const jump = listing.nftables.filter(isJump);
    assert.equal(jump.length, 1);
    listing.nftables = [...listing.nftables.filter((object) => !isJump(object)), ...jump];
    return { ...answer, stdout: JSON.stringify(listing) };
  };

  it('below our jump (or before it exists) they cannot block our ports; above it they can', async () => {
    const { backend } = backendWith([real('list-debian-drop'), real('list-after-allow-1'), jumpLast()]);
    for (const expected of [true, true, false]) {
      const admin = (await backend.listRules()).filter((rule) => !rule.ours);
      assert.ok(admin.length >= 4);
      assert.deepEqual([...new Set(admin.map((rule) => rule.afterOurs))], [expected]);
    }
  });
});

describe('nftables backend: the quick path right after a listing', () => {
  const REFUSED: CannedAnswer = {
    exitCode: 1,
    stdout: '',
    stderr: 'Error: Could not process rule: No such file or directory\n',
  };
  const OK: CannedAnswer = { exitCode: 0, stdout: '', stderr: '' };
  /** A backend over `answers` with a clock the test moves. */
  const clocked = (answers: CannedAnswer[]) => {
    const clock = { ms: 0 };
    const recorded = recordedBackend(answers, (runner) =>
      createNftablesBackend({ runner, timeoutMs: TIMEOUT, clock: { ...systemClock, now: () => clock.ms } }),
    );
    return { ...recorded, clock };
  };

  it('allow and revoke after listRules run one transaction of elements each, no listing', async () => {
    const { backend, calls } = clocked([real('list-after-allow-1'), OK, OK]);
    await backend.listRules();
    const allowed = await backend.allow([v4(60005), v4(60006, '10.0.0.0/8')]);
    const revoked = await backend.revoke([v4(60001)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIST, APPLY, APPLY],
    );
    assert.deepEqual(
      calls.map((call) => call.options.input),
      [
        undefined,
        'add element inet filter moshwall_v4_any { 60005 }\nadd element inet filter moshwall_v4_net8 { 10.0.0.0/8 . 60006 }\n',
        'delete element inet filter moshwall_v4_any { 60001 }\n',
      ],
    );
    assert.deepEqual(
      allowed.map((change) => change.specs),
      [[v4(60005), v4(60006, '10.0.0.0/8')]],
    );
    assert.deepEqual(
      revoked.map((change) => change.specs),
      [[v4(60001)]],
    );
  });

  it('when nft refuses the quick transaction (the listing was out of date), it lists and plans in full', async () => {
    const { backend, calls } = clocked([
      real('list-after-allow-1'),
      REFUSED,
      real('list-after-allow-1'),
      OK,
      REFUSED,
      real('list-after-allow-1'),
    ]);
    await backend.listRules();
    await backend.revoke([v4(60003)]);
    assert.deepEqual(await backend.revoke([v4(60009)]), []);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIST, APPLY, LIST, APPLY, APPLY, LIST],
    );
    const inputs = calls.map((call) => call.options.input);
    assert.equal(inputs[1], 'delete element inet filter moshwall_v4_any { 60003 }\n');
    assert.equal(inputs[3], 'delete element inet filter moshwall_v4_any { 60003 }\n');
    // 60009 was never allowed: nft refuses its quick delete, and the full plan finds nothing to do.
    assert.equal(inputs[4], 'delete element inet filter moshwall_v4_any { 60009 }\n');
  });

  it('a listing older than NFT_LISTING_TRUSTED_MS is not trusted, and quick changes do not make it younger', async () => {
    const { backend, calls, clock } = clocked([
      real('list-after-allow-1'),
      OK,
      OK,
      real('list-after-allow-1'),
      OK,
    ]);
    await backend.listRules();
    clock.ms = NFT_LISTING_TRUSTED_MS - 10;
    await backend.allow([v4(60005)]);
    await backend.revoke([v4(60005)]);
    clock.ms = NFT_LISTING_TRUSTED_MS + 1;
    await backend.allow([v4(60005)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIST, APPLY, APPLY, LIST, APPLY],
    );
  });

  it('needs the full plan when a spec’s set is missing or not in force', async () => {
    const { backend, calls } = clocked([
      real('list-after-allow-1'),
      real('list-after-allow-1'),
      OK,
      real('list-jump-gone'),
      real('list-jump-gone'),
      OK,
    ]);
    await backend.listRules();
    await backend.allow([v4(60007, '10.1.0.0/16')]);
    await backend.listRules();
    await backend.allow([v4(60003)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [LIST, LIST, APPLY, LIST, LIST, APPLY],
    );
    assert.match(calls[2]?.options.input ?? '', /^add set inet filter moshwall_v4_net16 /m);
    assert.match(calls[5]?.options.input ?? '', /^insert rule inet filter input jump moshwall_input/m);
  });
});

describe('nftables revoke by expiry (sets with flags timeout, Linux 6.12+)', () => {
  /** The captured listing after allow-1, its sets declared as moshwall declares them now (flags timeout). */
  const expiringListing = (): CannedAnswer => {
    const answer = real('list-after-allow-1') as { exitCode: number; stdout: string; stderr: string };
    const ruleset = JSON.parse(answer.stdout) as { nftables: { set?: { flags?: string[] } }[] };
    for (const item of ruleset.nftables) {
      if (item.set !== undefined) item.set.flags = [...(item.set.flags ?? []), 'timeout'];
    }
    return { ...answer, stdout: JSON.stringify(ruleset) };
  };
  const ok: CannedAnswer = { exitCode: 0, stdout: '', stderr: '' };
  /** A backend on a manual clock (the listing stays trusted unless the test moves time). */
  const onKernel = (release: string, answers: CannedAnswer[]) => {
    let ms = 0;
    const clock = { ...systemClock, now: () => ms };
    const made = recordedBackend(answers, (runner) =>
      createNftablesBackend({ runner, timeoutMs: TIMEOUT, clock, kernelRelease: release }),
    );
    return { ...made, advance: (by: number) => (ms += by) };
  };

  it('kernelUpdatesTimeouts: 6.12 and newer, nothing older or unreadable', () => {
    for (const release of ['6.12.0', '6.18.44-fc-v595', '7.0.0-30-generic'])
      assert.ok(kernelUpdatesTimeouts(release), release);
    for (const release of ['6.11.9', '6.1.0-28-amd64', '5.15.0', '', 'banana', undefined])
      assert.equal(kernelUpdatesTimeouts(release), false, String(release));
  });

  it('on 6.12+ a revoke right after a listing is one add with a 1 ms timeout; a second revoke of it deletes', async () => {
    const { backend, calls } = onKernel('6.18.44', [expiringListing(), ok, ok]);
    await backend.listRules();
    await backend.revoke([v4(60001), v4(60002, '10.0.0.0/8')]);
    assert.deepEqual(calls[1]?.argv, APPLY);
    assert.equal(
      calls[1]?.options.input,
      'add element inet filter moshwall_v4_any { 60001 timeout 1ms }\n' +
        'add element inet filter moshwall_v4_net8 { 10.0.0.0/8 . 60002 timeout 1ms }\n',
    );
    // The listing still shows 60001, but it is gone: never re-added for 1 ms, deleted (nft refuses if absent).
    await backend.revoke([v4(60001)]);
    assert.equal(calls[2]?.options.input, 'delete element inet filter moshwall_v4_any { 60001 }\n');
  });

  it('an element our own allow added since the listing is expired too (the allow proves it is there)', async () => {
    const { backend, calls } = onKernel('6.18.44', [expiringListing(), ok, ok]);
    await backend.listRules();
    await backend.allow([v4(60044)]);
    await backend.revoke([v4(60044)]);
    assert.equal(calls[1]?.options.input, 'add element inet filter moshwall_v4_any { 60044 }\n');
    assert.equal(calls[2]?.options.input, 'add element inet filter moshwall_v4_any { 60044 timeout 1ms }\n');
  });

  it('before 6.12, and in sets older moshwall made (no timeout flag), revokes delete', async () => {
    const old = onKernel('6.1.0-28-amd64', [expiringListing(), ok]);
    await old.backend.listRules();
    await old.backend.revoke([v4(60001)]);
    assert.equal(old.calls[1]?.options.input, 'delete element inet filter moshwall_v4_any { 60001 }\n');
    const olderSets = onKernel('6.18.44', [real('list-after-allow-1'), ok]);
    await olderSets.backend.listRules();
    await olderSets.backend.revoke([v4(60001)]);
    assert.equal(olderSets.calls[1]?.options.input, 'delete element inet filter moshwall_v4_any { 60001 }\n');
  });

  it('a listing that still shows an expired element a while later turns expiry off for good', async () => {
    const { backend, calls, advance } = onKernel('6.18.44', [expiringListing(), ok, expiringListing(), ok]);
    await backend.listRules();
    await backend.revoke([v4(60003)]);
    assert.match(calls[1]?.options.input ?? '', /timeout 1ms/);
    advance(500);
    await backend.listRules();
    await backend.revoke([v4(60003)]);
    assert.equal(calls[3]?.options.input, 'delete element inet filter moshwall_v4_any { 60003 }\n');
  });

  it('once a listing has shown an expiry honoured, a port that is listed again later changes nothing', async () => {
    const without = (port: number): CannedAnswer => {
      const answer = expiringListing() as { exitCode: number; stdout: string; stderr: string };
      const ruleset = JSON.parse(answer.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
      for (const item of ruleset.nftables)
        if (item.set?.elem !== undefined) item.set.elem = item.set.elem.filter((value) => value !== port);
      return { ...answer, stdout: JSON.stringify(ruleset) };
    };
    const { backend, calls, advance } = onKernel('6.18.44', [
      expiringListing(),
      ok,
      without(60003),
      expiringListing(),
      ok,
    ]);
    await backend.listRules();
    await backend.revoke([v4(60003)]);
    advance(500);
    await backend.listRules();
    advance(500);
    // 60003 is listed again (a new session got the port, through another reconcile's listing): still expired.
    await backend.listRules();
    await backend.revoke([v4(60003)]);
    assert.equal(calls[4]?.options.input, 'add element inet filter moshwall_v4_any { 60003 timeout 1ms }\n');
  });

  it('the guard lets through only the revoke timeout, only on add', () => {
    const line = (text: string) => `${text}\n`;
    assert.equal(
      nftScriptProblem(line('add element inet filter moshwall_v4_any { 60001 timeout 1ms }')),
      undefined,
    );
    assert.ok(nftScriptProblem(line('add element inet filter moshwall_v4_any { 60001 timeout 1h }')));
    assert.ok(nftScriptProblem(line('delete element inet filter moshwall_v4_any { 60001 timeout 1ms }')));
    assert.equal(
      nftScriptProblem(
        line(
          'add set inet filter moshwall_v4_net8 { type ipv4_addr . inet_service; flags interval, timeout; }',
        ),
      ),
      undefined,
    );
  });
});
