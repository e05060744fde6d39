// Real mosh sessions (the real `mosh` client in a terminal on the client host, real ssh, real
// mosh-server) through the lab's default-deny UFW, with `moshwall daemon` running and the shim installed
// as /usr/local/bin/mosh-server: the session connects and works, its rule exists exactly while it runs,
// it survives the client changing address, and two users at once each get their own port and rule.
// Last, mosh-server's own utmp helper briefly holding its socket must not keep a genuine session closed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, type TestContext, test } from 'node:test';
import { type Daemon, exchange, installShim, moshwall, startDaemon } from './_daemon.ts';
import { type MoshClient, startMoshClient } from './_mosh-client.ts';
import { expectedOurs, ourTuples, parseOk, type StatusJson, sortTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { isGone, udpBound } from './_procfs.ts';
import { CLIENT_V4, createLab, type Lab, labSkipReason, PID_KINDS, type UfwTuple } from './lab.ts';

/** The daemon's config in these tests: the defaults, spelled out. */
const CONFIG = 'backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\n';
/** Generous bounds for things that happen within a poll or two; the bench measures how long they take. */
const CLOSE_BOUND_MS = 10_000;
const ROAMED_V4 = '192.0.2.3';
/** libutempter's helper, which mosh-server runs (fork+exec, its UDP socket inherited) to write utmp. */
const UTEMPTER_HELPER = '/usr/lib/x86_64-linux-gnu/utempter/utempter';

for (const pids of PID_KINDS) {
  describe(`daemon + shim: real mosh sessions through default-deny UFW (${pids.name})`, {
    skip: labSkipReason(),
  }, () => {
    let daemon: Daemon | undefined;
    /** The admin's rules the lab starts with (22/tcp), which must never change. */
    let adminRules: UfwTuple[] = [];
    const clients: MoshClient[] = [];

    const theLab = useLab(
      () => createLab(pids.options),
      async () => {
        for (const client of clients) await client.close();
      },
    );
    const theDaemon = (): Daemon => {
      assert.ok(daemon, 'the daemon did not start in before()');
      return daemon;
    };
    /** A real mosh session as `user`, closed after the test file whatever happens. */
    const connect = async (user: string): Promise<MoshClient> => {
      const client = await startMoshClient(theLab(), { user });
      clients.push(client);
      return client;
    };
    /** `moshwall status --json` with the daemon's config. */
    const statusJson = async () =>
      parseOk<StatusJson>(await moshwall(theLab(), ['status', '--json']), 'status --json');
    const ours = async () => ourTuples(await theLab().ufwTuples());
    const admins = async () =>
      sortTuples((await theLab().ufwTuples()).filter((t) => t.comment !== 'moshwall'));
    /** Waits until no socket holds `port` in the server host and no rule of ours is left, without a sync. */
    const assertClosedByDaemon = async (ports: number[]) => {
      const holder = theLab().server.holderPid;
      assert.ok(
        await waitUntil(() => ports.every((port) => !udpBound(holder, port)), CLOSE_BOUND_MS),
        `mosh-server still holds one of ${ports.join(', ')}`,
      );
      assert.ok(
        await waitUntil(async () => (await ours()).length === 0, CLOSE_BOUND_MS),
        `rules of ours left after the sessions ended: ${JSON.stringify(await ours())}\n${theDaemon().log()}`,
      );
      for (const port of ports) {
        await theDaemon().waitForLine(new RegExp(`^info closed port=${port} family=v4 `), {
          timeoutMs: 1000,
        });
      }
    };

    /** Ends every session left in the lab (clients, then mosh-servers) and converges the rules. */
    const endEverySession = async () => {
      for (const client of clients.splice(0)) await client.close();
      const status = await statusJson();
      const pids = [
        ...status.sessions,
        ...status.refused.filter((holder) => holder.exe.endsWith('mosh-server')),
      ]
        .map((holder) => theLab().hostPid(holder.pid))
        .filter((pid): pid is number => pid !== undefined);
      for (const pid of pids) await theLab().killServerProcess(pid);
      if (!(await waitUntil(async () => (await ours()).length === 0, CLOSE_BOUND_MS))) {
        await moshwall(theLab(), ['sync']);
      }
    };
    /** Runs one session scenario (kept as a seam: no retries, a failure fails its test). */
    const runScenario = async (_t: TestContext, body: () => Promise<void>) => {
      await body();
    };

    before(async () => {
      adminRules = await admins();
      await installShim(theLab());
      daemon = await startDaemon(theLab(), CONFIG);
    });

    test('the shim holds MOSH CONNECT until the rule is in place', (t) =>
      runScenario(t, async () => {
        const from = theDaemon().lines().length;
        // ssh returns as soon as mosh-server has printed MOSH CONNECT and detached: no waiting after it.
        const server = await theLab().startMoshServer('alice', { port: 60050 });
        try {
          assert.deepEqual(
            await ours(),
            expectedOurs([[60050, 'v4']]),
            'rule present when MOSH CONNECT arrived',
          );
          assert.match(server.output, /^MOSH CONNECT 60050 [A-Za-z0-9/+]{22}\r?$/m);
          const served = await theDaemon().waitForLine(/^info request-served port=60050 state=open$/, {
            from,
          });
          const opened = await theDaemon().waitForLine(/^info opened port=60050 family=v4 .*user=alice /, {
            from,
          });
          assert.ok(opened.at <= served.at, 'the daemon answered the shim only after adding the rule');
        } finally {
          await theLab().killServerProcess(server.pid);
        }
        await assertClosedByDaemon([60050]);
      }));

    test('the Node shim (hosts without perl) holds MOSH CONNECT the same way', (t) =>
      runScenario(t, async () => {
        await installShim(theLab(), 'node');
        try {
          const server = await theLab().startMoshServer('alice', { port: 60051 });
          try {
            assert.deepEqual(await ours(), expectedOurs([[60051, 'v4']]), 'rule present at MOSH CONNECT');
            assert.match(server.output, /^MOSH CONNECT 60051 [A-Za-z0-9/+]{22}\r?$/m);
          } finally {
            await theLab().killServerProcess(server.pid);
          }
          await assertClosedByDaemon([60051]);
        } finally {
          await installShim(theLab());
        }
      }));

    test('(a) a real mosh session connects through the shim, works, and its rule goes when it ends', (t) =>
      runScenario(t, async () => {
        const from = theDaemon().lines().length;
        const client = await connect('alice');
        await client.waitReady();
        const port = client.serverPort();
        assert.ok(port !== undefined && port >= 60000 && port <= 61000, `mosh-client's port: ${port}`);
        await theDaemon().waitForLine(new RegExp(`^info request-served port=${port} state=open$`), { from });
        await theDaemon().waitForLine(new RegExp(`^info opened port=${port} family=v4 .*user=alice `), {
          from,
        });

        assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]), 'exactly our rule for the live session');
        assert.deepEqual(await admins(), adminRules, 'the admin rules are untouched');
        const status = await statusJson();
        assert.deepEqual(
          status.sessions.map((session) => [session.port, session.user, session.rule]),
          [[port, 'alice', 'open']],
        );
        assert.equal(await theLab().udpReachable(port, 'v4'), true, 'a fresh flow reaches the session port');

        await client.echo(`hello-${client.nonce}`);
        await client.echo(`again-${client.nonce}`);

        const moshServer = theLab().hostPid(status.sessions[0]?.pid ?? -1);
        assert.ok(moshServer !== undefined, 'the mosh-server of the session runs');
        await client.press('C-d');
        await client.waitForText('[mosh is exiting.]', 10_000);
        await client.waitEnded();
        assert.ok(
          await waitUntil(() => isGone(moshServer), CLOSE_BOUND_MS),
          'mosh-server ended with the session',
        );
        await assertClosedByDaemon([port]);
        assert.equal(await theLab().udpReachable(port, 'v4'), false, 'the port is closed again');
        assert.deepEqual(await admins(), adminRules);
      }));

    test('(b) the session survives the client moving to a new address (rule is from anywhere)', async () => {
      const client = await connect('alice');
      await client.waitReady();
      const port = client.serverPort();
      assert.ok(port !== undefined);
      await client.echo(`before-${client.nonce}`);
      const rulesBefore = await ours();
      assert.deepEqual(rulesBefore, expectedOurs([[port, 'v4']]));

      const device = await clientDevice(theLab());
      try {
        // Keep 192.0.2.0/24 routed: add the new address first, then drop the old (its secondary is promoted).
        await clientIp(theLab(), ['sysctl', '-q', '-w', `net.ipv4.conf.${device}.promote_secondaries=1`]);
        await clientIp(theLab(), ['ip', 'address', 'add', `${ROAMED_V4}/24`, 'dev', device]);
        await clientIp(theLab(), ['ip', 'address', 'del', `${CLIENT_V4}/24`, 'dev', device]);
        const addresses = await clientIp(theLab(), ['ip', '-o', '-4', 'address', 'show', 'dev', device]);
        assert.match(addresses, new RegExp(`inet ${ROAMED_V4.replaceAll('.', '\\.')}/24`));
        assert.doesNotMatch(addresses, new RegExp(`inet ${CLIENT_V4.replaceAll('.', '\\.')}/`));

        // The client can now only send from the new address: an answer means the server followed it.
        await client.echo(`roamed-${client.nonce}`, 20_000);
        await client.echo(`still-${client.nonce}`);
        const neighbours = await theLab().runServer(['ip', 'neigh', 'show', ROAMED_V4]);
        assert.match(neighbours.stdout, /lladdr/, 'the server has talked to the new address');
        assert.deepEqual(await ours(), rulesBefore, 'the rule did not change');
      } finally {
        await clientIp(theLab(), ['ip', 'address', 'replace', `${CLIENT_V4}/24`, 'dev', device]);
        await clientIp(theLab(), ['ip', 'address', 'del', `${ROAMED_V4}/24`, 'dev', device]);
      }
      await client.press('C-d');
      await client.waitForText('[mosh is exiting.]', 10_000);
      await assertClosedByDaemon([port]);
    });

    test('(c) alice and bob at once each get their own port and rule', (t) =>
      runScenario(t, async () => {
        const from = theDaemon().lines().length;
        const [alice, bob] = await Promise.all([connect('alice'), connect('bob')]);
        await Promise.all([alice.waitReady(), bob.waitReady()]);
        const ports = [alice.serverPort(), bob.serverPort()];
        const [alicePort, bobPort] = ports;
        assert.ok(alicePort !== undefined && bobPort !== undefined, `ports: ${ports.join(', ')}`);
        assert.notEqual(alicePort, bobPort);

        assert.deepEqual(
          await ours(),
          expectedOurs([
            [alicePort, 'v4'],
            [bobPort, 'v4'],
          ]),
        );
        const status = await statusJson();
        assert.deepEqual(
          status.sessions.map((session) => [session.port, session.user, session.rule]).sort(),
          [
            [alicePort, 'alice', 'open'],
            [bobPort, 'bob', 'open'],
          ].sort(),
        );
        for (const [port, user] of [
          [alicePort, 'alice'],
          [bobPort, 'bob'],
        ] as const) {
          await theDaemon().waitForLine(new RegExp(`^info opened port=${port} family=v4 .*user=${user} `), {
            from,
          });
          await theDaemon().waitForLine(new RegExp(`^info request-served port=${port} state=open$`), {
            from,
          });
        }
        await Promise.all([alice.echo(`alice-${alice.nonce}`), bob.echo(`bob-${bob.nonce}`)]);

        // One ends: only its rule goes.
        await alice.press('C-d');
        await alice.waitForText('[mosh is exiting.]', 10_000);
        assert.ok(
          await waitUntil(async () => (await ours()).length === 1, CLOSE_BOUND_MS),
          `alice's rule did not go:\n${theDaemon().log()}`,
        );
        assert.deepEqual(await ours(), expectedOurs([[bobPort, 'v4']]));
        await bob.echo(`bob-still-${bob.nonce}`);
        await bob.press('C-d');
        await bob.waitForText('[mosh is exiting.]', 10_000);
        await assertClosedByDaemon([alicePort, bobPort]);
        assert.deepEqual(await admins(), adminRules);
        assert.ok(theDaemon().running(), 'the daemon still runs');
      }));

    test("a genuine session's port opens even while mosh-server's utmp helper holds its socket", {
      skip: existsSync(UTEMPTER_HELPER) ? false : `no ${UTEMPTER_HELPER} here`,
    }, async (t) => {
      // The real helper holds the socket for a few ms, so the race is rare; a stand-in that lives 2 s
      // (bound over it in the server host's own mount namespace only) makes it certain. It must be a
      // root-owned binary like the real one (a script would run as its interpreter), so compile one.
      const slow = join(theLab().dir, 'slow-utempter');
      const source = `${slow}.c`;
      writeFileSync(source, '#include <unistd.h>\nint main(void) { sleep(2); return 0; }\n');
      const compiled = spawnSync('cc', ['-O2', '-o', slow, source], { encoding: 'utf8' });
      if (compiled.status !== 0) {
        t.skip(`no C compiler to build the helper stand-in: ${compiled.error?.message ?? compiled.stderr}`);
        return;
      }
      chmodSync(slow, 0o755);
      const mounted = await theLab().runServer(['mount', '--bind', slow, UTEMPTER_HELPER]);
      assert.equal(mounted.exitCode, 0, mounted.stderr);
      let server: { pid: number } | undefined;
      try {
        server = await theLab().startMoshServer('bob', { port: 60070 });
        // While the stand-in holds the socket, bob's nudge makes the daemon judge the port (as any
        // reconcile then would, e.g. for another session starting); once the stand-in is gone, the port
        // must be open within a few polls.
        const holders = async () =>
          (await theLab().runServer(['ss', '-H', '-u', '-a', '-n', '-p', 'sport', '=', ':60070'])).stdout;
        assert.ok(await waitUntil(async () => /"utempter"/.test(await holders()), 5000), await holders());
        await exchange(theLab(), '{"op":"open","port":60070}\n', { user: 'bob' });
        assert.ok(await waitUntil(async () => !/"utempter"/.test(await holders()), 5000), await holders());
        const opened = await waitUntil(async () => (await ours()).length === 1, 5 * 250 + 2000);
        assert.ok(opened, `no rule for 60070 once the helper was gone:\n${theDaemon().log()}`);
      } finally {
        await theLab().runServer(['umount', UTEMPTER_HELPER]);
        if (server) await theLab().killServerProcess(server.pid);
        await endEverySession();
      }
    });
  });
}

/** Runs argv as root in the client's netns and returns its stdout; fails the test if it fails. */
async function clientIp(lab: Lab, argv: string[]): Promise<string> {
  const result = await lab.runClient(argv);
  assert.equal(result.exitCode, 0, `${argv.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** The client's interface that holds its lab address (from `ip -o -4 address show`). */
async function clientDevice(lab: Lab): Promise<string> {
  const lines = (await clientIp(lab, ['ip', '-o', '-4', 'address', 'show'])).split('\n');
  const line = lines.find((each) => each.includes(` inet ${CLIENT_V4}/`));
  const device = line?.split(/\s+/)[1];
  assert.ok(device, `no interface holds ${CLIENT_V4}:\n${lines.join('\n')}`);
  return device;
}
