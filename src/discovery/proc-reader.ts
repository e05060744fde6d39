import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/** What discovery needs to know of a file: owner, permission bits, kind and identity. */
export interface FileFacts {
  /** "device:inode" (decimal, exact: read as bigint): which file this is, whatever path reached it. */
  identity: string;
  uid: number;
  gid: number;
  /** Permission bits only (mode & 0o7777). */
  mode: number;
  isFile: boolean;
  isDirectory: boolean;
}

/**
 * The one edge discovery reads the machine through. Every method throws the usual Node errno error
 * (ENOENT, EACCES, ESRCH, …) when the path cannot be read; discovery decides what that means.
 * Synchronous on purpose: /proc reads are tiny and a scan must see one consistent moment.
 */
export interface ProcReader {
  readText(path: string): string;
  readLink(path: string): string;
  listDir(path: string): string[];
  /** Facts of the file a path resolves to (symlinks followed). */
  stat(path: string): FileFacts;
}

/** The ProcReader of the running machine. */
export function createHostProcReader(): ProcReader {
  return {
    readText: (path) => readFileSync(path, 'utf8'),
    readLink: (path) => readlinkSync(path),
    listDir: (path) => readdirSync(path),
    stat: (path) => {
      const facts = statSync(path, { bigint: true });
      return {
        identity: `${facts.dev}:${facts.ino}`,
        uid: Number(facts.uid),
        gid: Number(facts.gid),
        mode: Number(facts.mode & 0o7777n),
        isFile: facts.isFile(),
        isDirectory: facts.isDirectory(),
      };
    },
  };
}
