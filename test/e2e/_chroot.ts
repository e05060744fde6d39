// A real Debian 12 (bookworm) host for the deb-*.test.ts and ansible-*.test.ts files: a debootstrap'd
// root (cached as a tarball between runs), unpacked into a lab directory and run as a chroot inside its
// own network, mount and PID namespaces. Its network namespace has one veth to a peer namespace and no
// route anywhere else, so its maintainer scripts, firewall and daemons reach nothing of this machine.
// Only apt's downloads run in this machine's network namespace (runOnline), and no package is
// configured there: downloads and installs are separate steps.
//
// The /proc, /sys, /dev, /dev/pts and /run of the chroot are mounted inside the holder's private mount
// namespace only (never propagated back), so they vanish with its processes; destroy() and the lab's
// exit safety net (trackLab/teardownSync, sweepStaleLabs after a SIGKILL) end those processes, delete
// both network namespaces and remove the directory.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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
import { namespaceOf } from './_procfs.ts';
import { commandPid, setUpNetwork, startHolder } from './_server.ts';
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

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
/** Where root tarballs are kept between runs (MOSHWALL_TEST_CACHE overrides it). */
export const CACHE_DIR = process.env.MOSHWALL_TEST_CACHE ?? '/var/cache/moshwall-test';
/**
 * The cache keys: change one whenever what goes into its root changes, and the next run builds that
 * root anew (and removes the tarballs of older keys).
 */
const MINBASE_KEY = 'bookworm-minbase-1';
const TARGET_KEY = `bookworm-target-2+${MINBASE_KEY}`;
/** Installed in the managed-host image: what any Debian server reached by Ansible has, plus mosh and UFW. */
export const TARGET_PACKAGES = ['python3', 'openssh-server', 'sudo', 'ufw', 'mosh'];
/**
 * Downloaded into the managed-host image's apt cache but not installed: what the Ansible role installs
 * from the distribution. The host has no route to a mirror, so apt installs them from that cache.
 */
export const TARGET_CACHED_ONLY = ['nodejs', 'python3-apt', 'ipset'];

/** The chroot's address, and its peer's (TEST-NET-2: no real network uses it). */
export const CHROOT_V4 = '198.51.100.1';
export const PEER_V4 = '198.51.100.2';

/** The environment of every command in the chroot: nothing of this machine's own. */
export const CHROOT_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
  DEBIAN_FRONTEND: 'noninteractive',
};

/** A cached root tarball, and how long getting it took (building it, or only finding it). */
export interface RootImage {
  tar: string;
  key: string;
  builtNow: boolean;
  ms: number;
}

export interface ChrootRunOptions {
  timeoutMs?: number;
  /** Added to CHROOT_ENV. */
  env?: Record<string, string>;
  input?: string;
  /** Run as this user of the chroot (setpriv inside it; names resolved from the chroot's passwd). */
  user?: string;
}

/** A command started in the chroot. */
export interface ChrootProcess extends Started {
  /** Host pid of the command itself (not of the nsenter that started it); -1 if it ended at once. */
  pid: number;
}

export interface ChrootHost {
  /** The lab directory that holds everything (removed by destroy()). */
  dir: string;
  /** The chroot's root directory, as this machine sees it. */
  root: string;
  /** The chroot's network namespace, and the one at the other end of its veth. */
  netns: string;
  peerNetns: string;
  /** Host pid of the chroot's pid 1 (a reaper), which holds its namespaces. */
  holderPid: number;
  /** Runs argv in the chroot, in its own network namespace. */
  run(argv: string[], opts?: ChrootRunOptions): Promise<Result>;
  /** run(), throwing a LabError with the output unless it exits 0. */
  runOk(argv: string[], opts?: ChrootRunOptions): Promise<Result>;
  /** Runs argv in the chroot in this machine's network namespace: for apt's downloads only. */
  runOnline(argv: string[], opts?: ChrootRunOptions): Promise<Result>;
  /** Starts argv in the chroot (own network namespace) and returns at once; destroy() ends it. */
  start(argv: string[], opts?: ChrootRunOptions): Promise<ChrootProcess>;
  /** Runs argv with this machine's files in the peer's network namespace (ssh, ansible-playbook). */
  runPeer(
    argv: string[],
    opts?: { timeoutMs?: number; env?: Record<string, string>; input?: string },
  ): Promise<Result>;
  /** The path on this machine of `path` in the chroot (no mount of the chroot is visible there). */
  path(path: string): string;
  /** Writes a file into the chroot from outside, refusing to follow any symlink on the way. */
  writeFile(path: string, content: string | Buffer, mode: number): void;
  /** Tears everything down (idempotent); throws if something could not be removed. */
  destroy(): Promise<void>;
}

/** Throws a LabError naming what is missing unless root and the host tools are there. */
export function requireChrootTools(extra: string[] = []): void {
  if (process.getuid?.() !== 0) throw new LabError('A chroot host needs root (namespaces, chroot, mounts)');
  const missing = [
    'debootstrap',
    'ip',
    'nsenter',
    'unshare',
    'chroot',
    'tar',
    'mknod',
    'dpkg-deb',
    ...extra,
  ].filter((tool) => !BASE_ENV.PATH?.split(':').some((directory) => existsSync(join(directory, tool))));
  if (missing.length > 0) {
    throw new LabError(
      `Cannot build a Debian chroot host: ${missing.join(', ')} not found (scripts/install-deps.sh installs them)`,
    );
  }
}

/** Mount points at or under `dir` in this process's mount namespace (there must never be any). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

/** Writes `content` to root + path, refusing if any component below root is a symlink (or path is odd). */
export function writeInRoot(root: string, path: string, content: string | Buffer, mode: number): void {
  if (!path.startsWith('/') || path.split('/').includes('..')) {
    throw new LabError(`Expected an absolute path without "..", got "${path}"`);
  }
  let current = root;
  for (const part of path.split('/').filter(Boolean)) {
    current = join(current, part);
    try {
      if (lstatSync(current).isSymbolicLink()) {
        throw new LabError(`Refusing to write ${path} in ${root}: ${current} is a symlink`);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  mkdirSync(dirname(current), { recursive: true, mode: 0o755 });
  writeFileSync(current, content, { mode });
  chmodSync(current, mode);
}

/** Device nodes of the chroot's /dev: name, major, minor (as on any Linux). */
const DEVICES: Array<[string, number, number]> = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

/**
 * Tears a state down, but first makes sure no mount of this machine's namespace lies under its directory
 * (then the directory is kept and that is reported, rather than anything removed through a mount).
 */
function teardown(state: LabState): string[] {
  const dir = state.dir;
  const mounted = dir === undefined ? [] : mountsUnder(dir);
  if (mounted.length > 0) state.dir = undefined;
  const problems = teardownSync(state);
  unpinNamespaces(state);
  if (mounted.length > 0) problems.push(`kept ${dir ?? ''}: mounts under it: ${mounted.join(', ')}`);
  return problems;
}

/**
 * Brings up a chroot host: a fresh lab directory, `populate(root)` fills the root (unpack a tarball, or
 * debootstrap's first stage), then the network pair, the holder and the chroot's mounts.
 */
export async function createChrootHost(populate: (root: string) => Promise<void>): Promise<ChrootHost> {
  requireChrootTools();
  sweepStaleLabs();
  const state = trackLab();
  try {
    return await buildChrootHost(state, populate);
  } catch (error) {
    const problems = teardown(state);
    if (problems.length > 0) {
      throw new LabError(`createChrootHost failed, and so did part of its teardown: ${problems.join('; ')}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** The steps of createChrootHost; each records what it made in `state` first. */
async function buildChrootHost(
  state: LabState,
  populate: (root: string) => Promise<void>,
): Promise<ChrootHost> {
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${id}-`));
  state.dir = dir;
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'owner'), ownerLine());
  const root = join(dir, 'root');
  mkdirSync(root, { mode: 0o755 });
  await populate(root);
  for (const sub of ['proc', 'sys', 'dev', 'run', 'tmp']) mkdirSync(join(root, sub), { recursive: true });

  const netns = `${LAB_PREFIX}${id}-srv`;
  const peerNetns = `${LAB_PREFIX}${id}-cli`;
  await setUpNetwork(
    state,
    { netns, v4: CHROOT_V4, v6: undefined },
    { netns: peerNetns, v4: PEER_V4, v6: undefined },
  );
  const holderPid = await startHolder(state, netns, join(dir, 'holder.log'), true);
  pinNamespaces(state, holderPid, ['mnt', 'pid'], 'The chroot');
  const net = namespaceOf(holderPid, 'net');

  // Every mount below is made in the holder's mount namespace (private: nothing propagates back).
  const holder = ['nsenter', '-t', String(holderPid), '-m', '-n', '-p', '--wd=/', '--'];
  const inHolder = (argv: string[]) => runOk([...holder, ...argv]);
  const at = (path: string) => join(root, path);
  await inHolder(['mount', '-t', 'proc', '-o', 'nosuid,nodev,noexec', 'mwlab-proc', at('proc')]);
  await inHolder(['mount', '-t', 'sysfs', '-o', 'ro,nosuid,nodev,noexec', 'mwlab-sys', at('sys')]);
  await inHolder(['mount', '-t', 'tmpfs', '-o', 'mode=755,nosuid,size=8m', 'mwlab-dev', at('dev')]);
  for (const [name, major, minor] of DEVICES) {
    await inHolder(['mknod', '-m', '666', at(`dev/${name}`), 'c', String(major), String(minor)]);
  }
  await inHolder(['mkdir', '-m', '755', at('dev/pts')]);
  await inHolder(['mkdir', '-m', '1777', at('dev/shm')]);
  await inHolder([
    'mount',
    '-t',
    'devpts',
    '-o',
    'newinstance,ptmxmode=0666,mode=620,gid=5',
    'mwlab-pts',
    at('dev/pts'),
  ]);
  await inHolder([
    'mount',
    '-t',
    'tmpfs',
    '-o',
    'mode=1777,nosuid,nodev,size=16m',
    'mwlab-shm',
    at('dev/shm'),
  ]);
  for (const [target, name] of [
    ['pts/ptmx', 'ptmx'],
    ['/proc/self/fd', 'fd'],
    ['/proc/self/fd/0', 'stdin'],
    ['/proc/self/fd/1', 'stdout'],
    ['/proc/self/fd/2', 'stderr'],
  ] as const) {
    await inHolder(['ln', '-s', target, at(`dev/${name}`)]);
  }
  await inHolder(['mount', '-t', 'tmpfs', '-o', 'mode=755,nosuid,nodev,size=64m', 'mwlab-run', at('run')]);
  await inHolder(['mkdir', '-m', '1777', at('run/lock')]);
  if (mountsUnder(root).length > 0) {
    throw new LabError(
      `The chroot's mounts leaked into this machine's mount namespace: ${mountsUnder(root).join(', ')}`,
    );
  }

  const enter = (online: boolean) => [
    'nsenter',
    '-t',
    String(holderPid),
    '-m',
    ...(online ? [] : ['-n']),
    '-p',
    '--wd=/',
    '--',
  ];
  const command = (argv: string[], opts: ChrootRunOptions, online: boolean): [string[], RunOptions] => {
    if (state.tornDown) throw new LabError('This chroot host has been destroyed');
    const drop =
      opts.user === undefined
        ? []
        : ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--init-groups', '--'];
    return [
      [...enter(online), 'chroot', root, ...drop, ...argv],
      passOn(opts, { ...CHROOT_ENV, ...opts.env }),
    ];
  };

  const host: ChrootHost = {
    dir,
    root,
    netns,
    peerNetns,
    holderPid,
    run: (argv, opts = {}) => run(...command(argv, opts, false)),
    runOk: (argv, opts = {}) => runOk(...command(argv, opts, false)),
    runOnline(argv, opts = {}) {
      // apt resolves the mirror with this machine's resolver.
      host.writeFile('/etc/resolv.conf', readFileSync('/etc/resolv.conf'), 0o644);
      return run(...command(argv, opts, true));
    },
    async start(argv, opts = {}) {
      const launcher = start(...command(argv, opts, false));
      state.children.push(launcher);
      return { ...launcher, pid: (await commandPid(launcher, true, net)) ?? -1 };
    },
    runPeer(argv, opts = {}) {
      if (state.tornDown) throw new LabError('This chroot host has been destroyed');
      return run(['ip', 'netns', 'exec', peerNetns, ...argv], passOn(opts, { ...BASE_ENV, ...opts.env }));
    },
    path: (path) => {
      if (!path.startsWith('/')) throw new LabError(`Expected an absolute path, got "${path}"`);
      return join(root, path);
    },
    writeFile: (path, content, mode) => writeInRoot(root, path, content, mode),
    async destroy() {
      const problems = teardown(state);
      // Let Node reap the children it spawned, so their pids are really gone when destroy() returns.
      await childrenReaped(state);
      if (problems.length > 0) throw new LabError(`Chroot teardown left problems: ${problems.join('; ')}`);
    },
  };
  return host;
}

/** Unpacks a root tarball into `root` (owners and modes as recorded). */
export function unpack(tar: string): (root: string) => Promise<void> {
  return async (root) => {
    await runOk(['tar', '-C', root, '--numeric-owner', '-xpf', tar], { timeoutMs: 300_000 });
  };
}

/** Writes the chroot's tarball atomically into the cache and removes older keys' tarballs of `kind`. */
export async function storeImage(host: ChrootHost, kind: string, tar: string): Promise<void> {
  mkdirSync(CACHE_DIR, { recursive: true, mode: 0o755 });
  const temporary = join(CACHE_DIR, `.${kind}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`);
  try {
    // From this machine's mount namespace the root has none of the chroot's mounts: only its own files.
    await runOk(['tar', '-C', host.root, '--numeric-owner', '-cf', temporary, '.'], { timeoutMs: 300_000 });
    renameSync(temporary, tar);
  } finally {
    rmSync(temporary, { force: true });
  }
  for (const entry of readdirSync(CACHE_DIR)) {
    if (entry.startsWith(`${kind}.`) && entry.endsWith('.tar') && join(CACHE_DIR, entry) !== tar) {
      rmSync(join(CACHE_DIR, entry), { force: true });
    }
  }
}

/** Settings every image gets: no service starts from maintainer scripts, no translated package lists. */
function configureImage(host: ChrootHost): void {
  host.writeFile(
    '/usr/sbin/policy-rc.d',
    '#!/bin/sh\n# moshwall test image: no service starts.\nexit 101\n',
    0o755,
  );
  host.writeFile(
    '/etc/apt/apt.conf.d/90moshwall-test',
    'Acquire::Languages "none";\nDpkg::Use-Pty "0";\n',
    0o644,
  );
  host.writeFile('/etc/hostname', 'moshwall-test\n', 0o644);
}

/** debootstrap --variant=minbase bookworm: first stage here (downloads), second stage in the chroot (offline). */
async function buildMinbase(tar: string): Promise<void> {
  const host = await createChrootHost(async (root) => {
    await runOk(
      [
        'unshare',
        '-m',
        '--propagation',
        'private',
        'debootstrap',
        '--foreign',
        '--variant=minbase',
        'bookworm',
        root,
        DEBIAN_MIRROR,
      ],
      { timeoutMs: 20 * 60_000 },
    );
  });
  try {
    await host.runOk(['/debootstrap/debootstrap', '--second-stage'], { timeoutMs: 20 * 60_000 });
    configureImage(host);
    await host.runOk(['apt-get', 'clean']);
    await storeImage(host, 'bookworm-minbase', tar);
  } finally {
    await host.destroy();
  }
}

/** The managed-host image: minbase + TARGET_PACKAGES installed, TARGET_CACHED_ONLY in apt's cache. */
async function buildTarget(tar: string, minbase: string): Promise<void> {
  const host = await createChrootHost(unpack(minbase));
  try {
    const apt = ['apt-get', '-q', '-y', '--no-install-recommends'];
    await aptOk(host.runOnline(['apt-get', '-q', 'update'], { timeoutMs: 10 * 60_000 }));
    await aptOk(
      host.runOnline([...apt, '--download-only', 'install', ...TARGET_PACKAGES, ...TARGET_CACHED_ONLY], {
        timeoutMs: 20 * 60_000,
      }),
    );
    await aptOk(
      host.run([...apt, '--no-download', 'install', ...TARGET_PACKAGES], { timeoutMs: 20 * 60_000 }),
    );
    await storeImage(host, 'bookworm-target', tar);
  } finally {
    await host.destroy();
  }
}

/** Throws a LabError with apt's output unless it exited 0. */
export async function aptOk(pending: Promise<Result>): Promise<Result> {
  const result = await pending;
  if (result.exitCode !== 0) {
    throw new LabError(
      `apt-get exited ${result.exitCode}:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`,
    );
  }
  return result;
}

/** The cached minbase root, built first if this cache has none for the current key. */
export async function minbaseImage(): Promise<RootImage> {
  const begun = performance.now();
  const tar = join(CACHE_DIR, `bookworm-minbase.${MINBASE_KEY}.tar`);
  const builtNow = !existsSync(tar);
  if (builtNow) await buildMinbase(tar);
  return { tar, key: MINBASE_KEY, builtNow, ms: performance.now() - begun };
}

/** The cached managed-host root (for Ansible), built first (from minbaseImage) if missing. */
export async function targetImage(): Promise<RootImage & { minbase: RootImage }> {
  const begun = performance.now();
  const minbase = await minbaseImage();
  const tar = join(CACHE_DIR, `bookworm-target.${TARGET_KEY}.tar`);
  const builtNow = !existsSync(tar);
  if (builtNow) await buildTarget(tar, minbase.tar);
  return { tar, key: TARGET_KEY, builtNow, ms: performance.now() - begun, minbase };
}
