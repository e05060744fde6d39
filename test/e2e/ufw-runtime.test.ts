// The UFW fast path as a plain install gets it (no ufw_fast_path key: "auto" → runtime where ipset works),
// for real in the lab (real UFW on iptables-nft, real ipset, real mosh, daemon + shim): our match rules are
// placed into UFW's ufw-after-input at run time and no file of UFW's changes (every byte of /etc/ufw
// compared); an admin's `ufw reload`, `ufw disable`/`enable` and `ufw --force reset` are each answered
// (rules back, or status says what happened); an admin's deny in the range still wins; a flush leaves UFW's
// chains and the set list as they were; switching to classic rules leaves nothing of the sets behind.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RUNTIME_TAG } from '../../src/backends/ufw/fastpath.ts';
import { installShim, removeShim, startDaemon } from './_daemon.ts';
import { afterChains, fastSetMembers, fastSetsPresent } from './_fastpath.ts';
import { type MoshClient, startMoshClient } from './_mosh-client.ts';
import { sortTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { createLab, labSkipReason, type MoshServer, type UfwTuple } from './lab.ts';

/** A plain install's config: nothing about the fast path. */
const PLAIN = 'backend = "ufw"\nport_range = "60000:61000"\n';
const CLASSIC = 'backend = "ufw"\nport_range = "60000:61000"\nufw_fast_path = "off"\n';

/** Every file under dir (recursively) as "path mode bytes-base64", to prove UFW's files unchanged. */
function treeSnapshot(dir: string): Record<string, string> {
  const snapshot: Record<string, string> = {};
  const walk = (path: string) => {
    const facts = statSync(path);
    if (facts.isDirectory()) {
      for (const name of readdirSync(path).sort()) walk(join(path, name));
      return;
    }
    snapshot[path.slice(dir.length)] = `${facts.mode.toString(8)} ${readFileSync(path).toString('base64')}`;
  };
  walk(dir);
  return snapshot;
}

describe('UFW fast path at run time, the default (no UFW file edited)', { skip: labSkipReason() }, () => {
  let adminRules: UfwTuple[] = [];
  let pristineUfw: Record<string, string> = {};
  let pristineChains = '';
  const servers: MoshServer[] = [];
  const clients: MoshClient[] = [];
  const figures: string[] = [];

  const theLab = useLab(
    () => createLab(),
    async () => {
      for (const client of clients) await client.close();
      for (const server of servers) await theLab().killServerProcess(server.pid);
    },
  );
  const cli = (args: string[], config = PLAIN) => theLab().moshwall(args, { config });
  const syncOk = async (config = PLAIN) => {
    const result = await cli(['sync'], config);
    assert.equal(result.exitCode, 0, `sync: ${result.stdout}${result.stderr}`);
  };
  const admins = async () => sortTuples(await theLab().ufwTuples());
  const admin = async (args: string[]) => {
    const result = await theLab().ufw(args);
    assert.equal(result.exitCode, 0, `ufw ${args.join(' ')}: ${result.stdout}${result.stderr}`);
  };
  const runtimeLines = async () =>
    (await afterChains(theLab())).split('\n').filter((line) => line.includes(RUNTIME_TAG));
  const session = async (port: number): Promise<MoshServer> => {
    const server = await theLab().startMoshServer('alice', { port, via: 'local' });
    servers.push(server);
    return server;
  };

  before(async () => {
    adminRules = await admins();
    pristineUfw = treeSnapshot(theLab().serverPath('/etc/ufw'));
    pristineChains = await afterChains(theLab());
  });

  after(() => {
    if (figures.length > 0) console.log(`# ufw runtime figures: ${figures.join('; ')}`);
  });

  test('sync on a plain config: the port opens as a set member, our rules are placed at run time, /etc/ufw unchanged', async () => {
    assert.equal(await theLab().udpReachable(60201, 'v4'), false, 'default deny before');
    const server = await session(60201);
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), ['add moshwall-any4 60201']);
    assert.equal(await theLab().udpReachable(60201, 'v4'), true);
    assert.equal((await runtimeLines()).length, 4, 'two rules, tagged, in each family UFW has loaded');
    assert.deepEqual(await admins(), adminRules, 'no UFW rule of ours');
    assert.deepEqual(treeSnapshot(theLab().serverPath('/etc/ufw')), pristineUfw, '/etc/ufw byte for byte');
    const status = await cli(['status']);
    assert.match(
      status.stdout,
      /fast path: ipset sets matched by rules moshwall places into ufw-after-input/,
    );
    assert.match(status.stdout, /members: 1 \(udp 60201\)/);
    await theLab().killServerProcess(server.pid);
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), []);
    assert.equal(await theLab().udpReachable(60201, 'v4'), false, 'closed again');
  });

  test("an admin's deny in the range still wins over our member", async () => {
    const server = await session(60212);
    await admin(['deny', '60210:60219/udp']);
    try {
      await syncOk();
      assert.deepEqual(await fastSetMembers(theLab()), ['add moshwall-any4 60212']);
      assert.equal(await theLab().udpReachable(60212, 'v4'), false, 'denied by the admin');
    } finally {
      await admin(['delete', 'deny', '60210:60219/udp']);
    }
    await syncOk();
    assert.equal(await theLab().udpReachable(60212, 'v4'), true, 'open once the deny is gone');
    await theLab().killServerProcess(server.pid);
    await syncOk();
    assert.deepEqual(await admins(), adminRules);
  });

  test('switching to classic rules: a live member is kept until its session ends, then no set or rule of ours is left', async () => {
    const server = await session(60231);
    await syncOk();
    assert.deepEqual(await fastSetMembers(theLab()), ['add moshwall-any4 60231']);
    await syncOk(CLASSIC);
    assert.deepEqual(await fastSetMembers(theLab()), ['add moshwall-any4 60231'], 'still open, as a member');
    assert.equal(await theLab().udpReachable(60231, 'v4'), true);
    await theLab().killServerProcess(server.pid);
    await syncOk(CLASSIC);
    assert.deepEqual(await fastSetsPresent(theLab()), [], 'sets destroyed');
    assert.deepEqual(await runtimeLines(), [], 'runtime rules removed');
    const second = await session(60232);
    await syncOk(CLASSIC);
    assert.ok(
      (await admins()).some((tuple) => tuple.comment === 'moshwall' && tuple.tuple.includes('60232')),
      'classic rule now',
    );
    await theLab().killServerProcess(second.pid);
    await syncOk(CLASSIC);
    assert.deepEqual(await admins(), adminRules);
  });

  test('a flush leaves UFW chains and the set list exactly as before moshwall ran', async () => {
    const server = await session(60241);
    await syncOk();
    await theLab().killServerProcess(server.pid);
    const flushed = await cli(['flush']);
    assert.equal(flushed.exitCode, 0, `${flushed.stdout}${flushed.stderr}`);
    assert.deepEqual(await fastSetsPresent(theLab()), []);
    assert.equal(await afterChains(theLab()), pristineChains);
  });
  // Last: a reset moves UFW's rule files aside, so nothing after it compares with the lab's first state.
  test('a real mosh session through daemon + shim; `ufw reload`, `ufw disable`/`enable` and `ufw --force reset` each answered', async () => {
    await installShim(theLab());
    const daemon = await startDaemon(theLab(), PLAIN);
    try {
      const client = await startMoshClient(theLab(), { user: 'alice' });
      clients.push(client);
      await client.waitReady();
      const port = client.serverPort();
      assert.ok(port !== undefined);
      assert.deepEqual(await fastSetMembers(theLab()), [`add moshwall-any4 ${port}`]);
      await client.echo(`hello-${client.nonce}`);

      // A reload drops our runtime rules with the rest of UFW's chains; the daemon places them again.
      for (const what of ['reload', 'reload', 'reload']) {
        await admin([what]);
        const from = performance.now();
        assert.ok(
          await waitUntil(async () => (await runtimeLines()).length === 4, 5000, 10),
          `runtime rules not back after ufw ${what}:\n${daemon.log()}`,
        );
        figures.push(`rules back ${Math.round(performance.now() - from)} ms after ufw ${what}`);
      }
      await client.echo(`after-reload-${client.nonce}`);

      await admin(['disable']);
      // Disabled, UFW flushes its chains but keeps them: the daemon may place ours again (harmless, no jump
      // leads there while UFW is off); enabling loads the chains afresh, without ours.
      await admin(['--force', 'enable']);
      const enabled = performance.now();
      assert.ok(
        await waitUntil(async () => (await runtimeLines()).length === 4, 5000, 10),
        `runtime rules not back after ufw enable:\n${daemon.log()}`,
      );
      figures.push(`rules back ${Math.round(performance.now() - enabled)} ms after ufw enable`);
      assert.equal(await theLab().udpReachable(port, 'v4'), true, 'the live port gets through again');
      await client.echo(`after-enable-${client.nonce}`);

      // A reset disables UFW and moves its rule files aside: status says UFW is inactive; enabling it
      // again brings our rules back for the live session.
      await admin(['--force', 'reset']);
      const status = await cli(['status']);
      assert.match(`${status.stdout}${status.stderr}`, /inactive/);
      await admin(['allow', '22/tcp']);
      await admin(['--force', 'enable']);
      assert.ok(
        await waitUntil(async () => (await runtimeLines()).length === 4, 5000, 10),
        `runtime rules not back after ufw reset + enable:\n${daemon.log()}`,
      );
      await client.echo(`after-reset-${client.nonce}`);

      await client.press('C-d');
      await client.waitForText('[mosh is exiting.]', 10_000);
      assert.ok(
        await waitUntil(async () => (await fastSetMembers(theLab())).length === 0, 10_000),
        `member left after the session ended:\n${daemon.log()}`,
      );
      // With no session at all, a reload still gets our rules back, so the next session waits for nothing.
      await admin(['reload']);
      const idle = performance.now();
      assert.ok(
        await waitUntil(async () => (await runtimeLines()).length === 4, 5000, 10),
        `runtime rules not back after a ufw reload with no session:\n${daemon.log()}`,
      );
      figures.push(`rules back ${Math.round(performance.now() - idle)} ms after ufw reload with no session`);
    } finally {
      await daemon.stop();
      await removeShim(theLab());
    }
    // on_stop = "keep" (the default) leaves our empty sets and rules; `moshwall flush` takes them away.
    assert.deepEqual(await fastSetMembers(theLab()), []);
    const flushed = await cli(['flush']);
    assert.equal(flushed.exitCode, 0, `${flushed.stdout}${flushed.stderr}`);
    assert.deepEqual(await runtimeLines(), []);
    assert.deepEqual(await fastSetsPresent(theLab()), []);
  });
});
