// The backend contract suite (test/backends/contract.ts) against a REAL firewalld running in the lab's
// server host on a private system D-Bus (lab option firewall: 'firewalld', see _firewalld.ts):
// createFirewalldBackend runs in this process, its firewall-cmd runs inside the server host. Then what
// only a real firewalld shows: real UDP packets through the zone, the admin's ports and services read
// as covering, the permanent configuration never touched, a reload dropping our rules, and the cost of
// one allow and one revoke. Between tests every runtime rich rule the test made is removed again.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createFirewalldBackend } from '../../src/backends/firewalld.ts';
import type { Runner } from '../../src/exec.ts';
import type { Backend } from '../../src/firewall.ts';
import { planChanges } from '../../src/reconcile.ts';
import type { RuleSpec } from '../../src/rules.ts';
import { testBackendContract } from '../backends/contract.ts';
import { median } from '../support/stats.ts';
import { useLab } from './_moshwall.ts';
import { createLab, labRunner, labSkipReason } from './lab.ts';

const TIMEOUT_MS = 15_000;

describe('firewalld backend, real firewalld in the lab', { skip: labSkipReason() }, () => {
  let baseline = '';
  let permanent = '';

  const theLab = useLab(
    () => createLab({ firewall: 'firewalld', users: ['alice'] }),
    async () => {
      assert.equal(
        await admin(['--permanent', '--zone=public', '--list-all']),
        permanent,
        "firewalld's permanent configuration changed",
      );
    },
  );
  /** firewall-cmd as the lab's admin; fails the test when it fails. */
  const admin = async (args: string[]): Promise<string> => {
    const result = await theLab().runServer(['firewall-cmd', ...args], { timeoutMs: TIMEOUT_MS });
    assert.equal(result.exitCode, 0, `firewall-cmd ${args.join(' ')}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  const listing = () => admin(['--zone=public', '--list-all']);
  /** Removes, as the admin, every runtime rich rule and port the lab did not start with. */
  const reset = async () => {
    const rich = (await admin(['--zone=public', '--list-rich-rules'])).split('\n').filter(Boolean);
    if (rich.length > 0) await admin(['--zone=public', ...rich.map((rule) => `--remove-rich-rule=${rule}`)]);
    const ports = (await admin(['--zone=public', '--list-ports'])).trim().split(/\s+/).filter(Boolean);
    if (ports.length > 0) await admin(['--zone=public', ...ports.map((port) => `--remove-port=${port}`)]);
    const services = (await admin(['--zone=public', '--list-services'])).trim().split(/\s+/);
    const added = services.filter((name) => name !== 'ssh' && name !== 'dhcpv6-client');
    if (added.length > 0) await admin(['--zone=public', ...added.map((name) => `--remove-service=${name}`)]);
    assert.equal(await listing(), baseline, 'the lab is back to its baseline zone');
  };
  const runnerInLab = (): Runner => labRunner(theLab());
  const newBackend = (runner = runnerInLab()): Backend =>
    createFirewalldBackend({ runner, timeoutMs: TIMEOUT_MS });

  before(async () => {
    baseline = await listing();
    permanent = await admin(['--permanent', '--zone=public', '--list-all']);
    assert.match(baseline, /services: dhcpv6-client ssh/);
  });

  testBackendContract('firewalld (real, in the e2e lab)', async () => {
    if ((await listing()) !== baseline) await reset();
    return {
      backend: newBackend(),
      async addForeignRule(spec, comment) {
        const family = spec.family === 'v4' ? 'ipv4' : 'ipv6';
        const anywhere = spec.source === '0.0.0.0/0' || spec.source === '::/0';
        const source = anywhere ? '' : ` source address="${spec.source}"`;
        const log = comment === undefined ? '' : ` nflog prefix="${comment}"`;
        await admin([
          '--zone=public',
          `--add-rich-rule=rule family="${family}"${source} port port="${spec.port}" protocol="udp"${log} accept`,
        ]);
      },
      cleanup: reset,
    };
  });

  describe('what only a real firewalld shows', () => {
    const spec = (port: number, family: 'v4' | 'v6' = 'v4'): RuleSpec => ({
      port,
      family,
      source: family === 'v4' ? '0.0.0.0/0' : '::/0',
    });

    it('probe names the zone and why; the rich rule is listed back exactly as we wrote it', async () => {
      await reset();
      const backend = newBackend();
      const probe = await backend.probe();
      assert.equal(probe.active, true);
      assert.ok(
        probe.detail.some(
          (line) => line === "zone: public, firewalld's default zone (there is no default route)",
        ),
        probe.detail.join('\n'),
      );
      await backend.allow([spec(60710), { port: 60710, family: 'v6', source: '2001:db8::/32' }]);
      assert.deepEqual(
        (await admin(['--zone=public', '--list-rich-rules'])).split('\n').filter(Boolean).sort(),
        [
          'rule family="ipv4" port port="60710" protocol="udp" nflog prefix="moshwall" limit value="1/h" accept',
          'rule family="ipv6" source address="2001:db8::/32" port port="60710" protocol="udp" nflog prefix="moshwall" limit value="1/h" accept',
        ],
      );
      await reset();
    });

    it('a port is reachable through the zone only between allow and revoke, per family', async () => {
      await reset();
      const backend = newBackend();
      const port = 60720;
      assert.deepEqual(
        [await theLab().udpReachable(port, 'v4'), await theLab().udpReachable(port, 'v6')],
        [false, false],
      );
      await backend.allow([spec(port)]);
      assert.deepEqual(
        [await theLab().udpReachable(port, 'v4'), await theLab().udpReachable(port, 'v6')],
        [true, false],
      );
      await backend.allow([spec(port, 'v6')]);
      assert.equal(await theLab().udpReachable(port, 'v6'), true);
      await backend.revoke([spec(port), spec(port, 'v6')]);
      assert.deepEqual(
        [await theLab().udpReachable(port, 'v4'), await theLab().udpReachable(port, 'v6')],
        [false, false],
      );
    });

    it("the admin's plain port, range, service and rich accept cover; a rich reject conflicts; none is ever touched", async () => {
      await reset();
      await admin(['--zone=public', '--add-port=60730/udp', '--add-port=60740-60745/udp']);
      await admin([
        '--zone=public',
        '--add-rich-rule=rule family="ipv4" source address="192.0.2.0/24" port port="60750" protocol="udp" accept',
        '--add-rich-rule=rule family="ipv4" port port="60760" protocol="udp" reject',
      ]);
      const backend = newBackend();
      const wanted = [
        spec(60730),
        spec(60730, 'v6'),
        spec(60742),
        { port: 60750, family: 'v4' as const, source: '192.0.2.2/32' },
        spec(60760),
        spec(60770),
      ];
      const deferred = async () =>
        planChanges(wanted, await backend.listRules()).deferred.map(
          (each) => `${each.spec.family}/${each.spec.port} ${each.kind} by ${each.rule.raw}`,
        );
      assert.deepEqual(await deferred(), [
        'v4/60730 covered by port 60730/udp',
        'v6/60730 covered by port 60730/udp',
        'v4/60742 covered by port 60740-60745/udp',
        'v4/60750 covered by rule family="ipv4" source address="192.0.2.0/24" port port="60750" protocol="udp" accept',
        'v4/60760 conflict by rule family="ipv4" port port="60760" protocol="udp" reject',
      ]);
      // The stock mosh service (60000-61000/udp) covers the whole range, in both families.
      await admin(['--zone=public', '--add-service=mosh']);
      assert.ok((await deferred()).includes('v4/60770 covered by service mosh'));
      const before = await listing();
      for (let round = 0; round < 3; round++) {
        await backend.allow([spec(60770), spec(60730), spec(60760)]);
        await backend.revoke([spec(60770), spec(60730), spec(60742), spec(60760)]);
      }
      assert.equal(await listing(), before, "the admin's rules are exactly as they were");
      await reset();
    });

    it('a firewalld reload drops our runtime rules (the daemon puts them back); the admin runtime port too', async () => {
      await reset();
      const backend = newBackend();
      await backend.allow([spec(60780)]);
      assert.equal((await backend.listRules()).filter((rule) => rule.ours).length, 1);
      await admin(['--reload']);
      assert.deepEqual(
        (await backend.listRules()).filter((rule) => rule.ours),
        [],
      );
      assert.equal(await theLab().udpReachable(60780, 'v4'), false);
      await backend.allow([spec(60780)]);
      assert.equal(await theLab().udpReachable(60780, 'v4'), true);
      await reset();
    });

    it('a configured zone that does not exist is a clear error, and nothing changes', async () => {
      await reset();
      const backend = createFirewalldBackend({
        runner: runnerInLab(),
        timeoutMs: TIMEOUT_MS,
        zone: 'nosuchzone',
      });
      await assert.rejects(backend.allow([spec(60790)]), /firewalld has no zone "nosuchzone"/);
      assert.equal(await listing(), baseline);
    });

    it('measures one allow and one revoke through firewall-cmd (median of 10)', async (t) => {
      await reset();
      const spent: Record<'allow' | 'revoke', number[]> = { allow: [], revoke: [] };
      const commands: Record<'allow' | 'revoke', number[]> = { allow: [], revoke: [] };
      let phase: 'allow' | 'revoke' = 'allow';
      const inner = runnerInLab();
      const backend = newBackend(async (argv, options) => {
        const result = await inner(argv, options);
        if (argv.some((word) => word.includes('rich-rule'))) commands[phase].push(result.durationMs);
        return result;
      });
      await backend.probe();
      for (let round = 0; round < 10; round++) {
        for (const kind of ['allow', 'revoke'] as const) {
          phase = kind;
          const begun = performance.now();
          await backend[kind]([spec(60800)]);
          spent[kind].push(performance.now() - begun);
        }
      }
      const bare: number[] = [];
      for (let round = 0; round < 10; round++)
        bare.push((await inner(['true'], { timeoutMs: TIMEOUT_MS })).durationMs);
      t.diagnostic(
        `firewalld: allow ${median(spent.allow).toFixed(1)} ms, revoke ${median(spent.revoke).toFixed(1)} ms ` +
          `(firewall-cmd alone: ${median(commands.allow).toFixed(1)} / ${median(commands.revoke).toFixed(1)} ms; ` +
          `nsenter true: ${median(bare).toFixed(1)} ms)`,
      );
      assert.equal(await listing(), baseline);
    });
  });
});
