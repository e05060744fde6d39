// The Ansible role on two booted Debian 12 guests (systemd as PID 1, UFW with default deny; _guest.ts)
// in one playbook run, from a controller on their shared client side over real SSH (key auth, become
// via sudo): the role installs the .deb and the service runs under systemd on both (its unit active,
// enabled, its MainPID the daemon, a session's port opened through the shim on each); a second run
// reports changed=0 on both; ansible/fleet-status.yml prints one table of both guests' sessions, rules
// and problems, with an unreachable third host as a row of its own.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ansibleController } from './_ansible.ts';
import { buildDeb, REPO } from './_deb.ts';
import { LabError, type Result, runOk } from './_exec.ts';
import { createGuest, GUEST_V4, type Guest, guestImage } from './_guest.ts';
import { waitUntil } from './_poll.ts';
import { tcpListening, udpArrivals } from './_procfs.ts';
import { labSkipReason } from './lab.ts';

const PLAYBOOK = join(REPO, 'ansible', 'playbook.example.yml');
const FLEET_PLAYBOOK = join(REPO, 'ansible', 'fleet-status.yml');
/** An inventory host at an address nothing answers on (the client side's /24, no guest there). */
const UNREACHABLE = { name: 'guest-gone', address: '198.51.100.77' };
const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
/** The second guest's /24 (TEST-NET-3), beside the first's on the same client side. */
const SECOND = { guest: '203.0.113.1', client: '203.0.113.2' };
const HOSTS = [
  { name: 'guest-a', address: GUEST_V4 },
  { name: 'guest-b', address: SECOND.guest },
];

/** One host's PLAY RECAP counts. */
interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

/** The PLAY RECAP of every host in ansible-playbook's default output, and the tasks that changed. */
function recaps(result: Result): { hosts: Map<string, Recap>; changedTasks: string[] } {
  const hosts = new Map<string, Recap>();
  for (const match of result.stdout.matchAll(
    /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm,
  )) {
    const [ok, changed, unreachable, failed] = match.slice(2).map(Number);
    hosts.set(match[1] ?? '', {
      ok: ok ?? -1,
      changed: changed ?? -1,
      unreachable: unreachable ?? -1,
      failed: failed ?? -1,
    });
  }
  const changedTasks: string[] = [];
  let task = '';
  for (const line of result.stdout.split('\n')) {
    const header = /^TASK \[(.+)\] \*+$/.exec(line);
    if (header) task = header[1] ?? '';
    const changed = /^changed: \[(\S+)\]/.exec(line);
    if (changed) changedTasks.push(`${changed[1]}: ${task}`);
  }
  return { hosts, changedTasks };
}

describe('the Ansible role on two booted Debian 12 guests (systemd PID 1) in one playbook run', {
  skip: labSkipReason(),
}, () => {
  const guests: Guest[] = [];
  let key = '';
  let run: (playbook?: string, extra?: string[]) => Promise<{ result: Result; seconds: number }> =
    async () => {
      throw new LabError('the guests did not come up in before()');
    };
  const figures: string[] = [];

  before(async () => {
    const image = await guestImage();
    const first = await createGuest(image.tar, 'ufw');
    guests.push(first);
    guests.push(await createGuest(image.tar, 'ufw', { address: SECOND, clientSideOf: first }));
    const deb = await buildDeb(join(first.dir, 'out'));
    mkdirSync(join(first.dir, 'ssh'), { mode: 0o700 });
    key = join(first.dir, 'ssh', 'id_ed25519');
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'moshwall-guest-ansible', '-f', key]);
    for (const guest of guests) {
      const boot = await guest.boot();
      figures.push(`boot ${(boot.ms / 1000).toFixed(1)} s`);
      await guest.runOk(['ufw', 'allow', '22/tcp'], { env: { LANG: 'C' } });
      for (const user of ['deploy', 'mwguest']) {
        await guest.runOk(['useradd', '--create-home', '--shell', '/bin/bash', '--user-group', user]);
        guest.writeFile(`/home/${user}/.ssh/authorized_keys`, readFileSync(`${key}.pub`), 0o600);
        await guest.runOk(['chown', '-R', `${user}:${user}`, `/home/${user}/.ssh`]);
        await guest.runOk(['chmod', '700', `/home/${user}/.ssh`]);
      }
      guest.writeFile('/etc/sudoers.d/deploy', 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n', 0o440);
      await guest.runOk(['visudo', '-c']);
      const live = guest;
      assert.ok(await waitUntil(() => tcpListening(live.pid1(), 22, 'v4'), 10_000), 'sshd listens');
    }

    // The controller: its own ansible.cfg, home and control sockets, in the lab directory.
    const env = ansibleController(first.dir);
    const inventory = join(first.dir, 'inventory.ini');
    writeFileSync(
      inventory,
      `[moshwall_hosts]\n${HOSTS.map(({ name, address }) => `${name} ansible_host=${address} ansible_user=deploy ansible_ssh_private_key_file=${key}`).join('\n')}\n`,
    );
    const vars = join(first.dir, 'vars.json');
    // No route to a mirror: the guests already have nodejs, python3-apt and ipset from their image.
    writeFileSync(vars, JSON.stringify({ moshwall_deb_src: deb, moshwall_apt_update_cache: false }));
    run = async (playbook = PLAYBOOK, extra = []) => {
      const begun = performance.now();
      const result = await first.client(
        ['ansible-playbook', '-i', inventory, '-e', `@${vars}`, ...extra, playbook],
        {
          env,
          timeoutMs: 15 * 60_000,
        },
      );
      return { result, seconds: (performance.now() - begun) / 1000 };
    };
  });

  after(async () => {
    console.log(`# guest-ansible figures: ${figures.join('; ')}`);
    // The second guest first: the first owns the client side both use.
    for (const guest of [...guests].reverse()) await guest.destroy();
  });

  test('the first run installs on both, and the service runs under systemd on each: a session gets its port', async (t) => {
    const { result, seconds } = await run();
    const output = `${result.stdout}\n${result.stderr}`.slice(-8000);
    assert.equal(result.exitCode, 0, output);
    const { hosts } = recaps(result);
    figures.push(`first run ${seconds.toFixed(1)} s`);
    for (const [index, guest] of guests.entries()) {
      const host = HOSTS[index];
      assert.ok(host);
      const recap = hosts.get(host.name);
      assert.ok(recap, `a PLAY RECAP for ${host.name}:\n${output}`);
      assert.equal(recap.failed, 0, output);
      assert.equal(recap.unreachable, 0, output);
      assert.ok(recap.changed > 0, 'the first run changes something');
      const show = (
        await guest.runOk(['systemctl', 'show', '-p', 'ActiveState,UnitFileState,MainPID', 'moshwall'])
      ).stdout;
      assert.match(show, /^ActiveState=active$/m, show);
      assert.match(show, /^UnitFileState=enabled$/m, show);
      const mainPid = /^MainPID=(\d+)$/m.exec(show)?.[1] ?? '0';
      const cmdline = (await guest.runOk(['cat', `/proc/${mainPid}/cmdline`])).stdout.split('\0').join(' ');
      assert.match(cmdline, /moshwall\.js daemon/, `systemd's MainPID is the daemon: ${cmdline}`);

      // A mosh-server over ssh, as mosh starts it: the shim has the daemon open its port first.
      const ssh = await guest.client(
        [
          ...['ssh', '-F', '/dev/null', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none'],
          ...['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
          ...['-o', 'LogLevel=ERROR', `mwguest@${host.address}`, '--'],
          ...['mosh-server', 'new', '-s', '-l', 'LANG=C.UTF-8'],
        ],
        { timeoutMs: 20_000 },
      );
      const port = /^MOSH CONNECT (\d+) /m.exec(ssh.stdout)?.[1];
      assert.ok(port, `mosh-server over ssh on ${host.name}: ${ssh.stdout}${ssh.stderr}`);
      const arrivedBefore = udpArrivals(guest.pid1(), 'v4');
      const sent = await guest.client([process.execPath, UDP_SCRIPT, 'stream', host.address, port, '300'], {
        timeoutMs: 10_000,
      });
      const count = Number(/^sent (\d+)$/m.exec(sent.stdout)?.[1] ?? -1);
      await waitUntil(() => udpArrivals(guest.pid1(), 'v4') - arrivedBefore >= count, 1000);
      assert.equal(
        udpArrivals(guest.pid1(), 'v4') - arrivedBefore,
        count,
        `port ${port} open on ${host.name}`,
      );
      const journal = (await guest.runOk(['journalctl', '-u', 'moshwall', '-o', 'cat', '--no-pager'])).stdout;
      assert.match(journal, new RegExp(`^info request-served port=${port} state=open$`, 'm'), journal);
      t.diagnostic(`${host.name}: ${show.trim().split('\n').join(' ')}; session port ${port} open`);
    }
  });

  test('the second run reports changed=0 on both', async () => {
    const { result, seconds } = await run();
    const output = `${result.stdout}\n${result.stderr}`.slice(-8000);
    assert.equal(result.exitCode, 0, output);
    const { hosts, changedTasks } = recaps(result);
    figures.push(`second run ${seconds.toFixed(1)} s`);
    for (const { name } of HOSTS) {
      const recap = hosts.get(name);
      assert.ok(recap, `a PLAY RECAP for ${name}:\n${output}`);
      assert.equal(recap.failed, 0, output);
      assert.equal(recap.changed, 0, `changed on a second run: ${changedTasks.join('; ')}`);
    }
  });
  test("fleet-status.yml: one table of both guests' sessions, rules and problems; an unreachable host is a row with its error", async (t) => {
    const [first, second] = guests;
    assert.ok(first && second);
    const ssh = (address: string) =>
      second.client(
        [
          ...['ssh', '-F', '/dev/null', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none'],
          ...['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
          ...[
            '-o',
            'LogLevel=ERROR',
            `mwguest@${address}`,
            '--',
            'mosh-server',
            'new',
            '-s',
            '-l',
            'LANG=C.UTF-8',
          ],
        ],
        { timeoutMs: 20_000 },
      );
    const started = await ssh(SECOND.guest);
    const port = /^MOSH CONNECT (\d+) /m.exec(started.stdout)?.[1];
    assert.ok(port, started.stdout + started.stderr);
    const inventory = join(first.dir, 'fleet-inventory.ini');
    writeFileSync(
      inventory,
      `${readFileSync(join(first.dir, 'inventory.ini'), 'utf8')}${UNREACHABLE.name} ansible_host=${UNREACHABLE.address} ansible_user=deploy ansible_ssh_private_key_file=${key} ansible_ssh_common_args='-o ConnectTimeout=3'\n`,
    );
    const report = join(first.dir, 'fleet.txt');
    const { result, seconds } = await run(FLEET_PLAYBOOK, [
      '-i',
      inventory,
      '-e',
      `moshwall_fleet_report=${report}`,
    ]);
    const output = `${result.stdout}\n${result.stderr}`.slice(-8000);
    assert.equal(result.exitCode, 0, output);
    const table = readFileSync(report, 'utf8');
    t.diagnostic(table);
    figures.push(`fleet status over 2 guests + 1 unreachable: ${seconds.toFixed(1)} s`);
    assert.match(table, /^guest-a\s+ufw\s+\d+\s+\d+\s+\d+\s+\d+$/m);
    assert.match(table, /^guest-b\s+ufw\s+[1-9]\d*\s+[1-9]\d*\s+\d+\s+\d+$/m);
    assert.match(table, new RegExp(`^guest-b\\s+mwguest\\s+${port}/v4\\s+\\S+\\s+\\d+s\\s+open$`, 'm'));
    assert.match(table, /^guest-gone\s+-\s+-\s+-\s+-\s+1$/m);
    assert.match(table, /^guest-gone\s+unreachable: /m);
    assert.match(
      result.stdout,
      /TASK \[Show the table\][\s\S]*?"msg": \[\n\s+"HOST /,
      'the table is printed too',
    );
    const recap = recaps(result).hosts;
    for (const { name } of HOSTS) assert.equal(recap.get(name)?.changed, 0, `${name} read only`);
  });
});
