// The .deb on a real Debian 12: a debootstrap'd bookworm (minbase) root run as a chroot in its own
// network, mount and PID namespaces (see _chroot.ts). dpkg refuses to configure it without nodejs; apt
// then brings Debian's own nodejs 18 (downloaded in this machine's network namespace, installed in the
// chroot's, so no maintainer script ever runs with a route anywhere); moshwall runs on that Node 18;
// dpkg -r leaves only the conffile, dpkg -P nothing; an admin's own /usr/local/bin/mosh-server is
// never replaced nor removed; a reinstall keeps the admin's config. Every step's time is reported.
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { aptOk, type ChrootHost, createChrootHost, minbaseImage, type RootImage, unpack } from './_chroot.ts';
import { buildDeb, EXPECTED_CONTENTS, SHIM_LINK, SHIM_TARGET, VERSION } from './_deb.ts';
import type { Result } from './_exec.ts';
import { namespaceOf } from './_procfs.ts';
import { labSkipReason } from './lab.ts';

const APT = ['apt-get', '-q', '-y', '--no-install-recommends'];
const APT_TIMEOUT_MS = 10 * 60_000;
/** Paths the package ships that other packages share (they stay after a removal). */
const SHARED = new Set([
  '/etc',
  '/lib',
  '/lib/systemd',
  '/lib/systemd/system',
  '/usr',
  '/usr/lib',
  '/usr/sbin',
  '/usr/share',
  '/usr/share/doc',
  '/usr/share/man',
  '/usr/share/man/man8',
]);
/** Parts of the root that change with any dpkg run (its database, logs, caches) or are not files at all. */
const VOLATILE =
  /^\/(proc|sys|dev|run|tmp|var\/lib\/dpkg|var\/log|var\/cache|var\/lib\/apt|etc\/ld\.so\.cache$)(\/|$)/;

/** Every path under the chroot's root with type, mode and owner (or link target), minus VOLATILE. */
function rootListing(host: ChrootHost): string[] {
  const entries: string[] = [];
  const walk = (path: string) => {
    for (const name of readdirSync(host.path(path === '' ? '/' : path))) {
      const child = `${path}/${name}`;
      if (VOLATILE.test(child)) continue;
      const facts = lstatSync(host.path(child));
      const kind = facts.isSymbolicLink()
        ? `-> ${readlinkSync(host.path(child))}`
        : (facts.mode & 0o7777).toString(8);
      entries.push(`${child} ${facts.uid}:${facts.gid} ${kind}`);
      if (facts.isDirectory()) walk(child);
    }
  };
  walk('');
  return entries.sort();
}

/** The two-letter dpkg state of a package ("ii", "rc", "iU"), or "absent" when dpkg does not know it. */
async function packageState(host: ChrootHost, name: string): Promise<string> {
  const result = await host.run(['dpkg-query', '-W', `-f=\${db:Status-Abbrev}`, name]);
  return result.exitCode === 0 ? result.stdout.trim() : 'absent';
}

/** True when `path` exists in the chroot (a dangling link counts). */
function exists(host: ChrootHost, path: string): boolean {
  try {
    lstatSync(host.path(path));
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes in the chroot's PID namespace whose command line mentions moshwall. */
function moshwallProcesses(host: ChrootHost): number[] {
  const pidNs = namespaceOf(host.holderPid, 'pid');
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        return (
          namespaceOf(pid, 'pid') === pidNs &&
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('moshwall')
        );
      } catch {
        return false;
      }
    });
}

/** Output of a command for assertion messages. */
function shown(result: Result): string {
  return `exit ${result.exitCode}\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`;
}

describe("the .deb on Debian 12 (debootstrap'd bookworm, Debian's own Node 18)", {
  skip: labSkipReason(),
}, () => {
  let host: ChrootHost | undefined;
  let image: RootImage | undefined;
  let work = '';
  /** The .deb's path inside the chroot. */
  let deb = '';
  const timings: string[] = [];
  const theHost = (): ChrootHost => {
    assert.ok(host, 'the chroot host did not come up in before()');
    return host;
  };
  /** Runs `step`, recording how long it took under `label`. */
  const timed = async <T>(label: string, step: () => Promise<T>): Promise<T> => {
    const begun = performance.now();
    try {
      return await step();
    } finally {
      timings.push(`${label}: ${((performance.now() - begun) / 1000).toFixed(1)} s`);
    }
  };

  before(async () => {
    image = await timed('root image (cache)', () => minbaseImage());
    timings.push(
      `root image was ${image.builtNow ? 'built by debootstrap now' : `found in the cache (${image.key})`}`,
    );
    work = mkdtempSync(join(tmpdir(), 'moshwall-deb-test-'));
    const built = await buildDeb(work);
    const tar = image.tar;
    host = await timed('unpack + namespaces + mounts', () => createChrootHost(unpack(tar)));
    deb = `/tmp/${basename(built)}`;
    host.writeFile(deb, readFileSync(built), 0o644);
  });

  after(async () => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
    await host?.destroy();
    console.log(`# deb-bookworm timings: ${timings.join('; ')}`);
  });

  test("dpkg -i wants nodejs (>= 18); apt brings Debian's nodejs 18 and configures moshwall", async (t) => {
    const chroot = theHost();
    assert.equal(await packageState(chroot, 'nodejs'), 'absent', 'a minbase root has no nodejs');
    const alone = await chroot.run(['dpkg', '-i', deb], { timeoutMs: 60_000 });
    assert.equal(alone.exitCode, 1, shown(alone));
    assert.match(
      alone.stderr,
      /moshwall depends on nodejs \(>= 18\); however:\s+Package nodejs is not installed\./,
    );
    assert.equal(await packageState(chroot, 'moshwall'), 'iU', 'unpacked, not configured');

    await timed('apt-get update (online)', () =>
      aptOk(chroot.runOnline(['apt-get', '-q', 'update'], { timeoutMs: APT_TIMEOUT_MS })),
    );
    await timed('download nodejs and its dependencies (online)', () =>
      aptOk(chroot.runOnline([...APT, '--download-only', '-f', 'install'], { timeoutMs: APT_TIMEOUT_MS })),
    );
    const fixed = await timed('apt-get -f install (offline)', () =>
      aptOk(chroot.run([...APT, '--no-download', '-f', 'install'], { timeoutMs: APT_TIMEOUT_MS })),
    );
    assert.match(fixed.stdout, /Setting up nodejs \(18\.[^)]*deb12[^)]*\)/, shown(fixed));
    assert.match(fixed.stdout, new RegExp(`Setting up moshwall \\(${VERSION.replaceAll('.', '\\.')}\\)`));
    assert.match(
      `${fixed.stdout}${fixed.stderr}`,
      /systemd is not running here, so the daemon was not started/,
    );
    assert.equal(await packageState(chroot, 'moshwall'), 'ii');
    assert.equal(await packageState(chroot, 'nodejs'), 'ii');
    const node = await chroot.runOk(['node', '--version']);
    assert.match(node.stdout, /^v18\.\d+\.\d+\n$/);
    t.diagnostic(`Debian's node: ${node.stdout.trim()}`);
  });

  test('installs exactly its files, the conffile, the shim link; enabled, not started', async () => {
    const chroot = theHost();
    const listed = (await chroot.runOk(['dpkg', '-L', 'moshwall'])).stdout.trim().split('\n').sort();
    assert.deepEqual(listed, ['/.', ...EXPECTED_CONTENTS.map((entry) => entry.path)].sort());
    // The shared directories are the root's own (on a merged-/usr system /lib is a link to usr/lib).
    for (const entry of EXPECTED_CONTENTS.filter(({ path }) => !SHARED.has(path))) {
      const facts = lstatSync(chroot.path(entry.path));
      assert.equal(`${facts.uid}:${facts.gid}`, '0:0', entry.path);
      if (entry.type === 'l') assert.equal(readlinkSync(chroot.path(entry.path)), entry.target, entry.path);
      else
        assert.equal(
          facts.mode & 0o777,
          entry.type === 'd' || entry.mode === 'rwxr-xr-x' ? 0o755 : 0o644,
          entry.path,
        );
    }
    const conffiles = (await chroot.runOk(['dpkg-query', '-W', `-f=\${Conffiles}`, 'moshwall'])).stdout;
    assert.match(conffiles, /^ \/etc\/moshwall\/moshwall\.toml [0-9a-f]{32}$/m);
    assert.equal(readlinkSync(chroot.path(SHIM_LINK)), SHIM_TARGET, 'postinst linked the shim');
    assert.equal(
      readlinkSync(chroot.path('/etc/systemd/system/multi-user.target.wants/moshwall.service')),
      '/lib/systemd/system/moshwall.service',
      'enabled for the next boot',
    );
    assert.deepEqual(moshwallProcesses(chroot), [], 'no daemon started without systemd');
  });

  test("moshwall runs on Debian's Node 18: --version, --help, check-config, doctor", async (t) => {
    const chroot = theHost();
    const version = await chroot.run(['moshwall', '--version']);
    assert.deepEqual(version, { exitCode: 0, stdout: `${VERSION}\n`, stderr: '' });
    const help = await chroot.run(['moshwall', '--help']);
    assert.equal(help.exitCode, 0, shown(help));
    assert.equal(help.stderr, '');
    for (const name of [
      'sync',
      'status',
      'flush',
      'doctor',
      'daemon',
      'shim',
      'hook',
      'install',
      'uninstall',
    ]) {
      assert.match(help.stdout, new RegExp(`^  ${name} +\\S`, 'm'), `--help lists ${name}`);
    }
    const checked = await chroot.run(['moshwall', 'check-config']);
    assert.deepEqual(checked, { exitCode: 0, stdout: 'ok: /etc/moshwall/moshwall.toml\n', stderr: '' });
    const doctor = await chroot.run(['moshwall', 'doctor', '--json']);
    assert.equal(doctor.exitCode, 1, `doctor finds problems here, and does not crash: ${shown(doctor)}`);
    const { findings } = JSON.parse(doctor.stdout) as {
      findings: Array<{ level: string; check: string; message: string }>;
    };
    const level = (check: string) => findings.find((finding) => finding.check === check)?.level;
    assert.equal(level('privileges'), 'ok');
    assert.equal(level('config'), 'ok');
    assert.match(
      findings.find((finding) => finding.check === 'config')?.message ?? '',
      /\/etc\/moshwall\/moshwall\.toml/,
    );
    assert.equal(level('firewall'), 'fail', 'no ufw in a minbase root');
    assert.equal(level('mosh-server'), 'fail', 'no mosh in a minbase root');
    const text = await chroot.run(['moshwall', 'doctor']);
    assert.equal(text.exitCode, 1);
    assert.match(text.stdout, /^FAIL {2}firewall/m);
    assert.doesNotMatch(`${doctor.stderr}${text.stderr}`, /^\s+at /m, 'no stack trace');
    t.diagnostic(
      text.stdout
        .split('\n')
        .filter((line) => /^(ok|WARN|FAIL)/.test(line))
        .join(' | '),
    );
  });

  test('dpkg -r removes every file but the conffile, and the shim link; prerm tries the flush', async () => {
    const chroot = theHost();
    const removed = await timed('dpkg -r', () =>
      chroot.run(['dpkg', '-r', 'moshwall'], { timeoutMs: 120_000 }),
    );
    assert.equal(removed.exitCode, 0, shown(removed));
    // No ufw here: the flush fails, says so, and the removal goes on.
    assert.match(removed.stderr, /could not remove its firewall rules/);
    assert.equal(await packageState(chroot, 'moshwall'), 'rc');
    for (const entry of EXPECTED_CONTENTS) {
      if (SHARED.has(entry.path)) continue;
      const kept = entry.path === '/etc/moshwall' || entry.path === '/etc/moshwall/moshwall.toml';
      assert.equal(exists(chroot, entry.path), kept, `${entry.path} ${kept ? 'kept' : 'removed'}`);
    }
    assert.equal(exists(chroot, SHIM_LINK), false, 'the shim link went with the package');
    assert.equal(readFileSync(chroot.path('/etc/moshwall/moshwall.toml'), 'utf8').length > 0, true);
  });

  test('dpkg -P removes the conffile, /etc/moshwall and the unit state', async () => {
    const chroot = theHost();
    const purged = await timed('dpkg -P', () =>
      chroot.run(['dpkg', '-P', 'moshwall'], { timeoutMs: 120_000 }),
    );
    assert.equal(purged.exitCode, 0, shown(purged));
    assert.equal(await packageState(chroot, 'moshwall'), 'absent');
    for (const path of [
      '/etc/moshwall',
      SHIM_LINK,
      '/etc/systemd/system/moshwall.service',
      '/etc/systemd/system/multi-user.target.wants/moshwall.service',
    ]) {
      assert.equal(exists(chroot, path), false, `${path} is gone`);
    }
    const helperState = ['deb-systemd-helper-enabled', 'deb-systemd-helper-masked'].flatMap((dir) =>
      exists(chroot, `/var/lib/systemd/${dir}`)
        ? readdirSync(chroot.path(`/var/lib/systemd/${dir}`), { recursive: true }).map(String)
        : [],
    );
    assert.deepEqual(
      helperState.filter((name) => name.includes('moshwall')),
      [],
    );
  });

  test("an admin's /usr/local/bin/mosh-server is kept; a reinstall keeps the config; purge leaves nothing", async () => {
    const chroot = theHost();
    const own = '#!/bin/sh\n# the admin\'s own wrapper\nexec /usr/bin/mosh-server "$@"\n';
    chroot.writeFile(SHIM_LINK, own, 0o755);
    const before = rootListing(chroot);
    const install = await timed('dpkg -i (dependencies present)', () =>
      chroot.run(['dpkg', '-i', deb], { timeoutMs: 120_000 }),
    );
    assert.equal(install.exitCode, 0, shown(install));
    assert.equal(readFileSync(chroot.path(SHIM_LINK), 'utf8'), own, 'not replaced');
    assert.equal(lstatSync(chroot.path(SHIM_LINK)).isFile(), true);

    const edited = `${readFileSync(chroot.path('/etc/moshwall/moshwall.toml'), 'utf8')}\n# the admin's edit\n`;
    chroot.writeFile('/etc/moshwall/moshwall.toml', edited, 0o644);
    const again = await timed('dpkg -i again (upgrade path)', () =>
      chroot.run(['dpkg', '-i', deb], { timeoutMs: 120_000 }),
    );
    assert.equal(again.exitCode, 0, shown(again));
    assert.equal(
      readFileSync(chroot.path('/etc/moshwall/moshwall.toml'), 'utf8'),
      edited,
      "the admin's config is kept",
    );
    assert.equal(readFileSync(chroot.path(SHIM_LINK), 'utf8'), own);

    const purged = await chroot.run(['dpkg', '-P', 'moshwall'], { timeoutMs: 120_000 });
    assert.equal(purged.exitCode, 0, shown(purged));
    assert.equal(readFileSync(chroot.path(SHIM_LINK), 'utf8'), own, 'not removed either');
    assert.deepEqual(rootListing(chroot), before, 'install, reinstall and purge leave the root as it was');
  });
});
