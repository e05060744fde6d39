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
}

/**
 * Verdicts shared by the checks of one scan: many processes map the same libraries and sit in the
 * same directories. null means "passed". Never keep one across scans: files change.
 */
export interface GenuineCache {
  /** Mapped-file verdicts by "device inode" as /proc/PID/maps prints them. */
  files: Map<string, string | null>;
  /** Directory verdicts by "mount namespace, root, path". */
  directories: Map<string, string | null>;
  /** moshwall's own mount namespace (read once). */
  selfMountNamespace?: string;
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
 * The verdict on pid per DESIGN.md: exe named in serverNames; exe, every file-backed executable
 * mapping and every directory above them owned by root and not writable by group or others; not
 * traced. Permission problems refuse, a process that exited meanwhile is "vanished".
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
    const reason = findProblem(pid, exe, read, options.serverNames, cache);
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
  serverNames: string[],
  cache: GenuineCache,
): string | undefined {
  const path = exe.endsWith(DELETED_SUFFIX) ? exe.slice(0, -DELETED_SUFFIX.length) : exe;
  if (!serverNames.includes(path.slice(path.lastIndexOf('/') + 1))) {
    return `executable ${path} is not named ${serverNames.join(' or ')}`;
  }
  const exeProblem = fileProblem('executable', path, read.stat(`/proc/${pid}/exe`));
  if (exeProblem !== undefined) return exeProblem;
  const tree = treeOf(pid, read, cache);
  const directoryProblem = directoriesProblem(path, tree, read, cache);
  if (directoryProblem !== undefined) return directoryProblem;
  for (const entry of parseMaps(read.readText(`/proc/${pid}/maps`), `/proc/${pid}/maps`)) {
    if (!entry.perms.includes('x') || !entry.pathname.startsWith('/')) continue;
    const key = `${entry.device} ${entry.inode}`;
    let problem = cache.files.get(key);
    if (problem === undefined) {
      problem = fileProblem('mapped library', entry.pathname, read.stat(mapFilesPath(pid, entry))) ?? null;
      cache.files.set(key, problem);
    }
    if (problem !== null) return problem;
    const mappedDirectoryProblem = directoriesProblem(entry.pathname, tree, read, cache);
    if (mappedDirectoryProblem !== undefined) return mappedDirectoryProblem;
  }
  const status = parseStatus(read.readText(`/proc/${pid}/status`), `/proc/${pid}/status`);
  if (status.tracerPid !== 0) return `traced by pid ${status.tracerPid}`;
  return undefined;
}

/** Where pid's paths resolve and the cache key of that tree. */
interface Tree {
  /** Prefix to stat a path of pid's with: '' in our mount namespace, else "/proc/PID/root". */
  base: string;
  key: string;
}

/**
 * The tree pid's exe and maps paths live in. The kernel prints them relative to OUR root when it can
 * reach them (same mount namespace, even if pid is chrooted), else relative to pid's namespace root.
 */
function treeOf(pid: number, read: ProcReader, cache: GenuineCache): Tree {
  cache.selfMountNamespace ??= read.readLink('/proc/self/ns/mnt');
  const namespace = read.readLink(`/proc/${pid}/ns/mnt`);
  if (namespace === cache.selfMountNamespace) return { base: '', key: namespace };
  return { base: `/proc/${pid}/root`, key: `${namespace} ${read.readLink(`/proc/${pid}/root`)}` };
}

/** The first directory above path (parent up to "/") that root does not control, as a reason. */
function directoriesProblem(
  path: string,
  tree: Tree,
  read: ProcReader,
  cache: GenuineCache,
  allowStickyRoot = false,
): string | undefined {
  for (const directory of parentDirectories(path)) {
    const key = `${tree.key} ${directory}`;
    let problem = cache.directories.get(key);
    if (problem === undefined) {
      const facts = read.stat(directory === '/' && tree.base !== '' ? tree.base : `${tree.base}${directory}`);
      problem = facts.isDirectory
        ? allowStickyRoot && facts.uid === 0 && (facts.mode & 0o1000) !== 0
          ? null
          : (ownershipProblem('directory', directory, facts) ?? null)
        : `${directory} is not a directory`;
      cache.directories.set(key, problem);
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
    return (
      fileProblem(label, path, facts) ??
      directoriesProblem(path, { base: '', key: 'self' }, reader, cache, true)
    );
  } catch (error) {
    return `a directory above ${path} cannot be read (${errnoCode(error) ?? String(error)})`;
  }
}
