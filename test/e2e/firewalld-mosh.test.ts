// Real mosh sessions (the real `mosh` client on the client host, real ssh, real mosh-server) through a
// REAL firewalld's default-deny public zone in the lab (firewall: 'firewalld'), with `moshwall daemon`
// (backend "firewalld") and the shim installed: the session connects and works, its rich rule exists
// exactly while it runs, the admin's permanent port, rich rule and service stay byte-identical over
// open/close cycles, a firewalld reload is followed by the daemon putting the session's rule back, and a
// stale rule of ours (no session) is swept by `moshwall sync`. Also: `backend = "auto"` picks firewalld.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { renderOurRule } from '../../src/backends/firewalld.ts';
import { type Daemon, installShim, moshwall, startDaemon } from './_daemon.ts';
import { type MoshClient, missingClientTools, startMoshClient } from './_mosh-client.ts';
import { useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { udpBound } from './_procfs.ts';
import { createLab, labSkipReason } from './lab.ts';

const CONFIG = 'backend = "firewalld"\nport_range = "60000:61000"\n';
const CLOSE_BOUND_MS = 15_000;
/** The admin's own permanent rules, none of them moshwall's: a plain port, a rich rule and a service. */
const ADMIN_RULES = [
  '--add-port=60990/udp',
  '--add-rich-rule=rule family="ipv4" source address="198.51.100.0/24" port port="60100" protocol="udp" accept',
  '--add-service=http',
];

/** Why this file cannot run here, or false. */
function skipReason(): string | false {
  const lab = labSkipReason();
  if (lab) return lab;
  const missing = missingClientTools();
  return missing.length > 0 ? `missing ${missing.join(', ')}` : false;
}

describe('daemon + shim: real mosh sessions through a real firewalld', { skip: skipReason() }, () => {
  let daemon: Daemon | undefined;
  let adminZone = '';
  let permanent = '';
  const clients: MoshClient[] = [];

  const theLab = useLab(
    () => createLab({ firewall: 'firewalld', users: ['alice'] }),
    async () => {
      for (const client of clients) await client.close();
      assert.equal(
        await admin(['--permanent', '--zone=public', '--list-all']),
        permanent,
        'moshwall changed the permanent configuration',
      );
    },
  );
  const theDaemon = (): Daemon => {
    assert.ok(daemon, 'the daemon did not start in before()');
    return daemon;
  };
  const admin = async (args: string[]): Promise<string> => {
    const result = await theLab().runServer(['firewall-cmd', ...args], { timeoutMs: 20_000 });
    assert.equal(result.exitCode, 0, `firewall-cmd ${args.join(' ')}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  const richRules = async () =>
    (await admin(['--zone=public', '--list-rich-rules'])).split('\n').filter(Boolean);
  /** The rich rules of ours in the runtime zone, as their ports. */
  const ourPorts = async () =>
    (await richRules())
      .filter((rule) => rule.endsWith('nflog prefix="moshwall" limit value="1/h" accept'))
      .map((rule) => Number(/port port="(\d+)"/.exec(rule)?.[1]));
  /** The zone without our rich rules: everything the admin has, which must never change. */
  const adminView = async () =>
    (await admin(['--zone=public', '--list-all']))
      .split('\n')
      .filter((line) => !line.includes('nflog prefix="moshwall"'))
      .join('\n');
  const connect = async (): Promise<MoshClient> => {
    const client = await startMoshClient(theLab(), { user: 'alice' });
    clients.push(client);
    return client;
  };
  /** Ends a session from the client (Ctrl-D) and waits until its port is free and our rule is gone. */
  const endSession = async (client: MoshClient, port: number) => {
    await client.press('C-d');
    await client.waitForText('[mosh is exiting.]', 10_000);
    await client.waitEnded();
    const holder = theLab().server.holderPid;
    assert.ok(await waitUntil(() => !udpBound(holder, port), CLOSE_BOUND_MS), `port ${port} still held`);
    assert.ok(
      await waitUntil(async () => !(await ourPorts()).includes(port), CLOSE_BOUND_MS),
      `our rule for ${port} is still there:\n${theDaemon().log()}`,
    );
  };

  before(async () => {
    // The admin's rules, saved as the admin would (--permanent, then --reload); moshwall never does either.
    // firewall-cmd takes one kind of change per call.
    for (const rule of ADMIN_RULES) await admin(['--permanent', '--zone=public', rule]);
    await admin(['--reload']);
    adminZone = await adminView();
    assert.match(adminZone, /services: dhcpv6-client http ssh/);
    assert.match(adminZone, /ports: 60990\/udp/);
    permanent = await admin(['--permanent', '--zone=public', '--list-all']);
    await installShim(theLab());
    daemon = await startDaemon(theLab(), CONFIG);
  });

  test('a real mosh session connects through the zone, works, and its rule goes when it ends (two cycles)', async () => {
    for (let cycle = 0; cycle < 2; cycle++) {
      const from = theDaemon().lines().length;
      const client = await connect();
      await client.waitReady(30_000);
      const port = client.serverPort();
      assert.ok(port !== undefined && port >= 60000 && port <= 61000, `mosh-client's port: ${port}`);
      await theDaemon().waitForLine(new RegExp(`^info opened port=${port} family=v4 .*user=alice `), {
        from,
      });
      assert.deepEqual(await ourPorts(), [port], 'exactly our rule for the live session');
      assert.ok((await richRules()).includes(renderOurRule({ port, family: 'v4', source: '0.0.0.0/0' })));
      await client.echo(`hello-${cycle}-${client.nonce}`);
      await endSession(client, port);
      assert.equal(await theLab().udpReachable(port, 'v4'), false, 'the port is closed again');
      assert.equal(await adminView(), adminZone, "the admin's rules are byte-identical");
    }
  });

  test('after a firewalld reload the daemon puts the live session rule back, and the session goes on', async (t) => {
    const client = await connect();
    await client.waitReady(30_000);
    const port = client.serverPort();
    assert.ok(port !== undefined);
    assert.ok(await waitUntil(async () => (await ourPorts()).includes(port), CLOSE_BOUND_MS));
    const from = theDaemon().lines().length;
    await admin(['--reload']);
    const reloaded = performance.now();
    await theDaemon().waitForLine(/firewalld reloaded/, { from, timeoutMs: 10_000 });
    assert.ok(
      await waitUntil(async () => (await ourPorts()).includes(port), CLOSE_BOUND_MS),
      `the rule did not come back:\n${theDaemon().log()}`,
    );
    t.diagnostic(
      `rule back ${(performance.now() - reloaded).toFixed(0)} ms after \`firewall-cmd --reload\` returned (including one listing)`,
    );
    await client.echo(`after-reload-${client.nonce}`, 20_000);
    assert.equal(await adminView(), adminZone, "the admin's (permanent) rules came back as they were");
    await endSession(client, port);
  });

  test('a stale rule of ours (no session holds its port) is swept by sync; admin rules stay', async () => {
    const stale = renderOurRule({ port: 60777, family: 'v4', source: '0.0.0.0/0' });
    await admin(['--zone=public', `--add-rich-rule=${stale}`]);
    assert.ok((await richRules()).includes(stale));
    const result = await moshwall(theLab(), ['sync']);
    assert.equal(result.exitCode, 0, `${result.stdout}${result.stderr}`);
    assert.deepEqual(await ourPorts(), []);
    assert.equal(await adminView(), adminZone);
  });

  test('backend "auto" picks the running firewalld and doctor says why, for every candidate', async () => {
    const result = await theLab().moshwall(['doctor'], { config: 'backend = "auto"\n' });
    const text = `${result.stdout}${result.stderr}`;
    assert.match(text, /auto: firewalld is running \(ufw inactive\)/, text);
    assert.match(text, /auto candidate ufw: installed, inactive/);
    // firewalld's own nft tables are not an admin's drop: nftables is not counted as active under it.
    assert.match(text, /auto candidate nftables: installed, inactive/);
    assert.match(text, /firewall +firewalld is active/);
    assert.match(text, /zone: public, firewalld's default zone \(there is no default route\)/);
  });

  test('the daemon is still running, and no session or rule of ours is left', async () => {
    assert.equal(theDaemon().running(), true, theDaemon().log());
    const status = await moshwall(theLab(), ['status', '--json']);
    assert.deepEqual(JSON.parse(status.stdout).sessions, [], status.stderr);
    assert.deepEqual(await ourPorts(), []);
  });
});
