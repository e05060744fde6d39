// The .deb for the deb-*.test.ts and ansible-*.test.ts files: built by packaging/build-deb.sh from the
// current dist/moshwall.js, and what it must contain.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_ENV, LabError, runOk } from './_exec.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string })
  .version;
export const SHIM_LINK = '/usr/local/bin/mosh-server';
export const SHIM_TARGET = '/usr/lib/moshwall/mosh-server';

/** Builds moshwall_<version>_all.deb into `outDir` (build-deb.sh, as CI runs it) and returns its path. */
export async function buildDeb(outDir: string, env: Record<string, string> = {}): Promise<string> {
  const result = await runOk(['bash', join(REPO, 'packaging', 'build-deb.sh'), outDir], {
    env: { ...BASE_ENV, ...env },
    timeoutMs: 60_000,
  });
  const deb = result.stdout.trim().split('\n').at(-1) ?? '';
  if (deb !== join(outDir, `moshwall_${VERSION}_all.deb`)) {
    throw new LabError(
      `build-deb.sh printed "${deb}", expected ${join(outDir, `moshwall_${VERSION}_all.deb`)}`,
    );
  }
  return deb;
}

/** One entry of the package: type, mode, owner, and the link target for a symlink. */
export interface DebEntry {
  path: string;
  type: 'd' | '-' | 'l';
  mode: string;
  owner: string;
  target?: string;
}

/** Everything the package ships (dpkg-deb --contents), directories included. */
export const EXPECTED_CONTENTS: DebEntry[] = [
  ...[
    '/etc',
    '/etc/moshwall',
    '/lib',
    '/lib/systemd',
    '/lib/systemd/system',
    '/usr',
    '/usr/lib',
    '/usr/lib/moshwall',
    '/usr/sbin',
    '/usr/share',
    '/usr/share/doc',
    '/usr/share/doc/moshwall',
    '/usr/share/man',
    '/usr/share/man/man8',
  ].map((path): DebEntry => ({ path, type: 'd', mode: 'rwxr-xr-x', owner: 'root/root' })),
  ...[
    '/etc/moshwall/moshwall.toml',
    '/lib/systemd/system/moshwall.service',
    '/usr/lib/moshwall/package.json',
    '/usr/share/doc/moshwall/README.Debian',
    '/usr/share/doc/moshwall/README.md',
    '/usr/share/doc/moshwall/changelog.gz',
    '/usr/share/doc/moshwall/copyright',
    '/usr/share/doc/moshwall/moshwall.example.toml',
    '/usr/share/man/man8/moshwall.8.gz',
  ].map((path): DebEntry => ({ path, type: '-', mode: 'rw-r--r--', owner: 'root/root' })),
  { path: '/usr/lib/moshwall/moshwall.js', type: '-', mode: 'rwxr-xr-x', owner: 'root/root' },
  { path: SHIM_TARGET, type: '-', mode: 'rwxr-xr-x', owner: 'root/root' },
  {
    path: '/usr/sbin/moshwall',
    type: 'l',
    mode: 'rwxrwxrwx',
    owner: 'root/root',
    target: '../lib/moshwall/moshwall.js',
  },
];

/** The package's entries from `dpkg-deb --contents`, sorted by path. */
export async function debContents(deb: string): Promise<DebEntry[]> {
  const { stdout } = await runOk(['dpkg-deb', '--contents', deb], { env: BASE_ENV });
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line): DebEntry => {
      // drwxr-xr-x root/root         0 2026-11-24 10:18 ./etc/   |   lrwxrwxrwx … ./usr/sbin/moshwall -> ../lib/…
      const match = /^([dl-])(\S{9}) (\S+)\s+\d+ \S+ \S+ \.(\S*?)\/?(?: -> (\S+))?$/.exec(line);
      if (!match) throw new LabError(`Unexpected dpkg-deb --contents line: ${line}`);
      const [, type = '-', mode = '', owner = '', path = '', target] = match;
      return {
        path: path === '' ? '/' : path,
        type: type as DebEntry['type'],
        mode,
        owner,
        ...(target === undefined ? {} : { target }),
      };
    })
    .filter((entry) => entry.path !== '/')
    .sort((a, b) => a.path.localeCompare(b.path));
}
