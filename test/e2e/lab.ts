// The real end-to-end lab: two network namespaces joined by a veth pair; the "server host" is a
// holder process with its own mount namespace (the lab's /etc/ufw, user database, /run and /var/log),
// a real sshd and a real UFW inside it. Nothing here touches the machine's own firewall or files:
// every resource is recorded as it is made, and torn down by destroy(), by a failed createLab(), or
// by the process 'exit' / SIGINT / SIGTERM safety net.
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  BASE_ENV,
  BASE_PATH,
  LabError,
  type Result,
  type RunOptions,
  run,
  runOk,
  runSync,
  type Started,
  showArgv,
  start,
} from './_exec.ts';
import {
  DEFAULT_LAB_CONFIG,
  type LabPaths,
  type LabUser,
  labPaths,
  planUsers,
  writeSshFiles,
  writeUfwFiles,
  writeUserDatabase,
} from './_files.ts';
import {
  isGone,
  namedNetnsInode,
  namespaceOf,
  pidsInNamespaces,
  signalPid,
  sleepSync,
  startTimeOf,
  tcpListening,
  udpArrivals,
  udpBound,
  waitFor,
} from './_procfs.ts';

export { LabError, type Result, type Started } from './_exec.ts';
export type { LabUser } from './_files.ts';

/** One side of the lab network. */
export interface Host {
  netns: string;
  v4: string;
  /** Undefined in a lab made with `ipv6: false`. */
  v6: string | undefined;
}

/** The server side, plus the processes that make it a host. */
export interface ServerHost extends Host {
  /** `sleep infinity` holding the mount namespace; server commands enter it with nsenter -t. */
  holderPid: number;
  sshdPid: number;
}

export interface LabRunOptions {
  /** Run as this lab user (setpriv --reuid/--regid/--init-groups, HOME/USER/SHELL set); root if absent. */
  user?: string;
  timeoutMs?: number;
  /** Added to a minimal environment (PATH, LANG=C, and the user's HOME, USER, LOGNAME, SHELL). */
  env?: Record<string, string>;
  input?: string;
}

export interface SshOptions {
  timeoutMs?: number;
  /** Set for the local ssh; names LANG and LC_* are also sent to the server (SendEnv, AcceptEnv). */
  env?: Record<string, string>;
  input?: string;
  /** Connect to the server's IPv6 address instead of IPv4. */
  family?: 'v4' | 'v6';
  /** Force a remote pty (ssh -tt), as the real `mosh` does; stdout then carries both streams with CRLF. */
  tty?: boolean;
}

export interface MoshServerOptions {
  /** Ask for this port (mosh-server -p); otherwise mosh-server picks one in 60000..61000. */
  port?: number;
  /** Environment for mosh-server only (prefixed with `env K=V …`, so /proc/PID/exe stays mosh-server). */
  extraEnv?: Record<string, string>;
  /** Over ssh as the real `mosh` client does (default), or run directly in the server host as the user. */
  via?: 'ssh' | 'local';
  /** The program to start instead of `mosh-server` (e.g. a user's own copy). */
  binary?: string;
  family?: 'v4' | 'v6';
}

export interface MoshServer {
  port: number;
  key: string;
  pid: number;
  /** Everything the start printed (stdout then stderr). */
  output: string;
}

export interface UfwTuple {
  family: 'v4' | 'v6';
  /** As in user.rules after "### tuple ### ", e.g. "allow udp 60001 0.0.0.0/0 any 0.0.0.0/0 in". */
  tuple: string;
  /** The rule's comment, decoded from ufw's hex; '' when there is none. */
  comment: string;
}

export interface Lab {
  dir: string;
  server: ServerHost;
  client: Host;
  users: LabUser[];
  /** The default moshwall config file (backend ufw, ports 60000:61000). */
  configPath: string;
  runServer(argv: string[], opts?: LabRunOptions): Promise<Result>;
  startServer(argv: string[], opts?: LabRunOptions): Started;
  runClient(argv: string[], opts?: Omit<LabRunOptions, 'user'>): Promise<Result>;
  ssh(user: string, remoteArgv: string[], opts?: SshOptions): Promise<Result>;
  startMoshServer(user: string, opts?: MoshServerOptions): Promise<MoshServer>;
  killServerProcess(pid: number): Promise<void>;
  writeConfig(toml: string): string;
  moshwallArgv(args: string[], config?: string): string[];
  moshwall(args: string[], opts?: LabRunOptions & { config?: string }): Promise<Result>;
  ufw(args: string[]): Promise<Result>;
  ufwTuples(): Promise<UfwTuple[]>;
  udpReachable(port: number, family: 'v4' | 'v6', opts?: { timeoutMs?: number }): Promise<boolean>;
  destroy(): Promise<void>;
}

export interface LabOptions {
  /** Lab user names (unprivileged, uids from 61001); default ["alice", "bob"]. */
  users?: string[];
  /** Extra lab groups: name → member users (for allow_groups). */
  groups?: Record<string, string[]>;
  /** Give both hosts IPv6 addresses and leave UFW's IPV6=yes (default true). */
  ipv6?: boolean;
  /** For the harness' own test: throw right after this step, to prove the teardown of a half-made lab. */
  faultAfter?: 'network' | 'host' | 'ufw' | 'sshd';
}

export const SERVER_V4 = '192.0.2.1';
export const CLIENT_V4 = '192.0.2.2';
export const SERVER_V6 = '2001:db8::1';
export const CLIENT_V6 = '2001:db8::2';
export const LAB_PREFIX = 'mwlab-';
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
const TOOLS = [
  'ip',
  'nsenter',
  'unshare',
  'setpriv',
  'mount',
  'ufw',
  'sshd',
  'ssh',
  'ssh-keygen',
  'mosh-server',
];
const SERVER_IF = 'mwlab0';
const CLIENT_IF = 'mwlab1';

/** Everything a lab has made so far; the teardown works from this alone. */
interface LabState {
  dir: string | undefined;
  netns: string[];
  inodes: { net: number[]; mnt: number[] };
  children: Started[];
  tornDown: boolean;
}

const liveLabs = new Set<LabState>();
let safetyNetInstalled = false;

/** Why the lab cannot run here (not root), or false when it can; for `test(..., { skip })`. */
export function labSkipReason(): string | false {
  return process.getuid?.() === 0
    ? false
    : 'the e2e lab needs root (network and mount namespaces, ufw, sshd)';
}

/** Throws a LabError unless this process is root and every tool the lab runs is installed. */
export function requireRoot(): void {
  const reason = labSkipReason();
  if (reason) throw new LabError(`Cannot build the e2e lab: ${reason}; run the e2e tests as root`);
  const missing = TOOLS.filter(
    (tool) =>
      !BASE_PATH.split(':').some((dir) => {
        try {
          accessSync(join(dir, tool), constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
  );
  if (missing.length > 0) {
    throw new LabError(
      `Cannot build the e2e lab: missing ${missing.join(', ')} (apt-get install iproute2 util-linux ufw openssh-server openssh-client mosh)`,
    );
  }
}

/** SIGKILLs every process in the lab's namespaces and every child it spawned, until none is left. */
function killEverything(state: LabState): number[] {
  const deadline = Date.now() + 5000;
  for (;;) {
    const pids = new Set(pidsInNamespaces(state.inodes));
    for (const child of state.children) if (child.pid > 0 && !isGone(child.pid)) pids.add(child.pid);
    if (pids.size === 0 || Date.now() > deadline) return [...pids];
    for (const pid of pids) signalPid(pid, 'SIGKILL');
    sleepSync(10);
  }
}

/** Tears down whatever `state` records (processes, namespaces, directory); returns the problems left. */
function teardownSync(state: LabState): string[] {
  if (state.tornDown) return [];
  state.tornDown = true;
  liveLabs.delete(state);
  const problems: string[] = [];
  const survivors = killEverything(state);
  if (survivors.length > 0) problems.push(`processes still alive after SIGKILL: ${survivors.join(', ')}`);
  for (const name of state.netns) {
    const result = runSync(['ip', 'netns', 'delete', name]);
    if (result.exitCode !== 0 && namedNetnsInode(name) !== undefined) {
      problems.push(`ip netns delete ${name} failed: ${result.stderr.trim()}`);
    }
  }
  const { dir } = state;
  if (dir?.startsWith(join(tmpdir(), LAB_PREFIX))) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      problems.push(`cannot remove ${dir}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/** Tears down every live lab when this process exits or is interrupted, so nothing outlives a test run. */
function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  const teardownAll = () => {
    for (const state of [...liveLabs]) {
      const problems = teardownSync(state);
      if (problems.length > 0) process.stderr.write(`moshwall lab teardown: ${problems.join('; ')}\n`);
    }
  };
  process.on('exit', teardownAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      teardownAll();
      process.kill(process.pid, signal);
    });
  }
}

/**
 * Tears down labs whose creating process died without its safety net (SIGKILL): a lab directory whose
 * `owner` file names a process that no longer exists. Returns the directories swept.
 */
export function sweepStaleLabs(): string[] {
  const swept: string[] = [];
  for (const entry of readdirSync(tmpdir())) {
    const match = /^mwlab-([0-9a-f]{8})-[A-Za-z0-9]{6}$/.exec(entry);
    const dir = join(tmpdir(), entry);
    let owner: string;
    try {
      owner = readFileSync(join(dir, 'owner'), 'utf8').trim();
    } catch {
      continue;
    }
    const [pid = '', startTime] = owner.split(' ');
    if (!match || startTimeOf(Number(pid)) === startTime) continue;
    const netns = [`${LAB_PREFIX}${match[1]}-srv`, `${LAB_PREFIX}${match[1]}-cli`];
    const net = netns.map(namedNetnsInode).filter((inode): inode is number => inode !== undefined);
    teardownSync({ dir, netns, inodes: { net, mnt: [] }, children: [], tornDown: false });
    swept.push(dir);
  }
  return swept;
}

/** Quotes one word for the POSIX shell sshd hands the remote command to (the only shell in the lab). */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Throws unless `port` is a whole number 1..65535. */
function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new LabError(`Expected a port from 1 to 65535, got ${String(port)} (${typeof port})`);
  }
}

/** Decodes the tuples of one ufw user rules file. */
function parseTuples(text: string, family: 'v4' | 'v6'): UfwTuple[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('### tuple ### '))
    .map((line) => {
      const body = line.slice('### tuple ### '.length);
      const match = / comment=([0-9a-fA-F]*)$/.exec(body);
      return match
        ? {
            family,
            tuple: body.slice(0, match.index),
            comment: Buffer.from(match[1] ?? '', 'hex').toString('utf8'),
          }
        : { family, tuple: body, comment: '' };
    });
}

/** Builds a lab: network, server host, UFW (allow 22/tcp, enabled), sshd; tears all of it down on failure. */
export async function createLab(options: LabOptions = {}): Promise<Lab> {
  requireRoot();
  sweepStaleLabs();
  const state: LabState = {
    dir: undefined,
    netns: [],
    inodes: { net: [], mnt: [] },
    children: [],
    tornDown: false,
  };
  liveLabs.add(state);
  installSafetyNet();
  try {
    return await buildLab(state, options);
  } catch (error) {
    const problems = teardownSync(state);
    if (problems.length > 0) {
      throw new LabError(`createLab failed, and so did part of its teardown: ${problems.join('; ')}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** The steps of createLab, each recording what it made in `state` before the next one starts. */
async function buildLab(state: LabState, options: LabOptions): Promise<Lab> {
  const ipv6 = options.ipv6 ?? true;
  const groups = options.groups ?? {};
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${id}-`));
  state.dir = dir;
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'owner'), `${process.pid} ${startTimeOf(process.pid) ?? ''}\n`);
  const paths = labPaths(dir);
  const users = planUsers(options.users ?? ['alice', 'bob'], groups, paths.homes);
  const fault = (step: LabOptions['faultAfter']) => {
    if (options.faultAfter === step) throw new LabError(`createLab: injected fault after step "${step}"`);
  };

  const server = { netns: `${LAB_PREFIX}${id}-srv`, v4: SERVER_V4, v6: ipv6 ? SERVER_V6 : undefined };
  const client = { netns: `${LAB_PREFIX}${id}-cli`, v4: CLIENT_V4, v6: ipv6 ? CLIENT_V6 : undefined };
  await setUpNetwork(state, server, client, ipv6);
  fault('network');

  writeUfwFiles(paths, ipv6);
  writeUserDatabase(paths, users, groups);
  await writeSshFiles(paths, dir, users, ipv6 ? [SERVER_V4, SERVER_V6] : [SERVER_V4]);
  writeFileSync(paths.config, DEFAULT_LAB_CONFIG, { mode: 0o644 });
  const holderPid = await startHolder(state, server.netns);
  await mountLabFiles(holderPid, paths, dir);
  fault('host');

  const inServer = (argv: string[]) => [
    'nsenter',
    '-t',
    String(holderPid),
    '-m',
    '-n',
    `--wd=${dir}`,
    '--',
    ...argv,
  ];
  const ufwEnv = { ...BASE_ENV, LC_ALL: 'C' };
  await runOk(inServer(['ufw', 'allow', '22/tcp']), { env: ufwEnv });
  await runOk(inServer(['ufw', '--force', 'enable']), { env: ufwEnv });
  fault('ufw');

  const sshd = start(inServer(['/usr/sbin/sshd', '-D', '-e', '-f', paths.sshdConfig]));
  state.children.push(sshd);
  const families: ('v4' | 'v6')[] = ipv6 ? ['v4', 'v6'] : ['v4'];
  const listening = await waitFor(
    () => isGone(sshd.pid) || families.every((family) => tcpListening(sshd.pid, 22, family)),
    10_000,
  );
  if (!listening || isGone(sshd.pid)) {
    throw new LabError(
      `sshd in the lab did not start listening on port 22: ${sshd.output().stderr.slice(-2000)}`,
    );
  }
  fault('sshd');

  return makeLab(state, {
    dir,
    paths,
    users,
    server: { ...server, holderPid, sshdPid: sshd.pid },
    client,
    inServer,
  });
}

/** Two named network namespaces, a veth pair between them, documentation addresses, lo up. */
async function setUpNetwork(state: LabState, server: Host, client: Host, ipv6: boolean): Promise<void> {
  for (const host of [server, client]) {
    await runOk(['ip', 'netns', 'add', host.netns]);
    state.netns.push(host.netns);
    const inode = namedNetnsInode(host.netns);
    if (inode === undefined)
      throw new LabError(`ip netns add ${host.netns} left no /run/netns/${host.netns}`);
    state.inodes.net.push(inode);
  }
  await runOk([
    'ip',
    '-n',
    server.netns,
    'link',
    'add',
    SERVER_IF,
    'type',
    'veth',
    'peer',
    'name',
    CLIENT_IF,
    'netns',
    client.netns,
  ]);
  for (const [host, dev] of [
    [server, SERVER_IF],
    [client, CLIENT_IF],
  ] as const) {
    await runOk(['ip', '-n', host.netns, 'address', 'add', `${host.v4}/24`, 'dev', dev]);
    if (ipv6 && host.v6 !== undefined) {
      await runOk(['ip', '-n', host.netns, 'address', 'add', `${host.v6}/64`, 'dev', dev, 'nodad']);
    }
    await runOk(['ip', '-n', host.netns, 'link', 'set', 'lo', 'up']);
    await runOk(['ip', '-n', host.netns, 'link', 'set', dev, 'up']);
  }
}

/** Starts the server host's holder (`sleep infinity` in the server netns and a private mount namespace). */
async function startHolder(state: LabState, netns: string): Promise<number> {
  const holder = start([
    'ip',
    'netns',
    'exec',
    netns,
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sleep',
    'infinity',
  ]);
  state.children.push(holder);
  const ownMnt = namespaceOf(process.pid, 'mnt');
  const readComm = () => {
    try {
      return readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const ready = await waitFor(
    () => isGone(holder.pid) || (readComm() === 'sleep' && namespaceOf(holder.pid, 'mnt') !== ownMnt),
    5000,
  );
  const mnt = namespaceOf(holder.pid, 'mnt');
  if (!ready || isGone(holder.pid) || mnt === undefined) {
    throw new LabError(`The lab's holder process did not start: ${holder.output().stderr.slice(-2000)}`);
  }
  state.inodes.mnt.push(mnt);
  return holder.pid;
}

/** Inside the holder's mount namespace: writable /etc and /usr/local, the lab's files bound over the host's, fresh /run and /var/log. */
async function mountLabFiles(holderPid: number, paths: LabPaths, dir: string): Promise<void> {
  const inHolder = (argv: string[]) =>
    runOk(['nsenter', '-t', String(holderPid), '-m', '--wd=/', '--', ...argv]);
  // Writable /etc and /usr/local (e.g. /etc/moshwall, the shim as /usr/local/bin/mosh-server): the host's
  // directories as the read-only lower layer, every change in the lab directory.
  for (const [name, target] of [
    ['etc', '/etc'],
    ['usr-local', '/usr/local'],
  ] as const) {
    const upper = join(dir, 'overlay', name, 'upper');
    const work = join(dir, 'overlay', name, 'work');
    mkdirSync(upper, { recursive: true, mode: 0o755 });
    mkdirSync(work, { recursive: true, mode: 0o755 });
    const layers = `lowerdir=${target},upperdir=${upper},workdir=${work}`;
    await inHolder(['mount', '-t', 'overlay', '-o', layers, `mwlab-${name}`, target]);
  }
  const binds: [string, string][] = [
    [paths.ufwDir, '/etc/ufw'],
    [paths.defaultUfw, '/etc/default/ufw'],
    [paths.passwd, '/etc/passwd'],
    [paths.group, '/etc/group'],
    [paths.shadow, '/etc/shadow'],
  ];
  for (const [from, to] of binds) await inHolder(['mount', '--bind', from, to]);
  // /run: the lab's own ufw.lock, sshd privsep dir, moshwall socket and lock, utmp; /var/log: wtmp, lastlog.
  await inHolder(['mount', '-t', 'tmpfs', '-o', 'mode=755,size=16m', 'mwlab-run', '/run']);
  await inHolder(['mount', '-t', 'tmpfs', '-o', 'mode=755,size=16m', 'mwlab-log', '/var/log']);
  await inHolder(['mkdir', '-m', '755', '/run/sshd']);
}

interface Built {
  dir: string;
  paths: LabPaths;
  users: LabUser[];
  server: ServerHost;
  client: Host;
  inServer: (argv: string[]) => string[];
}

/** The Lab object over a fully built state. */
function makeLab(state: LabState, built: Built): Lab {
  const { dir, paths, users, server, client, inServer } = built;
  const holderPid = server.holderPid;
  let configCount = 0;

  const userNamed = (name: string): LabUser => {
    const user = users.find((candidate) => candidate.name === name);
    if (!user)
      throw new LabError(`No lab user "${name}" (lab users: ${users.map((u) => u.name).join(', ')})`);
    return user;
  };
  const serverCommand = (argv: string[], opts: LabRunOptions): { argv: string[]; options: RunOptions } => {
    if (state.tornDown) throw new LabError('This lab has been destroyed');
    const base: RunOptions = {
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.input === undefined ? {} : { input: opts.input }),
    };
    if (opts.user === undefined)
      return { argv: inServer(argv), options: { ...base, env: { ...BASE_ENV, ...opts.env } } };
    const user = userNamed(opts.user);
    const env = {
      ...BASE_ENV,
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      SHELL: '/bin/bash',
      ...opts.env,
    };
    const asUser = [
      'nsenter',
      '-t',
      String(holderPid),
      '-m',
      '-n',
      `--wd=${user.home}`,
      '--',
      'setpriv',
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      '--init-groups',
      '--',
      ...argv,
    ];
    return { argv: asUser, options: { ...base, env } };
  };
  const startInClient = (argv: string[]) => {
    const started = start(['ip', 'netns', 'exec', client.netns, ...argv]);
    state.children.push(started);
    return started;
  };

  const lab: Lab = {
    dir,
    server,
    client,
    users,
    configPath: paths.config,

    runServer(argv, opts = {}) {
      const command = serverCommand(argv, opts);
      return run(command.argv, command.options);
    },

    startServer(argv, opts = {}) {
      const command = serverCommand(argv, opts);
      const started = start(command.argv, command.options);
      state.children.push(started);
      return started;
    },

    runClient(argv, opts = {}) {
      if (state.tornDown) throw new LabError('This lab has been destroyed');
      return run(['ip', 'netns', 'exec', client.netns, ...argv], {
        env: { ...BASE_ENV, ...opts.env },
        ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
        ...(opts.input === undefined ? {} : { input: opts.input }),
      });
    },

    ssh(userName, remoteArgv, opts = {}) {
      userNamed(userName);
      if (remoteArgv.length === 0)
        throw new LabError('ssh needs a remote command (an empty one would open a shell)');
      const env = { ...BASE_ENV, ...opts.env };
      const sendEnv = Object.keys(opts.env ?? {}).filter((name) => /^(LANG|LC_\w+)$/.test(name));
      const target = opts.family === 'v6' ? server.v6 : server.v4;
      if (target === undefined) throw new LabError('ssh over IPv6 needs a lab made with ipv6: true');
      const argv = [
        'ssh',
        '-F',
        '/dev/null',
        '-i',
        paths.clientKey,
        ...['-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes'],
        ...[
          '-o',
          'StrictHostKeyChecking=no',
          '-o',
          'UserKnownHostsFile=/dev/null',
          '-o',
          'GlobalKnownHostsFile=/dev/null',
        ],
        ...[
          '-o',
          'LogLevel=ERROR',
          '-o',
          'ConnectTimeout=5',
          '-o',
          'ControlMaster=no',
          '-o',
          'ControlPath=none',
        ],
        ...sendEnv.flatMap((name) => ['-o', `SendEnv=${name}`]),
        opts.tty ? '-tt' : '-T',
        `${userName}@${target}`,
        '--',
        // sshd hands the command to the user's shell as one string: quote every word.
        ...remoteArgv.map(shellQuote),
      ];
      return lab.runClient(argv, {
        env,
        timeoutMs: opts.timeoutMs ?? 20_000,
        ...(opts.input === undefined ? {} : { input: opts.input }),
      });
    },

    async startMoshServer(userName, opts = {}) {
      const user = userNamed(userName);
      if (opts.port !== undefined) checkPort(opts.port);
      const via = opts.via ?? 'ssh';
      const envPrefix = opts.extraEnv
        ? ['env', ...Object.entries(opts.extraEnv).map(([name, value]) => `${name}=${value}`)]
        : [];
      const bind = via === 'ssh' ? ['-s'] : ['-i', opts.family === 'v6' ? (server.v6 ?? '') : server.v4];
      const argv = [
        ...envPrefix,
        opts.binary ?? 'mosh-server',
        'new',
        '-c',
        '256',
        ...bind,
        ...(opts.port === undefined ? [] : ['-p', String(opts.port)]),
        '-l',
        'LANG=C.UTF-8',
      ];
      const result =
        via === 'ssh'
          ? await lab.ssh(user.name, argv, { family: opts.family ?? 'v4' })
          : await lab.runServer(argv, { user: user.name });
      const output = `${result.stdout}${result.stderr}`;
      const connect = /^MOSH CONNECT (\d+) (\S+)\s*$/m.exec(output);
      const detached = /\[mosh-server detached, pid = (\d+)\]/.exec(output);
      if (result.exitCode !== 0 || !connect || !detached) {
        throw new LabError(
          `${showArgv(argv)} as ${user.name} via ${via} did not start a mosh-server:\n${output}`,
        );
      }
      return { port: Number(connect[1]), key: connect[2] ?? '', pid: Number(detached[1]), output };
    },

    async killServerProcess(pid) {
      if (pid === holderPid) throw new LabError(`pid ${pid} is the lab's holder; destroy() the lab instead`);
      const startTime = startTimeOf(pid);
      if (isGone(pid)) return;
      if (startTime === undefined || namespaceOf(pid, 'net') !== state.inodes.net[0]) {
        throw new LabError(`Refusing to kill pid ${pid}: it is not a process in this lab's server host`);
      }
      const same = () => startTimeOf(pid) === startTime;
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        if (!same() || isGone(pid)) return;
        signalPid(pid, signal);
        if (await waitFor(() => isGone(pid) || !same(), 3000)) return;
      }
      throw new LabError(`pid ${pid} survived SIGTERM and SIGKILL`);
    },

    writeConfig(toml) {
      configCount += 1;
      const file = join(dir, `moshwall-${configCount}.toml`);
      writeFileSync(file, toml, { mode: 0o644 });
      return file;
    },

    moshwallArgv(args, config) {
      const cli = join(REPO, 'dist', 'moshwall.js');
      if (!existsSync(cli))
        throw new LabError(`${cli} is missing: run \`npm run build\` before the e2e tests`);
      const file = config === undefined ? paths.config : lab.writeConfig(config);
      return [process.execPath, cli, '--config', file, ...args];
    },

    moshwall(args, opts = {}) {
      const { config, ...rest } = opts;
      return lab.runServer(lab.moshwallArgv(args, config), rest);
    },

    ufw(args) {
      return lab.runServer(['ufw', ...args], { env: { LC_ALL: 'C' } });
    },

    async ufwTuples() {
      // Read through the holder's root: the lab's /etc/ufw as the lab's ufw sees it.
      const read = (file: string) => readFileSync(`/proc/${holderPid}/root/etc/ufw/${file}`, 'utf8');
      return [...parseTuples(read('user.rules'), 'v4'), ...parseTuples(read('user6.rules'), 'v6')];
    },

    async udpReachable(port, family, opts = {}) {
      checkPort(port);
      const timeoutMs = opts.timeoutMs ?? 1000;
      const address = family === 'v6' ? server.v6 : server.v4;
      if (address === undefined) throw new LabError('IPv6 probes need a lab made with ipv6: true');
      if (udpBound(holderPid, port)) {
        // Held (e.g. by mosh-server, which answers nobody without its key): count what passed the firewall.
        const before = udpArrivals(holderPid, family);
        const sender = startInClient([
          process.execPath,
          UDP_SCRIPT,
          'send',
          address,
          String(port),
          String(timeoutMs),
        ]);
        const passed = await waitFor(() => udpArrivals(holderPid, family) > before, timeoutMs, 20);
        signalPid(sender.pid, 'SIGKILL');
        await sender.done;
        return passed;
      }
      const echo = lab.startServer([
        process.execPath,
        UDP_SCRIPT,
        'echo',
        address,
        String(port),
        String(timeoutMs + 10_000),
      ]);
      try {
        const ready = await waitFor(() => echo.output().stdout.includes('ready') || isGone(echo.pid), 5000);
        if (!ready || !echo.output().stdout.includes('ready')) {
          throw new LabError(`UDP echo on [${address}]:${port} did not start: ${echo.output().stderr}`);
        }
        const probe = await lab.runClient(
          [process.execPath, UDP_SCRIPT, 'probe', address, String(port), String(timeoutMs)],
          {
            timeoutMs: timeoutMs + 10_000,
          },
        );
        if (probe.exitCode > 1)
          throw new LabError(`UDP probe of [${address}]:${port} failed: ${probe.stderr}`);
        return probe.exitCode === 0;
      } finally {
        signalPid(echo.pid, 'SIGKILL');
        await echo.done;
      }
    },

    async destroy() {
      const problems = teardownSync(state);
      // Let Node reap the children it spawned, so their pids are really gone when destroy() returns.
      await Promise.race([Promise.all(state.children.map((child) => child.done)), sleep(5000)]);
      if (problems.length > 0) throw new LabError(`Lab teardown left problems: ${problems.join('; ')}`);
    },
  };
  return lab;
}
