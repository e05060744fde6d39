// The daemon's socket and its logs under a hostile local user (issue 10, #4 #5 #9 #10): alice floods a
// connection and never reads, holds 70 connections open with empty lines, names a program with newlines
// and escape sequences, and holds many refused sockets at once. Bob, another user, must still be served
// at once, the daemon must not grow, what moshwall prints must carry no control character, and the
// journal must not be flooded. Each of these failed on the code before the fix.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Daemon, DEFAULT_SOCKET, endStarted, isPong, moshwall, ping, startDaemon } from './_daemon.ts';
import { useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { statusField, udpBound } from './_procfs.ts';
import { createLab, labSkipReason } from './lab.ts';

const HOG = fileURLToPath(new URL('./fixtures/socket-hog.mjs', import.meta.url));
const CONFIG = 'backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\n';

/** The daemon's resident memory in MiB. */
function rssMiB(pid: number): number {
  const text = statusField(pid, 'VmRSS') ?? '';
  const kib = Number(/(\d+)/.exec(text)?.[1]);
  assert.ok(kib > 0, `VmRSS of ${pid}: ${text}`);
  return kib / 1024;
}

describe('daemon socket and logs against a hostile local user', { skip: labSkipReason() }, () => {
  let daemon: Daemon | undefined;
  const started: number[] = [];
  const theLab = useLab(
    () => createLab(),
    () => endStarted(theLab(), started, daemon),
  );
  const theDaemon = (): Daemon => {
    assert.ok(daemon, 'the daemon did not start in before()');
    return daemon;
  };

  before(async () => {
    daemon = await startDaemon(theLab(), CONFIG);
  });

  test('4 MiB of requests on one connection that never reads: the daemon does not grow', async (t) => {
    const before = rssMiB(theDaemon().pid);
    const result = await theLab().runServer(
      [process.execPath, HOG, 'flood', DEFAULT_SOCKET, String(4 * 1024 * 1024), '3000'],
      { user: 'alice', timeoutMs: 20_000 },
    );
    assert.equal(result.exitCode, 0, result.stderr);
    const outcome = JSON.parse(result.stdout) as { written: number; closedByServer: boolean };
    const afterFlood = rssMiB(theDaemon().pid);
    t.diagnostic(
      `daemon RSS ${before.toFixed(1)} -> ${afterFlood.toFixed(1)} MiB; alice wrote ${outcome.written} bytes`,
    );
    assert.ok(afterFlood - before < 48, `the daemon grew ${(afterFlood - before).toFixed(1)} MiB`);
    assert.ok(theDaemon().running());
    assert.ok(isPong(await ping(theLab(), 'bob')), 'bob is served afterwards');
  });

  test("70 connections of alice's kept alive with empty lines: bob is answered at once, every time", async (t) => {
    const hog = await theLab().startServer(
      [process.execPath, HOG, 'idle', DEFAULT_SOCKET, '70', '9000', '1000'],
      { user: 'alice' },
    );
    started.push(hog.pid);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const waits: number[] = [];
    for (let round = 0; round < 4; round += 1) {
      const start = performance.now();
      const reply = await ping(theLab(), 'bob');
      waits.push(Math.round(performance.now() - start));
      assert.ok(isPong(reply), `round ${round}: bob's ping got ${JSON.stringify(reply)}`);
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    const done = await hog.done;
    const outcome = JSON.parse(done.stdout) as { opened: number; open: number; replies: string[] };
    t.diagnostic(`bob's pings took ${waits.join(', ')} ms; alice: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.open, 0, "none of alice's connections outlived its request deadline");
  });

  test('a program named with a newline and escape sequences cannot forge or colour status output', async (t) => {
    const alice = theLab().users.find((user) => user.name === 'alice');
    assert.ok(alice, 'the lab has alice');
    // A file name cannot hold '/': the forged line reads like a refusal line all the same.
    const name = 'x\n  60999:udp pid 1 user root exe mosh-server: ok\u001b[2J\u009b31m';
    const copy = join(alice.home, name);
    const copied = await theLab().runServer(['cp', '/usr/bin/python3', copy], { user: 'alice' });
    assert.equal(copied.exitCode, 0, copied.stderr);
    const script = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("${theLab().server.v4}", 60321))\ntime.sleep(120)\n`;
    const python = await theLab().startServer([copy, '-c', script], { user: 'alice' });
    started.push(python.pid);
    assert.ok(
      await waitUntil(() => udpBound(theLab().server.holderPid, 60321), 10_000),
      'python bound 60321',
    );
    const status = await moshwall(theLab(), ['status']);
    assert.equal(status.exitCode, 0, status.stderr);
    t.diagnostic(status.stdout);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the test
    assert.doesNotMatch(status.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control character');
    assert.doesNotMatch(status.stdout, /^ {2}60999/m, 'no forged refusal line');
    assert.match(status.stdout, /^ {2}60321\/udp pid \d+ user \S+ exe \S*x\\n {2}60999/m);
    await theLab().killServerProcess(python.pid);
  });

  test("20 refused sockets of alice's: at most 10 lines for her, bob's refusal still said", async () => {
    const from = theDaemon().lines().length;
    const ports = Array.from({ length: 20 }, (_, index) => 60400 + index);
    const script = `import socket, time\nss = []\nfor p in [${ports.join(',')}]:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("${theLab().server.v4}", p)); ss.append(s)\nprint("bound", flush=True)\ntime.sleep(120)\n`;
    const hog = await theLab().startServer(['python3', '-c', script], { user: 'alice' });
    started.push(hog.pid);
    assert.ok(
      await waitUntil(() => ports.every((port) => udpBound(theLab().server.holderPid, port)), 10_000),
    );
    const bobs = await theLab().startServer(['python3', '-c', script.replace(/\[[\d,]+\]/, '[60450]')], {
      user: 'bob',
    });
    started.push(bobs.pid);
    await theDaemon().waitForLine(/^warn refused port=60450 .*user=bob/, { from, timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const alices = theDaemon()
      .lines()
      .slice(from)
      .filter((line) => /^warn refused .*user=alice/.test(line.text));
    assert.ok(alices.length <= 10, `alice got ${alices.length} refusal lines:\n${theDaemon().log()}`);
    assert.ok(alices.length >= 1, 'her refusals are said, within her share');
  });
});
