// The daemon's socket takes requests from every local user, so an unprivileged lab user (alice) throws
// at it what a hostile one would: bytes that are not JSON, wrong shapes, ports out of range, a line too
// long, a flood, and "open" for ports held by processes that only pretend to be mosh-server. Every
// request gets an error reply, the daemon keeps serving, and not one firewall rule changes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type Daemon, exchange, isPong, ping, replyObjects, startDaemon } from './_daemon.ts';
import { useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { udpBound } from './_procfs.ts';
import { createLab, labSkipReason, type UfwTuple } from './lab.ts';

const CONFIG = 'backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\n';
/** Ports held by alice's own copy of mosh-server and by python3 started through a link named mosh-server. */
const COPY_PORT = 60300;
const PYTHON_PORT = 60301;

interface HostileCase {
  name: string;
  payload: string | Buffer;
  error: RegExp;
  /** The daemon also closes the connection after its reply. */
  closes?: boolean;
}

const CASES: HostileCase[] = [
  {
    name: 'binary garbage',
    payload: Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, 0x1b]), Buffer.from('[2J\u0007\n')]),
    error: /^request is not JSON$/,
  },
  { name: 'plain text', payload: 'open 60001 please\n', error: /^request is not JSON$/ },
  {
    name: 'a JSON array',
    payload: '[{"op":"open","port":60001}]\n',
    error: /^request is not a JSON object$/,
  },
  { name: 'JSON null', payload: 'null\n', error: /^request is not a JSON object$/ },
  { name: 'an unknown op', payload: '{"op":"close","port":60001}\n', error: /^unknown op "close"$/ },
  { name: 'no op', payload: '{"port":60001}\n', error: /^unknown op null$/ },
  {
    name: 'an extra field',
    payload: '{"op":"open","port":60001,"user":"root"}\n',
    error: /^unknown field "user"$/,
  },
  {
    name: 'a port above 65535',
    payload: '{"op":"open","port":70000}\n',
    error: /^port must be an integer from 1 to 65535, got 70000$/,
  },
  { name: 'port 0', payload: '{"op":"open","port":0}\n', error: /^port must be an integer from 1 to 65535/ },
  { name: 'a negative port', payload: '{"op":"open","port":-1}\n', error: /^port must be an integer/ },
  { name: 'a fractional port', payload: '{"op":"open","port":60001.5}\n', error: /^port must be an integer/ },
  {
    name: 'a port as a string',
    payload: '{"op":"open","port":"60001"}\n',
    error: /^port must be an integer/,
  },
  {
    name: 'a port outside the mosh range (ssh)',
    payload: '{"op":"open","port":22}\n',
    error: /^port 22 is outside the mosh range 60000:61000$/,
  },
  {
    name: 'a line over 512 bytes',
    payload: `{"op":"open","port":60001,"pad":"${'x'.repeat(600)}"}\n`,
    error: /^request longer than 512 bytes$/,
  },
  {
    name: '2000 bytes without a newline',
    payload: 'y'.repeat(2000),
    error: /^request longer than 512 bytes$/,
    closes: true,
  },
  {
    name: 'a port in range that nothing holds',
    payload: '{"op":"open","port":60400}\n',
    error: /^no genuine mosh-server holds port 60400$/,
  },
  {
    name: "a port held by alice's own copy of mosh-server",
    payload: `{"op":"open","port":${COPY_PORT}}\n`,
    error: new RegExp(`^port ${COPY_PORT} refused: `),
  },
  {
    name: 'a port held by python3 run through a link named mosh-server',
    payload: `{"op":"open","port":${PYTHON_PORT}}\n`,
    error: new RegExp(`^port ${PYTHON_PORT} refused: `),
  },
];

describe('daemon socket: hostile input from an unprivileged user', { skip: labSkipReason() }, () => {
  let daemon: Daemon | undefined;
  let rulesBefore: UfwTuple[] = [];
  const impostors: number[] = [];

  const theLab = useLab(
    () => createLab(),
    async () => {
      for (const pid of impostors)
        await theLab()
          .killServerProcess(pid)
          .catch(() => {});
    },
  );
  const theDaemon = (): Daemon => {
    assert.ok(daemon, 'the daemon did not start in before()');
    return daemon;
  };

  before(async () => {
    daemon = await startDaemon(theLab(), CONFIG);
    const alice = theLab().users.find((user) => user.name === 'alice');
    assert.ok(alice);
    // alice's own copy of the real mosh-server (same bytes, her file): a real session, not a genuine one.
    const copy = join(alice.home, 'mosh-server');
    assert.equal(
      (await theLab().runServer(['cp', '/usr/bin/mosh-server', copy], { user: 'alice' })).exitCode,
      0,
    );
    const copied = await theLab().startMoshServer('alice', { via: 'local', binary: copy, port: COPY_PORT });
    impostors.push(copied.pid);
    // python3 started through a link named mosh-server: its process name says mosh-server, its exe does not.
    const link = join(alice.home, 'bin', 'mosh-server');
    assert.equal(
      (await theLab().runServer(['mkdir', '-p', join(alice.home, 'bin')], { user: 'alice' })).exitCode,
      0,
    );
    assert.equal(
      (await theLab().runServer(['ln', '-s', '/usr/bin/python3', link], { user: 'alice' })).exitCode,
      0,
    );
    const script = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("${theLab().server.v4}", ${PYTHON_PORT}))\nprint("bound", flush=True)\ntime.sleep(300)\n`;
    const python = await theLab().startServer([link, '-c', script], { user: 'alice' });
    impostors.push(python.pid);
    assert.ok(
      await waitUntil(() => udpBound(theLab().server.holderPid ?? -1, PYTHON_PORT), 10_000),
      `python did not bind ${PYTHON_PORT}: ${JSON.stringify(python.output())}`,
    );
    rulesBefore = await theLab().ufwTuples();
  });

  test('ping answers alice (the socket is open to every local user)', async () => {
    const pong = await ping(theLab(), 'alice');
    assert.ok(isPong(pong), `ping answers alice: ${JSON.stringify(pong)}`);
  });

  for (const hostile of CASES) {
    test(`${hostile.name}: an error reply, nothing opened`, async () => {
      const outcome = await exchange(theLab(), hostile.payload, {
        user: 'alice',
        replies: hostile.closes ? 2 : 1,
      });
      assert.equal(outcome.connected, true, JSON.stringify(outcome));
      const replies = replyObjects(outcome);
      assert.equal(replies.length, 1, `exactly one reply: ${JSON.stringify(outcome.replies)}`);
      const [reply] = replies;
      assert.equal(reply?.ok, false, JSON.stringify(reply));
      assert.match(String(reply?.error), hostile.error);
      if (hostile.closes) assert.equal(outcome.closedByServer, true, 'the daemon closed the connection');
      assert.ok(theDaemon().running(), `the daemon still runs:\n${theDaemon().log()}`);
      assert.deepEqual(await theLab().ufwTuples(), rulesBefore, 'no rule changed');
    });
  }

  test('a flood of 20 lines on one connection: one reply, then the daemon closes it (one request each)', async () => {
    const lines = Array.from({ length: 20 }, (_, index) => `{"op":"open","port":${60500 + index}}\n`).join(
      '',
    );
    const outcome = await exchange(theLab(), lines, { user: 'alice', replies: 20 });
    const replies = replyObjects(outcome);
    assert.equal(replies.length, 1, JSON.stringify(outcome.replies));
    assert.equal(replies[0]?.ok, false, JSON.stringify(replies));
    assert.match(String(replies[0]?.error), /^no genuine mosh-server holds port 60500$/);
    assert.equal(outcome.closedByServer, true, 'the daemon closed the connection after its one reply');
    assert.deepEqual(await theLab().ufwTuples(), rulesBefore, 'no rule changed');
  });

  test('an empty line is a request too: an error reply and the connection closed', async () => {
    const outcome = await exchange(theLab(), '\n{"op":"ping"}\n', { user: 'alice', replies: 2 });
    assert.deepEqual(replyObjects(outcome), [{ ok: false, error: 'empty request' }]);
    assert.equal(outcome.closedByServer, true);
  });

  test('a connection that sends nothing is answered and closed at the 2 s request deadline', async () => {
    const start = performance.now();
    const outcome = await exchange(theLab(), '', { user: 'alice', replies: 2, timeoutMs: 8000 });
    const tookMs = performance.now() - start;
    assert.deepEqual(replyObjects(outcome), [{ ok: false, error: 'no request within 2000 ms' }]);
    assert.equal(outcome.closedByServer, true);
    assert.ok(tookMs < 7000, `closed after ${Math.round(tookMs)} ms`);
  });

  test('afterwards the daemon still serves, both impostors stay refused and unreachable', async () => {
    assert.ok(theDaemon().running());
    const pong = await ping(theLab(), 'alice');
    assert.ok(isPong(pong), `ping answers alice: ${JSON.stringify(pong)}`);
    assert.deepEqual(await theLab().ufwTuples(), rulesBefore, 'no rule changed at all');
    assert.equal(await theLab().udpReachable(COPY_PORT, 'v4'), false, `${COPY_PORT} is closed`);
    assert.equal(await theLab().udpReachable(PYTHON_PORT, 'v4'), false, `${PYTHON_PORT} is closed`);
    await theDaemon().waitForLine(
      new RegExp(`^warn refused port=${COPY_PORT} .*user=alice exe=\\S+/mosh-server `),
    );
    await theDaemon().waitForLine(
      new RegExp(`^warn refused port=${PYTHON_PORT} .*user=alice exe=/usr/bin/python3`),
    );
    assert.doesNotMatch(theDaemon().log(), /^info opened /m, 'the daemon opened nothing');
  });
});
