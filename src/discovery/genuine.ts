import { ProcError } from '../errors.ts';
import { errnoCode, isDenied, isGone } from './errno.ts';
import type { FileFacts, ProcReader } from './proc-reader.ts';
import { type MapEntry, parseMaps, parseStatus } from './process.ts';

/** Whether a process is a genuine mosh-server; `vanished` when it exited while being checked. */
export type GenuineVerdict =
  | { genuine: true; exe: string }
  | { genuine: false; vanished: boolean; exe: string; reason: string };

export interface GenuineOptions {
  /** Accepted executable basenames, e.g. ["mosh-server"]. */
  serverNames: string[];
  /** Accept holders in another user or mount namespace than the host's (allow_foreign_namespaces). */
  allowForeignNamespaces?: boolean;
}

/**
 * Verdicts shared by the checks of one scan: many processes map the same libraries and sit in the
 * same directories. null means "passed". Never keep one across scans: files change.
 */
export interface GenuineCache {
  /** Exe and mapped-file verdicts by file identity, path, deleted flag and whether the holder is in the host's namespaces. */
  files: Map<string, string | null>;
  /** Directory verdicts by path (always as root sees it here). */
  directories: Map<string, string | null>;
  /** The host's namespaces: moshwall's own and PID 1's (when readable), read once. */
  host?: HostNamespaces;
}

/** The user and mount namespaces that count as the host's. */
interface HostNamespaces {
  user: Set<string>;
  mount: Set<string>;
}

/** A fresh, empty cache for one scan. */
export function createGenuineCache(): GenuineCache {
  return { files: new Map(), directories: new Map() };
}

const DELETED_SUFFIX = ' (deleted)';

/** A read that failed, with the path it was for. */
class ReadFailure extends Error {
  readonly path: string;
  readonly code: string | undefined;

  constructor(path: string, cause: unknown) {
    super(`reading ${path} failed`, { cause });
    this.path = path;
    this.code = errnoCode(cause);
  }
}

/**
 * The verdict on pid per DESIGN.md and README "Security model". What the binary IS decides, not what
 * its path says in the holder's own mount namespace: the exe (and every file-backed executable mapping),
 * stat'ed through /proc/PID/exe (map_files), must be the very file (device and inode) that root sees at
 * that path here, named in serverNames, owned by root and not writable by group or others, in
 * directories with the same property; a file deleted since it was mapped (a package upgrade) is accepted
 * only from a holder in the host's namespaces. The holder must live in the host's user and mount
 * namespace unless allowForeignNamespaces, and not be traced. Permission problems refuse, a process that
 * exited meanwhile is "vanished".
 */
export function checkGenuine(
  pid: number,
  reader: ProcReader,
  options: GenuineOptions,
  cache: GenuineCache = createGenuineCache(),
): GenuineVerdict {
  const read = pathTagged(reader);
  let exe = '';
  try {
    exe = read.readLink(`/proc/${pid}/exe`);
    const reason = findProblem(pid, exe, read, options, cache);
    return reason === undefined ? { genuine: true, exe } : { genuine: false, vanished: false, exe, reason };
  } catch (error) {
    if (error instanceof ProcError) {
      return { genuine: false, vanished: false, exe, reason: `cannot verify pid ${pid}: ${error.message}` };
    }
    if (!(error instanceof ReadFailure)) throw error;
    return failedRead(pid, exe, error, reader);
  }
}

/** The first reason pid is not genuine, or undefined when every check passes. */
function findProblem(
  pid: number,
  exe: string,
  read: ProcReader,
  options: GenuineOptions,
  cache: GenuineCache,
): string | undefined {
  const deleted = exe.endsWith(DELETED_SUFFIX);
  const path = deleted ? exe.slice(0, -DELETED_SUFFIX.length) : exe;
  const { serverNames } = options;
  if (!serverNames.includes(path.slice(path.lastIndexOf('/') + 1))) {
    return `executable ${path} is not named ${serverNames.join(' or ')}`;
  }
  const place = namespaceProblem(pid, read, cache);
  if (place !== undefined && options.allowForeignNamespaces !== true) {
    return `${place}; set allow_foreign_namespaces = true to accept such holders`;
  }
  const inHost = place === undefined;
  const running = read.stat(`/proc/${pid}/exe`);
  const exeProblem = cached(cache, `exe ${running.identity} ${deleted} ${inHost} ${path}`, () =>
    bindingProblem('executable', path, deleted, running, inHost, read, cache),
  );
  if (exeProblem !== undefined) return exeProblem;
  for (const entry of parseMaps(read.readText(`/proc/${pid}/maps`), `/proc/${pid}/maps`)) {
    if (!entry.perms.includes('x') || !entry.pathname.startsWith('/')) continue;
    // maps names the mapped file by device and inode: the same file gets the same verdict at the same path.
    const key = `map ${entry.device} ${entry.inode} ${entry.deleted} ${inHost} ${entry.pathname}`;
    const problem = cached(cache, key, () => {
      const facts = read.stat(mapFilesPath(pid, entry));
      return bindingProblem('mapped library', entry.pathname, entry.deleted, facts, inHost, read, cache);
    });
    if (problem !== undefined) return problem;
  }
  const status = parseStatus(read.readText(`/proc/${pid}/status`), `/proc/${pid}/status`);
  if (status.tracerPid !== 0) return `traced by pid ${status.tracerPid}`;
  return undefined;
}

/** The verdict cached under key, computed (and kept) on first use. */
function cached(cache: GenuineCache, key: string, judge: () => string | undefined): string | undefined {
  let problem = cache.files.get(key);
  if (problem === undefined) {
    problem = judge() ?? null;
    cache.files.set(key, problem);
  }
  return problem ?? undefined;
}

/**
 * Why a file a process runs (its facts read through /proc, so they are the file's whatever its path)
 * is not one only root could have put there at `path` as root sees it here, or undefined. A live file
 * must be the very file at that path (same device and inode: a bind mount in the holder's own mount
 * namespace is caught); a deleted one cannot be compared, so it passes only from a holder in the host's
 * namespaces (where users cannot mount), on its own ownership and the directories at its old path.
 */
function bindingProblem(
  label: string,
  path: string,
  deleted: boolean,
  running: FileFacts,
  inHost: boolean,
  read: ProcReader,
  cache: GenuineCache,
): string | undefined {
  const own = fileProblem(label, path, running);
  if (own !== undefined) return own;
  if (deleted) {
    if (!inHost) return `${label} ${path} was deleted and the holder is not in the host's namespaces`;
    return directoriesProblem(path, read, cache);
  }
  let here: FileFacts;
  try {
    here = read.stat(path);
  } catch (error) {
    const code = error instanceof ReadFailure ? error.code : undefined;
    return `${label} ${path} is not a file root sees at that path (${code ?? String(error)})`;
  }
  if (here.identity !== running.identity) {
    return `${label} ${path} is not the file root sees at that path (device:inode ${running.identity}, not ${here.identity}: a bind mount or another mount namespace)`;
  }
  return directoriesProblem(path, read, cache);
}

/**
 * Why pid does not live in the host's user and mount namespace (moshwall's own or PID 1's), or
 * undefined when it does. A user can mount (bind a file over mosh-server, say) only in a mount namespace
 * of a user namespace they made.
 */
function namespaceProblem(pid: number, read: ProcReader, cache: GenuineCache): string | undefined {
  cache.host ??= hostNamespaces(read);
  const user = read.readLink(`/proc/${pid}/ns/user`);
  if (!cache.host.user.has(user)) return `runs in another user namespace (${user}) than the host's`;
  const mount = read.readLink(`/proc/${pid}/ns/mnt`);
  if (!cache.host.mount.has(mount)) return `runs in another mount namespace (${mount}) than the host's`;
  return undefined;
}

/**
 * moshwall's own user and mount namespaces, and PID 1's when root may read them (under systemd's
 * ProtectSystem= the daemon has a mount namespace of its own, and sessions live in PID 1's).
 */
function hostNamespaces(read: ProcReader): HostNamespaces {
  const host: HostNamespaces = {
    user: new Set([read.readLink('/proc/self/ns/user')]),
    mount: new Set([read.readLink('/proc/self/ns/mnt')]),
  };
  for (const [kind, set] of [
    ['user', host.user],
    ['mnt', host.mount],
  ] as const) {
    try {
      set.add(read.readLink(`/proc/1/ns/${kind}`));
    } catch {
      // PID 1 closed to us (a sandbox's init): our own namespaces are the host's.
    }
  }
  return host;
}

/** The first directory above path (parent up to "/"), as root sees it here, that root does not control. */
function directoriesProblem(
  path: string,
  read: ProcReader,
  cache: GenuineCache,
  allowStickyRoot = false,
): string | undefined {
  for (const directory of parentDirectories(path)) {
    let problem = cache.directories.get(directory);
    if (problem === undefined) {
      const facts = read.stat(directory);
      problem = facts.isDirectory
        ? allowStickyRoot && facts.uid === 0 && (facts.mode & 0o1000) !== 0
          ? null
          : (ownershipProblem('directory', directory, facts) ?? null)
        : `${directory} is not a directory`;
      cache.directories.set(directory, problem);
    }
    if (problem !== null) return problem;
  }
  return undefined;
}

/** "/usr/bin/mosh-server" → ["/usr/bin", "/usr", "/"]. */
function parentDirectories(path: string): string[] {
  const directories: string[] = [];
  let current = path;
  while (current.lastIndexOf('/') > 0) {
    current = current.slice(0, current.lastIndexOf('/'));
    directories.push(current);
  }
  directories.push('/');
  return directories;
}

/** /proc/PID/map_files/START-END: the kernel names these without the zero padding maps prints. */
function mapFilesPath(pid: number, entry: MapEntry): string {
  const unpadded = (hex: string) => hex.replace(/^0+(?=.)/, '');
  return `/proc/${pid}/map_files/${unpadded(entry.start)}-${unpadded(entry.end)}`;
}

/** Why a file is not one only root could have put there, or undefined. */
function fileProblem(label: string, path: string, facts: FileFacts): string | undefined {
  if (!facts.isFile) return `${label} ${path} is not a regular file`;
  return ownershipProblem(label, path, facts);
}

/** "is owned by uid N, not root" / "is writable by group and others", or undefined. */
function ownershipProblem(label: string, path: string, facts: FileFacts): string | undefined {
  if (facts.uid !== 0) return `${label} ${path} is owned by uid ${facts.uid}, not root`;
  const writers = [(facts.mode & 0o020) !== 0 ? 'group' : '', (facts.mode & 0o002) !== 0 ? 'others' : ''];
  const writable = writers.filter((writer) => writer !== '').join(' and ');
  return writable === '' ? undefined : `${label} ${path} is writable by ${writable}`;
}

/** The verdict after a failed read: gone if pid exited, refused (with the cause) otherwise. */
function failedRead(pid: number, exe: string, failure: ReadFailure, reader: ProcReader): GenuineVerdict {
  const refuse = (why: string): GenuineVerdict => ({
    genuine: false,
    vanished: false,
    exe,
    reason: `cannot verify pid ${pid}: ${why}`,
  });
  if (isDenied(failure.code)) return refuse('permission denied (moshwall must run as root)');
  if (!isGone(failure.code))
    return refuse(`reading ${failure.path} failed (${failure.code ?? 'unknown error'})`);
  if (!isAlive(pid, reader)) return { genuine: false, vanished: true, exe, reason: `pid ${pid} exited` };
  return refuse(`${failure.path} does not exist`);
}

/** Whether /proc still lists pid (a read that fails otherwise counts as alive: refuse, don't drop). */
function isAlive(pid: number, reader: ProcReader): boolean {
  try {
    reader.stat(`/proc/${pid}`);
    return true;
  } catch (error) {
    return !isGone(errnoCode(error));
  }
}

/** The reader, with every failure wrapped in a ReadFailure naming its path. */
function pathTagged(reader: ProcReader): ProcReader {
  const tagged =
    <T>(read: (path: string) => T) =>
    (path: string): T => {
      try {
        return read(path);
      } catch (error) {
        throw new ReadFailure(path, error);
      }
    };
  return {
    readText: tagged((path) => reader.readText(path)),
    readLink: tagged((path) => reader.readLink(path)),
    listDir: tagged((path) => reader.listDir(path)),
    stat: tagged((path) => reader.stat(path)),
  };
}

/**
 * Why the file at `path` (in our own tree) is not one only root could have put there — the file or a
 * directory above it — or undefined when it is. For moshwall's own files, its config and doctor's
 * check of the configured mosh-server. Unlike the check of a running process, a root-owned sticky
 * directory (/tmp) is accepted here, as sshd's StrictModes does: others cannot rename or remove the
 * root-owned entries in it, and every entry below must still be root's.
 */
export function rootOnlyPathProblem(path: string, reader: ProcReader, label = 'file'): string | undefined {
  let facts: FileFacts;
  try {
    facts = reader.stat(path);
  } catch (error) {
    return `${label} ${path} cannot be read (${errnoCode(error) ?? String(error)})`;
  }
  const cache = createGenuineCache();
  try {
    return fileProblem(label, path, facts) ?? directoriesProblem(path, reader, cache, true);
  } catch (error) {
    return `a directory above ${path} cannot be read (${errnoCode(error) ?? String(error)})`;
  }
}
