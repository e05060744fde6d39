// The UFW fast path for real in the lab (real UFW on iptables-nft, real ipset, real mosh): with the hook
// installed by moshwall's own install code, a session's port opens as a member of our set (no UFW rule
// is written) and UDP gets through default-deny UFW; an admin's deny rule still wins; `ufw reload` keeps
// members and hook; stale members and classic rules of ours from before the switch are swept; a hook
// that is not loaded makes sync fail naming the fix (and doctor say so) instead of pretending; a real
// mosh session connects through daemon + shim; and `moshwall install` / `uninstall` (the CLI) leave
// after.rules, after6.rules and before.init byte-identical (around an admin's own edit) and no set behind.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { installShim, removeShim, startDaemon } from './_daemon.ts';
import {
  afterChains,
  FAST_PATH_CONFIG,
  fastSetMembers,
  fastSetsPresent,
  hookSnapshot,
  installLabFastPath,
  labFastBackend,
} from './_fastpath.ts';
import { type MoshClient, startMoshClient } from './_mosh-client.ts';
import { sortTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { isGone } from './_procfs.ts';
import { createLab, labSkipReason, type MoshServer, type UfwTuple } from './lab.ts';

describe('UFW fast path in the lab', { skip: labSkipReason() }, () => {
  let adminRules: UfwTuple[] = [];
  let pristine: Record<string, string> = {};
  const servers: MoshServer[] = [];
  const clients: MoshClient[] = [];

  const theLab = useLab(
    () => createLab(),
    async () => {
      for (const client of clients) await client.close();
      for (const server of servers) await theLab().killServerProcess(server.pid);
    },
  );
  const fastCli = (args: string[]) => theLab().moshwall(args, { config: FAST_PATH_CONFIG });
  const syncOk = async () => {
    const result = await fastCli(['sync']);
    assert.equal(result.exitCode, 0, `sync: ${result.stdout}${result.stderr}`);
  };
  const admins = async () => sortTuples(await theLab().ufwTuples());
  const session = async (port: number): Promise<MoshServer> => {
    const server = await theLab().startMoshServer('alice', { port, via: 'local' });
    servers.push(server);
    return server;
  };
  const admin = async (args: string[]) => {
    const result = await theLab().ufw(args);
    assert.equal(result.exitCode, 0, `ufw ${args.join(' ')}: ${result.stdout}${result.stderr}`);
  };

  before(async () => {
    adminRules = await admins();
    pristine = hookSnapshot(theLab());
    await installLabFastPath(theLab());
  });

  test('the hook is loaded: our rules first in ufw[6]-after-input, our four sets exist', async () => {
    const chains = await afterChains(theLab());
    assert.match(chains, /^-A ufw-after-input -p udp -m set --match-set moshwall-any4 dst -j ACCEPT$/m);
    assert.match(chains, /^-A ufw6-after-input -p udp -m set --match-set moshwall-net6 src,dst -j ACCEPT$/m);
    assert.deepEqual(await fastSetsPresent(theLab()), [
      'moshwall-any4',
      'moshwall-any6',
      'moshwall-net4',
      'moshwall-net6',
    ]);
    assert.notDeepEqual(hookSnapshot(theLab()), pristine);
  });

  test("a session's port opens as a set member, UDP gets through, no UFW rule is written; it closes after", async () => {
    assert.equal(await theLab().udpReachable(60101, 'v4'), false, 'default deny before');
    const server = await session(60101);
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), ['add moshwall-any4 60101']);
    assert.deepEqual(await admins(), adminRules, 'user.rules untouched: no ufw rule of ours');
    assert.equal(await theLab().udpReachable(60101, 'v4'), true);
    const status = await fastCli(['status']);
    assert.match(
      status.stdout,
      /fast path: ipset sets matched by the hook in \/etc\/ufw\/after\.rules; hook in \/etc\/ufw\/after\.rules: yes; in the kernel: v4 live, v6 live/,
    );
    await theLab().killServerProcess(server.pid);
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), []);
    assert.equal(await theLab().udpReachable(60101, 'v4'), false, 'closed again');
  });

  test("an admin's deny rule still wins over our member (our match comes after UFW's user rules)", async () => {
    const backend = labFastBackend(theLab());
    await admin(['deny', '60110:60119/udp']);
    try {
      await backend.allow([{ port: 60112, family: 'v4', source: '0.0.0.0/0' }]);
      assert.equal(await theLab().udpReachable(60112, 'v4'), false, 'denied by the admin');
    } finally {
      await admin(['delete', 'deny', '60110:60119/udp']);
    }
    assert.equal(await theLab().udpReachable(60112, 'v4'), true, 'open once the deny is gone');
    await backend.revoke([{ port: 60112, family: 'v4', source: '0.0.0.0/0' }]);
    assert.deepEqual(await admins(), adminRules);
  });

  test('`ufw reload` keeps our members and the hook', async () => {
    const backend = labFastBackend(theLab());
    await backend.allow([{ port: 60120, family: 'v4', source: '192.0.2.0/24' }]);
    await admin(['reload']);
    assert.deepEqual(await fastSetMembers(theLab()), ['add moshwall-net4 192.0.2.0/24,udp:60120']);
    assert.match(await afterChains(theLab()), /--match-set moshwall-net4 src,dst -j ACCEPT/);
    assert.equal(await theLab().udpReachable(60120, 'v4'), true);
    await backend.revoke([{ port: 60120, family: 'v4', source: '192.0.2.0/24' }]);
    assert.equal(await theLab().udpReachable(60120, 'v4'), false);
  });

  test('sync sweeps stale members and classic rules of ours from before the switch, nothing else', async () => {
    const added = await theLab().runServer(['ipset', 'add', 'moshwall-any6', '60130']);
    assert.equal(added.exitCode, 0, added.stderr);
    await admin(['allow', 'proto', 'udp', 'to', 'any', 'port', '60131', 'comment', 'moshwall']);
    await admin(['allow', 'proto', 'udp', 'to', 'any', 'port', '60132', 'comment', 'admin']);
    const withAdmin = await admins();
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), []);
    assert.deepEqual(
      await admins(),
      withAdmin.filter((tuple) => tuple.comment !== 'moshwall'),
      'our classic rules went, the admin rule stayed',
    );
    await admin(['delete', 'allow', 'proto', 'udp', 'to', 'any', 'port', '60132', 'comment', 'admin']);
    assert.deepEqual(await admins(), adminRules);
  });

  test('a hook that is not loaded: sync fails naming the fix, doctor says so; `ufw reload` repairs it', async () => {
    const server = await session(60140);
    const rule = [
      'ufw-after-input',
      '-p',
      'udp',
      '-m',
      'set',
      '--match-set',
      'moshwall-any4',
      'dst',
      '-j',
      'ACCEPT',
    ];
    const deleted = await theLab().runServer(['iptables', '-D', ...rule]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    const failed = await fastCli(['sync']);
    assert.equal(failed.exitCode, 1, `${failed.stdout}${failed.stderr}`);
    assert.match(
      failed.stderr,
      /fast path is not in force: ufw-after-input is loaded without moshwall's ipset rules/,
    );
    assert.match(failed.stderr, /`ufw reload`/);
    assert.deepEqual(await fastSetMembers(theLab()), [], 'nothing added that would pretend the port is open');
    const doctor = await fastCli(['doctor']);
    assert.match(
      doctor.stdout,
      /fast-path.*ufw-after-input is loaded without moshwall's ipset rules.*run `ufw reload`/,
    );
    await admin(['reload']);
    await syncOk();
    assert.equal(await theLab().udpReachable(60140, 'v4'), true);
    await theLab().killServerProcess(server.pid);
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), []);
  });

  test('a real mosh session connects through daemon + shim and default-deny UFW, via a set member', async () => {
    await installShim(theLab());
    const daemon = await startDaemon(theLab(), FAST_PATH_CONFIG);
    try {
      const client = await startMoshClient(theLab(), { user: 'alice' });
      clients.push(client);
      await client.waitReady();
      const port = client.serverPort();
      assert.ok(port !== undefined);
      assert.deepEqual(await fastSetMembers(theLab()), [`add moshwall-any4 ${port}`]);
      assert.deepEqual(await admins(), adminRules, 'no UFW rule was written');
      await client.echo(`hello-${client.nonce}`);
      // The quick open's follow-up reconcile (500 ms later) first, so the flush below meets the watcher.
      const followUp = await daemon.waitForLine(
        /^debug reconcile reason="full check after the shim's request/,
      );
      await daemon.waitForLine(/^debug reconciled /, { from: daemon.lines().indexOf(followUp) });
      // An admin's `ipset flush` is seen by the daemon's watcher (every 2 s; resync is 30 s) and repaired.
      const flushed = await theLab().runServer(['ipset', 'flush', 'moshwall-any4']);
      assert.equal(flushed.exitCode, 0, flushed.stderr);
      assert.ok(
        await waitUntil(async () => (await fastSetMembers(theLab())).length === 1, 6000),
        `member not re-added after ipset flush:\n${daemon.log()}`,
      );
      await daemon.waitForLine(/firewall changed: moshwall's ipsets changed/, { timeoutMs: 1000 });
      // `ufw reload` keeps the member and the hook: the session goes on.
      await admin(['reload']);
      await client.echo(`after-reload-${client.nonce}`);
      await client.press('C-d');
      await client.waitForText('[mosh is exiting.]', 10_000);
      assert.ok(
        await waitUntil(async () => (await fastSetMembers(theLab())).length === 0, 10_000),
        `member left after the session ended:\n${daemon.log()}`,
      );
    } finally {
      await daemon.stop();
      await removeShim(theLab());
    }
  });

  test('moshwall install / uninstall (and --ufw-hook-only) leave the hook files byte-identical around an admin edit, no set left', async () => {
    const removed = await fastCli(['uninstall', '--ufw-hook-only']);
    assert.equal(removed.exitCode, 0, `${removed.stdout}${removed.stderr}`);
    assert.deepEqual(hookSnapshot(theLab()), pristine, '`uninstall --ufw-hook-only` restored the files');
    assert.deepEqual(await fastSetsPresent(theLab()), []);
    // The admin's own edits, before and after where our block goes.
    const afterRules = theLab().serverPath('/etc/ufw/after.rules');
    const edited = pristine['/etc/ufw/after.rules']
      ? Buffer.from(pristine['/etc/ufw/after.rules'].split(' ')[1] ?? '', 'base64')
          .toString('utf8')
          .replace('*filter\n', "*filter\n# admin's note\n")
          .replace(/^COMMIT$/m, '-A ufw-after-input -p tcp --dport 8080 -j ufw-skip-to-policy-input\nCOMMIT')
      : '';
    writeFileSync(afterRules, edited);
    const adminEdited = hookSnapshot(theLab());

    const dryRun = await fastCli(['install', '--ufw-hook-only', '--dry-run']);
    assert.equal(dryRun.exitCode, 0, dryRun.stderr);
    assert.match(
      dryRun.stdout,
      /would write \/etc\/ufw\/after\.rules .*\n.*would write \/etc\/ufw\/after6\.rules/,
    );
    assert.deepEqual(hookSnapshot(theLab()), adminEdited, '--dry-run changed nothing');
    assert.deepEqual(await fastSetsPresent(theLab()), []);

    const installed = await fastCli(['install']);
    assert.equal(installed.exitCode, 0, `${installed.stdout}${installed.stderr}`);
    assert.match(installed.stdout, /run ufw reload/);
    assert.match(await afterChains(theLab()), /--match-set moshwall-any4 dst -j ACCEPT/);
    assert.match(await afterChains(theLab()), /--dport 8080/);
    const again = await fastCli(['install']);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /ufw reload/, 'installing again changes no UFW file');

    const server = await session(60150);
    await syncOk();
    assert.equal(await theLab().udpReachable(60150, 'v4'), true);
    const uninstalled = await fastCli(['uninstall']);
    assert.equal(uninstalled.exitCode, 0, `${uninstalled.stdout}${uninstalled.stderr}`);
    assert.deepEqual(
      hookSnapshot(theLab()),
      adminEdited,
      'after.rules, after6.rules, before.init as they were',
    );
    assert.deepEqual(await fastSetsPresent(theLab()), [], 'no set of ours left');
    assert.doesNotMatch(await afterChains(theLab()), /moshwall/);
    assert.match(await afterChains(theLab()), /--dport 8080/, "the admin's rule is loaded");
    assert.deepEqual(await admins(), adminRules);
    assert.equal(await theLab().udpReachable(60150, 'v4'), false, 'the port is closed');
    await theLab().killServerProcess(server.pid);
    assert.ok(isGone(server.pid));
  });
});
