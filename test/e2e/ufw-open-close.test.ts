// A mosh-server started over real ssh gets its port opened by `moshwall sync`, for exactly the address
// families its socket receives on, and closed once it is gone; a sync with nothing to do changes no
// byte of ufw's rules. Checked on ufw's own files and with real packets from the client.
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import {
  expectedOurs,
  ourTuples,
  rulesFiles,
  type SyncJson,
  sortTuples,
  spec,
  specKeys,
  started,
  syncJson,
  useLab,
} from './_moshwall.ts';
import { createLab, labSkipReason, type MoshServer, PID_KINDS, type UfwTuple } from './lab.ts';

for (const pids of PID_KINDS) {
  describe(`ufw: sync opens and closes the ports of real sessions (${pids.name})`, {
    skip: labSkipReason(),
  }, () => {
    const theLab = useLab(() => createLab(pids.options));
    /** The rules the lab starts with (the admin's 22/tcp), from user.rules. */
    let baseline: UfwTuple[] = [];
    /** alice over ssh/IPv4 (socket on 192.0.2.1), bob over ssh/IPv6 (2001:db8::1), bob bound to "::". */
    let v4: MoshServer | undefined;
    let v6: MoshServer | undefined;
    let dual: MoshServer | undefined;

    before(async () => {
      baseline = await theLab().ufwTuples();
    });

    test('a session is not reachable before any sync (default deny)', async () => {
      v4 = await theLab().startMoshServer('alice', { port: 60101 });
      v6 = await theLab().startMoshServer('bob', { port: 60102, family: 'v6' });
      dual = await theLab().startMoshServer('bob', { port: 60103, via: 'local', address: '::' });
      assert.deepEqual([v4.port, v6.port, dual.port], [60101, 60102, 60103]);
      assert.equal(await theLab().udpReachable(60101, 'v4'), false);
      assert.equal(await theLab().udpReachable(60102, 'v6'), false);
      assert.deepEqual(await theLab().ufwTuples(), baseline);
    });

    test('sync --dry-run reports the three sessions and what it would open, and changes nothing', async () => {
      const before = rulesFiles(theLab());
      const report = await syncJson(theLab(), { dryRun: true });
      assert.equal(report.dryRun, true);
      assert.deepEqual(
        specKeys(report.opened),
        specKeys([spec(60101, 'v4'), spec(60102, 'v6'), spec(60103, 'v4'), spec(60103, 'v6')]),
      );
      assert.equal(rulesFiles(theLab()), before);
    });

    test('sync opens each port for the families its socket receives on, and only those', async () => {
      const [alice, bob] = [started(v4, 'v4'), started(v6, 'v6')];
      const both = started(dual, 'dual-stack');
      const report: SyncJson = await syncJson(theLab());
      assert.equal(report.dryRun, false);
      assert.deepEqual(report.firewall, { active: true, ipv6: true });
      assert.deepEqual(
        specKeys(report.opened),
        specKeys([spec(60101, 'v4'), spec(60102, 'v6'), spec(60103, 'v4'), spec(60103, 'v6')]),
      );
      assert.deepEqual(report.closed, []);
      assert.deepEqual(report.refused, []);
      assert.deepEqual(
        report.sessions.map((session) => [session.port, session.family, session.user, session.pid]),
        [
          [60101, 'v4', 'alice', alice.nsPid],
          [60102, 'v6', 'bob', bob.nsPid],
          [60103, 'v6', 'bob', both.nsPid],
        ],
      );
      assert.deepEqual(
        report.sessions.map((session) => session.localAddress),
        ['192.0.2.1', '2001:db8::1', '::'],
      );

      const tuples = await theLab().ufwTuples();
      assert.deepEqual(
        ourTuples(tuples),
        expectedOurs([
          [60101, 'v4'],
          [60102, 'v6'],
          [60103, 'v4'],
          [60103, 'v6'],
        ]),
      );
      assert.deepEqual(
        sortTuples(tuples.filter((tuple) => tuple.comment !== 'moshwall')),
        sortTuples(baseline),
      );

      assert.equal(await theLab().udpReachable(60101, 'v4'), true, '60101 over IPv4');
      assert.equal(await theLab().udpReachable(60101, 'v6'), false, '60101 (IPv4 socket) over IPv6');
      assert.equal(await theLab().udpReachable(60102, 'v6'), true, '60102 over IPv6');
      assert.equal(await theLab().udpReachable(60102, 'v4'), false, '60102 (IPv6 socket) over IPv4');
      assert.equal(await theLab().udpReachable(60103, 'v4'), true, '60103 (dual-stack) over IPv4');
      assert.equal(await theLab().udpReachable(60103, 'v6'), true, '60103 (dual-stack) over IPv6');
    });

    test('a sync with nothing to do changes no byte of the rules and says so', async () => {
      const before = rulesFiles(theLab());
      const result = await theLab().moshwall(['sync']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, /^3 session\(s\), 4 rule\(s\) kept, nothing to change$/m);
      assert.doesNotMatch(result.stdout, /^(open|close) /m);
      assert.equal(rulesFiles(theLab()), before);
    });

    test('killing a mosh-server closes its port at the next sync, and only its port', async () => {
      const alice = started(v4, 'v4');
      await theLab().killServerProcess(alice.pid);
      const report = await syncJson(theLab());
      assert.deepEqual(report.opened, []);
      assert.deepEqual(specKeys(report.closed), specKeys([spec(60101, 'v4')]));
      assert.deepEqual(
        specKeys(report.kept),
        specKeys([spec(60102, 'v6'), spec(60103, 'v4'), spec(60103, 'v6')]),
      );
      assert.deepEqual(
        ourTuples(await theLab().ufwTuples()),
        expectedOurs([
          [60102, 'v6'],
          [60103, 'v4'],
          [60103, 'v6'],
        ]),
      );
      assert.equal(await theLab().udpReachable(60101, 'v4'), false, '60101 after its session ended');
      assert.equal(await theLab().udpReachable(60103, 'v4'), true, '60103 is still open');
    });

    test('when every session has ended, sync closes the rest and the rules are as the lab began', async () => {
      await theLab().killServerProcess(started(v6, 'v6').pid);
      await theLab().killServerProcess(started(dual, 'dual-stack').pid);
      const report = await syncJson(theLab());
      assert.deepEqual(
        specKeys(report.closed),
        specKeys([spec(60102, 'v6'), spec(60103, 'v4'), spec(60103, 'v6')]),
      );
      assert.deepEqual(report.sessions, []);
      assert.deepEqual(await theLab().ufwTuples(), baseline);
      assert.equal(await theLab().udpReachable(60102, 'v6'), false);
      assert.equal(await theLab().udpReachable(60103, 'v4'), false);

      const before = rulesFiles(theLab());
      const again = await theLab().moshwall(['sync']);
      assert.equal(again.exitCode, 0, again.stderr);
      assert.match(again.stdout, /^0 session\(s\), 0 rule\(s\) kept, nothing to change$/m);
      assert.equal(rulesFiles(theLab()), before);
    });
    test('a session whose binary was upgraded away (exe reads "(deleted)") keeps its port', async () => {
      // In the lab's own /usr/local (an overlay): a root-installed mosh-server, replaced while it runs.
      const install = ['install', '-o', 'root', '-g', 'root', '-m', '755', '/usr/bin/mosh-server'];
      const binary = '/usr/local/bin/mosh-server';
      assert.equal((await theLab().runServer([...install, binary])).exitCode, 0);
      const server = await theLab().startMoshServer('alice', { port: 60104, binary });
      try {
        const opened = await syncJson(theLab());
        assert.deepEqual(specKeys(opened.opened), specKeys([spec(60104, 'v4')]));
        assert.equal((await theLab().runServer([...install, binary])).exitCode, 0, 'the upgrade');
        assert.equal(readlinkSync(`/proc/${server.pid}/exe`), `${binary} (deleted)`);

        const after = await syncJson(theLab());
        assert.deepEqual([after.opened, after.closed, after.refused], [[], [], []]);
        assert.deepEqual(
          after.sessions.map((session) => [session.port, session.exe]),
          [[60104, `${binary} (deleted)`]],
        );
        assert.deepEqual(ourTuples(await theLab().ufwTuples()), expectedOurs([[60104, 'v4']]));
        assert.equal(await theLab().udpReachable(60104, 'v4'), true);
      } finally {
        await theLab().killServerProcess(server.pid);
      }
      const closed = await syncJson(theLab());
      assert.deepEqual(specKeys(closed.closed), specKeys([spec(60104, 'v4')]));
    });
  });
}
