// The Ansible role for real: ansible/playbook.example.yml, run by ansible-playbook from one network
// namespace over real SSH (key auth, become via sudo) against a debootstrap'd Debian 12 in another: its
// own sshd, python3 and UFW (active, default deny, 22/tcp allowed), no systemd, and no route to any
// mirror (the nodejs and python3-apt it lacks sit in its apt cache, as from a local mirror).
// --check on the fresh host changes nothing; the first run installs; the second reports changed=0
// (and so does --check then); a bad value is refused by `moshwall check-config` before it lands; a real
// mosh session then gets through that host's default-deny firewall through the port moshwall opens
// (daemon started by hand: no systemd in a chroot); with moshwall_ufw_fast_path=ipset the role installs
// ipset (from the apt cache too) and the UFW hook, loaded in ufw-after-input, a second run changes nothing
// and a new mosh session goes through a set member; back to "off" it removes the hook, leaving UFW's files
// byte-identical; `apt-get remove` flushes our rules and only ours.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ansibleController } from './_ansible.ts';
import {
  CHROOT_V4,
  type ChrootHost,
  type ChrootProcess,
  createChrootHost,
  requireChrootTools,
  targetImage,
  unpack,
} from './_chroot.ts';
import { buildDeb, REPO, SHIM_LINK, SHIM_TARGET } from './_deb.ts';
import { BASE_ENV, type Result, run, runOk } from './_exec.ts';
import { ourRulePorts } from './_observe.ts';
import { waitUntil } from './_poll.ts';
import { isGone, signalPid, tcpListening, udpArrivals } from './_procfs.ts';
import { labSkipReason } from './lab.ts';

const PLAYBOOK = join(REPO, 'ansible', 'playbook.example.yml');
const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
const HOST_NAME = 'debian12';
const PLAYBOOK_TIMEOUT_MS = 15 * 60_000;

/** The PLAY RECAP line of one host, and which tasks reported "changed". */
interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
  skipped: number;
  changedTasks: string[];
  seconds: number;
  output: string;
}

/** Parses ansible-playbook's default output: the recap of HOST_NAME and the tasks that changed. */
function parseRecap(result: Result, seconds: number): Recap {
  const output = `${result.stdout}\n${result.stderr}`;
  const line = new RegExp(
    `^${HOST_NAME}\\s+:\\s+ok=(\\d+)\\s+changed=(\\d+)\\s+unreachable=(\\d+)\\s+failed=(\\d+)\\s+skipped=(\\d+)`,
    'm',
  ).exec(result.stdout);
  assert.ok(line, `no PLAY RECAP for ${HOST_NAME} (exit ${result.exitCode}):\n${output.slice(-6000)}`);
  const [ok, changed, unreachable, failed, skipped] = line.slice(1).map(Number);
  const changedTasks: string[] = [];
  let task = '';
  for (const text of result.stdout.split('\n')) {
    const header = /^TASK \[(.+)\] \*+$/.exec(text);
    if (header) task = header[1] ?? '';
    if (text.startsWith(`changed: [${HOST_NAME}]`)) changedTasks.push(task);
  }
  return {
    ok: ok ?? -1,
    changed: changed ?? -1,
    unreachable: unreachable ?? -1,
    failed: failed ?? -1,
    skipped: skipped ?? -1,
    changedTasks,
    seconds,
    output,
  };
}

describe('ansible-lint', () => {
  test('the role, the example playbook and the fleet status playbook pass its production profile', async () => {
    const home = mkdtempSync(join(tmpdir(), 'moshwall-ansible-lint-'));
    try {
      const role = join(REPO, 'ansible', 'roles', 'moshwall');
      const lint = [
        'ansible-lint',
        '--offline',
        '--nocolor',
        '--profile',
        'production',
        '-p',
        role,
        PLAYBOOK,
        join(REPO, 'ansible', 'fleet-status.yml'),
      ];
      const result = await run(lint, { env: { ...BASE_ENV, HOME: home }, timeoutMs: 120_000 });
      const output = `${result.stdout}${result.stderr}`;
      assert.equal(result.exitCode, 0, output);
      assert.match(output, /Passed with production profile: 0 failure\(s\), 0 warning\(s\) on \d+ files/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe("the Ansible role against a debootstrap'd Debian 12 over real SSH", {
  skip: labSkipReason(),
}, () => {
  let host: ChrootHost | undefined;
  let deb = '';
  let key = '';
  let inventory = '';
  let varsFile = '';
  let ansibleEnv: Record<string, string> = {};
  let daemon: ChrootProcess | undefined;
  /** The port of the mosh-server started without a client in the real-mosh test: it stays live. */
  let idlePort = 0;
  const timings: string[] = [];
  const theHost = (): ChrootHost => {
    assert.ok(host, 'the managed host did not come up in before()');
    return host;
  };
  /** Runs the example playbook from the controller's namespace. */
  const playbook = async (extra: string[] = []): Promise<Recap> => {
    const begun = performance.now();
    const result = await theHost().runPeer(
      ['ansible-playbook', '-i', inventory, '-e', `@${varsFile}`, ...extra, PLAYBOOK],
      { env: ansibleEnv, timeoutMs: PLAYBOOK_TIMEOUT_MS },
    );
    return parseRecap(result, (performance.now() - begun) / 1000);
  };
  const packageState = async (name: string) => {
    const result = await theHost().run(['dpkg-query', '-W', `-f=\${db:Status-Abbrev}`, name]);
    return result.exitCode === 0 ? result.stdout.trim() : 'absent';
  };
  const exists = (path: string) => {
    try {
      lstatSync(theHost().path(path));
      return true;
    } catch {
      return false;
    }
  };
  const fileHash = (path: string) =>
    createHash('sha256')
      .update(readFileSync(theHost().path(path)))
      .digest('hex');
  /** Ports of the rules of ours in the host's UFW (user.rules and user6.rules, read directly). */
  const ourPorts = () =>
    [
      ...ourRulePorts(readFileSync(theHost().path('/etc/ufw/user.rules'), 'utf8')),
      ...ourRulePorts(readFileSync(theHost().path('/etc/ufw/user6.rules'), 'utf8')),
    ].sort();
  /** ssh from the controller's namespace as a user of the managed host. */
  const ssh = (user: string, remote: string[]) =>
    theHost().runPeer(
      [
        'ssh',
        ...['-F', '/dev/null', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'],
        ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
        `${user}@${CHROOT_V4}`,
        '--',
        ...remote,
      ],
      { timeoutMs: 30_000 },
    );
  /** Whether UDP datagrams from the controller to `port` get past the host's firewall within 1.5 s. */
  const udpPasses = async (port: number) => {
    const holder = theHost().holderPid;
    const before = udpArrivals(holder, 'v4');
    await runOk(
      [
        'ip',
        'netns',
        'exec',
        theHost().peerNetns,
        process.execPath,
        UDP_SCRIPT,
        'send',
        CHROOT_V4,
        String(port),
        '1500',
      ],
      {
        timeoutMs: 10_000,
      },
    );
    return udpArrivals(holder, 'v4') > before;
  };

  /**
   * A real mosh session (ssh, then the shim, then mosh-client over UDP) in a terminal on the controller:
   * it echoes a line typed into it; `whileUp` runs before it ends (killing the client ends the server
   * too). Returns the port the daemon said it opened for it.
   */
  const moshSession = async (
    t: { diagnostic: (message: string) => void },
    whileUp: (port: number) => Promise<void> = async () => {},
  ): Promise<number> => {
    const chroot = theHost();
    const log = () => daemon?.output().stderr ?? '';
    const servedBefore = [...log().matchAll(/^info request-served port=(\d+) state=open$/gm)].length;
    const nonce = randomBytes(4).toString('hex');
    const socket = join(chroot.dir, 'tmux.sock');
    const sshCommand = `ssh -F /dev/null -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
    const echo = `echo READY-${nonce}; while IFS= read -r line; do echo "echo-reply:$line"; done`;
    const tmux = (args: string[]) => ['tmux', '-S', socket, ...args];
    const terminal = { env: { LANG: 'C.UTF-8', TERM: 'xterm-256color' }, timeoutMs: 10_000 };
    const begun = performance.now();
    await runOk(
      [
        'ip',
        'netns',
        'exec',
        chroot.peerNetns,
        ...tmux(['-f', '/dev/null', 'new-session', '-d', '-s', 'mosh', '-x', '100', '-y', '30']),
        ...['mosh', `--ssh=${sshCommand}`, `alice@${CHROOT_V4}`, '--', 'sh', '-c', echo],
      ],
      { ...terminal, env: { ...BASE_ENV, ...terminal.env } },
    );
    const screen = async () =>
      (await run(tmux(['capture-pane', '-p', '-t', 'mosh']), { env: BASE_ENV })).stdout;
    try {
      assert.ok(
        await waitUntil(async () => (await screen()).includes(`READY-${nonce}`), 20_000),
        await screen(),
      );
      t.diagnostic(`mosh session up in ${(performance.now() - begun).toFixed(0)} ms`);
      await runOk(tmux(['send-keys', '-t', 'mosh', '-l', `hello-${nonce}`]), { env: BASE_ENV });
      await runOk(tmux(['send-keys', '-t', 'mosh', 'Enter']), { env: BASE_ENV });
      assert.ok(
        await waitUntil(async () => (await screen()).includes(`echo-reply:hello-${nonce}`), 10_000),
        await screen(),
      );
      const served = [...log().matchAll(/^info request-served port=(\d+) state=open$/gm)][servedBefore];
      assert.ok(served, `the shim asked the daemon:\n${log()}`);
      await whileUp(Number(served[1]));
      return Number(served[1]);
    } finally {
      await run(tmux(['kill-server']), { env: BASE_ENV });
    }
  };

  before(async () => {
    requireChrootTools(['ansible-playbook', 'ssh', 'ssh-keygen', 'mosh', 'mosh-client', 'tmux']);
    let begun = performance.now();
    const image = await targetImage();
    timings.push(
      `images: ${(image.ms / 1000).toFixed(1)} s (minbase ${image.minbase.builtNow ? 'built' : 'cached'}, target ${image.builtNow ? 'built' : 'cached'})`,
    );
    begun = performance.now();
    host = await createChrootHost(unpack(image.tar));
    const chroot = host;
    const dir = chroot.dir;
    deb = await buildDeb(join(dir, 'out'));

    // The managed host: users, keys, sudo for Ansible's become, sshd, UFW.
    mkdirSync(join(dir, 'ssh'), { mode: 0o700 });
    key = join(dir, 'ssh', 'id_ed25519');
    await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'moshwall-ansible-test', '-f', key]);
    const publicKey = readFileSync(`${key}.pub`);
    for (const user of ['deploy', 'alice']) {
      await chroot.runOk(['useradd', '--create-home', '--shell', '/bin/bash', '--user-group', user]);
      chroot.writeFile(`/home/${user}/.ssh/authorized_keys`, publicKey, 0o600);
      await chroot.runOk(['chown', '-R', `${user}:${user}`, `/home/${user}/.ssh`]);
      await chroot.runOk(['chmod', '700', `/home/${user}/.ssh`]);
    }
    chroot.writeFile('/etc/sudoers.d/deploy', 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n', 0o440);
    await chroot.runOk(['visudo', '-c']);
    chroot.writeFile(
      '/etc/ssh/sshd_config.d/moshwall-test.conf',
      `ListenAddress ${CHROOT_V4}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n`,
      0o644,
    );
    chroot.writeFile('/etc/ufw/sysctl.conf', '# moshwall test host: no kernel tuning\n', 0o644);
    await chroot.runOk(['mkdir', '-p', '-m', '755', '/run/sshd']);
    await chroot.runOk(['ssh-keygen', '-A']);
    await chroot.runOk(['ufw', 'allow', '22/tcp'], { env: { LC_ALL: 'C' } });
    await chroot.runOk(['ufw', '--force', 'enable'], { env: { LC_ALL: 'C' } });
    const status = await chroot.runOk(['ufw', 'status', 'verbose'], { env: { LC_ALL: 'C' } });
    assert.match(status.stdout, /^Status: active$/m);
    assert.match(status.stdout, /^Default: deny \(incoming\)/m);
    const sshd = await chroot.start(['/usr/sbin/sshd', '-D', '-e']);
    if (!(await waitUntil(() => tcpListening(chroot.holderPid, 22, 'v4'), 10_000))) {
      throw new Error(`sshd in the managed host did not listen: ${sshd.output().stderr}`);
    }

    // The controller: its own ansible.cfg, home and control sockets, in the lab directory.
    ansibleEnv = ansibleController(dir);
    inventory = join(dir, 'inventory.ini');
    writeFileSync(
      inventory,
      `[moshwall_hosts]\n${HOST_NAME} ansible_host=${CHROOT_V4} ansible_user=deploy ansible_ssh_private_key_file=${key}\n`,
    );
    varsFile = join(dir, 'vars.json');
    writeFileSync(
      varsFile,
      JSON.stringify({
        moshwall_deb_src: deb,
        // No route to a mirror: apt installs nodejs and python3-apt from the host's apt cache.
        moshwall_apt_update_cache: false,
        moshwall_allow_users: ['alice'],
        moshwall_max_sessions_per_user: 3,
        moshwall_enable_sudoers_hook: true,
        // Classic rules first (this file follows them into the hook and back); the runtime fast path a
        // plain install gets is proven in ufw-runtime.test.ts.
        moshwall_ufw_fast_path: 'off',
      }),
    );
    timings.push(
      `managed host up (unpack, namespaces, users, sshd, ufw): ${((performance.now() - begun) / 1000).toFixed(1)} s`,
    );
  });

  after(async () => {
    await host?.destroy();
    console.log(`# ansible-role timings: ${timings.join('; ')}`);
  });

  test('--check on the fresh host fails nothing and changes nothing there', async (t) => {
    const recap = await playbook(['--check', '--diff']);
    timings.push(`--check on the fresh host: ${recap.seconds.toFixed(1)} s`);
    assert.equal(recap.failed, 0, recap.output);
    assert.equal(recap.unreachable, 0, recap.output);
    assert.ok(recap.changed > 0, 'it says what it would change');
    assert.equal(await packageState('nodejs'), 'absent');
    assert.equal(await packageState('moshwall'), 'absent');
    for (const path of ['/etc/moshwall', '/var/cache/moshwall', '/etc/sudoers.d/moshwall', SHIM_LINK]) {
      assert.equal(exists(path), false, `${path} after --check`);
    }
    t.diagnostic(`would change: ${recap.changedTasks.join(' | ')}`);
  });

  test('the first run installs nodejs, the package, the config and the sudoers hook', async (t) => {
    const recap = await playbook();
    timings.push(`first run (fresh install): ${recap.seconds.toFixed(1)} s`);
    t.diagnostic(
      `first run: ${recap.seconds.toFixed(1)} s, changed=${recap.changed}: ${recap.changedTasks.join(' | ')}`,
    );
    assert.equal(recap.failed, 0, recap.output);
    assert.equal(recap.unreachable, 0, recap.output);
    for (const task of [
      "moshwall : Install Debian's nodejs",
      'moshwall : Copy the moshwall package',
      'moshwall : Install the moshwall package',
      'moshwall : Write /etc/moshwall/moshwall.toml',
      'moshwall : Allow exactly `sudo -n /usr/sbin/moshwall hook`',
    ]) {
      assert.ok(recap.changedTasks.includes(task), `"${task}" changed: ${recap.changedTasks.join(' | ')}`);
    }
    assert.match(
      recap.output,
      /systemd is not running on debian12, so moshwall\.service was neither started nor/,
    );
    assert.equal(await packageState('nodejs'), 'ii');
    assert.equal(await packageState('moshwall'), 'ii');
    assert.match((await theHost().runOk(['node', '--version'])).stdout, /^v18\./);
    const config = readFileSync(theHost().path('/etc/moshwall/moshwall.toml'), 'utf8');
    assert.match(config, /^allow_users = \["alice"\]$/m);
    assert.match(config, /^max_sessions_per_user = 3$/m);
    const facts = lstatSync(theHost().path('/etc/moshwall/moshwall.toml'));
    assert.equal(`${facts.uid}:${facts.gid} ${(facts.mode & 0o777).toString(8)}`, '0:0 644');
    const settings = JSON.parse((await theHost().runOk(['moshwall', 'check-config', '--json'])).stdout) as {
      allowUsers: string[];
      maxSessionsPerUser: number;
      portRange: { first: number; last: number };
    };
    assert.deepEqual(settings.allowUsers, ['alice']);
    assert.equal(settings.maxSessionsPerUser, 3);
    assert.deepEqual(settings.portRange, { first: 60000, last: 61000 });
    const sudoers = lstatSync(theHost().path('/etc/sudoers.d/moshwall'));
    assert.equal((sudoers.mode & 0o777).toString(8), '440');
    assert.match(
      readFileSync(theHost().path('/etc/sudoers.d/moshwall'), 'utf8'),
      /^ALL ALL=\(root\) NOPASSWD: \/usr\/sbin\/moshwall hook$/m,
    );
    assert.match(
      readFileSync(theHost().path('/etc/sudoers.d/moshwall'), 'utf8'),
      /^Defaults!\/usr\/sbin\/moshwall secure_path="\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin", env_reset, !setenv$/m,
    );
    assert.equal(readlinkSync(theHost().path(SHIM_LINK)), SHIM_TARGET);
    const allowed = await ssh('alice', ['sudo', '-n', '-l']);
    assert.match(
      allowed.stdout,
      /\(root\) NOPASSWD: \/usr\/sbin\/moshwall hook$/m,
      `${allowed.stdout}${allowed.stderr}`,
    );
  });

  test('the second run changes nothing, and neither would --check', async (t) => {
    const recap = await playbook();
    timings.push(`second run (idempotent): ${recap.seconds.toFixed(1)} s`);
    t.diagnostic(`second run: ${recap.seconds.toFixed(1)} s`);
    assert.equal(recap.failed, 0, recap.output);
    assert.equal(recap.changed, 0, `changed: ${recap.changedTasks.join(' | ')}\n${recap.output}`);
    const check = await playbook(['--check', '--diff']);
    assert.equal(check.failed, 0, check.output);
    assert.equal(check.changed, 0, `--check would change: ${check.changedTasks.join(' | ')}`);
  });

  test('a bad value is refused by `moshwall check-config`, and the config stays as it was', async () => {
    const before = fileHash('/etc/moshwall/moshwall.toml');
    const recap = await playbook(['-e', 'moshwall_port_range=60000:70000']);
    assert.equal(recap.failed, 1, recap.output);
    assert.match(recap.output, /failed to validate/);
    assert.match(recap.output, /port_range: \\?"60000:70000\\?" is not a range within 1:65535/);
    assert.equal(fileHash('/etc/moshwall/moshwall.toml'), before);
  });

  test("a real mosh session gets through the host's default-deny UFW by the port moshwall opens", async (t) => {
    const chroot = theHost();
    // Without moshwall running, a session's port stays shut (the real mosh-server, not the shim).
    const direct = await ssh('alice', [
      '/usr/bin/mosh-server',
      'new',
      '-s',
      '-c',
      '256',
      '-l',
      'LANG=C.UTF-8',
    ]);
    const connect = /^MOSH CONNECT (\d+) \S+\s*$/m.exec(direct.stdout);
    assert.ok(connect, `mosh-server did not start: ${direct.stdout}${direct.stderr}`);
    const first = Number(connect[1]);
    idlePort = first;
    assert.deepEqual(ourPorts(), []);
    assert.equal(await udpPasses(first), false, 'UFW drops it: default deny');

    daemon = await chroot.start(['/usr/sbin/moshwall', '--verbose', 'daemon']);
    const started = daemon;
    if (started.pid <= 0) assert.fail(`moshwall daemon ended at once: ${JSON.stringify(await started.done)}`);
    const log = () => started.output().stderr;
    assert.ok(
      await waitUntil(() => /^debug reconciled /m.test(log()), 20_000),
      `daemon not ready:\n${log()}`,
    );
    assert.deepEqual(ourPorts(), [first], 'the daemon opened the live session');
    assert.equal(await udpPasses(first), true);

    const port = await moshSession(t);
    assert.deepEqual(ourPorts(), [first, port].sort(), 'a rule for each live session, nothing else');
  });

  test('ufw_fast_path "ipset": the hook goes live and mosh gets through; "off" puts /etc/ufw back byte for byte', async (t) => {
    const chroot = theHost();
    const started = daemon;
    assert.ok(started && started.pid > 0 && !isGone(started.pid), 'the daemon of the real-mosh test runs');
    const log = () => started.output().stderr;
    const hookFiles = ['/etc/ufw/after.rules', '/etc/ufw/after6.rules', '/etc/ufw/before.init'];
    const snapshot = () =>
      hookFiles.map(
        (path) => `${path} ${fileHash(path)} ${(lstatSync(chroot.path(path)).mode & 0o7777).toString(8)}`,
      );
    const matchRules = async () =>
      (await chroot.runOk(['iptables', '-S', 'ufw-after-input'])).stdout
        .split('\n')
        .filter((line) => line.includes('--match-set moshwall-'));
    /** Ports in moshwall-any4 (no ipset command or no set: none). */
    const members = async () => {
      const saved = await chroot.run(['ipset', 'save']);
      return [...saved.stdout.matchAll(/^add moshwall-any4 (\d+)$/gm)].map((match) => Number(match[1]));
    };
    const ourSets = async () =>
      (await chroot.run(['ipset', 'list', '-n'])).stdout
        .split('\n')
        .filter((name) => name.startsWith('moshwall-'));
    /** What the role's handler (`systemctl reload moshwall`) does: SIGHUP. There is no systemd in a chroot. */
    const reloadDaemon = async () => {
      const count = () => (log().match(/^info reloaded /gm) ?? []).length;
      const before = count();
      signalPid(started.pid, 'SIGHUP');
      assert.ok(await waitUntil(() => count() > before, 10_000), `no reload:\n${log()}`);
    };
    const original = snapshot();
    // The real-mosh test's session ended with its client; the idle server's classic rule stays.
    const classic = [idlePort];
    assert.ok(
      await waitUntil(() => ourPorts().join() === classic.join(), 10_000),
      `only the idle session's rule: ${ourPorts().join(',')}`,
    );
    const ipset = ['-e', 'moshwall_ufw_fast_path=ipset'];

    const check = await playbook([...ipset, '--check']);
    assert.equal(check.failed, 0, check.output);
    for (const task of [
      'moshwall : Write /etc/moshwall/moshwall.toml',
      "moshwall : Find out whether the UFW fast path's hook is installed",
    ]) {
      assert.ok(check.changedTasks.includes(task), `--check: "${task}": ${check.changedTasks.join(' | ')}`);
    }
    assert.deepEqual(snapshot(), original, '--check changed nothing in /etc/ufw');
    assert.notEqual(await packageState('ipset'), 'ii', '--check installed no ipset');

    const on = await playbook(ipset);
    timings.push(`ufw_fast_path=ipset run: ${on.seconds.toFixed(1)} s`);
    assert.equal(on.failed, 0, on.output);
    for (const task of [
      'moshwall : Write /etc/moshwall/moshwall.toml',
      'moshwall : Install ipset for the UFW fast path ("auto" uses it where it is installed)',
      "moshwall : Add the UFW fast path's hook",
    ]) {
      assert.ok(on.changedTasks.includes(task), `"${task}" changed: ${on.changedTasks.join(' | ')}`);
    }
    assert.match(
      readFileSync(chroot.path('/etc/moshwall/moshwall.toml'), 'utf8'),
      /^ufw_fast_path = "ipset"$/m,
    );
    assert.equal(await packageState('ipset'), 'ii');
    assert.match(readFileSync(chroot.path('/etc/ufw/after.rules'), 'utf8'), /^# BEGIN moshwall fast path/m);
    assert.ok((await matchRules()).length > 0, 'the match rules are loaded in ufw-after-input');
    // A live session keeps its classic rule (no gap); new sessions go into the sets.
    await reloadDaemon();

    const again = await playbook(ipset);
    timings.push(`ufw_fast_path=ipset second run: ${again.seconds.toFixed(1)} s`);
    assert.equal(again.failed, 0, again.output);
    assert.equal(again.changed, 0, `changed: ${again.changedTasks.join(' | ')}\n${again.output}`);

    const port = await moshSession(t, async (open) => {
      assert.ok((await members()).includes(open), `the session's port ${open} is a member of moshwall-any4`);
      assert.deepEqual(ourPorts(), classic, 'no classic rule for it');
    });
    assert.ok(
      await waitUntil(async () => !(await members()).includes(port), 10_000),
      `the ended session's member is taken out:\n${log()}`,
    );

    const off = await playbook();
    timings.push(`back to ufw_fast_path=off: ${off.seconds.toFixed(1)} s`);
    assert.equal(off.failed, 0, off.output);
    for (const task of [
      'moshwall : Write /etc/moshwall/moshwall.toml',
      "moshwall : Remove the UFW fast path's hook",
    ]) {
      assert.ok(off.changedTasks.includes(task), `"${task}" changed: ${off.changedTasks.join(' | ')}`);
    }
    assert.deepEqual(snapshot(), original, 'after.rules, after6.rules and before.init as before, mode too');
    assert.deepEqual(await matchRules(), []);
    assert.deepEqual(await ourSets(), []);
    await reloadDaemon();
    assert.deepEqual(ourPorts(), classic, 'the live session kept its classic rule throughout');
  });

  test('apt-get remove stops at our rules: flushed, the admin rule kept, the shim link gone', async () => {
    const chroot = theHost();
    // Never a pid <= 0: kill(-1) would signal every process of this machine.
    if (daemon && daemon.pid > 0 && !isGone(daemon.pid)) {
      signalPid(daemon.pid, 'SIGTERM');
      await daemon.done;
    }
    assert.ok(ourPorts().length > 0, 'rules of ours to remove (on_stop = "keep")');
    const removed = await chroot.run(['apt-get', '-q', '-y', 'remove', 'moshwall'], { timeoutMs: 120_000 });
    assert.equal(removed.exitCode, 0, `${removed.stdout}${removed.stderr}`);
    assert.deepEqual(ourPorts(), []);
    const rules = readFileSync(chroot.path('/etc/ufw/user.rules'), 'utf8');
    assert.match(
      rules,
      /^### tuple ### allow tcp 22 0\.0\.0\.0\/0 any 0\.0\.0\.0\/0 in$/m,
      'the admin rule stays',
    );
    assert.equal(exists(SHIM_LINK), false);
    assert.equal(existsSync(chroot.path('/usr/lib/moshwall/moshwall.js')), false);
    assert.equal(await packageState('moshwall'), 'rc');
  });
});
