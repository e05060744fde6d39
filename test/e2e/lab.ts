// The real end-to-end lab: two network namespaces joined by a veth pair; the "server host" is a
// holder process with its own mount namespace (the lab's /etc/ufw, user database, writable /etc and
// /usr/local, /run and /var/log), a real sshd and a real UFW inside it. Nothing here touches the
// machine's own firewall or files: every resource is recorded as it is made, and torn down by
// destroy(), by a failed createLab(), or by the process exit/signal safety net (see _teardown.ts).
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Runner, runCommand } from '../../src/exec.ts';
import {
  BASE_ENV,
  BASE_PATH,
  LabError,
  passOn,
  type Result,
  type RunOptions,
  run,
  runOk,
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
import { type LabFirewalld, startFirewalld } from './_firewalld.ts';
import { waitUntil } from './_poll.ts';
import { hostPidOf, isGone, namespaceOf, signalPid, startTimeOf, udpArrivals, udpBound } from './_procfs.ts';
import { commandPid, type Host, mountLabFiles, setUpNetwork, startHolder, startSshd } from './_server.ts';
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

export { LabError, type Result, type Started } from './_exec.ts';
export type { LabUser } from './_files.ts';
export type { Host } from './_server.ts';
export { LAB_PREFIX, sweepStaleLabs } from './_teardown.ts';

/** The server side, plus the processes that make it a host. */
export interface ServerHost extends Host {
  /**
   * The process holding the server host's namespaces (host pid); server commands enter them with
   * `nsenter -t`. With a PID namespace it is the lab's pid 1, a reaper; without, `sleep infinity`.
   */
  holderPid: number;
  /** Host pid of sshd. */
  sshdPid: number;
  /** Whether the server host has its own PID namespace and /proc (then its processes see other pids). */
  pidNamespace: boolean;
}

/** A command started in the server host. */
export interface ServerProcess extends Started {
  /** Host pid of the command itself (not of the nsenter that launched it); -1 if it ended at once. */
  pid: number;
}

export interface LabRunOptions {
  /** Run as this lab user (setpriv --reuid/--regid/--init-groups, in the user's home); root if absent. */
  user?: string;
  timeoutMs?: number;
  /** Added to a minimal environment (PATH, LANG=C, and for a user HOME, USER, LOGNAME, SHELL). */
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
  /** Force a remote pty (ssh -tt) as the real `mosh` does; stdout then carries both streams, with CRLF. */
  tty?: boolean;
}

export interface MoshServerOptions {
  /** Ask for this port (mosh-server -p); otherwise mosh-server takes the first free one from 60001. */
  port?: number;
  /** Environment for mosh-server only (as `env K=V … mosh-server`; env execs, so the exe is unchanged). */
  extraEnv?: Record<string, string>;
  /** Over ssh as the real `mosh` client does (default), or directly in the server host as the user. */
  via?: 'ssh' | 'local';
  /** The program to start instead of `mosh-server` (e.g. a user's own copy, or a path). */
  binary?: string;
  family?: 'v4' | 'v6';
  /**
   * With via 'local' only: the address to bind (mosh-server -i), e.g. "::" for a dual-stack socket;
   * default the server's address of `family`.
   */
  address?: string;
}

export interface MoshServer {
  port: number;
  key: string;
  /** Host pid of the detached mosh-server. */
  pid: number;
  /** Its pid as the server host sees it, from "[mosh-server detached, pid = N]" (= pid without a PID namespace). */
  nsPid: number;
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
  /** The lab's real firewalld, in a lab made with `firewall: 'firewalld'` (then UFW stays inactive). */
  firewalld: LabFirewalld | undefined;
  server: ServerHost;
  client: Host;
  users: LabUser[];
  /** The default moshwall config file (backend ufw, port_range 60000:61000). */
  configPath: string;
  /**
   * The argv that runs `argv` as root in the server host (nsenter into its namespaces), for a caller that
   * spawns it itself, e.g. a Runner handed to a backend in-process. Nothing is run.
   */
  serverArgv(argv: string[]): string[];
  /** Runs argv in the server host (its netns and mount namespace), as root or as a lab user. */
  runServer(argv: string[], opts?: LabRunOptions): Promise<Result>;
  /** Starts argv in the server host and returns at once (e.g. `moshwall daemon`); destroy() ends it. */
  startServer(argv: string[], opts?: LabRunOptions): Promise<ServerProcess>;
  /** Runs argv as root in the client's netns (the host's mount namespace). */
  runClient(argv: string[], opts?: Omit<LabRunOptions, 'user'>): Promise<Result>;
  /** ssh from the client to the server as a lab user; every remote word is shell-quoted for sshd. */
  ssh(user: string, remoteArgv: string[], opts?: SshOptions): Promise<Result>;
  /** Starts a real mosh-server as `user` and returns what it announced. */
  startMoshServer(user: string, opts?: MoshServerOptions): Promise<MoshServer>;
  /** SIGTERM, then SIGKILL, a process of the server host (and only one); resolves once it is gone. */
  killServerProcess(pid: number): Promise<void>;
  /** Writes a moshwall config file in the lab and returns its path. */
  writeConfig(toml: string): string;
  /** argv that runs the built CLI in the lab: node dist/moshwall.js --config <file> ...args. */
  moshwallArgv(args: string[], config?: string): string[];
  /** Runs the built CLI in the server host, with the default config or the given TOML text. */
  moshwall(args: string[], opts?: LabRunOptions & { config?: string }): Promise<Result>;
  /** The admin's ufw in the lab (root, LANG=C). */
  ufw(args: string[]): Promise<Result>;
  /** The lab's UFW rules from user.rules and user6.rules, read directly (not through moshwall). */
  ufwTuples(): Promise<UfwTuple[]>;
  /** Whether UDP from the client to the server port gets through the lab's firewall. */
  udpReachable(port: number, family: 'v4' | 'v6', opts?: { timeoutMs?: number }): Promise<boolean>;
  /** The host pid of a pid as the server host sees it (e.g. from moshwall's output), if it exists. */
  hostPid(nsPid: number): number | undefined;
  /** A host path to `path` as the server host sees it (through /proc/<holder>/root), for reading. */
  serverPath(path: string): string;
  /** Tears the lab down (idempotent); throws if something could not be removed. */
  destroy(): Promise<void>;
}

export interface LabOptions {
  /** Lab user names (unprivileged, uids from 61001); default ["alice", "bob"]. */
  users?: string[];
  /** Extra lab groups: name → member users (for allow_groups). */
  groups?: Record<string, string[]>;
  /** Give both hosts IPv6 addresses and keep UFW's IPV6=yes (default true). */
  ipv6?: boolean;
  /**
   * Give the server host its own PID namespace and /proc, so moshwall scans only lab processes
   * (default true). Without it, lab processes share the machine's pids and see all of its processes.
   */
  pidNamespace?: boolean;
  /**
   * The server host's firewall: UFW enabled with 22/tcp allowed (default), or a real firewalld on a
   * private system D-Bus (UFW left inactive; firewalld's public zone allows ssh), see _firewalld.ts.
   */
  firewall?: 'ufw' | 'firewalld';
  /**
   * No UFW (it stays installed but inactive): the admin's own firewall instead, set up by this function
   * as root in the server host once its /etc overlay is mounted (see _firewalls.ts).
   */
  adminFirewall?: (host: AdminHost) => Promise<void>;
  /** For the harness' own test: throw right after this step, to prove the teardown of a half-made lab. */
  faultAfter?: 'network' | 'host' | 'ufw' | 'sshd';
}

/** What LabOptions.adminFirewall gets: the server host before sshd starts. */
export interface AdminHost {
  /** Runs argv as root in the server host (its netns and mount namespace); throws if it fails. */
  run(argv: string[], input?: string): Promise<void>;
  /** A host path to `path` as the server host sees it (writes land in its /etc overlay). */
  path(path: string): string;
}

export const SERVER_V4 = '192.0.2.1';
export const CLIENT_V4 = '192.0.2.2';
export const SERVER_V6 = '2001:db8::1';
export const CLIENT_V6 = '2001:db8::2';
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
const SSH_OPTIONS = [
  ...['-F', '/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes'],
  ...[
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'GlobalKnownHostsFile=/dev/null',
  ],
  ...['-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5', '-o', 'ControlMaster=no', '-o', 'ControlPath=none'],
];

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
  const installed = (tool: string) =>
    BASE_PATH.split(':').some((dir) => {
      try {
        accessSync(join(dir, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  const missing = TOOLS.filter((tool) => !installed(tool));
  if (missing.length > 0) {
    throw new LabError(
      `Cannot build the e2e lab: ${missing.join(', ')} not found in ${BASE_PATH} ` +
        '(apt-get install iproute2 util-linux ufw openssh-server openssh-client mosh)',
    );
  }
}

/** One word quoted for the POSIX shell that sshd hands the remote command to. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Throws unless `port` is a whole number 1..65535. */
function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new LabError(`Expected a port from 1 to 65535, got ${String(port)} (${typeof port})`);
  }
}

/** The tuples of one ufw user rules file, comments decoded from hex. */
function parseTuples(text: string, family: 'v4' | 'v6'): UfwTuple[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('### tuple ### '))
    .map((line) => {
      const body = line.slice('### tuple ### '.length);
      const match = / comment=([0-9a-fA-F]*)$/.exec(body);
      if (!match) return { family, tuple: body, comment: '' };
      return {
        family,
        tuple: body.slice(0, match.index),
        comment: Buffer.from(match[1] ?? '', 'hex').toString('utf8'),
      };
    });
}

/**
 * Builds a lab: network, server host, UFW (allow 22/tcp, enabled) or the admin firewall given, sshd;
 * tears all of it down on failure.
 */
export async function createLab(options: LabOptions = {}): Promise<Lab> {
  requireRoot();
  sweepStaleLabs();
  const state = trackLab();
  try {
    return await buildLab(state, options);
  } catch (error) {
    const problems = teardownSync(state);
    unpinNamespaces(state);
    if (problems.length > 0) {
      throw new LabError(`createLab failed, and so did part of its teardown: ${problems.join('; ')}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** The steps of createLab, in order; each records what it made in `state`. */
async function buildLab(state: LabState, options: LabOptions): Promise<Lab> {
  const ipv6 = options.ipv6 ?? true;
  const pidNs = options.pidNamespace ?? true;
  const groups = options.groups ?? {};
  const fault = (step: LabOptions['faultAfter']) => {
    if (options.faultAfter === step) throw new LabError(`createLab: injected fault after step "${step}"`);
  };
  const id = randomBytes(4).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${id}-`));
  state.dir = dir;
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'owner'), ownerLine());
  const paths = labPaths(dir);
  const users = planUsers(options.users ?? ['alice', 'bob'], groups, paths.homes);

  const server = { netns: `${LAB_PREFIX}${id}-srv`, v4: SERVER_V4, v6: ipv6 ? SERVER_V6 : undefined };
  const client = { netns: `${LAB_PREFIX}${id}-cli`, v4: CLIENT_V4, v6: ipv6 ? CLIENT_V6 : undefined };
  await setUpNetwork(state, server, client);
  fault('network');

  writeUfwFiles(paths, ipv6);
  writeUserDatabase(paths, users, groups);
  await writeSshFiles(paths, dir, users, ipv6 ? [SERVER_V4, SERVER_V6] : [SERVER_V4]);
  writeFileSync(paths.config, DEFAULT_LAB_CONFIG, { mode: 0o644 });
  const holderPid = await startHolder(state, server.netns, join(dir, 'holder.log'), pidNs);
  pinNamespaces(state, holderPid, pidNs ? ['mnt', 'pid'] : ['mnt'], 'The lab');
  await mountLabFiles(holderPid, paths, dir);
  fault('host');

  const enter = ['nsenter', '-t', String(holderPid), '-m', '-n', ...(pidNs ? ['-p'] : [])];
  const inServer = (argv: string[]) => [...enter, `--wd=${dir}`, '--', ...argv];
  const ufwEnv = { ...BASE_ENV, LC_ALL: 'C' };
  let firewalld: LabFirewalld | undefined;
  if (options.firewall === 'firewalld') {
    if (options.adminFirewall !== undefined)
      throw new LabError('firewall: "firewalld" and adminFirewall exclude each other');
    firewalld = await startFirewalld({
      state,
      dir,
      inServer,
      forks: pidNs,
      serverPath: (path) => `/proc/${holderPid}/root${path}`,
      runServer: (argv) => run(inServer(argv), { env: BASE_ENV }),
    });
  } else if (options.adminFirewall === undefined) {
    await runOk(inServer(['ufw', 'allow', '22/tcp']), { env: ufwEnv });
    await runOk(inServer(['ufw', '--force', 'enable']), { env: ufwEnv });
  } else {
    await options.adminFirewall({
      run: async (argv, input) => {
        await runOk(inServer(argv), { env: ufwEnv, ...(input === undefined ? {} : { input }) });
      },
      path: (path) => `/proc/${holderPid}/root${path}`,
    });
  }
  fault('ufw');

  const sshdPid = await startSshd(state, inServer, pidNs, paths, dir, ipv6 ? ['v4', 'v6'] : ['v4']);
  fault('sshd');

  const serverHost = { ...server, holderPid, sshdPid, pidNamespace: pidNs };
  return makeLab(state, { dir, paths, users, server: serverHost, client, enter, firewalld });
}

interface Built {
  dir: string;
  paths: LabPaths;
  users: LabUser[];
  server: ServerHost;
  client: Host;
  /** nsenter argv that enters the server host's namespaces (before --wd and --). */
  enter: string[];
  firewalld: LabFirewalld | undefined;
}

/** The Lab object over a fully built state. */
function makeLab(state: LabState, built: Built): Lab {
  const { dir, paths, users, server, client, enter, firewalld } = built;
  const { holderPid } = server;
  const serverNet = namespaceOf(holderPid, 'net');
  const serverPidNs = namespaceOf(holderPid, 'pid');
  let configCount = 0;

  const alive = () => {
    if (state.tornDown) throw new LabError('This lab has been destroyed');
  };
  const userNamed = (name: string): LabUser => {
    const user = users.find((candidate) => candidate.name === name);
    if (user) return user;
    throw new LabError(`No lab user "${name}" (lab users: ${users.map((each) => each.name).join(', ')})`);
  };
  const serverCommand = (argv: string[], opts: LabRunOptions): [string[], RunOptions] => {
    alive();
    if (opts.user === undefined) {
      return [[...enter, `--wd=${dir}`, '--', ...argv], passOn(opts, { ...BASE_ENV, ...opts.env })];
    }
    const user = userNamed(opts.user);
    const env = {
      ...BASE_ENV,
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      SHELL: '/bin/bash',
      ...opts.env,
    };
    const drop = ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--'];
    return [[...enter, `--wd=${user.home}`, '--', ...drop, ...argv], passOn(opts, env)];
  };
  const startInClient = (argv: string[]) => {
    const started = start(['ip', 'netns', 'exec', client.netns, ...argv]);
    state.children.push(started);
    return started;
  };
  const udpScript = (mode: 'echo' | 'probe' | 'send', address: string, port: number, ms: number) => [
    process.execPath,
    UDP_SCRIPT,
    mode,
    address,
    String(port),
    String(ms),
  ];

  const lab: Lab = {
    dir,
    firewalld,
    server,
    client,
    users,
    configPath: paths.config,

    serverArgv(argv) {
      return serverCommand(argv, {})[0];
    },

    runServer(argv, opts = {}) {
      return run(...serverCommand(argv, opts));
    },

    async startServer(argv, opts = {}) {
      const launcher = start(...serverCommand(argv, opts));
      state.children.push(launcher);
      return { ...launcher, pid: (await commandPid(launcher, server.pidNamespace, serverNet)) ?? -1 };
    },

    runClient(argv, opts = {}) {
      alive();
      return run(['ip', 'netns', 'exec', client.netns, ...argv], passOn(opts, { ...BASE_ENV, ...opts.env }));
    },

    ssh(userName, remoteArgv, opts = {}) {
      userNamed(userName);
      if (remoteArgv.length === 0) throw new LabError('ssh needs a remote command (none would open a shell)');
      const target = opts.family === 'v6' ? server.v6 : server.v4;
      if (target === undefined) throw new LabError('ssh over IPv6 needs a lab made with ipv6: true');
      const sendEnv = Object.keys(opts.env ?? {}).filter((name) => /^(LANG|LC_\w+)$/.test(name));
      const argv = [
        'ssh',
        ...SSH_OPTIONS,
        ...['-i', paths.clientKey],
        ...sendEnv.flatMap((name) => ['-o', `SendEnv=${name}`]),
        opts.tty ? '-tt' : '-T',
        `${userName}@${target}`,
        '--',
        // sshd joins the words and hands them to the user's shell: quote each, as `mosh` itself does.
        ...remoteArgv.map(shellQuote),
      ];
      return lab.runClient(argv, {
        timeoutMs: opts.timeoutMs ?? 20_000,
        ...(opts.env === undefined ? {} : { env: opts.env }),
        ...(opts.input === undefined ? {} : { input: opts.input }),
      });
    },

    async startMoshServer(userName, opts = {}) {
      const user = userNamed(userName);
      if (opts.port !== undefined) checkPort(opts.port);
      const via = opts.via ?? 'ssh';
      const localAddress = opts.family === 'v6' ? server.v6 : server.v4;
      if (localAddress === undefined) {
        throw new LabError('mosh-server over IPv6 needs a lab made with ipv6: true');
      }
      if (opts.address !== undefined && via !== 'local') {
        throw new LabError(
          `address "${opts.address}" needs via: 'local' (over ssh mosh-server binds the ssh address)`,
        );
      }
      const envPrefix = opts.extraEnv
        ? ['env', ...Object.entries(opts.extraEnv).map(([name, value]) => `${name}=${value}`)]
        : [];
      // As /usr/bin/mosh runs it: `new -c <colors> -s [-p port] -l LANG=…` (with --local: `-i <address>`).
      const argv = [
        ...envPrefix,
        opts.binary ?? 'mosh-server',
        ...['new', '-c', '256'],
        ...(via === 'ssh' ? ['-s'] : ['-i', opts.address ?? localAddress]),
        ...(opts.port === undefined ? [] : ['-p', String(opts.port)]),
        ...['-l', 'LANG=C.UTF-8'],
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
          `${showArgv(argv)} as ${user.name} via ${via} did not start a mosh-server (exit ${result.exitCode}):\n${output}`,
        );
      }
      const nsPid = Number(detached[1]);
      const pid = lab.hostPid(nsPid);
      if (pid === undefined) throw new LabError(`mosh-server pid ${nsPid} is not in the lab:\n${output}`);
      return { port: Number(connect[1]), key: connect[2] ?? '', pid, nsPid, output };
    },

    async killServerProcess(pid) {
      if (pid === holderPid) throw new LabError(`pid ${pid} is the lab's holder; destroy() the lab instead`);
      const startTime = startTimeOf(pid);
      if (isGone(pid)) return;
      if (startTime === undefined || serverNet === undefined || namespaceOf(pid, 'net') !== serverNet) {
        throw new LabError(`Refusing to kill pid ${pid}: it is not a process in this lab's server host`);
      }
      // The same pid with another start time would be someone else's process: stop there.
      const same = () => startTimeOf(pid) === startTime;
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        if (!same() || isGone(pid)) return;
        signalPid(pid, signal);
        if (await waitUntil(() => isGone(pid) || !same(), 3000)) return;
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
      if (!existsSync(cli)) {
        throw new LabError(`${cli} is missing: run \`npm run build\` before the e2e tests`);
      }
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
      // ufw rewrites user.rules in place (truncate, then write) while a change of moshwall's runs: a
      // read is trusted once the same bytes are read twice, 30 ms apart.
      const read = () =>
        ['user.rules', 'user6.rules'].map((file) => readFileSync(lab.serverPath(`/etc/ufw/${file}`), 'utf8'));
      let seen = read();
      for (let tries = 0; tries < 50; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 30));
        const again = read();
        if (again.join('\0') === seen.join('\0')) break;
        seen = again;
      }
      const [v4 = '', v6 = ''] = seen;
      return [...parseTuples(v4, 'v4'), ...parseTuples(v6, 'v6')];
    },

    async udpReachable(port, family, opts = {}) {
      checkPort(port);
      alive();
      const timeoutMs = opts.timeoutMs ?? 1000;
      const address = family === 'v6' ? server.v6 : server.v4;
      if (address === undefined) throw new LabError('IPv6 probes need a lab made with ipv6: true');
      if (udpBound(holderPid, port)) {
        // Held (e.g. by a mosh-server, which answers nobody without its key): count the datagrams that
        // got past the firewall into the UDP layer of the server's netns (/proc/net/snmp{,6}).
        const before = udpArrivals(holderPid, family);
        const sender = startInClient(udpScript('send', address, port, timeoutMs));
        const passed = await waitUntil(() => udpArrivals(holderPid, family) > before, timeoutMs, 20);
        signalPid(sender.pid, 'SIGKILL');
        await sender.done;
        return passed;
      }
      const echo = await lab.startServer(udpScript('echo', address, port, timeoutMs + 10_000));
      try {
        const isReady = () => echo.output().stdout.includes('ready');
        if (!(await waitUntil(() => isReady() || isGone(echo.pid), 5000)) || !isReady()) {
          throw new LabError(`UDP echo on [${address}]:${port} did not start: ${echo.output().stderr}`);
        }
        const probe = await lab.runClient(udpScript('probe', address, port, timeoutMs), {
          timeoutMs: timeoutMs + 10_000,
        });
        if (probe.exitCode > 1) {
          throw new LabError(`UDP probe of [${address}]:${port} failed: ${probe.stderr}`);
        }
        return probe.exitCode === 0;
      } finally {
        signalPid(echo.pid, 'SIGKILL');
        await echo.done;
      }
    },

    hostPid(nsPid) {
      if (!server.pidNamespace) return isGone(nsPid) ? undefined : nsPid;
      return serverPidNs === undefined ? undefined : hostPidOf(nsPid, serverPidNs);
    },

    serverPath(path) {
      if (!path.startsWith('/')) throw new LabError(`Expected an absolute path, got "${path}"`);
      return `/proc/${holderPid}/root${path}`;
    },

    async destroy() {
      const problems = teardownSync(state);
      unpinNamespaces(state);
      // Let Node reap the children it spawned, so their pids are really gone when destroy() returns.
      await childrenReaped(state);
      if (problems.length > 0) throw new LabError(`Lab teardown left problems: ${problems.join('; ')}`);
    },
  };
  return lab;
}

/**
 * The one Runner into a lab: moshwall's real runner (src/exec.ts), entering the lab's server host first;
 * results name the argv as asked. Backends built in-process by tests and benches use it.
 */
export function labRunner(lab: Lab): Runner {
  return async (argv, options) => ({ ...(await runCommand(lab.serverArgv(argv), options)), argv });
}

/**
 * The two places moshwall runs in the e2e suites that must hold on a real host: the lab's private PID
 * namespace (only lab processes to scan) and the machine's own (every process of this host walked, as
 * systemd runs moshwall, PID 1 and all). Suites run once per kind; the kind's name goes in their titles.
 */
export const PID_KINDS: readonly { name: string; options: Pick<LabOptions, 'pidNamespace'> }[] = [
  { name: 'private PIDs', options: {} },
  { name: "the host's own PIDs", options: { pidNamespace: false } },
];
