// Issue 10's discovery findings, tried as a hostile unprivileged lab user would, with real processes:
// #1 a program bind-mounted over mosh-server in a user+mount namespace of the user's own; #6 a squatter
// on 127.0.0.1 sharing a genuine `mosh-server -s` session's port; #11 a socket held only in the fd table
// of a thread made without CLONE_FILES; and the confirmed negative that SO_REUSEADDR/SO_REUSEPORT cannot
// share a live mosh-server's port; and, the other side of #1, a genuine session whose binary is upgraded
// away keeps its port. The four attacks fail on the code before the fix.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type RefusedJson,
  type StatusJson,
  spec,
  specKeys,
  statusJson,
  syncJson,
  useLab,
} from './_moshwall.ts';
import { pollFor } from './_poll.ts';
import { createLab, type Lab, type LabUser, labSkipReason } from './lab.ts';

const HIDDEN_THREAD_SOURCE = fileURLToPath(new URL('./fixtures/hidden-thread.c', import.meta.url));
const HIDDEN_RING_SOURCE = fileURLToPath(new URL('./fixtures/hidden-ring.c', import.meta.url));

/**
 * The refusal status lists for `port` once a holder of it is seen, failing if it is listed as a genuine
 * session instead (what the code before the fix did) or never shows up within 10 s.
 */
async function refusalOf(lab: Lab, port: number): Promise<RefusedJson> {
  const seen = await pollFor(
    async () => {
      const status = await statusJson(lab);
      const session = status.sessions.find((each) => each.port === port);
      const refused = status.refused.find((holder) => holder.port === port);
      return session === undefined && refused === undefined ? undefined : { session, refused };
    },
    10_000,
    100,
  );
  assert.ok(seen, `nothing holding port ${port} showed up`);
  assert.equal(
    seen.session,
    undefined,
    `port ${port} counts as a genuine session: ${JSON.stringify(seen.session)}`,
  );
  assert.ok(seen.refused);
  return seen.refused;
}

describe('discovery against a hostile local user (issue 10)', { skip: labSkipReason() }, () => {
  const theLab = useLab(() => createLab());
  const user = (index: number): LabUser => {
    const found = theLab().users[index];
    assert.ok(found, `no lab user #${index}`);
    return found;
  };

  test('#1: socat bind-mounted over mosh-server in `unshare -Urm` gets no port', async () => {
    const port = 60005;
    const script = `mount --bind /usr/bin/socat /usr/bin/mosh-server && exec /usr/bin/mosh-server -u UDP4-RECV:${port} OPEN:/dev/null`;
    const disguised = await theLab().startServer(['unshare', '-Urm', 'sh', '-c', script], {
      user: user(0).name,
    });
    try {
      const holder = await refusalOf(theLab(), port);
      // The disguise works on the path the holder's own namespace shows.
      assert.equal(readlinkSync(`/proc/${disguised.pid}/exe`), '/usr/bin/mosh-server');
      assert.equal(theLab().hostPid(holder.pid), disguised.pid);
      assert.match(holder.reason, /runs in another user namespace \(user:\[\d+\]\) than the host's/);
      const report = await syncJson(theLab());
      assert.deepEqual(report.opened, [], 'nothing opens');
      assert.equal(await theLab().udpReachable(port, 'v4'), false);

      // Even with foreign namespaces allowed, the running file is not the mosh-server root sees.
      const config = `${readFileSync(theLab().configPath, 'utf8')}\nallow_foreign_namespaces = true\n`;
      const allowed = JSON.parse(
        (await theLab().moshwall(['status', '--json'], { config })).stdout,
      ) as StatusJson;
      assert.match(
        allowed.refused.find((each) => each.port === port)?.reason ?? '',
        /^executable \/usr\/bin\/mosh-server is not the file root sees at that path \(device:inode \d+:\d+, not \d+:\d+/,
      );
    } finally {
      await theLab().killServerProcess(disguised.pid);
    }
  });

  test('#6: a squatter on 127.0.0.1 does not deny a genuine `mosh-server -s` its port', async () => {
    const port = 60210;
    const squatter = await theLab().startServer(
      ['socat', '-u', `UDP4-RECV:${port},bind=127.0.0.1`, 'OPEN:/dev/null'],
      { user: user(1).name },
    );
    try {
      await refusalOf(theLab(), port);
      const mosh = await theLab().startMoshServer(user(0).name, { port });
      try {
        assert.equal(mosh.port, port, 'mosh-server -s binds the ssh address beside the squatter');
        const report = await syncJson(theLab());
        assert.deepEqual(specKeys(report.opened), specKeys([spec(port, 'v4')]));
        assert.equal(await theLab().udpReachable(port, 'v4'), true);
        const status = await statusJson(theLab());
        const refusedHolders = status.refused as (RefusedJson & { unreachable?: boolean })[];
        assert.deepEqual(
          status.sessions.map((session) => [session.port, session.localAddress, session.rule]),
          [[port, '192.0.2.1', 'open']],
        );
        assert.deepEqual(
          refusedHolders.map((holder) => [
            theLab().hostPid(holder.pid),
            holder.localAddress,
            holder.unreachable,
          ]),
          [[squatter.pid, '127.0.0.1', true]],
        );
      } finally {
        await theLab().killServerProcess(mosh.pid);
      }
    } finally {
      await theLab().killServerProcess(squatter.pid);
    }
    assert.deepEqual(specKeys((await syncJson(theLab())).closed), specKeys([spec(port, 'v4')]));
  });

  test('#6: a squatter on [::] with IPV6_V6ONLY does not deny a genuine IPv4 `mosh-server -s` its port', async () => {
    const port = 60211;
    const bind = [
      'import socket, time',
      's = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
      's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)',
      `s.bind(("::", ${port}))`,
      'print("bound", flush=True)',
      'time.sleep(55)',
    ].join('\n');
    const squatter = await theLab().startServer(['/usr/bin/python3', '-c', bind], { user: user(1).name });
    try {
      await refusalOf(theLab(), port);
      const mosh = await theLab().startMoshServer(user(0).name, { port });
      try {
        assert.equal(mosh.port, port, 'an IPv6-only wildcard does not stop mosh-server binding IPv4');
        const report = await syncJson(theLab());
        assert.deepEqual(specKeys(report.opened), specKeys([spec(port, 'v4')]));
        assert.equal(await theLab().udpReachable(port, 'v4'), true);
        const refused = report.refused as (RefusedJson & { v6only?: boolean })[];
        assert.deepEqual(
          refused.map((holder) => [theLab().hostPid(holder.pid), holder.localAddress, holder.v6only]),
          [[squatter.pid, '::', true]],
        );
      } finally {
        await theLab().killServerProcess(mosh.pid);
      }
    } finally {
      await theLab().killServerProcess(squatter.pid);
    }
    assert.deepEqual(specKeys((await syncJson(theLab())).closed), specKeys([spec(port, 'v4')]));
  });

  test("#11: a socket held only in a CLONE_FILES-less thread's table is seen, and refused", async () => {
    // mosh-server's own socket is outside the range: the handed socket is its only one in range.
    const [hidden, own] = [60230, 59990];
    const binary = compileInto(user(0), HIDDEN_THREAD_SOURCE, 'hidden-thread');
    const mosh = ['/usr/bin/mosh-server', 'new', '-i', '192.0.2.1', '-p', String(own), '-l', 'LANG=C.UTF-8'];
    const relay = await theLab().startServer([binary, String(hidden), ...mosh], { user: user(0).name });
    let moshPid: number | undefined;
    try {
      const tid = await pollFor(async () => /^thread (\d+)$/m.exec(relay.output().stdout)?.[1], 10_000, 100);
      assert.ok(tid, `the relay did not start: ${JSON.stringify(relay.output())}`);
      moshPid = detachedPid(theLab(), relay.output());
      // The socket is in the genuine mosh-server's table and the thread's, not in the relay's own.
      const holders = socketHolders(relay.pid, moshPid);
      assert.deepEqual(holders, { main: false, thread: true, mosh: true }, JSON.stringify(holders));

      const report = await syncJson(theLab());
      assert.deepEqual(report.opened, [], 'nothing opens');
      assert.equal(await theLab().udpReachable(hidden, 'v4'), false);
      assert.deepEqual(
        report.refused.map((holder) => [holder.port, theLab().hostPid(holder.pid), holder.exe]),
        [[hidden, relay.pid, binary]],
      );
    } finally {
      await theLab().killServerProcess(relay.pid);
      if (moshPid !== undefined) await theLab().killServerProcess(moshPid);
      rmSync(binary, { force: true });
    }
  });

  test('#11: a socket handed to mosh-server and hidden in a closed io_uring ring opens nothing', async () => {
    const [hidden, own] = [60260, 60261];
    const binary = compileInto(user(0), HIDDEN_RING_SOURCE, 'hidden-ring');
    const mosh = ['/usr/bin/mosh-server', 'new', '-i', '192.0.2.1', '-p', String(own), '-l', 'LANG=C.UTF-8'];
    const relay = await theLab().startServer([binary, String(hidden), ...mosh], { user: user(0).name });
    let moshPid: number | undefined;
    try {
      const ready = await pollFor(
        async () => (relay.output().stdout.includes('hidden') ? true : undefined),
        10_000,
        100,
      );
      assert.ok(ready, `the relay did not start: ${JSON.stringify(relay.output())}`);
      moshPid = detachedPid(theLab(), relay.output());
      // /proc shows the handed socket in mosh-server's table only: the relay's copy is invisible.
      const holders = socketHolders(relay.pid, moshPid);
      assert.deepEqual(holders, { main: false, thread: false, mosh: true }, JSON.stringify(holders));
      const fds = readdirSync(`/proc/${relay.pid}/fd`).map((fd) =>
        readlinkSync(`/proc/${relay.pid}/fd/${fd}`),
      );
      assert.ok(!fds.includes('anon_inode:[io_uring]'), fds.join(' '));

      const report = await syncJson(theLab());
      assert.deepEqual(report.opened, [], 'neither port opens: the mosh-server was handed a socket');
      assert.equal(await theLab().udpReachable(hidden, 'v4'), false);
      assert.deepEqual(
        report.refused.map((holder) => [holder.port, theLab().hostPid(holder.pid)]),
        [
          [hidden, moshPid],
          [own, moshPid],
        ],
      );
      assert.match(report.refused[0]?.reason ?? '', /holds 2 UDP sockets in the range; it binds one itself/);
    } finally {
      await theLab().killServerProcess(relay.pid);
      if (moshPid !== undefined) await theLab().killServerProcess(moshPid);
      rmSync(binary, { force: true });
    }
  });

  test('#1, the other side: a mosh-server whose binary was upgraded away (exe "(deleted)") keeps its port', async () => {
    const dir = '/usr/local/lib/moshwall-upgrade';
    const binary = `${dir}/mosh-server`;
    const root = async (argv: string[]) => {
      const result = await theLab().runServer(argv);
      assert.equal(result.exitCode, 0, `${argv.join(' ')}: ${result.stderr}`);
    };
    await root(['install', '-d', '-m', '0755', dir]);
    await root(['install', '-m', '0755', '/usr/bin/mosh-server', binary]);
    const mosh = await theLab().startMoshServer(user(0).name, { port: 60270, binary });
    try {
      assert.deepEqual(specKeys((await syncJson(theLab())).opened), specKeys([spec(60270, 'v4')]));
      // As a package upgrade does it: the new file renamed over the old one.
      await root(['install', '-m', '0755', '/usr/bin/mosh-server', `${binary}.new`]);
      await root(['mv', `${binary}.new`, binary]);
      assert.equal(readlinkSync(`/proc/${mosh.pid}/exe`), `${binary} (deleted)`);
      const report = await syncJson(theLab());
      assert.deepEqual(report.closed, [], 'the port stays open');
      assert.deepEqual(
        report.sessions.map((session) => [session.port, session.exe]),
        [[60270, `${binary} (deleted)`]],
      );
      assert.equal(await theLab().udpReachable(60270, 'v4'), true);
    } finally {
      await theLab().killServerProcess(mosh.pid);
      await root(['rm', '-rf', dir]);
    }
    assert.deepEqual(specKeys((await syncJson(theLab())).closed), specKeys([spec(60270, 'v4')]));
  });

  test("confirmed negative: SO_REUSEADDR + SO_REUSEPORT cannot share a live mosh-server's port", async () => {
    const mosh = await theLab().startMoshServer(user(0).name, { port: 60240 });
    try {
      const attempt = [
        'import socket, sys',
        'for family, address in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):',
        '    s = socket.socket(family, socket.SOCK_DGRAM)',
        '    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
        '    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)',
        '    try:',
        '        s.bind((address, 60240))',
        '        print(address, "bound")',
        '    except OSError as error:',
        '        print(address, error.errno == 98 and "EADDRINUSE" or error.errno)',
      ].join('\n');
      for (const who of [user(1).name, user(0).name]) {
        const result = await theLab().runServer(['/usr/bin/python3', '-c', attempt], { user: who });
        assert.equal(result.exitCode, 0, result.stderr);
        assert.deepEqual(
          result.stdout.trim().split('\n'),
          ['192.0.2.1 EADDRINUSE', '0.0.0.0 EADDRINUSE', ':: EADDRINUSE'],
          `as ${who}`,
        );
      }
    } finally {
      await theLab().killServerProcess(mosh.pid);
    }
  });
});

/** The host pid of the mosh-server a relay started ("[mosh-server detached, pid = N]", a lab pid). */
function detachedPid(lab: Lab, output: { stdout: string; stderr: string }): number {
  const detached = /\[mosh-server detached, pid = (\d+)\]/.exec(output.stderr + output.stdout);
  const pid = lab.hostPid(Number(detached?.[1]));
  assert.ok(pid, `no mosh-server: ${JSON.stringify(output)}`);
  return pid;
}

/** Compiles a C fixture into the user's home, owned by the user (their own program). */
function compileInto(owner: LabUser, source: string, name: string): string {
  const build = mkdtempSync(join(tmpdir(), 'moshwall-e2e-'));
  try {
    const binary = join(owner.home, name);
    execFileSync('gcc', ['-O2', '-Wall', '-o', join(build, name), source]);
    execFileSync('install', ['-m', '0755', join(build, name), binary]);
    chownSync(binary, owner.uid, owner.gid);
    return binary;
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}

/** Which tables hold the relay's hidden socket: its main table, another thread's, mosh-server's. */
function socketHolders(relay: number, mosh: number): { main: boolean; thread: boolean; mosh: boolean } {
  const sockets = (dir: string) =>
    readdirSync(dir)
      .map((fd) => readlinkSync(`${dir}/${fd}`))
      .filter((target) => target.startsWith('socket:'));
  const inMosh = sockets(`/proc/${mosh}/fd`);
  const threadTables = readdirSync(`/proc/${relay}/task`)
    .filter((tid) => tid !== String(relay))
    .flatMap((tid) => sockets(`/proc/${relay}/task/${tid}/fd`));
  return {
    main: sockets(`/proc/${relay}/fd`).some((socket) => inMosh.includes(socket)),
    thread: threadTables.some((socket) => inMosh.includes(socket)),
    mosh: inMosh.length > 0,
  };
}
