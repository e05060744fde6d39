// The daemon's life around one real, connected mosh session that lasts the whole file: killed with
// SIGKILL and restarted (the live rule stays, a stale rule of ours goes), an admin's `ufw reload` and
// `ufw delete` of our rule (it is put back), SIGHUP with a broken then a good config, and SIGTERM with
// on_stop = "flush" and "keep".
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import {
  type Daemon,
  DEFAULT_SOCKET,
  exchange,
  installShim,
  isPong,
  ping,
  replyObjects,
  startDaemon,
} from './_daemon.ts';
import { type MoshClient, startMoshClient } from './_mosh-client.ts';
import { adminBlocks, expectedOurs, ourTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { createLab, labSkipReason } from './lab.ts';

const KEEP = 'backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\non_stop = "keep"\n';
/** The stale rule an admin leaves with our comment, for a port nothing holds. */
const STALE_PORT = 60999;
const BOUND_MS = 10_000;

describe('daemon recovery around a live mosh session', { skip: labSkipReason() }, () => {
  let client: MoshClient | undefined;
  let port = 0;
  /** The daemon running now (each test leaves the next one a running daemon, or none at the end). */
  let daemon: Daemon | undefined;
  let admin: string[] = [];

  const theLab = useLab(
    () => createLab(),
    async () => {
      await client?.close();
    },
  );
  const theDaemon = (): Daemon => {
    const current = daemon;
    assert.ok(current, 'no daemon was started (an earlier test failed)');
    assert.ok(current.running(), `the daemon is not running (an earlier test failed):\n${current.log()}`);
    return current;
  };
  const theClient = (): MoshClient => {
    assert.ok(client, 'the mosh session did not start in before()');
    return client;
  };
  const ours = async () => ourTuples(await theLab().ufwTuples());
  /** The reply to {"op":"open","port":N} over the socket, as root. */
  const askOpen = async (asked: number) => {
    const [reply] = replyObjects(await exchange(theLab(), `{"op":"open","port":${asked}}\n`));
    assert.ok(reply, 'the daemon answered');
    return reply;
  };
  const lineIndex = () => theDaemon().lines().length;

  before(async () => {
    admin = adminBlocks(theLab());
    await installShim(theLab());
    daemon = await startDaemon(theLab(), KEEP);
    client = await startMoshClient(theLab(), { user: 'alice' });
    await client.waitReady();
    port = client.serverPort() ?? 0;
    assert.ok(port > 0, 'the mosh client reports its server port');
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]));
  });

  test('(d) SIGKILL mid-session, then a restart: the live rule stays, a stale rule of ours goes', async () => {
    const killed = theDaemon();
    killed.signal('SIGKILL');
    const ended = await killed.process.done;
    assert.equal(ended.exitCode, 128 + 9, 'the daemon died of SIGKILL');
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]), 'SIGKILL removed nothing');
    assert.ok(existsSync(theLab().serverPath(DEFAULT_SOCKET)), 'its socket file is left behind');
    const refused = await exchange(theLab(), '{"op":"ping"}\n');
    assert.equal(refused.connected, false, 'nobody answers on the stale socket');

    const added = await theLab().ufw([
      'allow',
      'proto',
      'udp',
      'to',
      'any',
      'port',
      String(STALE_PORT),
      'comment',
      'moshwall',
    ]);
    assert.equal(added.exitCode, 0, added.stderr);
    assert.deepEqual(
      await ours(),
      expectedOurs([
        [port, 'v4'],
        [STALE_PORT, 'v4'],
        [STALE_PORT, 'v6'],
      ]),
    );
    await theClient().echo(`daemonless-${theClient().nonce}`);

    daemon = await startDaemon(theLab(), KEEP);
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]), 'after the first reconcile');
    const log = theDaemon().log();
    assert.match(log, new RegExp(`^info closed port=${STALE_PORT} family=v4 `, 'm'));
    assert.match(log, new RegExp(`^info closed port=${STALE_PORT} family=v6 `, 'm'));
    assert.doesNotMatch(
      log,
      new RegExp(`^info (opened|closed) port=${port} `, 'm'),
      'the live rule was kept',
    );
    const pong = await ping(theLab());
    assert.ok(isPong(pong), `the stale socket was replaced: ${JSON.stringify(pong)}`);
    assert.equal(await theLab().udpReachable(port, 'v4'), true);
    assert.equal(await theLab().udpReachable(STALE_PORT, 'v4'), false);
    await theClient().echo(`restarted-${theClient().nonce}`);
    assert.deepEqual(adminBlocks(theLab()), admin, 'admin rules untouched');
  });

  test('(f) ufw reload keeps our live rule; an admin deleting it gets it put back', async () => {
    const reload = await theLab().ufw(['reload']);
    assert.equal(reload.exitCode, 0, reload.stderr);
    assert.match(reload.stdout, /Firewall reloaded/);
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]), 'our rule is in the files after the reload');
    assert.equal(await theLab().udpReachable(port, 'v4'), true, 'and enforced: a fresh flow gets through');
    await theClient().echo(`reloaded-${theClient().nonce}`);

    const from = lineIndex();
    const numbered = await theLab().ufw(['status', 'numbered']);
    const line = numbered.stdout
      .split('\n')
      .find((each) => each.includes(`${port}/udp`) && each.includes('# moshwall'));
    const number = /^\[\s*(\d+)\]/.exec(line ?? '')?.[1];
    assert.ok(number, `our rule in \`ufw status numbered\`:\n${numbered.stdout}`);
    const deleted = await theLab().ufw(['--force', 'delete', number]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    assert.match(deleted.stdout, /Rule deleted/);

    await theDaemon().waitForLine(/^debug reconcile reason="firewall rules changed"$/, { from });
    await theDaemon().waitForLine(new RegExp(`^info opened port=${port} family=v4 .*user=alice `), { from });
    assert.ok(
      await waitUntil(async () => (await ours()).length === 1, BOUND_MS),
      `our rule is back:\n${theDaemon().log()}`,
    );
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]));
    assert.equal(await theLab().udpReachable(port, 'v4'), true);
    assert.deepEqual(adminBlocks(theLab()), admin, 'admin rules untouched');
  });

  test('a socket that only a shim request saw is closed within a few polls once it goes', {}, async () => {
    await theDaemon().stop();
    // A slower poll makes the window between the shim's reconcile and the next poll wide.
    daemon = await startDaemon(theLab(), `${KEEP}poll_interval_ms = 1000\n`);
    const from = lineIndex();
    const server = await theLab().startMoshServer('bob', { port: 60060 });
    await theLab().killServerProcess(server.pid);
    assert.match(theDaemon().log(), /^info request-served port=60060 state=open$/m);
    assert.ok(
      await waitUntil(async () => (await ours()).length === 1, 5000),
      `rule of 60060 still there 5 polls after its mosh-server ended:\n${theDaemon()
        .lines()
        .slice(from)
        .map((each) => each.text)
        .join('\n')}`,
    );
  });

  test('(g) SIGHUP with a broken config keeps the old one; the daemon still serves', async () => {
    if (daemon?.running()) await daemon.stop();
    // An old config that differs from the defaults where a request can see it: the range.
    daemon = await startDaemon(
      theLab(),
      'ufw_fast_path = "off"\nport_range = "60000:60500"\non_stop = "keep"\n',
    );
    assert.match(String((await askOpen(60600)).error), /^port 60600 is outside the mosh range 60000:60500$/);

    const from = lineIndex();
    theDaemon().rewriteConfig('port_range = "banana"\nnot toml at all\n');
    theDaemon().signal('SIGHUP');
    const failed = await theDaemon().waitForLine(/^error reload-failed /, { from });
    assert.match(failed.text, /keeping=/);
    assert.ok(theDaemon().running(), 'a broken config does not stop the daemon');
    const pong = await ping(theLab());
    assert.ok(isPong(pong), `ping answers: ${JSON.stringify(pong)}`);
    assert.match(
      String((await askOpen(60600)).error),
      /^port 60600 is outside the mosh range 60000:60500$/,
      'the old range still applies (not the defaults)',
    );
    assert.deepEqual(await askOpen(port), { ok: true, op: 'open', port, state: 'open' });
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]));
  });

  test('(g) SIGHUP with a good config applies it; SIGTERM with on_stop = "flush" removes our rules', async () => {
    const from = lineIndex();
    theDaemon().rewriteConfig('ufw_fast_path = "off"\nport_range = "60000:61000"\non_stop = "flush"\n');
    theDaemon().signal('SIGHUP');
    await theDaemon().waitForLine(/^info reloaded /, { from });
    assert.match(String((await askOpen(60600)).error), /^no genuine mosh-server holds port 60600$/);

    const stopping = theDaemon();
    const ended = await stopping.stop('SIGTERM');
    assert.equal(ended.exitCode, 0, stopping.log());
    assert.match(stopping.log(), /^info stopping signal=SIGTERM onStop=flush$/m);
    assert.match(stopping.log(), /^info flushed rules=1$/m);
    assert.deepEqual(await ours(), [], 'every rule of ours is gone');
    assert.deepEqual(adminBlocks(theLab()), admin, 'admin rules untouched');
    // The session's client still sends (counted as arrivals by a packet probe), so ask the kernel: no
    // accept for the port is left in UFW's user chain.
    const chain = await theLab().runServer(['iptables', '-S', 'ufw-user-input']);
    assert.equal(chain.exitCode, 0, chain.stderr);
    assert.doesNotMatch(
      chain.stdout,
      new RegExp(`--dport ${port}\\b`),
      'no accept for the port in the kernel',
    );
  });

  test('(g) SIGTERM with on_stop = "keep" leaves the live rules in place', async () => {
    daemon = await startDaemon(theLab(), KEEP);
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]), 'the restart re-opened the live session');
    await theClient().echo(`kept-${theClient().nonce}`);
    const stopping = theDaemon();
    const ended = await stopping.stop('SIGTERM');
    assert.equal(ended.exitCode, 0, stopping.log());
    assert.match(stopping.log(), /^info stopping signal=SIGTERM onStop=keep$/m);
    assert.doesNotMatch(stopping.log(), /^info (closed|flushed) /m);
    assert.deepEqual(await ours(), expectedOurs([[port, 'v4']]), 'the live rule stays');
    assert.equal(await theLab().udpReachable(port, 'v4'), true);
    await theClient().echo(`after-stop-${theClient().nonce}`);
  });
});
