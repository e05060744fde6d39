import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkGenuine, createGenuineCache, type GenuineVerdict } from '../../../src/discovery/genuine.ts';
import { createFakeProc, type FakeFacts, type FakeProc } from './fake-proc.ts';
import { fixture, type LabProcess, labNodes, linksOf, pidOf } from './lab.ts';

const OPTIONS = { serverNames: ['mosh-server'] };
const ROOT_FILE: FakeFacts = { uid: 0, gid: 0, mode: 0o755, isFile: true, isDirectory: false };
const ROOT_DIR: FakeFacts = { uid: 0, gid: 0, mode: 0o755, isFile: false, isDirectory: true };

/** The tracer pid recorded in the traced capture (read with a regex, not the parser under test). */
const TRACER = Number(/^TracerPid:\s*(\d+)$/m.exec(fixture('lab/pid/traced/status'))?.[1]);

/** A fake with the whole lab, and the verdict on one lab process after an optional edit. */
function verdictFor(
  name: LabProcess,
  edit: (fake: FakeProc, pid: number) => void = () => {},
): GenuineVerdict {
  const fake = createFakeProc(labNodes());
  const pid = pidOf(name);
  edit(fake, pid);
  return checkGenuine(pid, fake.reader, OPTIONS);
}

/** The map_files path of the first executable mapping of a lab process whose pathname ends so. */
function mapFilesOf(name: LabProcess, pathEnd: string): string {
  const line = fixture(`lab/pid/${name}/maps`)
    .split('\n')
    .find((candidate) => candidate.includes(' r-xp ') && candidate.endsWith(pathEnd));
  const [start, end] = (line ?? '').split(' ')[0]?.split('-') ?? [];
  return `/proc/${pidOf(name)}/map_files/${start?.replace(/^0+/, '')}-${end?.replace(/^0+/, '')}`;
}

describe('checkGenuine on the real lab captures', () => {
  const cases: [LabProcess, GenuineVerdict][] = [
    ['mosh-v4', { genuine: true, exe: '/usr/bin/mosh-server' }],
    ['mosh-v6', { genuine: true, exe: '/usr/bin/mosh-server' }],
    ['deleted', { genuine: true, exe: '/opt/mosh/bin/mosh-server (deleted)' }],
    [
      'user-copy',
      {
        genuine: false,
        vanished: false,
        exe: '/home/cloudsdk/mosh-server',
        reason: 'executable /home/cloudsdk/mosh-server is owned by uid 1000, not root',
      },
    ],
    [
      'preload',
      {
        genuine: false,
        vanished: false,
        exe: '/usr/bin/mosh-server',
        reason: 'mapped library /home/cloudsdk/libx.so is owned by uid 1000, not root',
      },
    ],
    [
      'traced',
      { genuine: false, vanished: false, exe: '/usr/bin/mosh-server', reason: `traced by pid ${TRACER}` },
    ],
    [
      'impostor',
      {
        genuine: false,
        vanished: false,
        exe: '/usr/bin/python3.11',
        reason: 'executable /usr/bin/python3.11 is not named mosh-server',
      },
    ],
  ];
  for (const [name, expected] of cases) {
    it(`${name}: ${expected.genuine ? 'genuine' : expected.reason}`, () => {
      assert.deepEqual(verdictFor(name), expected);
    });
  }

  it('checks the mappings of a non-PIE binary through unpadded map_files names (real python capture)', () => {
    const fake = createFakeProc(labNodes());
    const pid = pidOf('impostor');
    assert.deepEqual(checkGenuine(pid, fake.reader, { serverNames: ['python3.11'] }), {
      genuine: true,
      exe: '/usr/bin/python3.11',
    });
    assert.ok(fake.calls.includes(`stat /proc/${pid}/map_files/41f000-6d2000`));
  });
});

describe('checkGenuine refusals from edited captures', () => {
  const cases: [string, LabProcess, (fake: FakeProc, pid: number) => void, string][] = [
    [
      'named mosh-server but exe is socat',
      'mosh-v4',
      (fake, pid) => fake.set(`/proc/${pid}/exe`, { link: '/usr/bin/socat' }),
      'executable /usr/bin/socat is not named mosh-server',
    ],
    [
      'exe writable by others',
      'mosh-v4',
      (fake, pid) => fake.set(`/proc/${pid}/exe`, { facts: { ...ROOT_FILE, mode: 0o757 } }),
      'executable /usr/bin/mosh-server is writable by others',
    ],
    [
      'exe writable by group and others',
      'mosh-v4',
      (fake, pid) => fake.set(`/proc/${pid}/exe`, { facts: { ...ROOT_FILE, mode: 0o777 } }),
      'executable /usr/bin/mosh-server is writable by group and others',
    ],
    [
      'exe not a regular file',
      'mosh-v4',
      (fake, pid) => fake.set(`/proc/${pid}/exe`, { facts: { ...ROOT_FILE, isFile: false } }),
      'executable /usr/bin/mosh-server is not a regular file',
    ],
    [
      'exe in a directory writable by others',
      'mosh-v4',
      (fake) => fake.set('/usr/bin', { facts: { ...ROOT_DIR, mode: 0o757 } }),
      'directory /usr/bin is writable by others',
    ],
    [
      'exe in a world-writable sticky directory like /tmp',
      'mosh-v4',
      (fake) => fake.set('/usr/bin', { facts: { ...ROOT_DIR, mode: 0o1777 } }),
      'directory /usr/bin is writable by group and others',
    ],
    [
      'exe under a user-owned directory',
      'mosh-v4',
      (fake) => fake.set('/usr', { facts: { ...ROOT_DIR, uid: 1001 } }),
      'directory /usr is owned by uid 1001, not root',
    ],
    [
      'root directory group-writable',
      'mosh-v4',
      (fake) => fake.set('/', { facts: { ...ROOT_DIR, mode: 0o775 } }),
      'directory / is writable by group',
    ],
    [
      'deleted exe whose directory became world-writable',
      'deleted',
      (fake) => fake.set('/opt/mosh', { facts: { ...ROOT_DIR, mode: 0o777 } }),
      'directory /opt/mosh is writable by group and others',
    ],
    [
      'mapped library writable by group',
      'mosh-v4',
      (fake) => fake.set(mapFilesOf('mosh-v4', 'libc.so.6'), { facts: { ...ROOT_FILE, mode: 0o664 } }),
      'mapped library /usr/lib/x86_64-linux-gnu/libc.so.6 is writable by group',
    ],
    [
      'mapped library in a user-owned directory',
      'mosh-v4',
      (fake) => fake.set('/usr/lib/x86_64-linux-gnu', { facts: { ...ROOT_DIR, uid: 1000 } }),
      'directory /usr/lib/x86_64-linux-gnu is owned by uid 1000, not root',
    ],
  ];
  for (const [name, process, edit, reason] of cases) {
    it(`${name} → "${reason}"`, () => {
      const verdict = verdictFor(process, edit);
      assert.equal(verdict.genuine, false);
      assert.equal(verdict.genuine === false && verdict.reason, reason);
      assert.equal(verdict.genuine === false && verdict.vanished, false);
    });
  }

  it('judges the directories of the exe itself, not only those of its mappings', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => {
      fake.set(`/proc/${pid}/maps`, { text: '' });
      fake.set('/usr/bin', { facts: { ...ROOT_DIR, mode: 0o757 } });
    });
    assert.equal(verdict.genuine === false && verdict.reason, 'directory /usr/bin is writable by others');
  });

  for (const exe of [
    '/usr/bin/mosh-server2',
    '/usr/bin/not-mosh-server',
    '/usr/bin/mosh-server.bak (deleted)',
  ]) {
    it(`refuses an exe whose basename only resembles mosh-server: ${exe}`, () => {
      const verdict = verdictFor('mosh-v4', (fake, pid) => fake.set(`/proc/${pid}/exe`, { link: exe }));
      assert.match(
        verdict.genuine === false ? verdict.reason : '',
        /^executable \S+ is not named mosh-server$/,
      );
    });
  }

  it('names every accepted server name in the reason', () => {
    const fake = createFakeProc(labNodes());
    const verdict = checkGenuine(pidOf('impostor'), fake.reader, {
      serverNames: ['mosh-server', 'mosh-server-real'],
    });
    assert.equal(
      verdict.genuine === false && verdict.reason,
      'executable /usr/bin/python3.11 is not named mosh-server or mosh-server-real',
    );
  });
});

describe('checkGenuine: what the binary is and where it lives (issue 10 #1)', () => {
  /** mosh-v4 as it looks after `unshare -Urm` + `mount --bind /usr/bin/socat /usr/bin/mosh-server`. */
  const boundOver = (fake: FakeProc, pid: number) => {
    fake.set(`/proc/${pid}/ns/user`, { link: 'user:[4026532999]' });
    fake.set(`/proc/${pid}/ns/mnt`, { link: 'mnt:[4026533000]' });
    fake.set(`/proc/${pid}/exe`, { facts: { ...ROOT_FILE, identity: '65024:2000001' } }); // socat
  };

  it('refuses a holder in a user namespace of its own (the bind-mount disguise), naming the key', () => {
    const verdict = verdictFor('mosh-v4', boundOver);
    assert.equal(
      verdict.genuine === false && verdict.reason,
      "runs in another user namespace (user:[4026532999]) than the host's; set allow_foreign_namespaces = true to accept such holders",
    );
  });

  it('refuses it even with allow_foreign_namespaces: the running file is not the one root sees there', () => {
    const fake = createFakeProc(labNodes());
    const pid = pidOf('mosh-v4');
    boundOver(fake, pid);
    const verdict = checkGenuine(pid, fake.reader, { ...OPTIONS, allowForeignNamespaces: true });
    assert.match(
      verdict.genuine === false ? verdict.reason : '',
      /^executable \/usr\/bin\/mosh-server is not the file root sees at that path \(device:inode 65024:2000001, not maps:fe:00:\d+: a bind mount or another mount namespace\)$/,
    );
  });

  it('refuses a holder in another mount namespace of the host user namespace unless configured', () => {
    const edit = (fake: FakeProc, pid: number) =>
      fake.set(`/proc/${pid}/ns/mnt`, { link: 'mnt:[4026533000]' });
    const verdict = verdictFor('mosh-v4', edit);
    assert.match(
      verdict.genuine === false ? verdict.reason : '',
      /^runs in another mount namespace \(mnt:\[4026533000\]\)/,
    );
    const fake = createFakeProc(labNodes());
    edit(fake, pidOf('mosh-v4'));
    assert.deepEqual(
      checkGenuine(pidOf('mosh-v4'), fake.reader, { ...OPTIONS, allowForeignNamespaces: true }),
      {
        genuine: true,
        exe: '/usr/bin/mosh-server',
      },
    );
  });

  it("accepts PID 1's mount namespace as the host's (the daemon under ProtectSystem= has its own)", () => {
    const verdict = verdictFor('mosh-v4', (fake) => {
      fake.set('/proc/1/ns/mnt', { link: linksOf('mosh-v4').get('ns/mnt') ?? '' });
      fake.set('/proc/self/ns/mnt', { link: 'mnt:[4026533111]' });
    });
    assert.deepEqual(verdict, { genuine: true, exe: '/usr/bin/mosh-server' });
  });

  it('refuses a library bound over a system one (same path, another file)', () => {
    const verdict = verdictFor('mosh-v4', (fake) =>
      fake.set('/usr/lib/x86_64-linux-gnu/libc.so.6', { facts: { ...ROOT_FILE, identity: 'another' } }),
    );
    assert.match(
      verdict.genuine === false ? verdict.reason : '',
      /^mapped library \/usr\/lib\/x86_64-linux-gnu\/libc.so.6 is not the file root sees at that path/,
    );
  });

  it('refuses an exe path root does not have at all', () => {
    const verdict = verdictFor('mosh-v4', (fake) => fake.remove('/usr/bin/mosh-server'));
    assert.equal(
      verdict.genuine === false && verdict.reason,
      'executable /usr/bin/mosh-server is not a file root sees at that path (ENOENT)',
    );
  });

  it('accepts a deleted exe (package upgrade) only from a holder in the host namespaces', () => {
    assert.equal(verdictFor('deleted').genuine, true);
    const fake = createFakeProc(labNodes());
    const pid = pidOf('deleted');
    fake.set(`/proc/${pid}/ns/mnt`, { link: 'mnt:[4026533000]' });
    const verdict = checkGenuine(pid, fake.reader, { ...OPTIONS, allowForeignNamespaces: true });
    assert.equal(
      verdict.genuine === false && verdict.reason,
      "executable /opt/mosh/bin/mosh-server was deleted and the holder is not in the host's namespaces",
    );
  });

  it("judges directories as root sees them here, not in the holder's tree", () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => {
      fake.set(`/proc/${pid}/root/usr/bin`, { facts: { ...ROOT_DIR, mode: 0o777 } }); // e.g. a chroot's
    });
    assert.deepEqual(verdict, { genuine: true, exe: '/usr/bin/mosh-server' });
  });
});

describe('checkGenuine when reads fail', () => {
  it('reports a process that exits mid-check as vanished, not refused', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => {
      fake.before(`/proc/${pid}/maps`, () => fake.remove(`/proc/${pid}`));
    });
    assert.deepEqual(verdict, {
      genuine: false,
      vanished: true,
      exe: '/usr/bin/mosh-server',
      reason: `pid ${pidOf('mosh-v4')} exited`,
    });
  });

  it('reports a pid already gone as vanished', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => fake.remove(`/proc/${pid}`));
    assert.equal(verdict.genuine === false && verdict.vanished, true);
  });

  it('treats ESRCH like ENOENT when the pid is gone', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => {
      fake.before(`/proc/${pid}/status`, () => fake.set(`/proc/${pid}`, { error: 'ESRCH' }));
    });
    assert.equal(verdict.genuine === false && verdict.vanished, true);
  });

  it('refuses (does not drop) a live pid whose file is missing', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => fake.remove(`/proc/${pid}/status`));
    assert.deepEqual(verdict, {
      genuine: false,
      vanished: false,
      exe: '/usr/bin/mosh-server',
      reason: `cannot verify pid ${pidOf('mosh-v4')}: /proc/${pidOf('mosh-v4')}/status does not exist`,
    });
  });

  for (const code of ['EACCES', 'EPERM']) {
    it(`refuses on ${code} with a hint to run as root`, () => {
      const verdict = verdictFor('mosh-v4', (fake, pid) => fake.set(`/proc/${pid}/maps`, { error: code }));
      assert.equal(
        verdict.genuine === false && verdict.reason,
        `cannot verify pid ${pidOf('mosh-v4')}: permission denied (moshwall must run as root)`,
      );
    });
  }

  it('refuses on EACCES at the very first read, with an empty exe', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => fake.set(`/proc/${pid}`, { error: 'EACCES' }));
    assert.deepEqual(verdict, {
      genuine: false,
      vanished: false,
      exe: '',
      reason: `cannot verify pid ${pidOf('mosh-v4')}: permission denied (moshwall must run as root)`,
    });
  });

  it('refuses on any other errno, naming the path and code', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => fake.set(`/proc/${pid}/maps`, { error: 'EIO' }));
    const pid = pidOf('mosh-v4');
    assert.equal(
      verdict.genuine === false && verdict.reason,
      `cannot verify pid ${pid}: reading /proc/${pid}/maps failed (EIO)`,
    );
  });

  it('refuses a process whose maps make no sense (edited capture)', () => {
    const verdict = verdictFor('mosh-v4', (fake, pid) => {
      fake.set(`/proc/${pid}/maps`, { text: fixture('edited/maps-bad-perms') });
    });
    assert.match(
      verdict.genuine === false ? verdict.reason : '',
      /^cannot verify pid \d+: Malformed mapping in line 3/,
    );
  });
});

describe('checkGenuine cache', () => {
  /** stat calls one check makes, with or without a cache warmed by mosh-v4. */
  function statsOfSecondCheck(shared: boolean): string[] {
    const fake = createFakeProc(labNodes());
    const cache = createGenuineCache();
    checkGenuine(pidOf('mosh-v4'), fake.reader, OPTIONS, cache);
    const before = fake.calls.length;
    const verdict = checkGenuine(
      pidOf('mosh-v6'),
      fake.reader,
      OPTIONS,
      shared ? cache : createGenuineCache(),
    );
    assert.equal(verdict.genuine, true);
    return fake.calls.slice(before).filter((call) => call.startsWith('stat '));
  }

  it('does not stat again a library or directory judged earlier in the scan', () => {
    const pid = pidOf('mosh-v6');
    assert.deepEqual(statsOfSecondCheck(true), [`stat /proc/${pid}/exe`]);
    const uncached = statsOfSecondCheck(false);
    assert.ok(uncached.some((call) => call.startsWith(`stat /proc/${pid}/map_files/`)));
    assert.ok(uncached.includes('stat /usr/bin'));
  });

  it('still refuses a library no other process mapped', () => {
    const fake = createFakeProc(labNodes());
    const cache = createGenuineCache();
    assert.equal(checkGenuine(pidOf('mosh-v4'), fake.reader, OPTIONS, cache).genuine, true);
    const verdict = checkGenuine(pidOf('preload'), fake.reader, OPTIONS, cache);
    assert.equal(
      verdict.genuine === false && verdict.reason,
      'mapped library /home/cloudsdk/libx.so is owned by uid 1000, not root',
    );
  });
});
