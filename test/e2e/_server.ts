// The steps that make the lab's network and its server host, each recording what it made in the
// LabState before the next one starts, so a failure anywhere leaves nothing the teardown cannot find.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError, runOk, type Started, start } from './_exec.ts';
import type { LabPaths } from './_files.ts';
import { waitUntil } from './_poll.ts';
import { childPids, isGone, namedNetnsInode, namespaceOf, tcpListening } from './_procfs.ts';
import type { LabState } from './_teardown.ts';

/** One side of the lab network. */
export interface Host {
  netns: string;
  v4: string;
  /** Undefined in a lab made with `ipv6: false`. */
  v6: string | undefined;
}

const SERVER_IF = 'mwlab0';
const CLIENT_IF = 'mwlab1';

/** Two named network namespaces, a veth pair created inside them (never in the host's), addresses, lo up. */
export async function setUpNetwork(state: LabState, server: Host, client: Host): Promise<void> {
  for (const host of [server, client]) {
    await runOk(['ip', 'netns', 'add', host.netns]);
    state.netns.push(host.netns);
    const inode = namedNetnsInode(host.netns);
    if (inode === undefined) {
      throw new LabError(`ip netns add ${host.netns} left no /run/netns/${host.netns}`);
    }
    state.inodes.net.push(inode);
  }
  const veth = ['link', 'add', SERVER_IF, 'type', 'veth', 'peer', 'name', CLIENT_IF, 'netns', client.netns];
  await runOk(['ip', '-n', server.netns, ...veth]);
  for (const [host, dev] of [
    [server, SERVER_IF],
    [client, CLIENT_IF],
  ] as const) {
    await runOk(['ip', '-n', host.netns, 'address', 'add', `${host.v4}/24`, 'dev', dev]);
    if (host.v6 !== undefined) {
      await runOk(['ip', '-n', host.netns, 'address', 'add', `${host.v6}/64`, 'dev', dev, 'nodad']);
    }
    await runOk(['ip', '-n', host.netns, 'link', 'set', 'lo', 'up']);
    await runOk(['ip', '-n', host.netns, 'link', 'set', dev, 'up']);
  }
}

/** The text of /proc/PID/comm, or '' once the process is gone. */
function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

const INIT_SCRIPT = fileURLToPath(new URL('./fixtures/init.py', import.meta.url));

/**
 * Starts the server host's holder in the server netns and a private mount namespace, and returns its
 * pid. With a PID namespace (`unshare -p --kill-child --mount-proc`, which forks): the holder is the lab's
 * pid 1, a reaper (fixtures/init.py), child of our `unshare`, and the lab has its own /proc. Without:
 * `ip netns exec` and `unshare -m` exec in place, so our child itself becomes `sleep infinity`.
 */
export async function startHolder(
  state: LabState,
  netns: string,
  logFile: string,
  pidNs: boolean,
): Promise<number> {
  const isolate = pidNs ? ['-p', '--kill-child', '--mount-proc'] : [];
  const program = pidNs ? ['python3', INIT_SCRIPT] : ['sleep', 'infinity'];
  const argv = [
    'ip',
    'netns',
    'exec',
    netns,
    'unshare',
    '-m',
    ...isolate,
    '--propagation',
    'private',
    ...program,
  ];
  const launcher = start(argv, { logFile });
  state.children.push(launcher);
  const own = { mnt: namespaceOf(process.pid, 'mnt'), pid: namespaceOf(process.pid, 'pid') };
  const holderPid = () => (pidNs ? (childPids(launcher.pid)[0] ?? -1) : launcher.pid);
  const isReady = (pid: number) =>
    pid > 0 &&
    commOf(pid) === (pidNs ? 'python3' : 'sleep') &&
    namespaceOf(pid, 'mnt') !== own.mnt &&
    (!pidNs || namespaceOf(pid, 'pid') !== own.pid);
  await waitUntil(() => isGone(launcher.pid) || isReady(holderPid()), 5000);
  const pid = holderPid();
  const mnt = namespaceOf(pid, 'mnt');
  const pidNsInode = namespaceOf(pid, 'pid');
  if (!isReady(pid) || mnt === undefined || pidNsInode === undefined) {
    throw new LabError(`The lab's holder process did not start: ${launcher.output().stderr.slice(-2000)}`);
  }
  state.inodes.mnt.push(mnt);
  if (pidNs) state.inodes.pid.push(pidNsInode);
  return pid;
}

/**
 * The host pid of the command a launcher runs, once it is inside the server's netns (inode `net`): the
 * launcher itself, or (nsenter -p forks into the PID namespace) its child. Undefined if it ended first.
 */
export async function commandPid(
  launcher: Started,
  forks: boolean,
  net: number | undefined,
): Promise<number | undefined> {
  let pid: number | undefined;
  await waitUntil(() => {
    pid = forks ? childPids(launcher.pid)[0] : launcher.pid;
    return (pid !== undefined && namespaceOf(pid, 'net') === net) || isGone(launcher.pid);
  }, 5000);
  return pid !== undefined && !isGone(pid) ? pid : undefined;
}

/**
 * Inside the holder's mount namespace only: writable /etc and /usr/local (overlays whose changes land
 * in the lab directory), the lab's UFW files and user database bound over the host's, and fresh
 * tmpfs on /run (ufw.lock, sshd, moshwall, utmp) and /var/log (wtmp, lastlog).
 */
export async function mountLabFiles(holderPid: number, paths: LabPaths, dir: string): Promise<void> {
  const inHolder = (argv: string[]) =>
    runOk(['nsenter', '-t', String(holderPid), '-m', '--wd=/', '--', ...argv]);
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
  await inHolder(['mount', '-t', 'tmpfs', '-o', 'mode=755,size=16m', 'mwlab-run', '/run']);
  await inHolder(['mount', '-t', 'tmpfs', '-o', 'mode=755,size=16m', 'mwlab-log', '/var/log']);
  await inHolder(['mkdir', '-m', '755', '/run/sshd']);
}

/** Starts sshd in the server host and waits until it listens on port 22 for every family; returns its pid. */
export async function startSshd(
  state: LabState,
  inServer: (argv: string[]) => string[],
  forks: boolean,
  paths: LabPaths,
  dir: string,
  families: ('v4' | 'v6')[],
): Promise<number> {
  const launcher = start(inServer(['/usr/sbin/sshd', '-D', '-e', '-f', paths.sshdConfig]), {
    logFile: join(dir, 'ssh', 'sshd.log'),
  });
  state.children.push(launcher);
  const pid = (await commandPid(launcher, forks, state.inodes.net[0])) ?? launcher.pid;
  const listening = await waitUntil(
    () => isGone(pid) || families.every((family) => tcpListening(pid, 22, family)),
    10_000,
  );
  if (!listening || isGone(pid)) {
    throw new LabError(`sshd in the lab did not listen on port 22: ${launcher.output().stderr.slice(-2000)}`);
  }
  return pid;
}
