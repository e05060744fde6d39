// A local user gets no port for anything that is not the genuine, root-installed mosh-server: not for a
// process that merely calls itself mosh-server, not for their own copy of the binary, not for the real
// binary with their own library preloaded; and the real binary outside the range is not considered at
// all. Each case runs next to a genuine session of the same user, which does get its port.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { GRAB_SCRIPT } from './_attacks.ts';
import {
  expectedOurs,
  ourTuples,
  type RefusedJson,
  spec,
  specKeys,
  statusJson,
  syncJson,
  tuplePort,
  useLab,
} from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { createLab, type LabUser, labSkipReason, PID_KINDS } from './lab.ts';

/** A system library every mosh-server can preload harmlessly, from /usr/lib/<multiarch>/ or /usr/lib. */
function systemLibrary(): string {
  const names = ['libutil.so.1', 'libdl.so.2', 'librt.so.1', 'libanl.so.1'];
  const dirs = [
    ...readdirSync('/usr/lib', { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && /-linux-gnu/.test(entry.name))
      .map((entry) => join('/usr/lib', entry.name)),
    '/usr/lib',
  ];
  for (const dir of dirs) {
    for (const name of names) {
      if (readdirSync(dir).includes(name)) return join(dir, name);
    }
  }
  throw new Error(`none of ${names.join(', ')} in ${dirs.join(', ')}`);
}

/** Python that binds UDP on 0.0.0.0:port, says "bound", and waits. */
const BIND_SCRIPT = (port: number) =>
  [
    'import socket, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.bind(("0.0.0.0", ${port}))`,
    'print("bound", flush=True)',
    'time.sleep(55)',
  ].join('\n');

/** Why the strace test cannot run here, or false. */
const STRACE = existsSync('/usr/bin/strace') ? false : 'strace is not installed';

/** One field of /proc/PID/status of a host pid. */
function statusLine(pid: number, field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(\\S+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
}

/** The NUL-separated argv of a host pid. */
function argvOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
}

for (const pids of PID_KINDS) {
  describe(`ufw: no port for anything but the genuine mosh-server (${pids.name})`, {
    skip: labSkipReason(),
  }, () => {
    let alice: LabUser | undefined;
    const library = systemLibrary();

    const theLab = useLab(() => createLab(pids.options));
    const home = (): string => {
      assert.ok(alice, 'no lab user alice');
      return alice.home;
    };

    before(async () => {
      alice = theLab().users.find((user) => user.name === 'alice');
      assert.ok(alice);
      // Everything alice makes here is hers: her own directories, symlink, copies.
      const steps = [
        ['mkdir', '-p', 'impostor', 'copy', 'lib'],
        ['ln', '-s', '/usr/bin/python3', 'impostor/mosh-server'],
        ['cp', '/usr/bin/mosh-server', 'copy/mosh-server'],
        ['cp', library, 'lib/'],
      ];
      for (const argv of steps) {
        const result = await theLab().runServer(argv, { user: 'alice' });
        assert.equal(result.exitCode, 0, `${argv.join(' ')}: ${result.stderr}`);
      }
    });

    /**
     * Starts a genuine session of alice's on `controlPort` next to the impostor, syncs, and checks: the
     * control is opened, nothing is opened for `port` (no tuple, no packet gets in), and status lists the
     * refusal for `port` (returned), or lists nothing for it when `refusal` is false.
     */
    async function assertRefused(
      port: number,
      hostPid: number,
      controlPort: number,
      refusal = true,
    ): Promise<RefusedJson | undefined> {
      const control = await theLab().startMoshServer('alice', { port: controlPort });
      try {
        const report = await syncJson(theLab());
        assert.deepEqual(
          specKeys(report.opened),
          specKeys([spec(controlPort, 'v4')]),
          'only the control opens',
        );
        assert.deepEqual(
          report.sessions.map((session) => session.port),
          [controlPort],
        );
        const tuples = await theLab().ufwTuples();
        assert.deepEqual(
          tuples.filter((tuple) => tuplePort(tuple) === String(port)),
          [],
        );
        assert.deepEqual(ourTuples(tuples), expectedOurs([[controlPort, 'v4']]));
        assert.equal(
          await theLab().udpReachable(controlPort, 'v4'),
          true,
          'the genuine session is reachable',
        );
        assert.equal(await theLab().udpReachable(port, 'v4'), false, `${port} stays closed`);

        const status = await statusJson(theLab());
        assert.deepEqual(
          status.sessions.map((session) => [session.port, session.rule]),
          [[controlPort, 'open']],
        );
        const refused = status.refused.filter((holder) => holder.port === port);
        if (!refusal) {
          assert.deepEqual(status.refused, []);
          return undefined;
        }
        assert.equal(refused.length, 1, JSON.stringify(status.refused));
        const [holder] = refused;
        assert.ok(holder);
        assert.equal(theLab().hostPid(holder.pid), hostPid, 'the refusal names the impostor');
        assert.equal(holder.user, 'alice');
        assert.deepEqual(
          report.refused.map((each) => [each.port, each.pid, each.reason]),
          [[holder.port, holder.pid, holder.reason]],
          'sync --json reports the same refusal',
        );
        return holder;
      } finally {
        await theLab().killServerProcess(control.pid);
        const closed = await syncJson(theLab());
        assert.deepEqual(specKeys(closed.closed), specKeys([spec(controlPort, 'v4')]));
      }
    }

    test('a python3 run through a symlink named mosh-server (comm and argv0 say so) gets no port', async () => {
      const port = 60020;
      const impostor = await theLab().startServer(
        [`${home()}/impostor/mosh-server`, '-c', BIND_SCRIPT(port)],
        {
          user: 'alice',
        },
      );
      try {
        const bound = await waitUntil(() => impostor.output().stdout.includes('bound'), 5000, 50);
        assert.ok(bound, `the impostor did not bind: ${impostor.output().stderr}`);
        // The disguise works on everything a name check would look at.
        assert.equal(readFileSync(`/proc/${impostor.pid}/comm`, 'utf8').trim(), 'mosh-server');
        assert.match(argvOf(impostor.pid)[0] ?? '', /\/mosh-server$/);
        const holder = await assertRefused(port, impostor.pid, 60120);
        assert.match(holder?.exe ?? '', /^\/usr\/bin\/python3/);
        assert.match(holder?.reason ?? '', /executable \/usr\/bin\/python3\S* is not named mosh-server/);
      } finally {
        await theLab().killServerProcess(impostor.pid);
      }
    });

    test("the user's own copy of /usr/bin/mosh-server gets no port", async () => {
      const copy = `${home()}/copy/mosh-server`;
      const server = await theLab().startMoshServer('alice', { port: 60021, binary: copy });
      try {
        assert.equal(readFileSync(`/proc/${server.pid}/comm`, 'utf8').trim(), 'mosh-server');
        const holder = await assertRefused(60021, server.pid, 60121);
        assert.equal(holder?.exe, copy);
        assert.equal(holder?.reason, `executable ${copy} is owned by uid ${alice?.uid}, not root`);
      } finally {
        await theLab().killServerProcess(server.pid);
      }
    });

    test('the real mosh-server with a user-owned library preloaded gets no port', async () => {
      const preload = `${home()}/lib/${library.slice(library.lastIndexOf('/') + 1)}`;
      const server = await theLab().startMoshServer('alice', {
        port: 60022,
        extraEnv: { LD_PRELOAD: preload },
      });
      try {
        assert.ok(readFileSync(`/proc/${server.pid}/maps`, 'utf8').includes(preload), `${preload} is mapped`);
        const holder = await assertRefused(60022, server.pid, 60122);
        assert.equal(holder?.exe, '/usr/bin/mosh-server');
        assert.equal(holder?.reason, `mapped library ${preload} is owned by uid ${alice?.uid}, not root`);
      } finally {
        await theLab().killServerProcess(server.pid);
      }
    });

    test('the real mosh-server traced by the user (strace) gets no port', { skip: STRACE }, async () => {
      const argv = ['strace', '-f', '-o', '/dev/null', 'mosh-server', 'new', '-c', '256', '-i', '192.0.2.1'];
      const tracer = await theLab().startServer([...argv, '-p', '60023', '-l', 'LANG=C.UTF-8'], {
        user: 'alice',
      });
      let serverPid: number | undefined;
      try {
        const text = () => `${tracer.output().stdout}${tracer.output().stderr}`;
        assert.ok(
          await waitUntil(() => text().includes('[mosh-server detached'), 5000, 50),
          `mosh-server did not start: ${text()}`,
        );
        const nsPid = Number(/\[mosh-server detached, pid = (\d+)\]/.exec(text())?.[1]);
        serverPid = theLab().hostPid(nsPid);
        assert.ok(serverPid !== undefined, `pid ${nsPid} is not in the lab`);
        assert.equal(statusLine(serverPid, 'TracerPid'), String(tracer.pid), 'strace traces the mosh-server');
        const holder = await assertRefused(60023, serverPid, 60123);
        assert.equal(holder?.exe, '/usr/bin/mosh-server');
        assert.match(holder?.reason ?? '', /^traced by pid \d+$/);
      } finally {
        if (serverPid !== undefined) await theLab().killServerProcess(serverPid);
        await theLab().killServerProcess(tracer.pid);
      }
    });

    test("a genuine mosh-server whose socket the user's python also holds (pidfd_getfd) gets no port", async (t) => {
      const server = await theLab().startMoshServer('alice', { port: 60024 });
      const grabber = await theLab().startServer(['python3', '-c', GRAB_SCRIPT, String(server.nsPid)], {
        user: 'alice',
      });
      try {
        assert.ok(
          await waitUntil(() => grabber.output().stdout.includes('\n'), 5000, 50),
          grabber.output().stderr,
        );
        if (grabber.output().stdout.startsWith('errno ')) {
          t.skip(`pidfd_getfd is not allowed here (${grabber.output().stdout.trim()}; Yama ptrace_scope?)`);
          return;
        }
        assert.match(grabber.output().stdout, /^holding \d+ socket:\[\d+\]$/m);
        const holder = await assertRefused(60024, grabber.pid, 60124);
        assert.match(holder?.reason ?? '', /executable \/usr\/bin\/python3\S* is not named mosh-server/);
      } finally {
        await theLab().killServerProcess(grabber.pid);
        await theLab().killServerProcess(server.pid);
      }
    });

    test('the real mosh-server on a port outside the range is not considered', async () => {
      const server = await theLab().startMoshServer('alice', { port: 59999 });
      try {
        assert.equal(server.port, 59999);
        await assertRefused(59999, server.pid, 60125, false);
      } finally {
        await theLab().killServerProcess(server.pid);
      }
    });
  });
}
