// The files a lab's server host sees instead of the host's own: /etc/ufw, /etc/default/ufw, the user
// database, sshd's config and keys, the users' homes. All live under the lab directory.
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { LabError, runOk } from './_exec.ts';

/** A user that exists only inside the lab's server host. */
export interface LabUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** Supplementary groups (lab groups only). */
  groups: string[];
}

/** Where the lab keeps each file it bind-mounts or hands to sshd and ssh. */
export interface LabPaths {
  ufwDir: string;
  defaultUfw: string;
  passwd: string;
  group: string;
  shadow: string;
  sshdConfig: string;
  hostKey: string;
  clientKey: string;
  authorizedKeysDir: string;
  homes: string;
  config: string;
}

export const FIRST_UID = 61001;
export const FIRST_GROUP_GID = 62001;
const NAME = /^[a-z_][a-z0-9_-]{0,30}$/;

/** The paths of a lab rooted at `dir`. */
export function labPaths(dir: string): LabPaths {
  return {
    ufwDir: join(dir, 'etc', 'ufw'),
    defaultUfw: join(dir, 'etc', 'default-ufw'),
    passwd: join(dir, 'etc', 'passwd'),
    group: join(dir, 'etc', 'group'),
    shadow: join(dir, 'etc', 'shadow'),
    sshdConfig: join(dir, 'ssh', 'sshd_config'),
    hostKey: join(dir, 'ssh', 'host_ed25519_key'),
    clientKey: join(dir, 'ssh', 'client_ed25519_key'),
    authorizedKeysDir: join(dir, 'keys'),
    homes: join(dir, 'home'),
    config: join(dir, 'moshwall.toml'),
  };
}

/** Numeric ids (field 3) already taken in a passwd- or group-format file. */
function takenIds(file: string): Set<number> {
  return new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => Number(line.split(':')[2]))
      .filter((id) => Number.isInteger(id)),
  );
}

/** The next id from `from` upward that is not in `taken` (and marks it taken). */
function nextFree(taken: Set<number>, from: number): number {
  let id = from;
  while (taken.has(id)) id++;
  taken.add(id);
  return id;
}

/**
 * Users and groups for the lab: fresh ids that the host does not use. A name the host has too (a real
 * "alice") is no obstacle: the lab's own passwd and group, seen only inside its mount namespace, leave
 * the host's entry of that name out (see writeUserDatabase), so inside the lab the name means the lab
 * user alone, and the host's user keeps its own uid, which the lab names nothing.
 */
export function planUsers(names: string[], groups: Record<string, string[]>, homes: string): LabUser[] {
  for (const name of [...names, ...Object.keys(groups)]) {
    if (!NAME.test(name)) throw new LabError(`Lab user/group name "${name}" must match ${NAME}`);
  }
  if (new Set(names).size !== names.length) throw new LabError(`Lab user names repeat: ${names.join(', ')}`);
  for (const [group, members] of Object.entries(groups)) {
    const unknown = members.filter((member) => !names.includes(member));
    if (unknown.length > 0) {
      throw new LabError(`Group "${group}" lists unknown lab users: ${unknown.join(', ')}`);
    }
  }
  const uids = takenIds('/etc/passwd');
  const gids = takenIds('/etc/group');
  return names.map((name) => {
    const id = nextFree(new Set([...uids, ...gids]), FIRST_UID);
    uids.add(id);
    gids.add(id);
    const memberOf = Object.entries(groups)
      .filter(([, members]) => members.includes(name))
      .map(([group]) => group);
    return { name, uid: id, gid: id, home: join(homes, name), groups: memberOf };
  });
}

/**
 * Copies `from` to `to` without the entries named in `shadowed` (the lab's own names), appending
 * `lines`, with the original's mode and group (shadow must stay root:shadow 0640).
 */
function copyAppending(from: string, to: string, lines: string[], shadowed: ReadonlySet<string>): void {
  const original = statSync(from);
  const text = readFileSync(from, 'utf8')
    .split('\n')
    .filter((line) => !shadowed.has(line.split(':')[0] ?? ''))
    .join('\n');
  writeFileSync(
    to,
    `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}${lines.map((line) => `${line}\n`).join('')}`,
  );
  chmodSync(to, original.mode & 0o7777);
  chownSync(to, original.uid, original.gid);
}

/** Writes the lab's passwd, group and shadow: the host's entries plus the lab users and groups. */
export function writeUserDatabase(paths: LabPaths, users: LabUser[], groups: Record<string, string[]>): void {
  const gids = takenIds('/etc/group');
  for (const user of users) gids.add(user.gid);
  const shadowed = new Set([...users.map((user) => user.name), ...Object.keys(groups)]);
  copyAppending(
    '/etc/passwd',
    paths.passwd,
    users.map((user) => `${user.name}:x:${user.uid}:${user.gid}:moshwall lab:${user.home}:/bin/bash`),
    shadowed,
  );
  copyAppending(
    '/etc/group',
    paths.group,
    [
      ...users.map((user) => `${user.name}:x:${user.gid}:`),
      ...Object.entries(groups).map(
        ([group, members]) => `${group}:x:${nextFree(gids, FIRST_GROUP_GID)}:${members.join(',')}`,
      ),
    ],
    shadowed,
  );
  // "*": no password, yet not "locked" in sshd's eyes (a leading "!" would be).
  copyAppending(
    '/etc/shadow',
    paths.shadow,
    users.map((user) => `${user.name}:*:19000:0:99999:7:::`),
    shadowed,
  );
  mkdirSync(paths.homes, { mode: 0o755 });
  chmodSync(paths.homes, 0o755);
  for (const user of users) {
    mkdirSync(user.home, { mode: 0o755 });
    chownSync(user.home, user.uid, user.gid);
  }
}

/**
 * The lab's UFW configuration: the host's /etc/ufw with pristine (empty) user rules, an emptied
 * sysctl.conf (the lab must not tune kernel settings), and its own /etc/default/ufw.
 */
export function writeUfwFiles(paths: LabPaths, ipv6: boolean): void {
  mkdirSync(join(paths.ufwDir, '..'), { recursive: true, mode: 0o755 });
  cpSync('/etc/ufw', paths.ufwDir, { recursive: true, preserveTimestamps: true });
  chmodSync(paths.ufwDir, 0o755);
  for (const file of ['user.rules', 'user6.rules']) {
    const pristine = join('/usr/share/ufw/iptables', file);
    if (existsSync(pristine)) copyFileSync(pristine, join(paths.ufwDir, file));
    chmodSync(join(paths.ufwDir, file), 0o640);
  }
  writeFileSync(join(paths.ufwDir, 'sysctl.conf'), '# moshwall lab: no sysctl changes\n');
  const defaults = readFileSync('/etc/default/ufw', 'utf8');
  writeFileSync(paths.defaultUfw, defaults.replace(/^IPV6=.*$/m, `IPV6=${ipv6 ? 'yes' : 'no'}`), {
    mode: 0o644,
  });
}

/** sshd_config for the lab's server host: key auth only, keys from the lab, locale variables accepted. */
function sshdConfig(paths: LabPaths, dir: string, listen: string[]): string {
  return [
    ...listen.map((address) => `ListenAddress ${address}`),
    'Port 22',
    `HostKey ${paths.hostKey}`,
    `PidFile ${join(dir, 'ssh', 'sshd.pid')}`,
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin no',
    `AuthorizedKeysFile ${paths.authorizedKeysDir}/%u`,
    'AcceptEnv LANG LC_*',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'MaxStartups 100',
    'MaxSessions 100',
    '',
  ].join('\n');
}

/** Generates the host and client keys and writes sshd_config and every user's authorized key. */
export async function writeSshFiles(
  paths: LabPaths,
  dir: string,
  users: LabUser[],
  listen: string[],
): Promise<void> {
  mkdirSync(join(dir, 'ssh'), { mode: 0o755 });
  mkdirSync(paths.authorizedKeysDir, { mode: 0o755 });
  await Promise.all(
    [paths.hostKey, paths.clientKey].map((file) =>
      runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'moshwall-lab', '-f', file], {
        timeoutMs: 10_000,
      }),
    ),
  );
  const clientPublic = readFileSync(`${paths.clientKey}.pub`, 'utf8');
  for (const user of users) {
    writeFileSync(join(paths.authorizedKeysDir, user.name), clientPublic, { mode: 0o644 });
  }
  writeFileSync(paths.sshdConfig, sshdConfig(paths, dir, listen), { mode: 0o644 });
}

/** The default moshwall config of a lab (tests may write their own TOML next to it). */
export const DEFAULT_LAB_CONFIG = 'backend = "ufw"\nport_range = "60000:61000"\nufw_fast_path = "off"\n';
