// Trust that lasts (issue 11 §1, the part built so far): between reconciles the daemon watches the
// genuine holders of the open ports — each one's existence every second, and its status (tracer, uid)
// within a budget of reads — so a port whose socket leaves genuine hands closes in about a second, not
// at the next resync (30 s by default). As alice would do it to her own live mosh-server: take its
// socket into python (pidfd_getfd) and end the server, or keep it running beside python (the owners'
// other processes are looked through every 1.5 s); attach strace to it. Before this work the port
// stayed open 29.7 s and 14.5 s (the figures), and a taken socket beside a live server until
// the 30 s resync.
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { GRAB_SCRIPT } from './_attacks.ts';
import { type Daemon, startDaemon } from './_daemon.ts';
import { ourTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { createLab, labSkipReason, type MoshServer } from './lab.ts';

const CONFIG = 'backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\n';
/** Far below the 30 s resync the port waited for before, and above a loaded machine's second or two. */
const CLOSE_BOUND_MS = 10_000;

describe('trust that lasts: a port closes soon after its socket leaves genuine hands', {
  skip: labSkipReason(),
}, () => {
  let daemon: Daemon | undefined;
  const started: number[] = [];
  const theLab = useLab(
    () => createLab(),
    async () => {
      for (const pid of started)
        await theLab()
          .killServerProcess(pid)
          .catch(() => undefined);
      await daemon?.stop().catch(() => undefined);
    },
  );
  const theDaemon = (): Daemon => {
    assert.ok(daemon, 'the daemon did not start');
    return daemon;
  };
  const isOpen = async (port: number) =>
    ourTuples(await theLab().ufwTuples()).some((tuple) => tuple.tuple.includes(` ${port} `));

  /** A genuine session of alice's, opened by the daemon. */
  const openSession = async (port: number): Promise<MoshServer> => {
    daemon ??= await startDaemon(theLab(), CONFIG);
    const server = await theLab().startMoshServer('alice', { port });
    started.push(server.pid);
    assert.ok(
      await waitUntil(() => isOpen(port), 15_000),
      `the daemon opened ${port}:\n${theDaemon().log()}`,
    );
    return server;
  };

  /** Resolves with how long after `since` the port's rule was gone, failing past the bound. */
  const closedAfter = async (t: TestContext, port: number, since: number, what: string): Promise<number> => {
    assert.ok(
      await waitUntil(async () => !(await isOpen(port)), CLOSE_BOUND_MS, 50),
      `${port} still open ${CLOSE_BOUND_MS} ms after ${what}:\n${theDaemon().log()}`,
    );
    const ms = Math.round(performance.now() - since);
    t.diagnostic(`${what}: port ${port} closed after ${ms} ms`);
    return ms;
  };

  /** alice's python takes her server's socket (pidfd_getfd) and holds it; resolves once it says so. */
  const grab = async (server: MoshServer): Promise<void> => {
    const grabber = await theLab().startServer(['python3', '-c', GRAB_SCRIPT, String(server.nsPid)], {
      user: 'alice',
    });
    started.push(grabber.pid);
    assert.ok(
      await waitUntil(() => grabber.output().stdout.includes('\n'), 5000, 50),
      grabber.output().stderr,
    );
    assert.match(
      grabber.output().stdout,
      /^holding \d+ socket:\[\d+\]$/m,
      'pidfd_getfd works here (no Yama)',
    );
  };

  test("alice takes her server's socket (pidfd_getfd) and ends the server: the port closes", async (t) => {
    const server = await openSession(60031);
    const from = theDaemon().lines().length;
    await grab(server);
    const endedAt = performance.now();
    await theLab().killServerProcess(server.pid);
    await closedAfter(t, 60031, endedAt, 'server ended, python holds its socket');
    await theDaemon().waitForLine(/^info holder-changed reason="holder pid \d+ of port 60031 ended"/, {
      from,
    });
    assert.equal(await theLab().udpReachable(60031, 'v4'), false, "python's socket is not reachable");
  });

  test("alice takes her server's socket (pidfd_getfd) and keeps the server running: the port closes", async (t) => {
    const server = await openSession(60033);
    const from = theDaemon().lines().length;
    await grab(server);
    const takenAt = performance.now();
    await closedAfter(t, 60033, takenAt, 'python took the socket, the server still runs');
    await theDaemon().waitForLine(
      /^info holder-changed reason="pid \d+ also holds the socket of port 60033"/,
      {
        from,
      },
    );
  });

  test('alice attaches strace to her live server: the port closes', async (t) => {
    const server = await openSession(60032);
    const from = theDaemon().lines().length;
    const tracer = await theLab().startServer(['strace', '-p', String(server.nsPid), '-o', '/dev/null'], {
      user: 'alice',
    });
    started.push(tracer.pid);
    const attachedAt = performance.now();
    await closedAfter(t, 60032, attachedAt, 'strace attached');
    await theDaemon().waitForLine(
      /^info holder-changed reason="holder pid \d+ of port 60032 is traced by pid \d+"/,
      {
        from,
      },
    );
  });
});
