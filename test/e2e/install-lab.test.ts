// `moshwall install` / `uninstall` for real, in the lab's server host (whose /etc and /usr/local are
// overlays of its own): --dry-run changes nothing; install makes exactly its files (modes, owners, link
// targets) and refuses to replace a mosh-server or moshwall that is not its own; a real mosh-server
// started over ssh then goes through the installed shim to the daemon started from the installed path,
// and MOSH CONNECT arrives only once the rule exists; --sudoers lets alice run exactly
// `sudo -n /usr/local/sbin/moshwall hook`, which opens the next session's port; a group- or
// other-writable bundle, directory or config makes every root command refuse (exit 7) and change
// nothing; uninstall removes exactly what install made and our rules, keeps the config; --purge too.
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { COMMANDS } from '../../src/cli/run.ts';
import { systemdUnit } from '../../src/install/assets.ts';

import { REPO } from './_deb.ts';
import { memberTuples } from './_fastpath.ts';
import { expectedOurs, ourTuples, sortTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { namespaceOf } from './_procfs.ts';
import { createLab, labSkipReason, type MoshServer, type Result, type UfwTuple } from './lab.ts';

const BUNDLE = join(REPO, 'dist', 'moshwall.js');
const LIB = '/usr/local/lib/moshwall';
const INSTALLED = `${LIB}/moshwall.js`;
const COMMAND = '/usr/local/sbin/moshwall';
const SHIM = '/usr/local/bin/mosh-server';
const UNIT = '/etc/systemd/system/moshwall.service';
const CONFIG = '/etc/moshwall/moshwall.toml';
const MANIFEST = `${LIB}/installed.json`;
/** The perl shim (perl-base is on every Debian host) the mosh-server link points at. */
const PERL_SHIM = `${LIB}/mosh-server`;
/** Marks the bundle an ES module for Node 18, which reads a plain .js file as CommonJS otherwise. */
const MODULE_MARKER = `${LIB}/package.json`;
const SUDOERS = '/etc/sudoers.d/moshwall';
const PTRACE_CONF = '/etc/sysctl.d/60-moshwall-ptrace.conf';

/** A file's text, or undefined when it cannot be read (e.g. no Yama). */
function readTextOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}
/** What `install` (without --sudoers) adds, with type, mode and owner (or link target). */
const INSTALLED_ENTRIES: Record<string, string> = {
  [LIB]: 'dir 755 0:0',
  [INSTALLED]: 'file 755 0:0',
  [MODULE_MARKER]: 'file 644 0:0',
  [MANIFEST]: 'file 644 0:0',
  [COMMAND]: `link 0:0 -> ${INSTALLED}`,
  [PERL_SHIM]: 'file 755 0:0',
  [SHIM]: `link 0:0 -> ${PERL_SHIM}`,
  [UNIT]: 'file 644 0:0',
  '/etc/moshwall': 'dir 755 0:0',
  [CONFIG]: 'file 644 0:0',
};
/** The commands that need root: each must refuse when moshwall's own files are unsafe. */
const ROOT_COMMANDS = COMMANDS.filter((command) => command.needsRoot).map((command) => command.name);

/** path → "kind mode uid:gid" (+ size and mtime of a file, + the inode when `strict`). */
type Listing = Map<string, string>;

describe('moshwall install/uninstall in the lab', { skip: labSkipReason() }, () => {
  let adminRules: UfwTuple[] = [];
  /** The server host's /etc and /usr/local before anything was installed. */
  let pristine: Listing = new Map();
  const sessions: MoshServer[] = [];

  const theLab = useLab(() => createLab());
  /** The built bundle run by node as root in the server host, with no --config (as an admin would). */
  const bundle = (args: string[]) =>
    theLab().runServer([process.execPath, BUNDLE, ...args], { timeoutMs: 30_000 });
  /** The installed command, as root in the server host. */
  const installed = (args: string[]) => theLab().runServer([COMMAND, ...args], { timeoutMs: 30_000 });
  /** Ports of ours, as classic tuples: the installed config is the example's (UFW fast path "auto"). */
  const ours = async () =>
    sortTuples([...ourTuples(await theLab().ufwTuples()), ...(await memberTuples(theLab()))]);
  const admins = async () =>
    sortTuples((await theLab().ufwTuples()).filter((tuple) => tuple.comment !== 'moshwall'));
  /** A real mosh-server as alice over ssh; `binary` /usr/bin/mosh-server bypasses the shim. */
  const mosh = async (port: number, binary?: string) => {
    try {
      const server = await theLab().startMoshServer('alice', {
        port,
        ...(binary === undefined ? {} : { binary }),
      });
      sessions.push(server);
      return server;
    } catch (error) {
      // A start that failed late (its ssh timed out after the server detached) must not leave a
      // session to the tests after this one.
      const known = new Set(sessions.map((server) => server.pid));
      for (const pid of labMoshServers()) if (!known.has(pid)) await theLab().killServerProcess(pid);
      throw error;
    }
  };
  const endSessions = async () => {
    for (const server of sessions.splice(0)) await theLab().killServerProcess(server.pid);
  };

  /** Every entry under the server host's /etc (but /etc/ufw, the firewall's own files) and /usr/local. */
  const listing = (strict = false): Listing => {
    const entries: Listing = new Map();
    const walk = (path: string) => {
      for (const name of readdirSync(theLab().serverPath(path))) {
        const child = `${path}/${name}`;
        if (child === '/etc/ufw') continue;
        const facts = lstatSync(theLab().serverPath(child));
        const owner = `${facts.uid}:${facts.gid}`;
        const mode = (facts.mode & 0o7777).toString(8);
        if (facts.isSymbolicLink()) {
          entries.set(child, `link ${owner} -> ${readlinkSync(theLab().serverPath(child))}`);
        } else if (facts.isDirectory()) {
          entries.set(child, `dir ${mode} ${owner}`);
          walk(child);
        } else {
          const detail = strict ? ` ${facts.size} ${facts.mtimeMs} ${facts.ino}` : '';
          entries.set(child, `file ${mode} ${owner}${detail}`);
        }
      }
    };
    walk('/etc');
    walk('/usr/local');
    return entries;
  };
  /** What changed from `before` to `after`: added and removed entries, and entries that differ. */
  const changes = (before: Listing, after: Listing) => {
    const added: Record<string, string> = {};
    const changed: string[] = [];
    for (const [path, entry] of after) {
      if (!before.has(path)) added[path] = entry.replace(/^(file \d+ \d+:\d+) .*/, '$1');
      else if (before.get(path) !== entry) changed.push(path);
    }
    const removed = [...before.keys()].filter((path) => !after.has(path));
    return { added, removed, changed };
  };
  const shown = (result: Result) =>
    `exit ${result.exitCode}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
  /** Host pids of the processes in the server host's pid namespace whose argv passes `matches`. */
  const labProcesses = (matches: (argv: string[]) => boolean): number[] => {
    const pidNs = namespaceOf(theLab().server.holderPid, 'pid');
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number)
      .filter((pid) => {
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          return namespaceOf(pid, 'pid') === pidNs && matches(argv);
        } catch {
          return false;
        }
      });
  };
  /** Host pids of the mosh-servers running in the server host. */
  const labMoshServers = () => labProcesses((argv) => /(^|\/)mosh-server$/.test(argv[0] ?? ''));
  /** Host pids of `moshwall hook --watch` watchers running in the server host. */
  const watchers = () => labProcesses((argv) => argv.includes('hook') && argv.includes('--watch'));

  before(async () => {
    adminRules = await admins();
    pristine = listing();
  });

  test('install --dry-run lists every file and command, and changes nothing', async () => {
    const before = listing(true);
    const dryRun = await bundle(['install', '--dry-run', '--sudoers']);
    assert.equal(dryRun.exitCode, 0, shown(dryRun));
    const lines = dryRun.stdout.trim().split('\n');
    assert.ok(
      lines.every((line) => line.startsWith('would ')),
      dryRun.stdout,
    );
    for (const path of [...Object.keys(INSTALLED_ENTRIES), SUDOERS]) {
      assert.ok(
        lines.some((line) => line.includes(` ${path}`)),
        `--dry-run names ${path}:\n${dryRun.stdout}`,
      );
    }
    assert.ok(
      lines.includes(`would install -m 755 ${BUNDLE} ${INSTALLED} (first line #!/usr/bin/node)`),
      dryRun.stdout,
    );
    assert.ok(lines.includes(`would ln -sfn ${PERL_SHIM} ${SHIM}`), dryRun.stdout);
    assert.ok(
      lines.some((line) => line.startsWith(`would write ${PERL_SHIM} (mode 755, `)),
      dryRun.stdout,
    );
    assert.ok(
      lines.some((line) => line.includes('visudo -c')),
      dryRun.stdout,
    );
    assert.ok(
      lines.some((line) => line.startsWith('would note: systemd is not running here')),
      dryRun.stdout,
    );
    assert.deepEqual(changes(before, listing(true)), { added: {}, removed: [], changed: [] });
    assert.deepEqual(await ours(), []);
  });

  for (const [name, path, make] of [
    [
      "an admin's own mosh-server wrapper",
      SHIM,
      (at: string) => writeFileSync(at, '#!/bin/sh\nexec /usr/bin/mosh-server "$@"\n', { mode: 0o755 }),
    ],
    ['a link to another mosh-server', SHIM, (at: string) => symlinkSync('/usr/bin/mosh-server', at)],
    [
      'another program called moshwall',
      COMMAND,
      (at: string) => writeFileSync(at, '#!/bin/sh\n', { mode: 0o755 }),
    ],
  ] as const) {
    test(`install refuses to replace ${name} at ${path}, and changes nothing`, async () => {
      make(theLab().serverPath(path));
      try {
        const before = listing(true);
        const refused = await bundle(['install']);
        // EINSTALL: the host's state stops the install, not how it was called (exit 2 is for usage).
        assert.equal(refused.exitCode, 1, shown(refused));
        assert.match(
          refused.stderr,
          new RegExp(`${path} exists and is not moshwall's; refusing to overwrite it`),
        );
        assert.deepEqual(changes(before, listing(true)), { added: {}, removed: [], changed: [] });
      } finally {
        unlinkSync(theLab().serverPath(path));
      }
    });
  }

  test('install creates exactly its files, with their modes, owners and link targets', async () => {
    const before = listing();
    const result = await bundle(['install']);
    assert.equal(result.exitCode, 0, shown(result));
    assert.deepEqual(changes(before, listing()), { added: INSTALLED_ENTRIES, removed: [], changed: [] });
    const inServer = (path: string) => readFileSync(theLab().serverPath(path));
    const [shebang, ...rest] = inServer(INSTALLED).toString().split('\n');
    assert.equal(shebang, '#!/usr/bin/node', 'the installed bundle names its node by absolute path');
    assert.equal(
      rest.join('\n'),
      readFileSync(BUNDLE, 'utf8').split('\n').slice(1).join('\n'),
      'the bundle, byte for byte after its first line',
    );
    assert.equal(inServer(UNIT).toString(), systemdUnit('/usr/bin/node', INSTALLED));
    assert.equal(
      inServer(CONFIG).toString(),
      readFileSync(join(REPO, 'docs', 'moshwall.example.toml'), 'utf8'),
    );
    assert.deepEqual(JSON.parse(inServer(MANIFEST).toString()), {
      version: 1,
      paths: [INSTALLED, MODULE_MARKER, COMMAND, PERL_SHIM, SHIM, UNIT],
      configCreated: true,
    });
    const version = await installed(['--version']);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  });

  test('a mosh-server over ssh goes through the installed shim; MOSH CONNECT comes after the rule', async () => {
    const daemon = await theLab().startServer([COMMAND, '--verbose', 'daemon']);
    const log = () => daemon.output().stderr;
    try {
      assert.ok(
        await waitUntil(() => /^debug reconciled /m.test(log()), 15_000),
        `daemon not ready:\n${log()}`,
      );
      // ssh returns once mosh-server has printed MOSH CONNECT: the rule must be there already.
      const server = await mosh(60101);
      assert.deepEqual(
        await ours(),
        expectedOurs([[60101, 'v4']]),
        'rule in place when MOSH CONNECT arrived',
      );
      assert.match(log(), /^info request-served port=60101 state=open$/m, 'the shim asked the daemon');
      assert.equal(
        readlinkSync(`/proc/${server.pid}/exe`),
        '/usr/bin/mosh-server',
        'the shim ran the real one',
      );
      assert.equal(await theLab().udpReachable(60101, 'v4'), true);
      await endSessions();
      assert.ok(
        await waitUntil(async () => (await ours()).length === 0, 10_000),
        'closed when the session ended',
      );
    } finally {
      await endSessions();
      await theLab().killServerProcess(daemon.pid);
    }
    assert.deepEqual(await admins(), adminRules);
  });

  test('install --sudoers: alice may run exactly `sudo -n moshwall hook`, which opens the next port', async (t) => {
    const before = listing();
    const result = await bundle(['install', '--sudoers']);
    assert.equal(result.exitCode, 0, shown(result));
    assert.match(result.stdout, new RegExp(`^note: ${CONFIG} exists: kept as it is$`, 'm'));
    const { added, removed, changed } = changes(before, listing());
    assert.deepEqual({ added, removed }, { added: { [SUDOERS]: 'file 440 0:0' }, removed: [] });
    assert.ok(
      changed.every((path) => [INSTALLED, UNIT, MANIFEST].includes(path)),
      `rewritten: ${changed.join(', ')}`,
    );
    assert.equal(
      readFileSync(theLab().serverPath(SUDOERS), 'utf8')
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('#'))
        .join('\n'),
      [
        `Defaults!${COMMAND} secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", env_reset, !setenv`,
        `ALL ALL=(root) NOPASSWD: ${COMMAND} hook`,
      ].join('\n'),
    );
    const allowed = await theLab().ssh('alice', ['sudo', '-n', '-l']);
    assert.match(allowed.stdout, new RegExp(`\\(root\\) NOPASSWD: ${COMMAND} hook$`, 'm'), shown(allowed));

    // A session started before the hook: nothing opens its port (no daemon, no hook yet).
    await mosh(60111, '/usr/bin/mosh-server');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(await ours(), []);

    const begun = performance.now();
    const hook = await theLab().ssh('alice', ['sudo', '-n', COMMAND, 'hook']);
    const tookMs = performance.now() - begun;
    assert.equal(hook.exitCode, 0, shown(hook));
    assert.ok(
      tookMs < 5000,
      `sudo -n moshwall hook over ssh took ${tookMs.toFixed(0)} ms: it must return at once`,
    );
    t.diagnostic(`ssh + sudo -n moshwall hook returned in ${tookMs.toFixed(0)} ms`);
    await mosh(60112, '/usr/bin/mosh-server');
    assert.ok(
      await waitUntil(async () => (await ours()).length === 2, 5000),
      `the watcher opened nothing: ${JSON.stringify(await ours())}`,
    );
    assert.deepEqual(
      await ours(),
      expectedOurs([
        [60111, 'v4'],
        [60112, 'v4'],
      ]),
    );
    assert.equal(await theLab().udpReachable(60112, 'v4'), true);

    // Nothing else: not flush, not the watcher itself, not the hook with other arguments.
    const rules = await ours();
    for (const argv of [['flush'], ['hook', '--watch'], ['--config', '/tmp/x.toml', 'hook'], ['sync']]) {
      const refused = await theLab().ssh('alice', ['sudo', '-n', COMMAND, ...argv]);
      assert.equal(refused.exitCode, 1, `sudo -n moshwall ${argv.join(' ')}: ${shown(refused)}`);
      assert.match(refused.stderr, /sudo: a password is required/);
    }
    assert.deepEqual(await ours(), rules, 'the refused commands changed nothing');
    for (const pid of watchers()) await theLab().killServerProcess(pid);
    await endSessions();
    assert.equal((await installed(['flush'])).exitCode, 0);
  });

  test("`PATH=evil:$PATH sudo -n moshwall hook` never runs the caller's node, even without sudo's secure_path", async () => {
    const alice = theLab().users.find((user) => user.name === 'alice');
    assert.ok(alice, 'the lab has alice');
    const evil = `${alice.home}/evil`;
    const marker = `${alice.home}/evil-node-ran`;
    const made = await theLab().runServer(
      [
        'sh',
        '-c',
        `mkdir -p ${evil} && printf '#!/bin/sh\\nid -u > ${marker}\\n' > ${evil}/node && chmod 755 ${evil}/node`,
      ],
      { user: 'alice' },
    );
    assert.equal(made.exitCode, 0, shown(made));
    // As Arch and Gentoo ship it: no secure_path, so sudo would keep the caller's PATH.
    const sudoers = theLab().serverPath('/etc/sudoers');
    const original = readFileSync(sudoers, 'utf8');
    writeFileSync(sudoers, original.replace(/^Defaults\s+secure_path=/m, '# Defaults secure_path='));
    try {
      assert.doesNotMatch(readFileSync(sudoers, 'utf8'), /^Defaults\s+secure_path/m);
      const hook = await theLab().ssh('alice', [
        'env',
        `PATH=${evil}:/usr/local/bin:/usr/bin:/bin`,
        'sudo',
        '-n',
        COMMAND,
        'hook',
      ]);
      assert.equal(hook.exitCode, 0, shown(hook));
      assert.equal(
        existsSync(theLab().serverPath(marker)),
        false,
        `alice's node ran as uid ${existsSync(theLab().serverPath(marker)) ? readFileSync(theLab().serverPath(marker), 'utf8').trim() : '?'}`,
      );
      assert.ok(await waitUntil(() => watchers().length === 1, 10_000), 'the real node started the watcher');
      const listed = await theLab().ssh('alice', ['sudo', '-n', '-l']);
      assert.match(listed.stdout, new RegExp(`Defaults!${COMMAND} secure_path=`), shown(listed));
    } finally {
      writeFileSync(sudoers, original);
      for (const pid of watchers()) await theLab().killServerProcess(pid);
    }
  });

  test('40 concurrent `sudo -n moshwall hook`: all return 0 quietly, one watcher, no flock left', async () => {
    const hooks = await Promise.all(
      Array.from({ length: 40 }, () =>
        theLab().runServer(['sudo', '-n', COMMAND, 'hook'], { user: 'alice', timeoutMs: 120_000 }),
      ),
    );
    for (const [index, hook] of hooks.entries()) {
      assert.equal(hook.exitCode, 0, `hook #${index + 1}: ${shown(hook)}`);
      assert.equal(hook.stderr, '', `hook #${index + 1} wrote into the login: ${hook.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    try {
      assert.equal(watchers().length, 1, `watchers: ${watchers().join(', ')}`);
      const flocks = await theLab().runServer(['pgrep', '-c', '-x', 'flock']);
      assert.equal(flocks.stdout.trim(), '0', 'no flock process left waiting');
      const leftovers = readdirSync(theLab().serverPath('/run/moshwall/lock.d')).filter((name) =>
        name.endsWith('.new'),
      );
      assert.deepEqual(leftovers, [], 'no temporary deadline file left');
    } finally {
      for (const pid of watchers()) await theLab().killServerProcess(pid);
    }
  });

  test("the hook's watcher runs at nice 0 with the limits it needs, whatever the login's ulimit and nice", async (t) => {
    // Soft limits, as a user's profile might lower them; a lowered hard limit needs CAP_SYS_RESOURCE to
    // raise, which root has on a real host (checked below when this machine's root has it too).
    const hardToo = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    const canRaiseHard = hardToo?.[1] !== undefined && (BigInt(`0x${hardToo[1]}`) & (1n << 24n)) !== 0n;
    if (!canRaiseHard) t.diagnostic('this machine lacks CAP_SYS_RESOURCE: only soft limits are tested');
    const ulimits = canRaiseHard ? 'ulimit -t 3 && ulimit -n 64' : 'ulimit -S -t 3 && ulimit -S -n 64';
    const hook = await theLab().runServer(
      ['sh', '-c', `${ulimits} && exec nice -n 15 sudo -n ${COMMAND} hook`],
      { user: 'alice' },
    );
    assert.equal(hook.exitCode, 0, shown(hook));
    try {
      assert.ok(await waitUntil(() => watchers().length === 1, 10_000), 'one watcher started');
      const [watcher] = watchers();
      assert.ok(watcher !== undefined);
      // The watcher raises its own limits as it starts.
      const limitsOf = () => readFileSync(`/proc/${watcher}/limits`, 'utf8');
      assert.ok(
        await waitUntil(() => /^Max cpu time\s+unlimited/m.test(limitsOf()), 10_000),
        `the CPU limit stayed: ${limitsOf()}`,
      );
      const files = /^Max open files\s+(\d+)\s+(\d+)/m.exec(limitsOf());
      assert.ok(files && Number(files[1]) >= 4096, `open files: ${limitsOf()}`);
      if (canRaiseHard) assert.ok(files && Number(files[2]) >= 4096, `hard open files: ${limitsOf()}`);
      const stat = readFileSync(`/proc/${watcher}/stat`, 'utf8');
      const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      assert.equal(nice, 0, 'nice value of the watcher');
    } finally {
      for (const pid of watchers()) await theLab().killServerProcess(pid);
    }
  });

  test('a bundle, directory or config others can write: every root command exits 7 and changes nothing', async () => {
    await mosh(60121, '/usr/bin/mosh-server');
    assert.deepEqual(await ours(), []);
    const tamperings: Array<[string, string[], string[], RegExp]> = [
      [
        'the bundle group-writable',
        ['chmod', '775', INSTALLED],
        ['chmod', '755', INSTALLED],
        /moshwall .* is writable by group/,
      ],
      [
        'its directory writable by others',
        ['chmod', '757', LIB],
        ['chmod', '755', LIB],
        /directory \/usr\/local\/lib\/moshwall is writable by others/,
      ],
      [
        'the config group-writable',
        ['chmod', '664', CONFIG],
        ['chmod', '644', CONFIG],
        /config file \/etc\/moshwall\/moshwall\.toml is writable by group/,
      ],
      [
        'the bundle owned by alice',
        ['chown', 'alice', INSTALLED],
        ['chown', 'root', INSTALLED],
        /is owned by uid \d+, not root/,
      ],
    ];
    for (const [what, tamper, restore, reason] of tamperings) {
      assert.equal((await theLab().runServer(tamper)).exitCode, 0, what);
      try {
        const before = listing(true);
        const rules = await theLab().ufwTuples();
        for (const name of ROOT_COMMANDS) {
          const refused = await installed([name]);
          assert.equal(refused.exitCode, 7, `${what}: moshwall ${name}: ${shown(refused)}`);
          assert.match(refused.stderr, /refusing to run as root: /);
          assert.match(refused.stderr, reason, `${what}: moshwall ${name}`);
        }
        const viaSudo = await theLab().ssh('alice', ['sudo', '-n', COMMAND, 'hook']);
        assert.equal(viaSudo.exitCode, 7, `${what}: alice's sudo hook: ${shown(viaSudo)}`);
        assert.deepEqual(changes(before, listing(true)), { added: {}, removed: [], changed: [] }, what);
        assert.deepEqual(await theLab().ufwTuples(), rules, `${what}: the firewall is unchanged`);
        assert.deepEqual(watchers(), [], `${what}: no watcher started`);
      } finally {
        await theLab().runServer(restore);
      }
      const control = await installed(['status']);
      assert.equal(control.exitCode, 0, `after restoring ${what}: ${shown(control)}`);
    }
    // The refusals were what kept the session's port closed.
    assert.equal((await installed(['sync'])).exitCode, 0);
    assert.deepEqual(await ours(), expectedOurs([[60121, 'v4']]));
  });

  test('a node others can write runs no root command, and install refuses it', async () => {
    // A node of the admin's own, then made group-writable: as unsafe as a moshwall others can write.
    const node = '/usr/local/bin/mwlab-node';
    assert.equal((await theLab().runServer(['cp', '/usr/bin/node', node])).exitCode, 0);
    try {
      assert.equal((await theLab().runServer([node, COMMAND, 'status'])).exitCode, 0, 'a safe copy runs');
      assert.equal((await theLab().runServer(['chmod', '775', node])).exitCode, 0);
      const before = listing(true);
      const refused = await theLab().runServer([node, COMMAND, 'sync']);
      assert.equal(refused.exitCode, 7, shown(refused));
      assert.match(
        refused.stderr,
        /refusing to run as root: node \/usr\/local\/bin\/mwlab-node is writable by group/,
      );
      const install = await theLab().runServer([node, BUNDLE, 'install']);
      assert.equal(install.exitCode, 7, shown(install));
      assert.match(install.stderr, /node \/usr\/local\/bin\/mwlab-node is writable by group/);
      assert.deepEqual(changes(before, listing(true)), { added: {}, removed: [], changed: [] });
    } finally {
      await theLab().runServer(['rm', '-f', node]);
    }
  });

  test('install --ptrace-scope: never by default, refused without Yama, the file in the lab only, applied only when asked', async () => {
    const hostScope = readTextOrUndefined('/proc/sys/kernel/yama/ptrace_scope');
    const ptraceOf = async () => {
      const doctor = await installed(['doctor', '--json']);
      const findings = (JSON.parse(doctor.stdout) as { findings: Array<Record<string, string>> }).findings;
      const status = await installed(['status', '--json']);
      assert.equal(status.exitCode, 0, shown(status));
      return {
        finding: findings.find((finding) => finding.check === 'ptrace'),
        status: (JSON.parse(status.stdout) as { ptrace: Record<string, unknown> }).ptrace,
      };
    };
    assert.equal(
      existsSync(theLab().serverPath(PTRACE_CONF)),
      false,
      'install without the option wrote none',
    );
    // This machine's own kernel, as it is.
    const real = await ptraceOf();
    assert.equal(real.status.yamaPtraceScope, hostScope === undefined ? null : Number(hostScope));
    if (hostScope === undefined || Number(hostScope) < 2) {
      assert.equal(real.finding?.level, 'warn');
      assert.match(
        real.finding?.fix ?? '',
        hostScope === undefined
          ? /use a kernel with Yama/
          : /kernel\.yama\.ptrace_scope = 2.*no longer debug their own processes/,
      );
    }
    if (hostScope === undefined) {
      const before = listing(true);
      const refused = await bundle(['install', '--sudoers', '--ptrace-scope']);
      assert.equal(refused.exitCode, 1, shown(refused));
      assert.match(refused.stderr, /this kernel has no Yama.*install without it/);
      assert.deepEqual(changes(before, listing(true)), { added: {}, removed: [], changed: [] });
    }
    // A Yama of the lab's own: a tmpfs over /proc/sys/kernel in the server host's mount namespace only,
    // so `sysctl -p` below writes a file there and never this machine's kernel.
    const mounted = await theLab().runServer([
      'sh',
      '-c',
      'mount -t tmpfs -o size=1m mwlab-yama /proc/sys/kernel && mkdir /proc/sys/kernel/yama && echo 1 > /proc/sys/kernel/yama/ptrace_scope',
    ]);
    assert.equal(mounted.exitCode, 0, shown(mounted));
    try {
      const labScope = async () =>
        (await theLab().runServer(['cat', '/proc/sys/kernel/yama/ptrace_scope'])).stdout.trim();
      const one = await ptraceOf();
      assert.equal(one.finding?.level, 'warn');
      assert.match(one.finding?.message ?? '', /ptrace_scope is 1 \(1 is not enough/);
      assert.deepEqual(one.status, {
        yamaPtraceScope: 1,
        injectionBlocked: false,
        detail: one.status.detail,
      });

      const written = await bundle(['install', '--sudoers', '--ptrace-scope']);
      assert.equal(written.exitCode, 0, shown(written));
      assert.equal(await labScope(), '1', '--ptrace-scope alone changes nothing now');
      const conf = lstatSync(theLab().serverPath(PTRACE_CONF));
      assert.equal(`${(conf.mode & 0o7777).toString(8)} ${conf.uid}:${conf.gid}`, '644 0:0');
      assert.match(
        readFileSync(theLab().serverPath(PTRACE_CONF), 'utf8'),
        /^kernel\.yama\.ptrace_scope = 2$/m,
      );

      const applied = await bundle(['install', '--sudoers', '--apply-ptrace-scope']);
      assert.equal(applied.exitCode, 0, shown(applied));
      assert.match(applied.stdout, new RegExp(`^run sysctl -p ${PTRACE_CONF}$`, 'm'));
      assert.equal(await labScope(), '2', '--apply-ptrace-scope set it');
      const two = await ptraceOf();
      assert.equal(two.finding?.level, 'ok');
      assert.equal(two.status.injectionBlocked, true);
    } finally {
      await theLab().runServer(['umount', '/proc/sys/kernel']);
    }
    assert.equal(
      readTextOrUndefined('/proc/sys/kernel/yama/ptrace_scope'),
      hostScope,
      "this machine's kernel unchanged",
    );
  });

  test('uninstall removes exactly what install made and our rules, and keeps the config', async () => {
    assert.deepEqual(await ours(), expectedOurs([[60121, 'v4']]), 'a rule of ours to remove');
    const before = listing(true);
    const dryRun = await installed(['uninstall', '--dry-run']);
    assert.equal(dryRun.exitCode, 0, shown(dryRun));
    for (const path of [COMMAND, PERL_SHIM, SHIM, UNIT, SUDOERS, PTRACE_CONF, MANIFEST, INSTALLED]) {
      assert.match(dryRun.stdout, new RegExp(`^would rm ${path} `, 'm'), dryRun.stdout);
    }
    assert.match(dryRun.stdout, /^would remove every firewall rule of ours/m);
    assert.deepEqual(changes(before, listing(true)), { added: {}, removed: [], changed: [] });
    assert.deepEqual(await ours(), expectedOurs([[60121, 'v4']]));

    const result = await installed(['uninstall']);
    assert.equal(result.exitCode, 0, shown(result));
    assert.match(result.stdout, /^removed 1 firewall rule\(s\) of ours$/m);
    assert.deepEqual(await ours(), []);
    assert.deepEqual(await admins(), adminRules);
    assert.deepEqual(changes(pristine, listing()), {
      added: { '/etc/moshwall': 'dir 755 0:0', [CONFIG]: 'file 644 0:0' },
      removed: [],
      changed: [],
    });
    await endSessions();
  });

  test('install then uninstall --purge leaves /etc and /usr/local as they were', async () => {
    const reinstalled = await bundle(['install']);
    assert.equal(reinstalled.exitCode, 0, shown(reinstalled));
    const purged = await installed(['uninstall', '--purge']);
    assert.equal(purged.exitCode, 0, shown(purged));
    assert.deepEqual(changes(pristine, listing()), { added: {}, removed: [], changed: [] });
    assert.deepEqual(await ours(), []);
    assert.deepEqual(await admins(), adminRules);
  });
});
