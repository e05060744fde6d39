import type { FileFacts, ProcReader } from '../../../src/discovery/proc-reader.ts';

/** Stat facts of a fake path; without an identity, the path itself is the file's identity. */
export type FakeFacts = Omit<FileFacts, 'identity'> & { identity?: string };

/** What the fake knows of one path: its text, its link target, its stat facts, or an errno to throw. */
export interface FakeNode {
  text?: string;
  link?: string;
  facts?: FakeFacts;
  /** errno code thrown by every read of this path and of everything under it. */
  error?: string;
}

/** A ProcReader over an in-memory map of paths, recording every call. */
export interface FakeProc {
  reader: ProcReader;
  /** Every call made, as "readText /proc/net/udp", "listDir /proc", …. */
  calls: string[];
  /** Replaces what the fake knows of one path (merging with what is there). */
  set(path: string, node: FakeNode): void;
  /** Forgets a path and everything under it (a process exiting, a file removed). */
  remove(path: string): void;
  /** Runs action just before the first call that touches path. */
  before(path: string, action: () => void): void;
}

const DIRECTORY: FakeFacts = { uid: 0, gid: 0, mode: 0o555, isFile: false, isDirectory: true };
const TEXT_FILE: FakeFacts = { uid: 0, gid: 0, mode: 0o444, isFile: true, isDirectory: false };

/** Facts with their identity filled in from the path when the node has none. */
function withIdentity(facts: FakeFacts, path: string): FileFacts {
  return { ...facts, identity: facts.identity ?? `path:${path}` };
}

/** An errno error shaped like the ones node:fs throws. */
export function errnoError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: fake ${syscall} '${path}'`), { code, syscall, path });
}

/** The fake over the given nodes (copied: the caller's map is never changed). */
export function createFakeProc(initial: Map<string, FakeNode>): FakeProc {
  const nodes = new Map(initial);
  const calls: string[] = [];
  const hooks = new Map<string, () => void>();

  const childrenOf = (path: string): string[] => {
    const prefix = path === '/' ? '/' : `${path}/`;
    const names = new Set<string>();
    for (const key of nodes.keys()) {
      if (key.startsWith(prefix)) names.add(key.slice(prefix.length).split('/')[0] ?? '');
    }
    names.delete('');
    return [...names];
  };
  const inheritedError = (path: string): string | undefined => {
    for (let current = path; current !== ''; current = current.slice(0, current.lastIndexOf('/'))) {
      const error = nodes.get(current)?.error;
      if (error !== undefined) return error;
    }
    return undefined;
  };
  const enter = (syscall: string, path: string): FakeNode | undefined => {
    calls.push(`${syscall} ${path}`);
    const hook = hooks.get(path);
    if (hook !== undefined) {
      hooks.delete(path);
      hook();
    }
    const error = inheritedError(path);
    if (error !== undefined) throw errnoError(error, syscall, path);
    return nodes.get(path);
  };
  const missing = (syscall: string, path: string) => errnoError('ENOENT', syscall, path);

  const reader: ProcReader = {
    readText(path) {
      const node = enter('readText', path);
      if (node?.text !== undefined) return node.text;
      throw childrenOf(path).length > 0 ? errnoError('EISDIR', 'readText', path) : missing('readText', path);
    },
    readLink(path) {
      const node = enter('readLink', path);
      if (node?.link !== undefined) return node.link;
      throw node === undefined ? missing('readLink', path) : errnoError('EINVAL', 'readLink', path);
    },
    listDir(path) {
      const node = enter('listDir', path);
      const children = childrenOf(path);
      if (children.length === 0 && node === undefined) throw missing('listDir', path);
      return children;
    },
    stat(path) {
      const node = enter('stat', path);
      if (node?.facts !== undefined) return withIdentity(node.facts, path);
      if (childrenOf(path).length > 0) return withIdentity(DIRECTORY, path);
      if (node?.text !== undefined) return withIdentity(TEXT_FILE, path);
      throw missing('stat', path);
    },
  };

  return {
    reader,
    calls,
    set(path, node) {
      nodes.set(path, { ...nodes.get(path), ...node });
    },
    remove(path) {
      for (const key of [...nodes.keys()]) {
        if (key === path || key.startsWith(`${path}/`)) nodes.delete(key);
      }
    },
    before(path, action) {
      hooks.set(path, action);
    },
  };
}
