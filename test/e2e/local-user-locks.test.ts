// A local user cannot freeze moshwall through its locks (issue 10, finding 2). alice, an unprivileged
// lab user, opens and flocks every lock file she can reach under /run/moshwall (the reconcile lock and
// the login hook's lock, made by earlier runs) and keeps them: `moshwall sync` still opens her session's
// port at once, and `moshwall hook` still starts a watcher that opens the next one. A lock that root
// itself holds too long makes `sync` exit 5 naming the holder, instead of waiting for ever.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { expectedOurs, ourTuples, parseOk, type SyncJson, spec, specKeys, useLab } from './_moshwall.ts';
import type { MoshServer, ServerProcess } from './lab.ts';
import { labSkipReason } from './lab.ts';

/** Every moshwall lock file name, in the old (beside the socket) and the new (lock.d) places. */
const LOCK_CANDIDATES = [
  '/run/moshwall/lock',
  '/run/moshwall/hook.lock',
  '/run/moshwall/lock.d/lock',
  '/run/moshwall/lock.d/hook.lock',
];

/**
 * A python3 program that walks /run/moshwall as far as it may, adds the known lock names, opens each
 * file read-only, flocks it (exclusive, not waiting) and holds every lock it got until killed, printing
 * "held PATH" or "denied PATH (why)" for each.
 */
const SQUATTER = `
import fcntl, os, sys, time
paths = set(sys.argv[1:])
for root, dirs, files in os.walk('/run/moshwall'):
    paths.update(os.path.join(root, name) for name in files)
held = []
for path in sorted(paths):
    try:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
        print('held', path, flush=True)
    except OSError as error:
        print('denied', path, '(%s)' % error.strerror, flush=True)
print('ready', flush=True)
time.sleep(600)
`;

/** A program root runs to hold moshwall's lock itself (as a stuck run would). */
const ROOT_HOLDER = `
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print('ready', flush=True)
time.sleep(600)
`;

import { waitUntil } from './_poll.ts';

const CONFIG =
  'backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\nlock_timeout_ms = 5000\nhook_watch_ms = 3000\n';

describe('a local user and moshwall locks', { skip: labSkipReason() }, () => {
  const theLab = useLab();
  const sessions: MoshServer[] = [];
  let squatter: ServerProcess | undefined;

  /** Host pids of this lab's `moshwall hook --watch` processes (seen through its own /proc). */
  const watcherCount = async () => {
    const found = await theLab().runServer(['pgrep', '-f', '-c', 'hook --watch']);
    return Number(found.stdout.trim() || '0');
  };

  test('runs made before leave their lock files where alice cannot open them', async () => {
    const sync = await theLab().moshwall(['sync', '--json'], { config: CONFIG });
    parseOk<SyncJson>(sync, 'first sync');
    const hook = await theLab().moshwall(['hook'], { config: CONFIG });
    assert.equal(hook.exitCode, 0, `hook: ${hook.stderr}`);
    assert.ok(await waitUntil(async () => (await watcherCount()) === 0, 20_000), 'the watcher ended');
    squatter = await theLab().startServer(['/usr/bin/python3', '-c', SQUATTER, ...LOCK_CANDIDATES], {
      user: 'alice',
    });
    const output = () => squatter?.output().stdout ?? '';
    assert.ok(await waitUntil(() => /^ready$/m.test(output()), 15_000), `squatter: ${output()}`);
    const held = output()
      .split('\n')
      .filter((line) => line.startsWith('held '));
    assert.deepEqual(held, [], `alice flocked moshwall's lock files:\n${output()}`);
    const stat = await theLab().runServer([
      'stat',
      '-c',
      '%a %U %n',
      '/run/moshwall/lock.d',
      '/run/moshwall/lock.d/lock',
    ]);
    assert.equal(stat.stdout, '700 root /run/moshwall/lock.d\n600 root /run/moshwall/lock.d/lock\n');
  });

  test('while alice holds what she could, `moshwall sync` opens her session at once', async () => {
    sessions.push(await theLab().startMoshServer('alice', { port: 60301 }));
    const began = performance.now();
    const result = await theLab().moshwall(['sync', '--json'], { config: CONFIG, timeoutMs: 60_000 });
    const tookMs = performance.now() - began;
    const report = parseOk<SyncJson>(result, 'sync with alice squatting');
    assert.deepEqual(specKeys(report.opened), specKeys([spec(60301, 'v4')]));
    assert.ok(tookMs < 5000, `sync waited ${tookMs.toFixed(0)} ms (lock_timeout_ms is 5000)`);
    assert.deepEqual(ourTuples(await theLab().ufwTuples()), expectedOurs([[60301, 'v4']]));
  });

  test("while alice holds what she could, `moshwall hook`'s watcher opens the next session", async () => {
    const hook = await theLab().moshwall(['hook'], { config: CONFIG });
    assert.equal(hook.exitCode, 0, `hook: ${hook.stderr}`);
    sessions.push(await theLab().startMoshServer('alice', { port: 60302 }));
    assert.ok(
      await waitUntil(async () => ourTuples(await theLab().ufwTuples()).length === 2, 10_000),
      `the watcher opened nothing: ${JSON.stringify(ourTuples(await theLab().ufwTuples()))}`,
    );
    assert.ok(await waitUntil(async () => (await watcherCount()) === 0, 20_000), 'the watcher ended');
  });

  test('a lock root holds too long: sync exits 5 and names the holder', async () => {
    if (squatter) await theLab().killServerProcess(squatter.pid);
    const holder = await theLab().startServer([
      '/usr/bin/python3',
      '-c',
      ROOT_HOLDER,
      '/run/moshwall/lock.d/lock',
    ]);
    try {
      assert.ok(
        await waitUntil(() => /^ready$/m.test(holder.output().stdout), 15_000),
        holder.output().stderr,
      );
      const config = CONFIG.replace('lock_timeout_ms = 5000', 'lock_timeout_ms = 1500');
      const result = await theLab().moshwall(['sync'], { config, timeoutMs: 60_000 });
      assert.equal(result.exitCode, 5, `${result.stderr}${result.stdout}`);
      assert.match(
        result.stderr,
        /held \/run\/moshwall\/lock\.d\/lock for more than 1500 ms: pid \d+ \(python3, uid 0\)/,
      );
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      await theLab().killServerProcess(holder.pid);
    }
    for (const server of sessions.splice(0)) await theLab().killServerProcess(server.pid);
    parseOk<SyncJson>(await theLab().moshwall(['sync', '--json'], { config: CONFIG }), 'last sync');
    assert.deepEqual(ourTuples(await theLab().ufwTuples()), []);
  });
});
