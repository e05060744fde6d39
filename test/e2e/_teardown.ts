// What a lab has made, and how all of it goes away: by destroy(), by a failed createLab(), by the
// process 'exit' / SIGINT / SIGTERM / SIGHUP safety net, or by the next createLab() after a SIGKILL.
import {
  closeSync,
  type Dirent,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError, runSync, type Started } from './_exec.ts';
import { isGone, namedNetnsInode, pidsInNamespaces, signalPid, sleepSync, startTimeOf } from './_procfs.ts';

export const LAB_PREFIX = 'mwlab-';

/** Everything a lab has made so far, recorded as it is made; the teardown works from this alone. */
export interface LabState {
  dir: string | undefined;
  netns: string[];
  inodes: Record<'net' | 'mnt' | 'pid', number[]>;
  children: Started[];
  /** cgroup directories made for the lab (booted guests'), removed once their processes are gone. */
  cgroups?: string[];
  tornDown: boolean;
}

const liveLabs = new Set<LabState>();
let safetyNetInstalled = false;

/** A fresh state, registered so the safety net tears it down if this process ends first. */
export function trackLab(): LabState {
  const state: LabState = {
    dir: undefined,
    netns: [],
    inodes: { net: [], mnt: [], pid: [] },
    children: [],
    tornDown: false,
  };
  liveLabs.add(state);
  installSafetyNet();
  return state;
}

/** The owner line of a lab directory: this process' pid and start time. */
export function ownerLine(): string {
  return `${process.pid} ${startTimeOf(process.pid) ?? ''}\n`;
}

/** SIGKILLs the processes `list` returns until it returns none or `ms` pass; returns the survivors. */
function killUntilNone(list: () => number[], ms: number): number[] {
  const deadline = Date.now() + ms;
  for (;;) {
    const pids = list();
    if (pids.length === 0 || Date.now() > deadline) return pids;
    for (const pid of pids) signalPid(pid, 'SIGKILL');
    sleepSync(5);
  }
}

/**
 * SIGKILLs every process in the lab's namespaces and every live child it spawned, until none is left.
 * The server host's own PID namespace goes first, while the nsenter processes outside it still live to
 * reap their children at once (orphaned zombies would wait for the machine's init, seconds here).
 */
function killEverything(state: LabState): number[] {
  killUntilNone(() => pidsInNamespaces({ net: [], mnt: [], pid: state.inodes.pid }), 3000);
  return killUntilNone(() => {
    const pids = new Set(pidsInNamespaces(state.inodes));
    // Until Node has seen a child exit, its pid cannot belong to anyone else (we have not reaped it).
    for (const { pid, child } of state.children) {
      if (pid > 0 && child.exitCode === null && child.signalCode === null && !isGone(pid)) pids.add(pid);
    }
    return [...pids];
  }, 5000);
}

/**
 * Tears down what `state` records: processes (their mount namespace and every mount in it go with
 * them), then the network namespaces, then the directory. Synchronous, so the exit handler can use it.
 * Returns the problems left; a second call does nothing.
 */
export function teardownSync(state: LabState): string[] {
  if (state.tornDown) return [];
  state.tornDown = true;
  liveLabs.delete(state);
  const problems: string[] = [];
  const survivors = killEverything(state);
  if (survivors.length > 0) problems.push(`processes still alive after SIGKILL: ${survivors.join(', ')}`);
  problems.push(...removeCgroups(state.cgroups ?? []));
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

/** The cgroup directories of lab `id` in every hierarchy of this machine (booted guests make them). */
export function labCgroups(id: string): string[] {
  const found: string[] = [];
  for (const hierarchy of ['unified', 'systemd']) {
    const base = join('/sys/fs/cgroup', hierarchy);
    let entries: string[] = [];
    try {
      entries = readdirSync(base);
    } catch {
      continue;
    }
    for (const entry of entries) if (entry.startsWith(`${LAB_PREFIX}${id}-`)) found.push(join(base, entry));
  }
  return found;
}

/** Removes cgroup directories deepest first (a cgroup goes only once empty); returns the problems. */
function removeCgroups(dirs: readonly string[]): string[] {
  const problems: string[] = [];
  const remove = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) if (entry.isDirectory()) remove(join(dir, entry.name));
    try {
      rmdirSync(dir);
    } catch (error) {
      problems.push(`cannot remove cgroup ${dir}: ${(error as Error).message}`);
    }
  };
  for (const dir of dirs) remove(dir);
  return problems;
}

/** Tears down every live lab when this process exits or is interrupted, so nothing outlives a run. */
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
      // The listener is gone now: the signal's default action ends the process as it would have.
      process.kill(process.pid, signal);
    });
  }
}

/**
 * Tears down labs whose creating process died without its safety net (SIGKILL): a lab directory whose
 * `owner` file names a process that no longer runs. Returns the directories swept.
 */
export function sweepStaleLabs(): string[] {
  const swept: string[] = [];
  for (const entry of readdirSync(tmpdir())) {
    const match = /^mwlab-([0-9a-f]{8})-[A-Za-z0-9]{6}$/.exec(entry);
    if (!match) continue;
    const dir = join(tmpdir(), entry);
    let owner: string;
    try {
      owner = readFileSync(join(dir, 'owner'), 'utf8').trim();
    } catch {
      continue;
    }
    const [pid = '', startTime] = owner.split(' ');
    if (startTimeOf(Number(pid)) === startTime) continue;
    const netns = [`${LAB_PREFIX}${match[1]}-srv`, `${LAB_PREFIX}${match[1]}-cli`];
    const net = netns.map(namedNetnsInode).filter((inode): inode is number => inode !== undefined);
    const cgroups = labCgroups(match[1] ?? '');
    teardownSync({ dir, netns, inodes: { net, mnt: [], pid: [] }, children: [], cgroups, tornDown: false });
    swept.push(dir);
  }
  return swept;
}

const namespacePins = new WeakMap<LabState, number[]>();

/**
 * Holds the holder's namespaces open (by fd) until teardown is done, checking they are the ones the
 * state recorded: the kernel hands a freed namespace's inode number to the next namespace anyone
 * makes, so a teardown matching processes by inode must keep its own namespaces alive.
 */
export function pinNamespaces(
  state: LabState,
  holderPid: number,
  kinds: readonly ('mnt' | 'pid' | 'net')[],
  what: string,
): void {
  const fds: number[] = [];
  namespacePins.set(state, fds);
  for (const kind of kinds) {
    const fd = openSync(`/proc/${holderPid}/ns/${kind}`, 'r');
    fds.push(fd);
    if (!state.inodes[kind].includes(fstatSync(fd).ino)) {
      throw new LabError(
        `${what}'s holder (pid ${holderPid}) left its ${kind} namespace before it was pinned`,
      );
    }
  }
}

/** Lets the kernel free the pinned namespaces; only once the teardown has killed everything in them. */
export function unpinNamespaces(state: LabState): void {
  for (const fd of namespacePins.get(state) ?? []) closeSync(fd);
  namespacePins.delete(state);
}

/**
 * Resolves once Node has reaped every child the lab spawned (so their pids are really gone), or after
 * `patienceMs` when one lingers (the teardown's own checks report it).
 */
export async function childrenReaped(state: LabState, patienceMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const patience = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, patienceMs);
  });
  await Promise.race([Promise.all(state.children.map((child) => child.done)), patience]);
  clearTimeout(timer);
}
