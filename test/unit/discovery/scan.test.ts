import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { scanSessions } from '../../../src/discovery/scan.ts';
import { ProcError } from '../../../src/errors.ts';
import type { ScanResult } from '../../../src/model.ts';
import { createFakeProc, type FakeProc } from './fake-proc.ts';
import { FIXTURES, fixture, LAB_PROCESSES, type LabProcess, labNodes, pidOf, socketOf } from './lab.ts';

const SERVER_NAMES = ['mosh-server'];
const MOSH_RANGE = { first: 60000, last: 61000 };
const TRACER = Number(/^TracerPid:\s*(\d+)$/m.exec(fixture('lab/pid/traced/status'))?.[1]);

/** A fake of the lab (all processes unless named), edited, and the scan of one range on it. */
function scan(
  range: { first: number; last: number },
  edit: (fake: FakeProc) => void = () => {},
  processes: readonly LabProcess[] = LAB_PROCESSES,
): { result: ScanResult; fake: FakeProc } {
  const fake = createFakeProc(labNodes(processes));
  edit(fake);
  return { result: scanSessions(fake.reader, { range, serverNames: SERVER_NAMES }), fake };
}

/** The range holding only one port. */
const only = (port: number) => ({ first: port, last: port });

describe('scanSessions over the real lab capture', () => {
  it('lists the lab processes the fixtures hold (meta)', () => {
    assert.deepEqual(readdirSync(join(FIXTURES, 'lab/pid')).sort(), [...LAB_PROCESSES].sort());
  });

  it('finds the genuine sessions with every field and refuses every other holder in range', () => {
    const { result } = scan(MOSH_RANGE);
    assert.deepEqual(result, {
      sessions: [
        {
          pid: pidOf('mosh-v4'),
          uid: 0,
          user: 'root',
          gids: [0],
          port: 60777,
          family: 'v4',
          localAddress: '0.0.0.0',
          exe: '/usr/bin/mosh-server',
          startedAtMs: 1795511664110, // btime 1795510470 s + 119411 ticks at 100 Hz
          clientAddress: '203.0.113.7',
        },
        {
          pid: pidOf('mosh-v6'),
          uid: 1000,
          user: 'cloudsdk',
          gids: [1000],
          port: 60778,
          family: 'v6',
          localAddress: '2001:db8::1',
          exe: '/usr/bin/mosh-server',
          startedAtMs: 1795511664120,
          clientAddress: '2001:db8::99',
        },
        {
          pid: pidOf('deleted'),
          uid: 0,
          user: 'root',
          gids: [0],
          port: 60782,
          family: 'v4',
          localAddress: '0.0.0.0',
          exe: '/opt/mosh/bin/mosh-server (deleted)',
          startedAtMs: 1795511664160,
        },
      ],
      refused: [
        {
          pid: pidOf('user-copy'),
          uid: 1000,
          user: 'cloudsdk',
          port: 60779,
          family: 'v4',
          localAddress: '0.0.0.0',
          exe: '/home/cloudsdk/mosh-server',
          reason: 'executable /home/cloudsdk/mosh-server is owned by uid 1000, not root',
        },
        {
          pid: pidOf('preload'),
          uid: 1000,
          user: 'cloudsdk',
          port: 60780,
          family: 'v4',
          localAddress: '0.0.0.0',
          exe: '/usr/bin/mosh-server',
          reason: 'mapped library /home/cloudsdk/libx.so is owned by uid 1000, not root',
        },
        {
          pid: pidOf('traced'),
          uid: 0,
          user: 'root',
          port: 60781,
          family: 'v4',
          localAddress: '0.0.0.0',
          exe: '/usr/bin/mosh-server',
          reason: `traced by pid ${TRACER}`,
        },
        {
          pid: pidOf('impostor'),
          uid: 0,
          user: 'root',
          port: 60783,
          family: 'v6',
          localAddress: '::1',
          exe: '/usr/bin/python3.11',
          reason: 'executable /usr/bin/python3.11 is not named mosh-server',
          unreachable: true,
        },
        {
          pid: pidOf('impostor'),
          uid: 0,
          user: 'root',
          port: 60784,
          family: 'v6',
          localAddress: '::ffff:192.0.2.1',
          exe: '/usr/bin/python3.11',
          reason: 'executable /usr/bin/python3.11 is not named mosh-server',
        },
      ],
      uninspected: [],
    });
  });

  it('converts the start time with the given clock tick rate', () => {
    const fake = createFakeProc(labNodes());
    const result = scanSessions(fake.reader, {
      range: only(60777),
      serverNames: SERVER_NAMES,
      clockTicksPerSecond: 1000,
    });
    assert.equal(result.sessions[0]?.startedAtMs, 1795510470000 + 119411);
  });
});

describe('scanSessions refusals', () => {
  const cases: [string, LabProcess, number, (fake: FakeProc) => void, string][] = [
    [
      'named mosh-server but exe is /usr/bin/socat',
      'mosh-v4',
      60777,
      (fake) => fake.set(`/proc/${pidOf('mosh-v4')}/exe`, { link: '/usr/bin/socat' }),
      'executable /usr/bin/socat is not named mosh-server',
    ],
    [
      'user-owned exe (real capture)',
      'user-copy',
      60779,
      () => {},
      'executable /home/cloudsdk/mosh-server is owned by uid 1000, not root',
    ],
    [
      'exe in a world-writable directory',
      'mosh-v4',
      60777,
      (fake) =>
        fake.set('/usr/bin', { facts: { uid: 0, gid: 0, mode: 0o1777, isFile: false, isDirectory: true } }),
      'directory /usr/bin is writable by group and others',
    ],
    [
      'user-owned executable mapping via LD_PRELOAD (real capture)',
      'preload',
      60780,
      () => {},
      'mapped library /home/cloudsdk/libx.so is owned by uid 1000, not root',
    ],
    ['traced (real capture, strace attached)', 'traced', 60781, () => {}, `traced by pid ${TRACER}`],
  ];
  for (const [name, process, port, edit, reason] of cases) {
    it(`${name}: no session, refused with "${reason}"`, () => {
      const { result } = scan(only(port), edit);
      assert.deepEqual(result.sessions, []);
      assert.deepEqual(
        result.refused.map((holder) => [holder.pid, holder.port, holder.reason]),
        [[pidOf(process), port, reason]],
      );
    });
  }

  it('keeps a " (deleted)" exe (package upgrade) genuine', () => {
    const { result } = scan(only(60782));
    assert.deepEqual(
      result.sessions.map((session) => [session.pid, session.exe]),
      [[pidOf('deleted'), '/opt/mosh/bin/mosh-server (deleted)']],
    );
    assert.deepEqual(result.refused, []);
  });

  it('does not count a socket shared with a non-genuine process (SCM_RIGHTS, inheritance)', () => {
    const { result } = scan(only(60777), (fake) => {
      fake.set(`/proc/${pidOf('impostor')}/fd/9`, { link: `socket:[${socketOf('mosh-v4')}]` });
    });
    assert.deepEqual(result.sessions, []);
    assert.deepEqual(
      result.refused.map((holder) => [holder.pid, holder.port, holder.exe, holder.reason]),
      [
        [
          pidOf('impostor'),
          60777,
          '/usr/bin/python3.11',
          'executable /usr/bin/python3.11 is not named mosh-server',
        ],
      ],
    );
  });

  /** Makes the impostor look like libutempter's helper holding mosh-v4's socket, child of `parent`. */
  const asUtempterChild = (fake: FakeProc, parent: number) => {
    const pid = pidOf('impostor');
    const helper = '/usr/lib/x86_64-linux-gnu/utempter/utempter';
    const root = { uid: 0, gid: 0, isFile: false, isDirectory: true, mode: 0o755 };
    const file = { uid: 0, gid: 0, isFile: true, isDirectory: false, mode: 0o2755, identity: 'utempter' };
    fake.set(`/proc/${pid}/exe`, { link: helper, facts: file });
    fake.set(helper, { facts: file });
    fake.set('/usr/lib/x86_64-linux-gnu/utempter', { facts: root });
    fake.set(`/proc/${pid}/fd/9`, { link: `socket:[${socketOf('mosh-v4')}]` });
    const status = fixture('lab/pid/impostor/status').replace(/^PPid:\s*\d+$/m, `PPid:\t${parent}`);
    fake.set(`/proc/${pid}/status`, { text: status });
  };

  it("does not hold mosh-server's own utempter helper (root-only, its child) against the session", () => {
    const { result } = scan(only(60777), (fake) => asUtempterChild(fake, pidOf('mosh-v4')));
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v4')],
    );
    assert.deepEqual(result.refused, []);
  });

  it('refuses a utempter holding the socket that a genuine holder did not start', () => {
    const { result } = scan(only(60777), (fake) => asUtempterChild(fake, 1));
    assert.deepEqual(result.sessions, []);
    assert.match(result.refused[0]?.reason ?? '', /is not named mosh-server/);
  });

  it('counts a socket shared by genuine processes once, under the lowest pid', () => {
    const { result } = scan(only(60777), (fake) => {
      fake.set(`/proc/${pidOf('deleted')}/fd/9`, { link: `socket:[${socketOf('mosh-v4')}]` });
    });
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [Math.min(pidOf('mosh-v4'), pidOf('deleted'))],
    );
  });

  it("falls to the next genuine holder when the first exits before its details are read (mosh-server's parent)", () => {
    const [first, second] = [pidOf('mosh-v4'), pidOf('deleted')].sort((a, b) => a - b);
    const { result } = scan(only(60777), (fake) => {
      fake.set(`/proc/${pidOf('deleted')}/fd/9`, { link: `socket:[${socketOf('mosh-v4')}]` });
      fake.before(`/proc/${first}/stat`, () => fake.remove(`/proc/${first}`));
    });
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [second],
    );
  });

  it('refuses a socket in range that no visible process holds (another pid namespace)', () => {
    const others = LAB_PROCESSES.filter((name) => name !== 'mosh-v4');
    const { result } = scan(only(60777), () => {}, others);
    assert.deepEqual(result, {
      sessions: [],
      refused: [
        {
          pid: 0,
          uid: 0,
          user: 'root',
          port: 60777,
          family: 'v4',
          localAddress: '0.0.0.0',
          exe: '',
          reason: `no process holding socket inode ${socketOf('mosh-v4')} was found`,
        },
      ],
      uninspected: [],
    });
  });

  it('refuses a holder it may not inspect, naming the cause', () => {
    const pid = pidOf('mosh-v4');
    const { result } = scan(only(60777), (fake) => fake.set(`/proc/${pid}/maps`, { error: 'EACCES' }));
    assert.equal(
      result.refused[0]?.reason,
      `cannot verify pid ${pid}: permission denied (moshwall must run as root)`,
    );
    assert.deepEqual(result.sessions, []);
  });
});

describe('scanSessions with processes that exit mid-scan', () => {
  const mosh = () => pidOf('mosh-v4');
  const cases: [string, (fake: FakeProc) => void][] = [
    ['during the check', (fake) => fake.before(`/proc/${mosh()}/maps`, () => fake.remove(`/proc/${mosh()}`))],
    [
      'before its details are read',
      (fake) => fake.before(`/proc/${mosh()}/stat`, () => fake.remove(`/proc/${mosh()}`)),
    ],
  ];
  for (const [when, edit] of cases) {
    it(`neither counts nor refuses a holder that exits ${when}`, () => {
      const { result } = scan({ first: 60777, last: 60778 }, edit);
      assert.deepEqual(
        result.sessions.map((session) => session.port),
        [60778],
      );
      assert.deepEqual(result.refused, []);
    });
  }

  it('skips a pid whose fd directory vanished during the walk', () => {
    const { result } = scan(only(60778), (fake) => {
      fake.before(`/proc/${pidOf('impostor')}/fd`, () => fake.remove(`/proc/${pidOf('impostor')}`));
    });
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v6')],
    );
  });

  it('skips an fd closed during the walk', () => {
    const pid = pidOf('mosh-v6');
    const { result } = scan(only(60778), (fake) => {
      fake.before(`/proc/${pid}/fd/3`, () => fake.remove(`/proc/${pid}/fd/3`));
    });
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pid],
    );
  });
});

describe('scanSessions and processes whose fds root may not read (issue 9: the host hid this)', () => {
  const blindRoot = pidOf('odd-comm');
  const blindUser = pidOf('preload');

  it('ignores a root process whose fd directory is closed to us (a container init) and still finds sessions', () => {
    const { result } = scan(only(60778), (fake) => fake.set(`/proc/${blindRoot}/fd`, { error: 'EACCES' }));
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v6')],
    );
    assert.deepEqual(result.uninspected, [
      {
        pid: blindRoot,
        uids: [0],
        root: true,
        exe: '/usr/bin/python3.11',
        path: `/proc/${blindRoot}/fd`,
        code: 'EACCES',
      },
    ]);
  });

  it('ignores a root process that lets us list its fds but not read them (PID 1 of a sandboxed VM)', () => {
    const { result } = scan({ first: 60777, last: 60778 }, (fake) => {
      fake.set(`/proc/${pidOf('mosh-v4')}/fd/3`, { error: 'EACCES' });
      fake.set(`/proc/${pidOf('mosh-v4')}/exe`, { error: 'EACCES' });
    });
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v6')],
    );
    assert.deepEqual(result.uninspected, [
      {
        pid: pidOf('mosh-v4'),
        uids: [0],
        root: true,
        exe: '',
        path: `/proc/${pidOf('mosh-v4')}/fd/3`,
        code: 'EACCES',
      },
    ]);
  });

  it("refuses every in-range socket of a non-root uninspected process's uid, and only those", () => {
    const { result } = scan({ first: 60777, last: 60778 }, (fake) =>
      fake.set(`/proc/${blindUser}/fd/0`, { error: 'EACCES' }),
    );
    assert.deepEqual(
      result.sessions.map((session) => [session.pid, session.port]),
      [[pidOf('mosh-v4'), 60777]],
    );
    assert.deepEqual(
      result.refused.map((holder) => [holder.pid, holder.port, holder.uid, holder.reason]),
      [
        [
          blindUser,
          60778,
          1000,
          `a holder could not be inspected: pid ${blindUser} (uid 1000) may hold this socket (uid 1000); reading /proc/${blindUser}/fd/0 failed (EACCES)`,
        ],
      ],
    );
    assert.equal(result.uninspected?.[0]?.root, false);
  });

  it("refuses every in-range socket when the uninspected process's uids cannot be read either", () => {
    const { result } = scan({ first: 60777, last: 60778 }, (fake) => {
      fake.set(`/proc/${blindUser}/fd`, { error: 'EIO' });
      fake.set(`/proc/${blindUser}/status`, { error: 'EACCES' });
    });
    assert.deepEqual(result.sessions, []);
    assert.deepEqual(
      result.refused.map((holder) => [holder.pid, holder.port]),
      [
        [blindUser, 60777],
        [blindUser, 60778],
      ],
    );
    assert.match(result.refused[0]?.reason ?? '', /pid \d+ \(uid unknown\).*failed \(EIO\)/);
  });

  it('forgets an uninspected process that exits before its status is read', () => {
    const { result } = scan(only(60778), (fake) => {
      fake.set(`/proc/${blindUser}/fd`, { error: 'EACCES' });
      fake.before(`/proc/${blindUser}/status`, () => fake.remove(`/proc/${blindUser}`));
    });
    assert.deepEqual(result.uninspected, []);
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v6')],
    );
  });
});

describe('scanSessions range and cheap path', () => {
  it('ignores sockets outside the range', () => {
    const { result } = scan(only(60777));
    assert.deepEqual(
      result.sessions.map((session) => session.port),
      [60777],
    );
    assert.deepEqual(result.refused, []);
  });

  it('does not walk the process table when no socket is in range', () => {
    const { result, fake } = scan({ first: 1000, last: 2000 });
    assert.deepEqual(result, { sessions: [], refused: [], uninspected: [] });
    assert.deepEqual(fake.calls, ['readText /proc/net/udp', 'readText /proc/net/udp6']);
  });

  it('includes both ends of the range', () => {
    const { result } = scan({ first: 60778, last: 60782 });
    assert.deepEqual(
      result.sessions.map((session) => session.port),
      [60778, 60782],
    );
  });
});

describe('scanSessions failures (a failed scan never reads as "no sessions")', () => {
  const failing: [string, (fake: FakeProc) => void, RegExp][] = [
    [
      '/proc/net/udp unreadable',
      (fake) => fake.set('/proc/net/udp', { error: 'EACCES' }),
      /Cannot read \/proc\/net\/udp \(EACCES\)/,
    ],
    [
      '/proc/net/udp missing',
      (fake) => fake.remove('/proc/net/udp'),
      /Cannot read \/proc\/net\/udp \(ENOENT\)/,
    ],
    [
      '/proc/net/udp6 unreadable',
      (fake) => fake.set('/proc/net/udp6', { error: 'EIO' }),
      /Cannot read \/proc\/net\/udp6 \(EIO\)/,
    ],
    [
      'a malformed line in /proc/net/udp (edited capture)',
      (fake) => fake.set('/proc/net/udp', { text: fixture('edited/udp-truncated-line') }),
      /Malformed line 3 of \/proc\/net\/udp: " 4611: 00000000:ED6B/,
    ],
    [
      '/proc/stat unreadable',
      (fake) => fake.set('/proc/stat', { error: 'EACCES' }),
      /Cannot read \/proc\/stat \(EACCES\)/,
    ],
    [
      '/etc/passwd unreadable',
      (fake) => fake.set('/etc/passwd', { error: 'EACCES' }),
      /Cannot read \/etc\/passwd \(EACCES\)/,
    ],
  ];
  for (const [name, edit, message] of failing) {
    it(`throws a ProcError when ${name}`, () => {
      assert.throws(
        () => scan(MOSH_RANGE, edit),
        (error: unknown) => error instanceof ProcError && message.test(error.message),
      );
    });
  }

  it('throws a ProcError when only the process table cannot be listed', () => {
    const { reader } = createFakeProc(labNodes());
    const failingList = {
      ...reader,
      listDir: (path: string) => (path === '/proc' ? fail(path) : reader.listDir(path)),
    };
    assert.throws(
      () => scanSessions(failingList, { range: MOSH_RANGE, serverNames: SERVER_NAMES }),
      (error: unknown) => error instanceof ProcError && /Cannot read \/proc \(EMFILE\)/.test(error.message),
    );
  });

  it('reads a missing /proc/net/udp6 as IPv6 switched off', () => {
    const { result } = scan(MOSH_RANGE, (fake) => fake.remove('/proc/net/udp6'));
    assert.deepEqual(
      result.sessions.map((session) => [session.port, session.family]),
      [
        [60777, 'v4'],
        [60782, 'v4'],
      ],
    );
  });
});

/** Throws an EMFILE errno error for path. */
function fail(path: string): never {
  throw Object.assign(new Error(`EMFILE: too many open files, scandir '${path}'`), { code: 'EMFILE' });
}

describe('scanSessions details', () => {
  it('names an unknown uid by its number', () => {
    const passwd = fixture('lab/etc/passwd').replace(/^cloudsdk:.*\n/m, '');
    const { result } = scan(only(60778), (fake) => fake.set('/etc/passwd', { text: passwd }));
    assert.equal(result.sessions[0]?.user, '1000');
  });

  it('names every uid by its number without /etc/passwd', () => {
    const { result } = scan(only(60777), (fake) => fake.remove('/etc/passwd'));
    assert.equal(result.sessions[0]?.user, '0');
  });

  it('still counts a session whose environment cannot be read, without a client address', () => {
    const pid = pidOf('mosh-v4');
    const { result } = scan(only(60777), (fake) => fake.set(`/proc/${pid}/environ`, { error: 'EACCES' }));
    assert.equal(result.sessions.length, 1);
    assert.equal('clientAddress' in (result.sessions[0] ?? {}), false);
  });

  it('omits a client address that is not an IP literal', () => {
    const pid = pidOf('mosh-v4');
    const { result } = scan(only(60777), (fake) => {
      fake.set(`/proc/${pid}/environ`, { text: 'SSH_CONNECTION=evil.example 1 192.0.2.1 22\0' });
    });
    assert.equal('clientAddress' in (result.sessions[0] ?? {}), false);
  });

  it('refuses a verified holder whose stat makes no sense (edited capture)', () => {
    const pid = pidOf('mosh-v4');
    const { result } = scan(only(60777), (fake) =>
      fake.set(`/proc/${pid}/stat`, { text: fixture('edited/stat-truncated') }),
    );
    assert.deepEqual(result.sessions, []);
    assert.match(
      result.refused[0]?.reason ?? '',
      new RegExp(`^cannot read pid ${pid}: Malformed stat in /proc/${pid}/stat`),
    );
  });

  it('lists gids primary first, then supplementary groups, without repeats', () => {
    const pid = pidOf('mosh-v6');
    const status = fixture('lab/pid/mosh-v6/status').replace(/^Groups:.*$/m, 'Groups:\t27 1000 100 ');
    const { result } = scan(only(60778), (fake) => fake.set(`/proc/${pid}/status`, { text: status }));
    assert.deepEqual(result.sessions[0]?.gids, [1000, 27, 100]);
  });
});

describe('scanSessions: refused holders outside traffic can reach (issue 10 #6)', () => {
  /** The impostor, moved onto 127.0.0.1:60777 next to mosh-v4 (0.0.0.0:60777), with route_localnet as given. */
  const squat = (routeLocalnet: string | undefined) => (fake: FakeProc) => {
    const udp = fixture('lab/net/udp').replace('0100007F:CF08', '0100007F:ED69');
    fake.set('/proc/net/udp', { text: udp });
    if (routeLocalnet !== undefined) {
      fake.set('/proc/sys/net/ipv4/conf/all/route_localnet', { text: '0\n' });
      fake.set('/proc/sys/net/ipv4/conf/eth0/route_localnet', { text: `${routeLocalnet}\n` });
    }
  };

  it('marks a loopback holder unreachable when no interface routes to loopback', () => {
    const { result } = scan(only(60777), squat('0'));
    assert.deepEqual(
      result.refused.map((holder) => [holder.pid, holder.localAddress, holder.unreachable]),
      [[pidOf('impostor'), '127.0.0.1', true]],
    );
  });

  it('does not when route_localnet is on somewhere, or cannot be read', () => {
    for (const edit of [squat('1'), squat(undefined)]) {
      const { result } = scan(only(60777), edit);
      assert.deepEqual(
        result.refused.map((holder) => [holder.pid, holder.unreachable]),
        [[pidOf('impostor'), undefined]],
      );
    }
  });
});

describe("scanSessions: holders hidden in a thread's own fd table (issue 10 #11)", () => {
  const holder = pidOf('user-copy'); // uid 1000, not genuine
  const tid = holder + 1;
  /** A second thread of `pid`, made without CLONE_FILES, whose own table holds mosh-v6's socket. */
  const hiddenThread = (pid: number) => (fake: FakeProc) => {
    fake.set(`/proc/${pid}/task/${pid}/fd/0`, { link: '/dev/null' });
    fake.set(`/proc/${pid}/task/${pid + 1}/fd/7`, { link: `socket:[${socketOf('mosh-v6')}]` });
  };

  it("refuses a session whose socket a non-root process holds only in a thread's table", () => {
    const { result } = scan(only(60778), hiddenThread(holder));
    assert.deepEqual(result.sessions, []);
    assert.deepEqual(
      result.refused.map((refused) => [refused.pid, refused.reason]),
      [[holder, 'executable /home/cloudsdk/mosh-server is owned by uid 1000, not root']],
    );
  });

  it('does not read the thread tables of a root process, nor of a single-threaded one', () => {
    const root = pidOf('odd-comm');
    const { result, fake } = scan(only(60778), (edit) => {
      hiddenThread(root)(edit);
      edit.set(`/proc/${holder}/task/${holder}/fd/0`, { link: '/dev/null' });
    });
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v6')],
    );
    assert.ok(
      !fake.calls.some((call) => call.includes('/task/') && call.includes('/fd')),
      fake.calls.join('\n'),
    );
  });

  it('records a process whose thread table cannot be read as uninspected', () => {
    const { result } = scan(only(60778), (fake) => {
      hiddenThread(holder)(fake);
      fake.set(`/proc/${holder}/task/${tid}/fd`, { error: 'EACCES' });
    });
    assert.deepEqual(
      result.uninspected?.map((blind) => [blind.pid, blind.path, blind.root]),
      [[holder, `/proc/${holder}/task/${tid}/fd`, false]],
    );
    assert.deepEqual(result.sessions, [], "mosh-v6's socket is uid 1000's, like the blind process");
  });
});

describe('scanSessions: sockets registered as io_uring fixed files (issue 10 #11)', () => {
  const holder = pidOf('user-copy');
  /** user-copy holds an io_uring (fd 9) whose fixed files are as given in its fdinfo. */
  const ring = (files: string) => (fake: FakeProc) => {
    fake.set(`/proc/${holder}/fd/9`, { link: 'anon_inode:[io_uring]' });
    fake.set(`/proc/${holder}/fdinfo/9`, { text: `pos:\t0\nflags:\t02000002\n${files}UserBufs:\t0\n` });
  };

  it("refuses a session whose socket sits in another process's ring (closed in its fd table)", () => {
    const files = `UserFiles:\t2\n    0: /dev/null\n    1: socket:[${socketOf('mosh-v6')}]\n`;
    const { result } = scan(only(60778), ring(files));
    assert.deepEqual(result.sessions, []);
    assert.deepEqual(
      result.refused.map((refused) => refused.pid),
      [holder],
    );
  });

  it('counts nothing from a ring without fixed files', () => {
    const { result } = scan(only(60778), ring('UserFiles:\t0\n'));
    assert.deepEqual(
      result.sessions.map((session) => session.pid),
      [pidOf('mosh-v6')],
    );
  });

  it('makes the process uninspected when the kernel keeps the listing short (ring lock busy)', () => {
    const { result } = scan(only(60778), ring('UserFiles:\t1\n'));
    assert.deepEqual(
      result.uninspected?.map((blind) => [blind.pid, blind.path, blind.code]),
      [[holder, `/proc/${holder}/fdinfo/9`, 'EBUSY']],
    );
    assert.deepEqual(result.sessions, []);
  });
});

describe('scanSessions: a mosh-server handed a second socket in the range (issue 10 #11)', () => {
  it('counts none of its sockets: another process may keep a copy /proc cannot show', () => {
    const pid = pidOf('mosh-v6');
    const { result } = scan({ first: 60777, last: 60778 }, (fake) => {
      fake.set(`/proc/${pid}/fd/9`, { link: `socket:[${socketOf('mosh-v4')}]` });
    });
    assert.deepEqual(result.sessions, []);
    assert.deepEqual(
      result.refused.map((holder) => [holder.port, holder.pid]),
      [
        [60777, pid],
        [60778, pid],
      ],
    );
    assert.equal(
      result.refused[1]?.reason,
      `mosh-server pid ${pid} holds 2 UDP sockets in the range; it binds one itself, so another process handed it the others and may keep a copy /proc cannot show`,
    );
  });
});

describe('scanSessions: a squatter on [::] with IPV6_V6ONLY (issue 10 #6)', () => {
  // The impostor's [::]:5353 socket moved to mosh-v4's port 60777 (mosh-v4 is on 0.0.0.0:60777).
  const moved = (fake: FakeProc) =>
    fake.set('/proc/net/udp6', { text: fixture('lab/net/udp6').replace(/(0{32}):14E9/, '$1:ED69') });
  const run = (v6Only: () => ReadonlySet<number>) => {
    const fake = createFakeProc(labNodes());
    moved(fake);
    return scanSessions(fake.reader, { range: only(60777), serverNames: SERVER_NAMES, v6Only });
  };

  it('marks it v6only when every "::" socket on that port is, and asks only then', () => {
    let asked = 0;
    const result = run(() => {
      asked += 1;
      return new Set([36216]);
    });
    assert.equal(asked, 1);
    assert.deepEqual(
      result.refused.map((holder) => [holder.localAddress, holder.v6only]),
      [['::', true]],
    );
  });

  it('leaves it dual-stack when it is not v6only or that cannot be known', () => {
    for (const v6Only of [
      () => new Set<number>(),
      () => {
        throw new Error('ss: not found');
      },
    ]) {
      assert.deepEqual(
        run(v6Only).refused.map((holder) => holder.v6only),
        [undefined],
      );
    }
  });
});

describe('scanSessions narrowed to one port (the shim quick path)', () => {
  it("sees only that port's sockets and walks only processes of the sockets' owners and root", () => {
    const port = 60777;
    const fake = createFakeProc(labNodes());
    const impostor = pidOf('impostor');
    // The impostor runs as another user: its /proc directory is theirs.
    fake.set(`/proc/${impostor}`, {
      facts: { uid: 4242, gid: 4242, mode: 0o555, isFile: false, isDirectory: true },
    });
    const result = scanSessions(fake.reader, { range: MOSH_RANGE, serverNames: SERVER_NAMES, port });
    assert.deepEqual(
      result.sessions.map((session) => [session.pid, session.port]),
      [[pidOf('mosh-v4'), port]],
    );
    assert.ok(result.refused.every((holder) => holder.port === port));
    assert.ok(!fake.calls.includes(`listDir /proc/${impostor}/fd`), "another user's process is not walked");
    assert.ok(fake.calls.includes(`listDir /proc/${pidOf('mosh-v4')}/fd`));
    const full = scanSessions(createFakeProc(labNodes()).reader, {
      range: MOSH_RANGE,
      serverNames: SERVER_NAMES,
    });
    assert.ok(full.sessions.length > result.sessions.length, 'the full scan sees the other ports');
  });

  it("refuses (fails closed) a port whose socket only another user's process holds", () => {
    const port = 60777;
    const fake = createFakeProc(labNodes());
    const mosh = pidOf('mosh-v4');
    fake.set(`/proc/${mosh}`, {
      facts: { uid: 4242, gid: 4242, mode: 0o555, isFile: false, isDirectory: true },
    });
    const result = scanSessions(fake.reader, { range: MOSH_RANGE, serverNames: SERVER_NAMES, port });
    assert.deepEqual(result.sessions, []);
    assert.ok(result.refused.some((holder) => holder.port === port));
  });
});
