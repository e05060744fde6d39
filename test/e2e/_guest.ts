// A booted Debian 12 guest with systemd as PID 1, for the guest-*.test.ts files: a debootstrap'd root
// (cached as a tarball, see _chroot.ts) unpacked into a lab directory and booted by
// `systemd-nspawn --boot --keep-unit --register=no --network-veth`, started inside a network namespace
// of the lab's own (the "client" side: the veth's outer end lands there, so the guest reaches nothing of
// this machine's network, and its firewall is its own). Each guest gets a cgroup of its own (nspawn
// puts its payload/supervisor cgroups under the caller's with --keep-unit). Commands run in the guest by
// `nsenter -a` into its PID 1; `systemctl reboot` there makes nspawn exit 133 and boot() on the same root
// is the next boot. destroy() and the lab's exit safety net (trackLab/teardownSync, sweepStaleLabs after
// a SIGKILL) end every process of the guest and the client side, then remove the cgroups, the namespace
// and the directory.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  aptOk,
  CACHE_DIR,
  createChrootHost,
  minbaseImage,
  type RootImage,
  storeImage,
  unpack,
  writeInRoot,
} from './_chroot.ts';
import {
  BASE_ENV,
  LabError,
  passOn,
  type Result,
  type RunOptions,
  run,
  runOk,
  type Started,
  start,
} from './_exec.ts';
import { DEBIAN_NFTABLES_CONF } from './_firewalls.ts';
import { pollFor, waitUntil } from './_poll.ts';
import { childPids, isGone, namedNetnsInode, namespaceOf } from './_procfs.ts';
import {
  childrenReaped,
  LAB_PREFIX,
  type LabState,
  ownerLine,
  pinNamespaces,
  sweepStaleLabs,
  teardownSync,
  trackLab,
  unpinNamespaces,
} from './_teardown.ts';

/** The guest's address and the client side's (TEST-NET-2: no real network uses it). */
export const GUEST_V4 = '198.51.100.1';
export const CLIENT_V4 = '198.51.100.2';
/** What a Debian server running moshwall has: systemd, sshd, each firewall, Debian's Node, mosh. */
export const GUEST_PACKAGES = [
  'systemd-sysv',
  'dbus',
  'openssh-server',
  'sudo',
  'python3',
  'python3-apt',
  'iproute2',
  'ufw',
  'nftables',
  'firewalld',
  'ipset',
  'conntrack',
  'nodejs',
  'mosh',
];
/** Change it whenever what goes into the guest root changes: the next run builds it anew. */
const GUEST_KEY = 'bookworm-guest-4';
/** The firewall a guest boots with; the other two are masked. */
export type GuestFirewall = 'ufw' | 'nftables' | 'firewalld';
const FIREWALL_UNITS: Record<GuestFirewall, string> = {
  ufw: 'ufw.service',
  nftables: 'nftables.service',
  firewalld: 'firewalld.service',
};
const GUEST_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
  DEBIAN_FRONTEND: 'noninteractive',
  SYSTEMD_PAGER: '',
};

export interface GuestOptions {
  /** The guest's and the client side's addresses (one /24); default GUEST_V4 and CLIENT_V4. */
  address?: { guest: string; client: string };
  /** Put this guest's veth end in that guest's client side (one controller reaching both guests). */
  clientSideOf?: Guest;
}

export interface GuestRunOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  input?: string;
}

export interface Guest {
  dir: string;
  /** The guest's root as this machine sees it. */
  root: string;
  /** The network namespace holding the veth's outer end (the client side). */
  clientNetns: string;
  /** The veth's outer end in clientNetns. */
  clientIf: string;
  /** Host pid of the current boot's PID 1 (systemd). */
  pid1(): number;
  /** Runs argv in the guest (every namespace of its PID 1). */
  run(argv: string[], opts?: GuestRunOptions): Promise<Result>;
  runOk(argv: string[], opts?: GuestRunOptions): Promise<Result>;
  /** Runs argv with this machine's files in the client side's network namespace (ssh, mosh, udp.mjs). */
  client(argv: string[], opts?: GuestRunOptions): Promise<Result>;
  /** Starts argv like client() and returns at once; destroy() ends it. */
  startClient(argv: string[], opts?: GuestRunOptions): Started;
  /** Writes a file into the guest's root from outside (no symlink followed). */
  writeFile(path: string, content: string | Buffer, mode: number): void;
  /** Boots the root (first boot, or the next one after a reboot); resolves once the system is up. */
  boot(): Promise<BootReport>;
  /** `systemctl reboot` in the guest, nspawn's exit 133 awaited, then boot(). */
  reboot(): Promise<BootReport>;
  /** Ends everything (idempotent); throws if something could not be removed. */
  destroy(): Promise<void>;
}

/** How a boot went: time to `systemctl is-system-running --wait`, its answer, units that failed. */
export interface BootReport {
  ms: number;
  state: string;
  failed: string[];
  bootId: string;
}

/** The cached guest root, built first (from minbaseImage) if this cache has none for GUEST_KEY. */
export async function guestImage(): Promise<RootImage> {
  const begun = performance.now();
  const minbase = await minbaseImage();
  const key = `${GUEST_KEY}+${minbase.key}`;
  const tar = join(CACHE_DIR, `bookworm-guest.${key}.tar`);
  const builtNow = !existsSync(tar);
  if (builtNow) await buildGuestImage(tar, minbase.tar);
  return { tar, key, builtNow, ms: performance.now() - begun };
}

/**
 * minbase + GUEST_PACKAGES (downloaded in this machine's network namespace, installed offline), the
 * .debs kept in apt's cache (a test reinstalls mosh from it), systemd-networkd enabled.
 */
async function buildGuestImage(tar: string, minbase: string): Promise<void> {
  const host = await createChrootHost(unpack(minbase));
  try {
    const apt = ['apt-get', '-q', '-y', '--no-install-recommends'];
    await aptOk(host.runOnline(['apt-get', '-q', 'update'], { timeoutMs: 10 * 60_000 }));
    await aptOk(
      host.runOnline([...apt, '--download-only', 'install', ...GUEST_PACKAGES], { timeoutMs: 20 * 60_000 }),
    );
    await aptOk(
      host.run([...apt, '--no-download', 'install', ...GUEST_PACKAGES], { timeoutMs: 20 * 60_000 }),
    );
    // host0's address is each guest's own (prepareRoot writes it).
    await host.runOk(['systemctl', 'enable', 'systemd-networkd.service']);
    // Nothing in the lab waits for "online"; the veth's outer end is configured by the test.
    await host.runOk(['systemctl', 'mask', 'systemd-networkd-wait-online.service']);
    // No kernel tuning by UFW from a guest (the kernel is this machine's).
    host.writeFile('/etc/ufw/sysctl.conf', '# moshwall test guest: no kernel tuning\n', 0o644);
    await storeImage(host, 'bookworm-guest', tar);
  } finally {
    await host.destroy();
  }
}

/**
 * Unpacks `image` into a fresh lab directory and prepares it to boot with `firewall` as its only
 * firewall (the others masked; UFW enabled with its default deny: the test allows 22/tcp; nftables with
 * the labs' Debian nftables.conf, DEBIAN_NFTABLES_CONF; firewalld with its default zone), maintainer scripts free to start services.
 * Does not boot it: call boot().
 */
export async function createGuest(
  image: string,
  firewall: GuestFirewall,
  options: GuestOptions = {},
): Promise<Guest> {
  sweepStaleLabs();
  const state = trackLab();
  try {
    return await buildGuest(state, image, firewall, options);
  } catch (error) {
    const problems = teardownSync(state);
    unpinNamespaces(state);
    if (problems.length > 0) {
      throw new LabError(`createGuest failed, and so did part of its teardown: ${problems.join('; ')}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** The steps of createGuest; each records what it made in `state` first. */
async function buildGuest(
  state: LabState,
  image: string,
  firewall: GuestFirewall,
  options: GuestOptions,
): Promise<Guest> {
  const address = options.address ?? { guest: GUEST_V4, client: CLIENT_V4 };
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${id}-`));
  state.dir = dir;
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'owner'), ownerLine());
  const root = join(dir, 'root');
  mkdirSync(root, { mode: 0o755 });
  await runOk(['tar', '-C', root, '--numeric-owner', '-xpf', image], { timeoutMs: 300_000 });
  await prepareRoot(root, firewall, address.guest);

  // A guest sharing another's client side leaves that namespace (and what runs in it) to its owner.
  const clientNetns = options.clientSideOf?.clientNetns ?? `${LAB_PREFIX}${id}-cli`;
  if (options.clientSideOf === undefined) {
    await runOk(['ip', 'netns', 'add', clientNetns]);
    state.netns.push(clientNetns);
    const netInode = namedNetnsInode(clientNetns);
    if (netInode === undefined) {
      throw new LabError(`ip netns add ${clientNetns} left no /run/netns/${clientNetns}`);
    }
    state.inodes.net.push(netInode);
  }
  await runOk(['ip', '-n', clientNetns, 'link', 'set', 'lo', 'up']);

  const cgroups = ['unified', 'systemd'].map((hierarchy) =>
    join('/sys/fs/cgroup', hierarchy, `${LAB_PREFIX}${id}-guest`),
  );
  state.cgroups = [];
  for (const cgroup of cgroups) {
    mkdirSync(cgroup);
    state.cgroups.push(cgroup);
  }

  const machine = `mw${id}`;
  const clientIf = `ve-${machine}`;
  let nspawn: Started | undefined;
  let pid1 = -1;
  let boots = 0;
  /** The namespaces of the current boot, as recorded in state.inodes (see boot()). */
  let bootInodes: Array<{ kind: 'pid' | 'net' | 'mnt'; inode: number }> = [];
  const alive = () => {
    if (state.tornDown) throw new LabError('This guest has been destroyed');
    if (pid1 <= 0 || isGone(pid1)) throw new LabError(`The guest is not running: ${consoleTail(dir, boots)}`);
    return pid1;
  };
  const inGuest = (argv: string[], opts: GuestRunOptions): [string[], RunOptions] => [
    ['nsenter', '-t', String(alive()), '-a', '--wd=/', '--', ...argv],
    passOn(opts, { ...GUEST_ENV, ...opts.env }),
  ];
  const inClient = (argv: string[], opts: GuestRunOptions): [string[], RunOptions] => {
    if (state.tornDown) throw new LabError('This guest has been destroyed');
    return [['ip', 'netns', 'exec', clientNetns, ...argv], passOn(opts, { ...BASE_ENV, ...opts.env })];
  };

  const guest: Guest = {
    dir,
    root,
    clientNetns,
    clientIf,
    pid1: () => alive(),
    run: (argv, opts = {}) => run(...inGuest(argv, opts)),
    runOk: (argv, opts = {}) => runOk(...inGuest(argv, opts)),
    client: (argv, opts = {}) => run(...inClient(argv, opts)),
    startClient(argv, opts = {}) {
      const started = start(...inClient(argv, opts));
      state.children.push(started);
      return started;
    },
    writeFile: (path, content, mode) => writeInRoot(root, path, content, mode),
    async boot() {
      if (state.tornDown) throw new LabError('This guest has been destroyed');
      if (nspawn !== undefined && nspawn.child.exitCode === null && nspawn.child.signalCode === null) {
        throw new LabError('The guest is already running');
      }
      boots += 1;
      const begun = performance.now();
      // The launcher joins the guest's own cgroups, then becomes nspawn (argv passed as arguments).
      nspawn = start(
        [
          'bash',
          '-c',
          'for cgroup in "$1" "$2"; do echo $$ > "$cgroup/cgroup.procs" || exit 97; done; shift 2; exec "$@"',
          'moshwall-guest-launcher',
          ...cgroups,
          'nsenter',
          `--net=/run/netns/${clientNetns}`,
          'systemd-nspawn',
          '--boot',
          `--directory=${root}`,
          `--machine=${machine}`,
          '--register=no',
          '--keep-unit',
          '--network-veth',
          '--console=read-only',
        ],
        { logFile: join(dir, `console-${boots}.log`) },
      );
      state.children.push(nspawn);
      const launcher = nspawn;
      let found = -1;
      await waitUntil(() => {
        found = guestInit(launcher.pid) ?? -1;
        return found > 0 || isGone(launcher.pid);
      }, 10_000);
      if (found <= 0) {
        throw new LabError(`systemd-nspawn did not start the guest: ${consoleTail(dir, boots)}`);
      }
      pid1 = found;
      // This boot's namespaces, for the teardown to find its processes by, held open until the boot
      // ends: a freed namespace's inode number goes to the next namespace anyone makes.
      for (const kind of ['pid', 'net', 'mnt'] as const) {
        const inode = namespaceOf(pid1, kind);
        if (inode !== undefined && !state.inodes[kind].includes(inode)) {
          state.inodes[kind].push(inode);
          bootInodes.push({ kind, inode });
        }
      }
      pinNamespaces(state, pid1, ['pid', 'net', 'mnt'], 'The guest');
      await waitUntil(
        async () => (await run(['ip', '-n', clientNetns, 'link', 'show', clientIf])).exitCode === 0,
        10_000,
      );
      await runOk(['ip', '-n', clientNetns, 'address', 'add', `${address.client}/24`, 'dev', clientIf]);
      await runOk(['ip', '-n', clientNetns, 'link', 'set', clientIf, 'up']);
      // Until systemd has its bus up, systemctl answers "offline" or nothing: ask again.
      const running = await pollFor(
        async () => {
          const answer = await guest.run(['systemctl', 'is-system-running', '--wait'], { timeoutMs: 90_000 });
          return ['running', 'degraded', 'maintenance'].includes(answer.stdout.trim()) ? answer : undefined;
        },
        90_000,
        50,
      );
      if (running === undefined)
        throw new LabError(`The guest did not finish booting: ${consoleTail(dir, boots)}`);
      const failed = await guest.run(['systemctl', '--failed', '--no-legend', '--plain']);
      const bootId = readFileSync(
        join('/proc', String(pid1), 'root/proc/sys/kernel/random/boot_id'),
        'utf8',
      ).trim();
      return {
        ms: performance.now() - begun,
        state: running.stdout.trim(),
        failed: failed.stdout
          .split('\n')
          .map((line) => line.trim().split(/\s+/)[0] ?? '')
          .filter(Boolean),
        bootId,
      };
    },
    async reboot() {
      const launcher = nspawn;
      if (launcher === undefined) throw new LabError('The guest was never booted');
      await guest.run(['systemctl', 'reboot'], { timeoutMs: 30_000 });
      const code = await Promise.race([
        launcher.done.then(() => launcher.child.exitCode),
        new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 60_000)),
      ]);
      if (code !== 133) {
        throw new LabError(
          `systemd-nspawn ended with ${String(code)} on a reboot, not 133: ${consoleTail(dir, boots)}`,
        );
      }
      // Every process of that boot is gone: its namespaces go (its veth with them) and are forgotten.
      unpinNamespaces(state);
      for (const { kind, inode } of bootInodes)
        state.inodes[kind] = state.inodes[kind].filter((each) => each !== inode);
      bootInodes = [];
      await waitUntil(
        async () => (await run(['ip', '-n', clientNetns, 'link', 'show', clientIf])).exitCode !== 0,
        10_000,
      );
      return guest.boot();
    },
    async destroy() {
      if (state.tornDown) return;
      const launcher = nspawn;
      if (launcher !== undefined && pid1 > 0 && !isGone(pid1)) {
        // A clean power-off first (the journal flushed, units stopped); the teardown kills what is left.
        await run(['nsenter', '-t', String(pid1), '-a', '--', 'systemctl', 'poweroff'], { env: GUEST_ENV });
        await Promise.race([launcher.done, new Promise((resolve) => setTimeout(resolve, 15_000))]);
      }
      const problems = teardownSync(state);
      unpinNamespaces(state);
      await childrenReaped(state);
      if (problems.length > 0) throw new LabError(`Guest teardown left problems: ${problems.join('; ')}`);
    },
  };
  return guest;
}

/** Host pid of the guest's systemd among `launcher`'s descendants: PID 1 of its own namespace. */
function guestInit(launcher: number): number | undefined {
  const queue = [launcher];
  while (queue.length > 0) {
    const pid = queue.shift() ?? -1;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
      if (/^Name:\s+systemd$/m.test(status) && nspid.length > 1 && nspid.at(-1) === '1') return pid;
    } catch {
      // Gone meanwhile: its children are gone with it or reparented; the next poll looks again.
    }
    queue.push(...childPids(pid));
  }
  return undefined;
}

/** The last lines of boot N's console, for an error message. */
function consoleTail(dir: string, boot: number): string {
  try {
    return readFileSync(join(dir, `console-${boot}.log`), 'utf8')
      .split('\n')
      .slice(-30)
      .join('\n');
  } catch {
    return '(no console log)';
  }
}

/** Masks the firewalls other than `firewall`, sets `firewall` up as an admin would, frees service starts. */
async function prepareRoot(root: string, firewall: GuestFirewall, address: string): Promise<void> {
  writeInRoot(
    root,
    '/etc/systemd/network/10-moshwall-lab.network',
    `[Match]\nName=host0\n\n[Network]\nAddress=${address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`,
    0o644,
  );
  // The image forbids service starts (policy-rc.d, for its build in a chroot); a booted guest allows them.
  await runOk(['rm', '-f', join(root, 'usr/sbin/policy-rc.d')]);
  for (const [name, unit] of Object.entries(FIREWALL_UNITS)) {
    const verb = name === firewall ? 'enable' : 'mask';
    await runOk(['systemctl', `--root=${root}`, verb, unit]);
  }
  if (firewall === 'ufw') {
    const conf = readFileSync(join(root, 'etc/ufw/ufw.conf'), 'utf8').replace(/^ENABLED=.*$/m, 'ENABLED=yes');
    writeInRoot(root, '/etc/ufw/ufw.conf', conf, 0o644);
  } else if (firewall === 'nftables') {
    writeInRoot(root, '/etc/nftables.conf', DEBIAN_NFTABLES_CONF, 0o755);
  }
}
