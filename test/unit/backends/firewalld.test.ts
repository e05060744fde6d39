import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  createFirewalldBackend,
  defaultRouteInterface,
  FIREWALLD_RULES_PER_CALL,
  FIREWALLD_WATCH_ARGV,
  firewallCmdProblems,
  firewalldArgvProblem,
  firewalldEvent,
  parseOurRule,
  parseServiceInfo,
  parseZoneListing,
  planFirewalldCalls,
  renderOurRule,
  zoneRules,
} from '../../../src/backends/firewalld.ts';
import { DEFAULT_CONFIG } from '../../../src/config.ts';
import { diagnose } from '../../../src/doctor.ts';
import { ExecError, FirewallError } from '../../../src/errors.ts';
import type { LineWatcher } from '../../../src/exec.ts';
import { planChanges } from '../../../src/reconcile.ts';
import type { FirewallRule } from '../../../src/rules.ts';
import { v4, v6 } from '../../support/builders.ts';
import {
  assertRefusedBeforeAnyCommand,
  type CannedAnswer,
  notInstalled,
  recordedBackend,
} from './recording-runner.ts';

// Outputs of the real firewall-cmd 1.3.3 against a real firewalld (nftables backend) in a network
// namespace on a private system bus; see test/fixtures/firewalld/README.md.
const FIXTURES = new URL('../../fixtures/firewalld/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');
const ok = (stdout: string, stderr = ''): CannedAnswer => ({ exitCode: 0, stdout, stderr });
const TIMEOUT = 4321;
const TAIL = 'nflog prefix="moshwall" limit value="1/h" accept';

function backendWith(
  answers: CannedAnswer[],
  options: { zone?: string; watcher?: LineWatcher; restartDelayMs?: number } = {},
) {
  return recordedBackend(answers, (runner) =>
    createFirewalldBackend({ runner, timeoutMs: TIMEOUT, ...options }),
  );
}

/** A service lookup over the captured --info-service outputs. */
const services = (name: string) => {
  try {
    return parseServiceInfo(fixture(`info-service-${name}.txt`));
  } catch {
    return undefined;
  }
};

/** A rule as "family action protocol ports from source [to destination] [sport] [comment] [ours]". */
function summary(rule: FirewallRule): string {
  const ports =
    rule.ports === 'any' ? 'any' : rule.ports.map((range) => `${range.first}-${range.last}`).join(',');
  const anywhere = rule.family === 'v4' ? '0.0.0.0/0' : '::/0';
  return [
    rule.family,
    rule.action,
    rule.protocol,
    ports,
    `from ${rule.source}`,
    rule.destination === anywhere ? '' : `to ${rule.destination}`,
    rule.sourcePorts === undefined ? '' : `sport ${rule.sourcePorts}`,
    rule.comment === '' ? '' : `"${rule.comment}"`,
    rule.ours ? 'OURS' : '',
  ]
    .filter(Boolean)
    .join(' ');
}

describe('firewalld backend: golden commands', () => {
  it('probe → listRules → allow (one batched call) → revoke, in the default zone when there is no default route', async () => {
    const { backend, calls } = backendWith([
      ok('1.3.3\n'),
      ok('running\n'),
      ok(''),
      ok(''),
      ok('public\n'),
      ok(fixture('list-all-stock.txt')),
      ok(fixture('info-service-dhcpv6-client.txt')),
      ok(fixture('info-service-ssh.txt')),
      ok('success\n'),
      ok(
        'success\n',
        `Warning: NOT_ENABLED: 'rule family="ipv4" port port="60009" protocol="udp" ${TAIL}' not in 'public'\n`,
      ),
    ]);
    const probe = await backend.probe();
    const rules = await backend.listRules();
    const allowed = await backend.allow([v4(60001), v6(60001), v4(60002, '10.0.0.0/8'), v4(60001)]);
    const revoked = await backend.revoke([v4(60001), v4(60009)]);
    assert.deepEqual(
      calls.map((call) => call.argv),
      [
        ['firewall-cmd', '--version'],
        ['firewall-cmd', '--state'],
        ['ip', '-4', '-o', 'route', 'show', 'default'],
        ['ip', '-6', '-o', 'route', 'show', 'default'],
        ['firewall-cmd', '--get-default-zone'],
        ['firewall-cmd', '--zone=public', '--list-all'],
        ['firewall-cmd', '--info-service=dhcpv6-client'],
        ['firewall-cmd', '--info-service=ssh'],
        [
          'firewall-cmd',
          '--zone=public',
          `--add-rich-rule=rule family="ipv4" port port="60001" protocol="udp" ${TAIL}`,
          `--add-rich-rule=rule family="ipv6" port port="60001" protocol="udp" ${TAIL}`,
          `--add-rich-rule=rule family="ipv4" source address="10.0.0.0/8" port port="60002" protocol="udp" ${TAIL}`,
        ],
        [
          'firewall-cmd',
          '--zone=public',
          `--remove-rich-rule=rule family="ipv4" port port="60001" protocol="udp" ${TAIL}`,
          `--remove-rich-rule=rule family="ipv4" port port="60009" protocol="udp" ${TAIL}`,
        ],
      ],
    );
    for (const call of calls) assert.deepEqual(call.options, { timeoutMs: TIMEOUT });
    assert.deepEqual(probe, {
      installed: true,
      active: true,
      ipv6: true,
      detail: [
        'firewalld 1.3.3',
        'state: running',
        "zone: public, firewalld's default zone (there is no default route)",
        'rules: runtime rich rules tagged nflog prefix="moshwall" (never --permanent); a firewalld reload drops them and moshwall puts them back',
      ],
    });
    assert.deepEqual(rules.map(summary), [
      'v4 allow tcp 22-22 from 0.0.0.0/0',
      'v6 allow udp 546-546 from ::/0 to fe80::/64',
      'v6 allow tcp 22-22 from ::/0',
    ]);
    assert.deepEqual(
      allowed.map((change) => [change.kind, change.specs.length, change.output]),
      [['allow', 3, 'success']],
    );
    assert.equal(revoked[0]?.kind, 'revoke');
  });

  it('uses the zone of the default route interface, and a configured zone after checking it exists', async () => {
    const routed = backendWith([
      ok('default via 10.9.0.254 dev eth0 proto static \\    cache \n'),
      ok('internal\n'),
      ok('success\n'),
    ]);
    await routed.backend.allow([v4(60001)]);
    assert.deepEqual(
      routed.calls.map((call) => call.argv.slice(0, 3)),
      [
        ['ip', '-4', '-o'],
        ['firewall-cmd', '--get-zone-of-interface=eth0'],
        [
          'firewall-cmd',
          '--zone=internal',
          `--add-rich-rule=rule family="ipv4" port port="60001" protocol="udp" ${TAIL}`,
        ],
      ],
    );

    const configured = backendWith(
      [ok('block dmz drop external home internal public trusted work\n'), ok('success\n')],
      {
        zone: 'dmz',
      },
    );
    await configured.backend.allow([v4(60001)]);
    assert.deepEqual(
      configured.calls.map((call) => call.argv[1]),
      ['--get-zones', '--zone=dmz'],
    );

    const missing = backendWith([ok('block public\n')], { zone: 'dmz' });
    await assert.rejects(
      missing.backend.allow([v4(60001)]),
      /firewalld has no zone "dmz" \(firewalld_zone\); its zones: block, public/,
    );
    assert.equal(missing.calls.length, 1);
    assert.throws(
      () => createFirewalldBackend({ runner: async () => ok('') as never, timeoutMs: 1, zone: 'a;b' }),
      FirewallError,
    );
  });

  it('an unbound default-route interface means the default zone, and the probe says why', async () => {
    const { backend } = backendWith([
      ok('1.3.3\n'),
      ok('running\n'),
      ok('default via 192.0.2.254 dev ens3 \n'),
      { exitCode: 2, stdout: 'no zone\n', stderr: '' },
      ok('public\n'),
    ]);
    const probe = await backend.probe();
    assert.equal(
      probe.detail[2],
      "zone: public, firewalld's default zone (ens3, the interface of the default route, is bound to no zone)",
    );
  });

  it('not installed and not running are probe answers, not errors', async () => {
    const missing = backendWith([notInstalled(['firewall-cmd'])]);
    assert.deepEqual(await missing.backend.probe(), {
      installed: false,
      active: false,
      ipv6: false,
      detail: ['firewalld is not installed (no runnable `firewall-cmd` on PATH)'],
    });
    const stopped = backendWith([
      ok('1.3.3\n'),
      {
        exitCode: Number(fixture('state-not-running.rc').replace('rc=', '')),
        stdout: fixture('state-not-running.stdout'),
        stderr: fixture('state-not-running.stderr'),
      },
    ]);
    const probe = await stopped.backend.probe();
    assert.deepEqual([probe.installed, probe.active], [true, false]);
    assert.equal(probe.detail[1], 'state: not running');
  });

  it('refuses every invalid spec before running anything', async () => {
    await assertRefusedBeforeAnyCommand(backendWith([]), [v6(60001, '0.0.0.0/0')]);
  });
});

describe('firewalld backend: errors of firewall-cmd', () => {
  /** A backend whose zone is already known, so the answers given are those of the change itself. */
  const afterZone = (answer: CannedAnswer) => backendWith([ok('public\n'), answer], { zone: 'public' });

  it('adding what is there and removing what is not succeed', async () => {
    const add = backendWith([ok('public\n'), ok('success\n', fixture('add-already-enabled.stderr'))], {
      zone: 'public',
    });
    assert.equal((await add.backend.allow([v4(60001)])).length, 1);
    const remove = backendWith([ok('public\n'), ok('success\n', fixture('remove-not-enabled.stderr'))], {
      zone: 'public',
    });
    assert.equal((await remove.backend.revoke([v4(60009)])).length, 1);
  });

  it('a warning other than those, even with exit 0, is a FirewallError that says others may have applied', async () => {
    const { backend } = afterZone(
      ok(fixture('batch-invalid-port.stdout'), fixture('batch-invalid-port.stderr')),
    );
    await assert.rejects(backend.allow([v4(60001), v4(60002)]), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.match(error.message, /could not allow udp port\(s\) 60001,60002: Warning: INVALID_PORT: 70000/);
      assert.match(error.message, /may have been applied/);
      return true;
    });
  });

  it('a timed-out call is a FirewallError naming the ports, saying others may have applied, with the cause', async () => {
    const timedOut = new ExecError('firewall-cmd did not finish within 4321 ms', { command: 'firewall-cmd' });
    const { backend } = afterZone(timedOut);
    await assert.rejects(backend.allow([v4(60001), v4(60002)]), (error: unknown) => {
      assert.ok(error instanceof FirewallError);
      assert.match(
        error.message,
        /could not allow udp port\(s\) 60001,60002: firewall-cmd did not finish within 4321 ms/,
      );
      assert.match(error.message, /may have been applied/);
      assert.equal(error.cause, timedOut);
      return true;
    });
  });

  it(`a large batch goes as calls of ${FIREWALLD_RULES_PER_CALL} rules, one after another, stopping at a failure`, async () => {
    const specs = Array.from({ length: 2 * FIREWALLD_RULES_PER_CALL + 1 }, (_, index) => v4(60001 + index));
    const calls = planFirewalldCalls('allow', 'public', [...specs, ...specs]);
    assert.deepEqual(
      calls.map((call) => call.specs.length),
      [FIREWALLD_RULES_PER_CALL, FIREWALLD_RULES_PER_CALL, 1],
      'duplicates once, then chunks',
    );
    assert.deepEqual(
      calls.flatMap((call) => call.specs.map((spec) => spec.port)),
      specs.map((spec) => spec.port),
    );
    for (const call of calls) {
      assert.deepEqual(call.argv.slice(0, 2), ['firewall-cmd', '--zone=public']);
      assert.equal(call.argv.length, 2 + call.specs.length);
    }
    const whole = backendWith([ok('public\n'), ok('success\n'), ok('success\n'), ok('success\n')], {
      zone: 'public',
    });
    const applied = await whole.backend.allow(specs);
    assert.deepEqual(
      applied.map((change) => change.specs.length),
      [FIREWALLD_RULES_PER_CALL, FIREWALLD_RULES_PER_CALL, 1],
    );
    assert.deepEqual(
      whole.calls.slice(1).map((call) => call.argv),
      calls.map((call) => call.argv),
    );
    const broken = backendWith(
      [
        ok('public\n'),
        ok('success\n'),
        ok(fixture('batch-invalid-port.stdout'), fixture('batch-invalid-port.stderr')),
      ],
      { zone: 'public' },
    );
    await assert.rejects(broken.backend.revoke(specs), FirewallError);
    assert.equal(broken.calls.length, 3, 'no call after the failing one');
  });

  it('firewalld not running is a FirewallError with its words', async () => {
    const { backend } = afterZone({ exitCode: 252, stdout: '', stderr: 'FirewallD is not running\n' });
    await assert.rejects(backend.revoke([v4(60001)]), /exit 252: FirewallD is not running/);
  });

  it('an unknown zone in a listing is a FirewallError', async () => {
    const { backend } = afterZone({
      exitCode: 112,
      stdout: '',
      stderr: fixture('list-all-invalid-zone.stderr'),
    });
    await assert.rejects(backend.listRules(), /--list-all` failed: Error: INVALID_ZONE: nosuch/);
  });

  it('firewallCmdProblems keeps only real failures', () => {
    const result = (exitCode: number, stderr: string) => ({
      argv: [],
      durationMs: 1,
      exitCode,
      stdout: '',
      stderr,
    });
    assert.deepEqual(firewallCmdProblems(result(0, fixture('add-already-enabled.stderr'))), []);
    assert.deepEqual(firewallCmdProblems(result(0, fixture('remove-not-enabled.stderr'))), []);
    assert.deepEqual(firewallCmdProblems(result(0, fixture('batch-invalid-port.stderr'))), [
      'Warning: INVALID_PORT: 70000',
    ]);
    assert.deepEqual(firewallCmdProblems(result(2, 'usage: …\n')), ['exit 2: usage: …']);
  });
});

describe('firewalld rich rules of ours', () => {
  it('render and parse round-trip for every shape; the source is left out when it is anywhere', () => {
    for (const spec of [
      v4(60001),
      v6(65535),
      v4(1, '10.0.0.0/8'),
      v6(60002, '2001:db8::/32'),
      v4(60003, '192.0.2.7/32'),
    ]) {
      assert.deepEqual(parseOurRule(renderOurRule(spec)), spec);
    }
    assert.equal(renderOurRule(v4(60001)), `rule family="ipv4" port port="60001" protocol="udp" ${TAIL}`);
  });

  it('near misses belong to the admin', () => {
    for (const text of [
      `rule family="ipv4" port port="60003" protocol="udp" nflog prefix="moshwall" limit value="1/m" accept`,
      `rule family="ipv4" port port="60003" protocol="udp" nflog prefix="moshwall2" limit value="1/h" accept`,
      `rule family="ipv4" source address="0.0.0.0/0" port port="60003" protocol="udp" ${TAIL}`,
      `rule family="ipv4" source address="10.0.0.1/8" port port="60003" protocol="udp" ${TAIL}`,
      `rule family="ipv4" source address="2001:db8::/32" port port="60003" protocol="udp" ${TAIL}`,
      `rule family="ipv4" port port="60003-60004" protocol="udp" ${TAIL}`,
      `rule family="ipv4" port port="060003" protocol="udp" ${TAIL}`,
      `rule family="ipv4" port port="70000" protocol="udp" ${TAIL}`,
      `rule port port="60003" protocol="udp" ${TAIL}`,
      `rule family="ipv4" port port="60003" protocol="tcp" ${TAIL}`,
      `rule family="ipv4" port port="60003" protocol="udp" log prefix="moshwall" level="debug" accept`,
      `rule family="ipv4" port port="60003" protocol="udp" ${TAIL} `,
      `rule priority="1" family="ipv4" port port="60003" protocol="udp" ${TAIL}`,
    ]) {
      assert.equal(parseOurRule(text), undefined, text);
    }
  });
});

describe('firewalld listings (real firewall-cmd output)', () => {
  it('parses a zone with every kind of entry into rules; ours flagged, admin rules as they act', () => {
    const zone = parseZoneListing(fixture('list-all-mixed.txt'));
    assert.deepEqual(
      [
        zone.name,
        zone.target,
        zone.services,
        zone.ports,
        zone.protocols,
        zone.sourcePorts,
        zone.richRules.length,
      ],
      [
        'public',
        'default',
        ['dhcpv6-client', 'dns', 'mosh', 'ssh'],
        ['60730/udp', '60740-60745/udp', '8080/tcp'],
        ['gre'],
        ['53/udp'],
        12,
      ],
    );
    assert.deepEqual(zoneRules(zone, services).map(summary), [
      'v4 allow udp 60730-60730 from 0.0.0.0/0',
      'v4 allow udp 60740-60745 from 0.0.0.0/0',
      'v4 allow tcp 8080-8080 from 0.0.0.0/0',
      'v4 allow other any from 0.0.0.0/0',
      'v4 allow udp any from 0.0.0.0/0 sport 53',
      'v4 allow tcp 53-53 from 0.0.0.0/0',
      'v4 allow udp 53-53 from 0.0.0.0/0',
      'v4 allow udp 60000-61000 from 0.0.0.0/0',
      'v4 allow tcp 22-22 from 0.0.0.0/0',
      'v6 allow udp 60730-60730 from ::/0',
      'v6 allow udp 60740-60745 from ::/0',
      'v6 allow tcp 8080-8080 from ::/0',
      'v6 allow other any from ::/0',
      'v6 allow udp any from ::/0 sport 53',
      'v6 allow udp 546-546 from ::/0 to fe80::/64',
      'v6 allow tcp 53-53 from ::/0',
      'v6 allow udp 53-53 from ::/0',
      'v6 allow udp 60000-61000 from ::/0',
      'v6 allow tcp 22-22 from ::/0',
      'v4 deny any any from 198.51.100.0/24',
      'v4 deny udp 60761-60761 from 0.0.0.0/0',
      'v6 deny udp 60761-60761 from ::/0',
      'v4 allow udp 60763-60763 from not a network: not address=10.0.0.0/8',
      'v4 allow udp 60750-60750 from 192.0.2.0/24',
      'v6 allow udp 60002-60002 from 2001:db8::/32 "moshwall" OURS',
      'v4 allow udp 60001-60001 from 0.0.0.0/0 "moshwall" OURS',
      'v4 allow udp 60762-60762 from 10.1.2.3/32 "admin"',
      'v4 reject udp 60760-60760 from 0.0.0.0/0',
      'v6 limit udp any from ::/0',
      'v4 allow udp 5353-5353 from 0.0.0.0/0 to 224.0.0.251',
      'v6 allow udp 5353-5353 from ::/0 to ff02::fb',
      'v4 allow udp 60003-60003 from 0.0.0.0/0 "moshwall"',
    ]);
  });

  it('reconcile over that zone: covered by ports, ranges and services, conflicts with reject/drop, sweeps ours', () => {
    const rules = zoneRules(parseZoneListing(fixture('list-all-mixed.txt')), services);
    const plan = planChanges([v4(60730), v6(60900), v4(62760), v4(60003), v4(62000)], rules);
    assert.deepEqual(
      plan.deferred.map((each) => `${each.spec.family}/${each.spec.port} ${each.kind} by ${each.rule.raw}`),
      [
        // The mosh service (60000-61000/udp) covers every port of the range...
        'v4/60003 covered by service mosh',
        'v4/60730 covered by port 60730/udp',
        'v6/60900 covered by service mosh',
      ],
    );
    // ...and where an admin's reject matches a spec exactly, it is a conflict: nothing of ours is added
    // (firewalld checks a zone's deny rules before its allow rules, so an accept of ours could not help).
    const rejecting = zoneRules(
      parseZoneListing(fixture('list-all-mixed.txt').replace(' mosh ', ' ')),
      services,
    );
    const conflicts = planChanges([v4(60760), v6(60761), v4(60762)], rejecting);
    assert.deepEqual(
      conflicts.deferred.map((each) => `${each.spec.family}/${each.spec.port} ${each.kind}`),
      ['v4/60760 conflict', 'v6/60761 conflict'],
    );
    assert.deepEqual(conflicts.allow, [v4(60762)], 'an allow from 10.1.2.3 only does not cover anywhere');
    // 60003's rule has our prefix but not our exact shape (limit 1/m): it is the admin's, never swept.
    assert.deepEqual(plan.allow, [v4(62000), v4(62760)]);
    assert.deepEqual(plan.revoke, [v4(60001), v6(60002, '2001:db8::/32')]);
  });

  it('target ACCEPT (the trusted zone) covers everything in both families', () => {
    const rules = zoneRules(parseZoneListing(fixture('list-all-trusted.txt')), services);
    assert.deepEqual(rules.map(summary), ['v4 allow any any from 0.0.0.0/0', 'v6 allow any any from ::/0']);
  });

  it('refuses text that is not a zone listing', () => {
    assert.throws(() => parseZoneListing('FirewallD is not running\n'), /Unexpected output/);
  });

  it('finds the default route interface', () => {
    assert.equal(
      defaultRouteInterface('default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100 \n'),
      'eth0',
    );
    assert.equal(defaultRouteInterface(''), undefined);
  });
});

describe('firewalld argv guard', () => {
  it('allows the read-only calls and our own rich rule changes', () => {
    for (const argv of [
      ['firewall-cmd', '--version'],
      ['firewall-cmd', '--state'],
      ['firewall-cmd', '--get-default-zone'],
      ['firewall-cmd', '--get-zones'],
      ['firewall-cmd', '--get-zone-of-interface=eth0'],
      ['firewall-cmd', '--info-service=dhcpv6-client'],
      ['firewall-cmd', '--zone=public', '--list-all'],
      [
        'firewall-cmd',
        '--zone=public',
        `--add-rich-rule=${renderOurRule(v4(60001))}`,
        `--add-rich-rule=${renderOurRule(v6(60001))}`,
      ],
      ['firewall-cmd', '--zone=public', `--remove-rich-rule=${renderOurRule(v4(60001, '10.0.0.0/8'))}`],
    ]) {
      assert.equal(firewalldArgvProblem(argv), undefined, argv.join(' '));
    }
  });

  it('refuses --permanent, reloads, other verbs, foreign rules, mixed changes and odd names', () => {
    const ours = `--add-rich-rule=${renderOurRule(v4(60001))}`;
    for (const argv of [
      ['firewall-cmd', '--permanent', '--zone=public', ours],
      ['firewall-cmd', '--zone=public', '--permanent', ours],
      ['firewall-cmd', '--zone=public', ours, '--permanent'],
      ['firewall-cmd', '--reload'],
      ['firewall-cmd', '--complete-reload'],
      ['firewall-cmd', '--runtime-to-permanent'],
      ['firewall-cmd', '--panic-on'],
      ['firewall-cmd', '--set-default-zone=trusted'],
      ['firewall-cmd', '--zone=public', '--add-port=60001/udp'],
      [
        'firewall-cmd',
        '--zone=public',
        '--add-rich-rule=rule family="ipv4" port port="60001" protocol="udp" accept',
      ],
      ['firewall-cmd', '--zone=public', ours, `--remove-rich-rule=${renderOurRule(v4(60002))}`],
      ['firewall-cmd', '--zone=public'],
      ['firewall-cmd', '--zone=pub;lic', '--list-all'],
      ['firewall-cmd', '--zone=public', '--list-all', '--permanent'],
      ['firewall-cmd', '--get-zone-of-interface=eth0 --reload'],
      ['firewall-cmd', '--state', '--reload'],
      ['ufw', 'status'],
    ]) {
      assert.notEqual(firewalldArgvProblem(argv), undefined, argv.join(' '));
    }
  });
});

describe('firewalld watcher', () => {
  it('watches the Reloaded signal and the bus name, re-resolves the zone after an event, and restarts a dead watcher', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const watches: {
      argv: string[];
      onLine: (line: string) => void;
      onExit: (why: string) => void;
      closed: boolean;
    }[] = [];
    const watcher: LineWatcher = (argv, onLine, onExit) => {
      const watch = { argv, onLine, onExit, closed: false };
      watches.push(watch);
      return {
        close() {
          watch.closed = true;
        },
      };
    };
    const { backend, calls } = backendWith(
      [ok('public\n'), ok('success\n'), ok('public\n'), ok('success\n'), ok('success\n')],
      { zone: 'public', watcher, restartDelayMs: 5000 },
    );
    const events: string[] = [];
    const handle = backend.watchChanges?.((what) => events.push(what));
    assert.deepEqual(
      watches.map((watch) => watch.argv),
      [FIREWALLD_WATCH_ARGV],
    );
    const [first] = watches;
    assert.ok(first);
    await backend.allow([v4(60001)]);
    first.onLine(
      'signal time=1795522578.850919 sender=org.freedesktop.DBus -> destination=:1.23 serial=2 path=/org/freedesktop/DBus; interface=org.freedesktop.DBus; member=NameAcquired',
    );
    first.onLine('   string ":1.23"');
    assert.deepEqual(events, []);
    first.onLine(
      'signal time=1795522580.199920 sender=:1.0 -> destination=(null destination) serial=2412 path=/org/fedoraproject/FirewallD1; interface=org.fedoraproject.FirewallD1; member=Reloaded',
    );
    assert.deepEqual(events, ['firewalld reloaded']);
    await backend.allow([v4(60001)]);
    await backend.allow([v4(60001)]);
    // The zone was looked up again after the reload, once.
    assert.deepEqual(
      calls.map((call) => call.argv[1]),
      ['--get-zones', '--zone=public', '--get-zones', '--zone=public', '--zone=public'],
    );
    first.onExit('dbus-monitor exited (code 1)');
    assert.equal(
      events[1],
      'the firewalld watcher ended (dbus-monitor exited (code 1)); restarting it in 5 s',
    );
    t.mock.timers.tick(4999);
    assert.equal(watches.length, 1, 'not before the delay');
    t.mock.timers.tick(1);
    assert.equal(watches.length, 2, 'started again');
    assert.equal(events[2], 'the firewalld watcher restarted');
    handle?.close();
    assert.equal(watches[1]?.closed, true);
    watches[1]?.onExit('dbus-monitor exited (signal SIGTERM)');
    t.mock.timers.tick(600_000);
    assert.equal(watches.length, 2, 'not restarted after close()');
    assert.equal(events.length, 3);
  });

  it('names the events it reacts to', () => {
    assert.equal(
      firewalldEvent(
        'signal time=1 sender=org.freedesktop.DBus -> destination=(null destination) serial=9 path=/org/freedesktop/DBus; interface=org.freedesktop.DBus; member=NameOwnerChanged',
      ),
      'firewalld started or stopped',
    );
    assert.equal(firewalldEvent('   string "org.fedoraproject.FirewallD1"'), undefined);
  });
});

describe('doctor over firewalld', () => {
  const facts = (installed: boolean, rules: FirewallRule[]) => ({
    isRoot: true,
    config: { ...DEFAULT_CONFIG, backend: 'firewalld' as const, source: '/c.toml' },
    backendName: 'firewalld',
    probe: { installed, active: installed, ipv6: true, detail: ['firewalld 1.3.3'] },
    rules,
    moshServerProblem: undefined,
    hostHasIpv6: true,
  });

  it('says how to get firewalld when it is missing', () => {
    const firewall = diagnose(facts(false, [])).find((finding) => finding.check === 'firewall');
    assert.match(firewall?.fix ?? '', /apt-get install firewalld/);
  });

  it("warns that the admin's mosh service already opens the whole range to anyone", () => {
    const rules = zoneRules(parseZoneListing(fixture('list-all-mixed.txt')), services);
    const range = diagnose(facts(true, rules)).filter((finding) => finding.check === 'range');
    assert.ok(
      range.some((finding) => finding.level === 'warn' && finding.message.endsWith('by: service mosh')),
      JSON.stringify(range, null, 1),
    );
  });
});
