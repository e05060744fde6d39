// UFW's real-mosh scenarios, for a lab whose server host runs an admin's own nftables or iptables
// firewall instead (see _firewalls.ts), with `moshwall daemon` and the shim: a real mosh session
// connects and its command runs; its port closes when it ends; the admin's rules stay byte-identical
// over open/close cycles; an admin's reload that wipes moshwall's rules is noticed and the live
// session's rule put back; a stale rule is swept by `moshwall sync` and by the daemon's start; flush
// removes only moshwall's; and `backend = "auto"` picks this firewall's backend, saying why.
import assert from 'node:assert/strict';
import { before, describe, type TestContext, test } from 'node:test';
import { type Daemon, installShim, moshwall, startDaemon, writeServerConfig } from './_daemon.ts';
import {
  type AdminFirewall,
  type AdminFirewallKind,
  adminFirewall,
  createFirewallLab,
} from './_firewalls.ts';
import { type MoshClient, missingClientTools, startMoshClient } from './_mosh-client.ts';
import { useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { labSkipReason } from './lab.ts';

/** Generous bounds for what happens within a poll or two; the figures printed say how long it took. */
const CLOSE_BOUND_MS = 10_000;
const PORT_RANGE = 'port_range = "60000:61000"\n';
/** The real mosh-server, bypassing the shim (for sessions the daemon must not hear of). */
const REAL_MOSH_SERVER = '/usr/bin/mosh-server';

/** Why these scenarios cannot run here, or false. */
function skipReason(firewall: AdminFirewall): string | false {
  const missing = missingClientTools();
  return (
    labSkipReason() || firewall.skipReason() || (missing.length > 0 ? `${missing.join(', ')} missing` : false)
  );
}

/** Registers the scenarios for one admin firewall, in one lab of its own. */
export function describeFirewallScenarios(kind: AdminFirewallKind): void {
  const firewall = adminFirewall(kind);
  // iptables-legacy has no change events: the daemon's periodic resync notices a reload, so make it short.
  const watched = kind !== 'iptables-legacy';
  const config = `${firewall.config}${PORT_RANGE}${watched ? '' : 'resync_interval_ms = 2000\n'}`;

  describe(`${kind}: real mosh sessions through the admin's default-deny firewall, no UFW`, {
    skip: skipReason(firewall),
  }, () => {
    let daemon: Daemon | undefined;
    let baseline = '';
    const clients: MoshClient[] = [];
    const theLab = useLab(
      () => createFirewallLab(firewall),
      async () => {
        for (const client of clients) await client.close();
        await daemon?.stop().catch(() => undefined);
      },
    );
    const theDaemon = (): Daemon => {
      assert.ok(daemon, 'the daemon is not running');
      return daemon;
    };
    const ours = () => firewall.ours(theLab());
    const assertAdminUntouched = async (when: string) => {
      assert.equal(await firewall.adminSnapshot(theLab()), baseline, `the admin's rules changed ${when}`);
    };
    /** A real mosh session as `user` (closed after the file whatever happens), up and answering. */
    const connect = async (user: string): Promise<{ client: MoshClient; port: number }> => {
      const client = await startMoshClient(theLab(), { user });
      clients.push(client);
      try {
        await client.waitReady();
      } catch (error) {
        const ruleset = await theLab().runServer(['nft', 'list', 'ruleset']);
        const saved = await theLab().runServer(['iptables-save']);
        throw new Error(
          `session not up: ${String(error)}\nours: ${(await ours()).join(', ')}\n${ruleset.stdout}\n${saved.stdout}\n${daemon?.log() ?? 'no daemon'}`,
        );
      }
      const port = client.serverPort();
      assert.ok(port !== undefined && port >= 60000 && port <= 61000, `mosh-client's port: ${port}`);
      return { client, port };
    };
    /** Ends a session from the client (Ctrl-D) and waits until the daemon has closed its port. */
    const endSession = async (client: MoshClient) => {
      await client.press('C-d');
      await client.waitForText('[mosh is exiting.]', 10_000);
      assert.ok(
        await waitUntil(async () => (await ours()).length === 0, CLOSE_BOUND_MS),
        `rules of ours left after the session ended: ${(await ours()).join(', ')}\n${theDaemon().log()}`,
      );
    };
    /** A mosh-server over ssh that the daemon does not hear of (no shim), as `alice`. */
    const unannounced = (port: number) =>
      theLab().startMoshServer('alice', { port, binary: REAL_MOSH_SERVER });
    const sync = async (args: string[] = []) => {
      const result = await moshwall(theLab(), ['sync', ...args]);
      assert.equal(result.exitCode, 0, `${result.stdout}${result.stderr}`);
      return result.stdout;
    };

    before(async () => {
      baseline = await firewall.adminSnapshot(theLab());
      await installShim(theLab());
      daemon = await startDaemon(theLab(), config);
    });

    test('before any session: nothing of ours, and no mosh port reachable', async () => {
      assert.deepEqual(await ours(), []);
      assert.notEqual(baseline, '');
      assert.equal(await theLab().udpReachable(60999, 'v4'), false, 'default deny drops UDP');
    });

    for (const cycle of [1, 2]) {
      test(`cycle ${cycle}: a real mosh session connects and works; its port closes when it ends`, async (t) => {
        const from = theDaemon().lines().length;
        const { client, port } = await connect('alice');
        await theDaemon().waitForLine(new RegExp(`^info request-served port=${port} state=open$`), { from });
        assert.deepEqual(await ours(), [`${port}/v4`], 'exactly our rule for the live session');
        await assertAdminUntouched('by the open');
        assert.equal(await theLab().udpReachable(port, 'v4'), true, 'a fresh flow reaches the session port');
        await client.echo(`hello-${client.nonce}`);
        const opened = await theDaemon().waitForLine(new RegExp(`^info opened port=${port} family=v4 `), {
          from,
        });
        await endSession(client);
        const closed = await theDaemon().waitForLine(new RegExp(`^info closed port=${port} family=v4 `), {
          from,
        });
        t.diagnostic(`${kind}: port ${port} open for ${Math.round(closed.at - opened.at)} ms of session`);
        assert.equal(await theLab().udpReachable(port, 'v4'), false, 'the port is closed again');
        await assertAdminUntouched('by the close');
        const echoes = theDaemon()
          .lines()
          .slice(from)
          .filter((line) => /^debug reconcile reason="?firewall changed/.test(line.text));
        assert.deepEqual(echoes, [], "the daemon's own changes set off no reconcile");
      });
    }

    test(`an admin's reload wipes our rules; the daemon puts them back (${watched ? 'nft monitor' : 'periodic resync'})`, async (t) => {
      const { client, port } = await connect('bob');
      // And a dual-stack session, so a reload that restores each family in turn must be followed to its end.
      const dual = await theLab().startMoshServer('alice', {
        port: 60207,
        via: 'local',
        address: '::',
        binary: REAL_MOSH_SERVER,
      });
      const expected = [`${port}/v4`, '60207/v4', '60207/v6'].sort().join();
      assert.ok(
        await waitUntil(async () => (await ours()).join() === expected, CLOSE_BOUND_MS),
        (await ours()).join(),
      );
      const from = theDaemon().lines().length;
      const reloadedAt = performance.now();
      await firewall.reload(theLab());
      const wiped = await ours();
      const back = await waitUntil(
        async () => (await ours()).join() === expected,
        watched ? 5000 : 10_000,
        10,
      );
      const ms = Math.round(performance.now() - reloadedAt);
      assert.ok(
        back,
        `the rule did not come back after the reload (right after it: ${wiped.join(', ')}):\n${theDaemon().log()}`,
      );
      t.diagnostic(
        `${kind}: rules back ${ms} ms after the admin's reload started (right after it: [${wiped.join(', ')}])`,
      );
      // The rule was gone (whatever a listing right after the reload caught) and the daemon added it again.
      await theDaemon().waitForLine(new RegExp(`^info opened port=${port} family=v4 `), {
        from,
        timeoutMs: 1000,
      });
      if (watched) {
        await theDaemon().waitForLine(/^debug reconcile reason="?firewall changed: /, {
          from,
          timeoutMs: 1000,
        });
      }
      baseline = await firewall.adminSnapshot(theLab());
      await client.echo(`after-reload-${client.nonce}`);
      assert.equal(await theLab().udpReachable(port, 'v4'), true);
      assert.equal(await theLab().udpReachable(60207, 'v6'), true);
      await theLab().killServerProcess(dual.pid);
      await endSession(client);
      await assertAdminUntouched('by the close after the reload');
    });

    test('a stale rule of ours is swept by `moshwall sync`, and by the daemon at its start', async () => {
      await theDaemon().stop();
      daemon = undefined;
      writeServerConfig(theLab(), config);

      const first = await unannounced(60201);
      assert.match(await sync(), /^open +60201\/udp v4 /m);
      assert.deepEqual(await ours(), ['60201/v4']);
      await theLab().killServerProcess(first.pid);
      assert.deepEqual(await ours(), ['60201/v4'], 'stale: its session is gone, nobody closed it');
      assert.match(await sync(), /^close +60201\/udp v4 /m);
      assert.deepEqual(await ours(), []);
      await assertAdminUntouched('by the sweep of sync');

      const second = await unannounced(60202);
      await sync();
      await theLab().killServerProcess(second.pid);
      assert.deepEqual(await ours(), ['60202/v4'], 'stale again');
      daemon = await startDaemon(theLab(), config);
      assert.deepEqual(await ours(), [], 'the first reconcile of the daemon swept it');
      await assertAdminUntouched("by the daemon's sweep");
    });

    test('`moshwall flush` removes only our rules', async () => {
      await theDaemon().stop();
      daemon = undefined;
      const server = await unannounced(60203);
      try {
        await sync();
        assert.deepEqual(await ours(), ['60203/v4']);
        const result = await moshwall(theLab(), ['flush']);
        assert.equal(result.exitCode, 0, result.stderr);
        assert.deepEqual(await ours(), []);
        await assertAdminUntouched('by flush');
        assert.equal(await theLab().udpReachable(60203, 'v4'), false);
      } finally {
        await theLab().killServerProcess(server.pid);
      }
    });

    test('sessions over IPv6 and on a dual-stack socket get exactly their families', async () => {
      assert.equal(daemon, undefined, 'the daemon was stopped by the test before');
      const v6 = await theLab().startMoshServer('bob', {
        port: 60205,
        family: 'v6',
        binary: REAL_MOSH_SERVER,
      });
      const dual = await theLab().startMoshServer('bob', {
        port: 60206,
        via: 'local',
        address: '::',
        binary: REAL_MOSH_SERVER,
      });
      try {
        await sync();
        assert.deepEqual(await ours(), ['60205/v6', '60206/v4', '60206/v6']);
        assert.equal(await theLab().udpReachable(60205, 'v6'), true, '60205 over IPv6');
        assert.equal(await theLab().udpReachable(60205, 'v4'), false, '60205 (IPv6 socket) over IPv4');
        assert.equal(await theLab().udpReachable(60206, 'v4'), true, '60206 (dual-stack) over IPv4');
        assert.equal(await theLab().udpReachable(60206, 'v6'), true, '60206 (dual-stack) over IPv6');
        await assertAdminUntouched('by the IPv6 opens');
      } finally {
        await theLab().killServerProcess(v6.pid);
        await theLab().killServerProcess(dual.pid);
      }
      await sync();
      assert.deepEqual(await ours(), []);
      assert.equal(await theLab().udpReachable(60205, 'v6'), false);
      await assertAdminUntouched('by the IPv6 closes');
    });

    test("runtime only: with no daemon, the admin's reload leaves nothing of ours open; sync re-adds it", async () => {
      assert.equal(daemon, undefined, 'the daemon was stopped by the test before');
      const server = await unannounced(60204);
      try {
        await sync();
        assert.deepEqual(await ours(), ['60204/v4']);
        assert.equal(await theLab().udpReachable(60204, 'v4'), true);
        await firewall.reload(theLab());
        assert.deepEqual(await ours(), [], 'the reload took our rule away, and nothing brought it back');
        assert.equal(await theLab().udpReachable(60204, 'v4'), false, 'nothing of ours is open');
        // The admin's table is a new one now (nftables numbers it anew): their rules as of this reload.
        baseline = await firewall.adminSnapshot(theLab());
        assert.match(await sync(), /^open +60204\/udp v4 /m);
        assert.deepEqual(await ours(), ['60204/v4']);
        await assertAdminUntouched('by the sync after the reload');
      } finally {
        await theLab().killServerProcess(server.pid);
      }
      assert.match(await sync(), /^close +60204\/udp v4 /m);
    });

    test(`backend = "auto" picks ${firewall.backend}, doctor says why, and a session's port opens`, async (t: TestContext) => {
      const auto = `backend = "auto"\n${PORT_RANGE}${watched ? '' : 'resync_interval_ms = 2000\n'}`;
      writeServerConfig(theLab(), auto);
      const doctor = await moshwall(theLab(), ['doctor']);
      t.diagnostic(doctor.stdout);
      assert.match(doctor.stdout, new RegExp(`auto: ${firewall.backend} is active \\(ufw inactive`));
      assert.match(doctor.stdout, /runtime only/);
      assert.doesNotMatch(
        doctor.stdout,
        /^(WARN|FAIL) {2}(?!(io_uring|ptrace) )/m,
        "a stock layout warns of nothing (a reject below our jump blocks nothing of ours; io_uring and ptrace are the kernel's)",
      );
      assert.match(
        doctor.stdout,
        firewall.backend === 'nftables'
          ? /jump to moshwall_input at the top of inet /
          : /chain moshwall-input, jumped to from INPUT/,
      );
      daemon = await startDaemon(theLab(), auto);
      const { client, port } = await connect('alice');
      assert.deepEqual(await ours(), [`${port}/v4`]);
      await client.echo(`auto-${client.nonce}`);
      await endSession(client);
      await assertAdminUntouched('under auto');
    });
  });
}
