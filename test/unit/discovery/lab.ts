import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeNode } from './fake-proc.ts';

/** The real captures under test/fixtures/proc (see its README). */
export const FIXTURES = join(import.meta.dirname, '../../fixtures/proc');
/** Every captured lab process (a test checks this matches the directories under lab/pid). */
export const LAB_PROCESSES = [
  'mosh-v4',
  'mosh-v6',
  'user-copy',
  'preload',
  'traced',
  'deleted',
  'impostor',
  'odd-comm',
] as const;

export type LabProcess = (typeof LAB_PROCESSES)[number];

/** Text of a fixture file, by path relative to test/fixtures/proc. */
export function fixture(path: string): string {
  return readFileSync(join(FIXTURES, path), 'utf8');
}

/** The pid a lab process had when captured. */
export function pidOf(name: LabProcess): number {
  return Number(fixture(`lab/pid/${name}/pid`).trim());
}

/** Link targets of a lab process: "exe", "root", "ns/mnt", "fd/N" → target. */
export function linksOf(name: LabProcess): Map<string, string> {
  const links = new Map<string, string>();
  for (const line of fixture(`lab/pid/${name}/links.txt`).split('\n')) {
    const [link, target] = line.split('\t');
    if (link !== undefined && target !== undefined) links.set(link, target);
  }
  return links;
}

/** The inode of the first socket a lab process holds. */
export function socketOf(name: LabProcess): number {
  const target = [...linksOf(name).values()].find((value) => value.startsWith('socket:['));
  return Number(target?.slice('socket:['.length, -1));
}

/**
 * Fake /proc nodes of the lab: net tables, /proc/stat, /etc/passwd and /etc/group, and the given
 * processes (all by default) with their files, links and stat facts. moshwall is placed in the
 * processes' mount namespace, so the directories they saw through /proc/PID/root are also at "/".
 */
export function labNodes(names: readonly LabProcess[] = LAB_PROCESSES): Map<string, FakeNode> {
  const nodes = new Map<string, FakeNode>([
    ['/proc/net/udp', { text: fixture('lab/net/udp') }],
    ['/proc/net/udp6', { text: fixture('lab/net/udp6') }],
    ['/proc/stat', { text: fixture('lab/stat') }],
    ['/etc/passwd', { text: fixture('lab/etc/passwd') }],
    ['/etc/group', { text: fixture('lab/etc/group') }],
    ['/proc/self/ns/mnt', { link: linksOf('mosh-v4').get('ns/mnt') ?? '' }],
    ['/proc/self/ns/user', { link: HOST_USER_NAMESPACE }],
  ]);
  for (const name of names) {
    const pid = pidOf(name);
    for (const file of ['stat', 'status', 'maps', 'environ']) {
      nodes.set(`/proc/${pid}/${file}`, { text: fixture(`lab/pid/${name}/${file}`) });
    }
    nodes.set(`/proc/${pid}/ns/user`, { link: HOST_USER_NAMESPACE });
    for (const [link, target] of linksOf(name)) nodes.set(`/proc/${pid}/${link}`, { link: target });
    const identities = mappedIdentities(name);
    for (const line of fixture(`lab/pid/${name}/facts.txt`).split('\n')) {
      const [path, facts] = line.split('\t');
      if (path === undefined || facts === undefined) continue;
      const [uid, gid, mode, kind] = facts.split(' ');
      const mapped = identities.byPath.get(path);
      const node = {
        facts: {
          uid: Number(uid),
          gid: Number(gid),
          mode: Number.parseInt(mode ?? '', 8),
          isFile: kind === 'file',
          isDirectory: kind === 'dir',
          ...(mapped === undefined ? {} : { identity: mapped.identity }),
        },
      };
      nodes.set(path, { ...nodes.get(path), ...node });
      // The mapped file also sits at its path as moshwall sees it (the same file: same identity).
      if (mapped !== undefined && !mapped.deleted) nodes.set(mapped.pathname, { ...node });
      const root = `/proc/${pid}/root`;
      if (path === root) nodes.set('/', node);
      else if (path.startsWith(`${root}/`)) nodes.set(path.slice(root.length), node);
    }
  }
  return nodes;
}

/** The user namespace of the capture's processes and of moshwall (the machine's initial one). */
export const HOST_USER_NAMESPACE = 'user:[4026531837]';

/**
 * The identity ("maps:DEVICE:INODE", as /proc/PID/maps prints them) of each file-backed mapping of a lab
 * process, by its map_files path and by /proc/PID/exe (the mapping of the exe's own path).
 */
function mappedIdentities(name: LabProcess): {
  byPath: Map<string, { identity: string; pathname: string; deleted: boolean }>;
} {
  const pid = pidOf(name);
  const exe = linksOf(name).get('exe') ?? '';
  const byPath = new Map<string, { identity: string; pathname: string; deleted: boolean }>();
  for (const line of fixture(`lab/pid/${name}/maps`).split('\n')) {
    const match = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ (\S+) (\d+) +(\/.*)$/.exec(line);
    if (match === null) continue;
    const [, start = '', end = '', device = '', inode = '', named = ''] = match;
    const deleted = named.endsWith(' (deleted)');
    const entry = {
      identity: `maps:${device}:${inode}`,
      pathname: named.replace(/ \(deleted\)$/, ''),
      deleted,
    };
    const unpadded = (hex: string) => hex.replace(/^0+(?=.)/, '');
    byPath.set(`/proc/${pid}/map_files/${unpadded(start)}-${unpadded(end)}`, entry);
    if (named === exe) byPath.set(`/proc/${pid}/exe`, entry);
  }
  return { byPath };
}
