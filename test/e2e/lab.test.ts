// Smoke test of the e2e lab itself: it comes up, behaves like a host with sshd, mosh and UFW
// (default deny), leaves this machine's own firewall and files alone, and leaves nothing behind.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { before, describe, test } from 'node:test';
import { BASE_ENV, run, start } from './_exec.ts';
import { useLab } from './_moshwall.ts';
import { isGone, statusField, udpBound } from './_procfs.ts';
import { createLab, LAB_PREFIX, labSkipReason, type MoshServer } from './lab.ts';

/** What must be the same on this machine before and after a lab (outside the lab's namespaces). */
interface HostSnapshot {
  ufwStatus: string;
  nftRuleset: string;
  iptables: string;
  ip6tables: string;
  /** /proc/self/mountinfo without other namespaces' handles under /run/netns/ (other labs may come and go). */
  mounts: string[];
  files: Record<string, string>;
}

const WATCHED_FILES = [
  '/etc/ufw/user.rules',
  '/etc/ufw/user6.rules',
  '/etc/ufw/ufw.conf',
  '/etc/ufw/sysctl.conf',
  '/etc/default/ufw',
  '/etc/passwd',
  '/etc/group',
  '/etc/shadow',
  '/var/log/wtmp',
  '/var/log/lastlog',
  '/etc/moshwall/moshwall.toml',
  '/usr/local/bin/mosh-server',
];

/** stdout of a host command that must succeed. */
async function hostOutput(argv: string[]): Promise<string> {
  const result = await run(argv, { env: { ...BASE_ENV, LC_ALL: 'C' }, timeoutMs: 15_000 });
  assert.equal(result.exitCode, 0, `${argv.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** A hash of a file's bytes and size, or "absent". */
function fileFingerprint(file: string): string {
  if (!existsSync(file)) return 'absent';
  const bytes = readFileSync(file);
  return `${statSync(file).size}:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Lines of the host's mountinfo, minus namespace handles under /run/netns/. */
function hostMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !(line.split(' ')[4] ?? '').startsWith('/run/netns/'));
}

/** The machine's firewall state, mounts and the files a lab could be tempted to write. */
async function hostSnapshot(): Promise<HostSnapshot> {
  return {
    ufwStatus: await hostOutput(['ufw', 'status']),
    nftRuleset: await hostOutput(['nft', 'list', 'ruleset']),
    iptables: await hostOutput(['iptables', '-S']),
    ip6tables: await hostOutput(['ip6tables', '-S']),
    mounts: hostMounts(),
    files: Object.fromEntries(WATCHED_FILES.map((file) => [file, fileFingerprint(file)])),
  };
}

/** Names of the network namespaces `ip netns list` shows. */
async function netnsNames(): Promise<string[]> {
  return (await hostOutput(['ip', 'netns', 'list'])).split('\n').flatMap((line) => line.split(' ')[0] || []);
}

/** Lab directories in the temp dir. */
function labDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith(LAB_PREFIX));
}

/**
 * Whether a lab namespace belongs to a lab another live process made (a parallel test run): its lab
 * directory's `owner` file names a pid other than ours.
 */
function ownedByAnother(netnsName: string): boolean {
  const id = /^mwlab-([0-9a-f]{8})-/.exec(netnsName)?.[1];
  if (id === undefined) return false;
  return readdirSync(tmpdir())
    .filter((name) => name.startsWith(`${LAB_PREFIX}${id}-`))
    .some((name) => {
      try {
        const owner = readFileSync(`${tmpdir()}/${name}/owner`, 'utf8').split(' ')[0];
        return owner !== String(process.pid);
      } catch {
        return false;
      }
    });
}

/** Live (non-zombie) processes whose parent is this test process. */
function liveChildren(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => statusField(pid, 'PPid') === String(process.pid) && !isGone(pid));
}

describe('e2e lab', { skip: labSkipReason() }, () => {
  let hostBefore: HostSnapshot | undefined;
  let mosh: MoshServer | undefined;

  /** The lab built in `before` (a failed build fails every test with its reason). */
  const theLab = useLab(() => createLab());

  before(async () => {
    hostBefore = await hostSnapshot();
    const startedAt = performance.now();
    process.stderr.write(`# createLab: ${Math.round(performance.now() - startedAt)} ms\n`);
  });

  test('the lab has its own active UFW with default deny, and the host firewall is untouched', async () => {
    const status = await theLab().ufw(['status', 'verbose']);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /^Status: active$/m);
    assert.match(status.stdout, /^Default: deny \(incoming\)/m);
    assert.deepEqual(await theLab().ufwTuples(), [
      { family: 'v4', tuple: 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', comment: '' },
      { family: 'v6', tuple: 'allow tcp 22 ::/0 any ::/0 in', comment: '' },
    ]);
    const host = await hostSnapshot();
    assert.match(host.ufwStatus, /^Status: inactive$/m);
    assert.deepEqual(host, hostBefore);
  });

  test('ssh as an unprivileged lab user runs as that user, over IPv4 and IPv6', async () => {
    for (const user of theLab().users) {
      assert.ok(user.uid >= 61001, `lab uid ${user.uid} is unprivileged`);
      for (const family of ['v4', 'v6'] as const) {
        const result = await theLab().ssh(user.name, ['id', '-u'], { family });
        assert.equal(result.exitCode, 0, result.stderr);
        assert.equal(result.stdout.trim(), String(user.uid));
      }
      const local = await theLab().runServer(['id', '-un'], { user: user.name });
      assert.equal(local.stdout.trim(), user.name);
    }
  });

  test('a real mosh-server started over ssh holds a UDP port and runs as the lab user', async () => {
    const [alice] = theLab().users;
    assert.ok(alice);
    mosh = await theLab().startMoshServer(alice.name);
    assert.ok(mosh.port >= 60000 && mosh.port <= 61000, `port ${mosh.port}`);
    assert.match(mosh.key, /^[A-Za-z0-9/+]{22}$/);
    assert.equal(statusField(mosh.pid, 'Uid')?.split(/\s+/)[0], String(alice.uid));
    assert.equal(readlinkSync(`/proc/${mosh.pid}/exe`), '/usr/bin/mosh-server');
    assert.ok(udpBound(theLab().server.holderPid, mosh.port), 'the port is bound in the server host');
    // The server host has its own PID namespace: pid 1 is the lab's reaper, and pids map back to the host's.
    assert.equal(theLab().hostPid(mosh.nsPid), mosh.pid);
    const init = await theLab().runServer(['cat', '/proc/1/comm', `/proc/${mosh.nsPid}/comm`]);
    assert.equal(init.stdout, 'python3\nmosh-server\n');
  });

  test('the server host has private, writable /etc and /usr/local', async () => {
    const write = await theLab().runServer(['mkdir', '-p', '/etc/moshwall']);
    assert.equal(write.exitCode, 0, write.stderr);
    for (const argv of [
      ['install', '-m', '644', theLab().configPath, '/etc/moshwall/moshwall.toml'],
      ['install', '-m', '755', '/bin/true', '/usr/local/bin/mosh-server'],
    ]) {
      const result = await theLab().runServer(argv);
      assert.equal(result.exitCode, 0, result.stderr);
    }
    const [alice] = theLab().users;
    assert.ok(alice);
    const seen = await theLab().ssh(alice.name, [
      'sh',
      '-c',
      'command -v mosh-server; cat /etc/moshwall/moshwall.toml',
    ]);
    assert.equal(seen.stdout, `/usr/local/bin/mosh-server\n${readFileSync(theLab().configPath, 'utf8')}`);
    assert.equal(existsSync('/etc/moshwall/moshwall.toml'), false);
    assert.equal(existsSync('/usr/local/bin/mosh-server'), false);
    const removed = await theLab().runServer(['rm', '/usr/local/bin/mosh-server']);
    assert.equal(removed.exitCode, 0, removed.stderr);
  });

  test("a lab user named like one of the host's users (games) is the lab's user inside, the host's stays", async () => {
    const lab = await createLab({ users: ['games'] });
    try {
      const inside = await lab.runServer(['getent', 'passwd', 'games']);
      assert.equal(inside.exitCode, 0, inside.stderr);
      const uid = Number(inside.stdout.split(':')[2]);
      assert.ok(uid >= 61001, `inside the lab, games is the lab user: ${inside.stdout}`);
      const who = await lab.ssh('games', ['id', '-un']);
      assert.equal(who.stdout.trim(), 'games', who.stderr);
      assert.match(readFileSync('/etc/passwd', 'utf8'), /^games:x:5:/m, "the host's games untouched");
    } finally {
      await lab.destroy();
    }
  });

  test('killServerProcess ends a lab process and refuses any other', async () => {
    const [, bob] = theLab().users;
    assert.ok(bob);
    const local = await theLab().startMoshServer(bob.name, { via: 'local' });
    assert.equal(statusField(local.pid, 'Uid')?.split(/\s+/)[0], String(bob.uid));
    await theLab().killServerProcess(local.pid);
    assert.ok(isGone(local.pid));
    const outsider = start(['sleep', '30']);
    try {
      await assert.rejects(theLab().killServerProcess(outsider.pid), /not a process in this lab/);
      assert.equal(isGone(outsider.pid), false);
    } finally {
      outsider.child.kill('SIGKILL');
      await outsider.done;
    }
  });

  test('default deny drops UDP from the client until the admin allows the port', async () => {
    const free = 60999;
    const held = mosh?.port ?? 0;
    assert.ok(
      udpBound(theLab().server.holderPid, held),
      'the mosh-server of the previous test holds its port',
    );
    for (const port of [free, held]) {
      for (const family of ['v4', 'v6'] as const) {
        assert.equal(await theLab().udpReachable(port, family), false, `${port} ${family} before allow`);
      }
      assert.equal((await theLab().ufw(['allow', `${port}/udp`])).exitCode, 0);
      for (const family of ['v4', 'v6'] as const) {
        assert.equal(await theLab().udpReachable(port, family), true, `${port} ${family} after allow`);
      }
      assert.equal((await theLab().ufw(['delete', 'allow', `${port}/udp`])).exitCode, 0);
      assert.equal(await theLab().udpReachable(port, 'v4'), false, `${port} v4 after delete`);
    }
    assert.equal((await theLab().ufwTuples()).length, 2);
  });

  test('destroy removes namespaces, processes, mounts and files, and the host is as before', async () => {
    const done = theLab();
    const pids = [done.server.holderPid, done.server.sshdPid, mosh?.pid ?? -1];
    const startedAt = performance.now();
    await done.destroy();
    process.stderr.write(`# destroy: ${Math.round(performance.now() - startedAt)} ms\n`);
    const names = await netnsNames();
    assert.ok(!names.includes(done.server.netns) && !names.includes(done.client.netns), names.join(' '));
    for (const pid of pids) assert.ok(isGone(pid), `pid ${pid} is gone`);
    assert.equal(existsSync(done.dir), false);
    const id = done.server.netns.slice(0, -'-srv'.length);
    assert.deepEqual(
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((line) => line.includes(id)),
      [],
    );
    assert.deepEqual(await hostSnapshot(), hostBefore);
  });

  for (const step of ['network', 'host', 'ufw', 'sshd'] as const) {
    test(`a createLab that fails after "${step}" tears down what it made`, async () => {
      const namesBefore = await netnsNames();
      const dirsBefore = labDirs();
      // Not an empty list: tsx may keep an esbuild service child of its own.
      const childrenBefore = liveChildren();
      await assert.rejects(createLab({ faultAfter: step }), /injected fault after step/);
      assert.deepEqual(
        (await netnsNames()).filter(
          (name) => name.startsWith(LAB_PREFIX) && !namesBefore.includes(name) && !ownedByAnother(name),
        ),
        [],
      );
      assert.deepEqual(
        labDirs().filter((name) => !dirsBefore.includes(name) && !ownedByAnother(name)),
        [],
      );
      assert.deepEqual(
        liveChildren().filter((pid) => !childrenBefore.includes(pid)),
        [],
      );
      assert.deepEqual(await hostSnapshot(), hostBefore);
    });
  }
});
