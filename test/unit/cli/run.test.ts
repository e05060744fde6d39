import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { StatusEdges } from '../../../src/cli/command.ts';
import { COMMANDS, type HostEdges, runMain } from '../../../src/cli/run.ts';
import type { Clock, Timer } from '../../../src/clock.ts';
import type { DoctorFacts } from '../../../src/doctor.ts';
import type { ScanResult } from '../../../src/model.ts';
import { session } from '../../support/builders.ts';
import { createMemoryBackend, type MemoryBackend } from '../backends/memory-backend.ts';

/** Runs the CLI against a memory backend and a fixed scan; returns exit code and captured output. */
async function cli(
  argv: string[],
  options: {
    uid?: number;
    backend?: MemoryBackend;
    scan?: ScanResult;
    facts?: Partial<DoctorFacts>;
    unsafe?: string;
    startHook?: () => Promise<void>;
    status?: StatusEdges;
  } = {},
) {
  const backend = options.backend ?? createMemoryBackend();
  const stdout: string[] = [];
  const shimCalls: string[][] = [];
  const stderr: string[] = [];
  const edges: HostEdges = {
    engine: (config, log) => ({
      config,
      log,
      backend,
      scan: () => options.scan ?? { sessions: [], refused: [] },
      groups: () => ({ gidOf: () => undefined, membersOf: () => [] }),
      lock: async () => async () => {},
    }),
    daemon: () => {
      throw new Error('no daemon in unit tests');
    },
    unsafeFiles: () => options.unsafe,
    host: {
      installFacts: () => {
        throw new Error('no install in unit tests');
      },
      applySteps: async () => {},
      readManifest: () => undefined,
      startHook: options.startHook ?? (async () => {}),
      watchHook: async () => 0,
    },
    shim: async (invocation) => {
      shimCalls.push(invocation.args);
      return 0;
    },
    ...(options.status === undefined ? {} : { status: options.status }),
    doctorFacts: async (config, _log, isRoot) => ({
      isRoot,
      config,
      backendName: 'memory',
      probe: await backend.probe(),
      rules: await backend.listRules(),
      moshServerProblem: undefined,
      hostHasIpv6: false,
      ...options.facts,
    }),
  };
  const code = await runMain({
    argv,
    env: {},
    uid: options.uid ?? 0,
    invokedAs: 'moshwall',
    selfPath: '/usr/local/sbin/moshwall',
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    passThrough: async () => {},
    edges,
  });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n'), backend };
}

describe('moshwall CLI', () => {
  it('a failing hook prints one line into the login, never a stack trace (exit 70)', async () => {
    const result = await cli(['hook'], {
      startHook: async () => {
        throw Object.assign(new Error("ENOENT: no such file or directory, rename 'hook-deadline.new'"), {
          code: 'ENOENT',
        });
      },
    });
    assert.equal(result.code, 70);
    assert.equal(
      result.stderr,
      "moshwall: error: the login hook could not start its watcher (cause: ENOENT: no such file or directory, rename 'hook-deadline.new')",
    );
  });

  it('has --help for every command, naming its options and the exit codes', async () => {
    for (const command of COMMANDS) {
      const result = await cli([command.name, '--help'], { uid: 1000 });
      assert.equal(result.code, 0, command.name);
      assert.match(result.stdout, new RegExp(`Usage: moshwall \\[--config FILE\\] ${command.name}`));
      for (const option of command.options) assert.match(result.stdout, new RegExp(`--${option.name}`));
      assert.match(result.stdout, /Exit codes:/);
    }
    assert.match((await cli(['--help'])).stdout, /Commands:\n {2}sync/);
  });

  const usage: [string[], RegExp][] = [
    [[], /no command given/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['sync', '--force'], /sync: unknown option --force/],
    [['sync', 'extra'], /unexpected argument "extra"/],
    [['--config'], /--config needs a file path/],
    [['--colour', 'sync'], /unknown option --colour/],
  ];
  for (const [argv, message] of usage) {
    it(`exits 2 for usage error: ${JSON.stringify(argv)}`, async () => {
      const result = await cli(argv);
      assert.equal(result.code, 2);
      assert.match(result.stderr, message);
    });
  }

  it('exits 6 when a root command runs as another user, before touching anything', async () => {
    const result = await cli(['sync'], {
      uid: 1000,
      scan: { sessions: [session({ port: 60001 })], refused: [] },
    });
    assert.equal(result.code, 6);
    assert.match(result.stderr, /must run as root/);
    assert.deepEqual(result.backend.calls, []);
  });

  it('exits 7 and touches nothing when its own files are writable by others (StrictModes)', async () => {
    const result = await cli(['sync'], {
      unsafe: 'moshwall /opt/moshwall.js is writable by group and others',
      scan: { sessions: [session({ port: 60001 })], refused: [] },
    });
    assert.equal(result.code, 7);
    assert.match(result.stderr, /refusing to run as root: moshwall \/opt\/moshwall\.js is writable/);
    assert.deepEqual(result.backend.calls, []);
  });

  it('exits 3 for a bad config, naming file, line and key, and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moshwall-cli-'));
    try {
      const file = join(dir, 'bad.toml');
      writeFileSync(file, 'port_range = "60000:61000"\nmax_sessions_per_user = "ten"\n');
      const result = await cli(['--config', file, 'sync'], {
        scan: { sessions: [session({ port: 60001 })], refused: [] },
      });
      assert.equal(result.code, 3);
      assert.match(result.stderr, new RegExp(`${file}:2: max_sessions_per_user: expected a whole number`));
      assert.deepEqual(result.backend.calls, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sync prints what it opened, and JSON on request', async () => {
    const scan = { sessions: [session({ port: 60001 })], refused: [] };
    const text = await cli(['sync'], { scan });
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^open {3}60001\/udp v4 from 0\.0\.0\.0\/0$/m);
    const json = await cli(['sync', '--json'], { scan, backend: text.backend });
    assert.deepEqual(JSON.parse(json.stdout).kept, [{ port: 60001, family: 'v4', source: '0.0.0.0/0' }]);
  });

  it('sync --dry-run says "would" and changes nothing', async () => {
    const result = await cli(['sync', '--dry-run'], {
      scan: { sessions: [session({ port: 60001 })], refused: [] },
    });
    assert.match(result.stdout, /would open/);
    assert.deepEqual(result.backend.calls, []);
  });

  it('exits 1 with the firewall error and its context when the firewall fails', async () => {
    const backend = createMemoryBackend();
    backend.failNext('allow', new Error('ufw exploded'));
    const result = await cli(['sync'], {
      backend,
      scan: { sessions: [session({ port: 60001 })], refused: [] },
    });
    assert.equal(result.code, 70, 'a plain Error is a bug: exit 70 with a stack');
    assert.match(result.stderr, /ufw exploded/);
  });

  it('exits 4 when the firewall tool is missing', async () => {
    const result = await cli(['status'], { backend: createMemoryBackend({ installed: false }) });
    assert.equal(result.code, 4);
  });

  it('doctor exits 0 on a healthy host and 1 when a check fails, with the fix', async () => {
    assert.equal((await cli(['doctor'])).code, 0);
    const bad = await cli(['doctor'], {
      facts: { moshServerProblem: 'mosh-server /usr/bin/mosh-server cannot be read (ENOENT)' },
    });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /FAIL {2}mosh-server/);
    assert.match(bad.stdout, /fix: install mosh/);
  });
});

/** Status edges over a manual clock: the daemon's list, a wall time, interrupts and redraws the test drives. */
function statusEdges(opened: StatusEdges['openedPorts'], terminal = true) {
  let now = 1_800_000_000_000;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 1;
  let interrupt: (() => void) | undefined;
  let clears = 0;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(next, { at: now + ms, fn });
      return next++ as unknown as Timer;
    },
    setInterval: () => {
      throw new Error('status --watch uses setTimeout');
    },
    clear: (timer) => {
      timers.delete(timer as unknown as number);
    },
  };
  const edges: StatusEdges = {
    openedPorts: opened,
    wallNow: () => now,
    clock,
    onInterrupt: (handler) => {
      interrupt = handler;
      return () => {
        interrupt = undefined;
      };
    },
    isTerminal: terminal,
    clearScreen: () => {
      clears += 1;
    },
  };
  return {
    edges,
    clears: () => clears,
    pending: () => timers.size,
    interrupt: () => interrupt?.(),
    /** Moves time on by ms, running the timers that fell due. */
    advance(ms: number) {
      now += ms;
      for (const [id, timer] of [...timers]) {
        if (timer.at <= now) {
          timers.delete(id);
          timer.fn();
        }
      }
    },
  };
}

/** Lets pending promises settle. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('moshwall status: open times, client, --watch', () => {
  const scan: ScanResult = {
    sessions: [session({ port: 60001, clientAddress: '192.0.2.7' }), session({ port: 60002, pid: 4321 })],
    refused: [],
  };
  it('says when the daemon opened each port and the client address, "unknown" where not known', async () => {
    const fake = statusEdges(async () => [{ port: 60001, family: 'v4', atMs: 1_800_000_000_000 - 90_000 }]);
    const text = await cli(['status'], { scan, status: fake.edges });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /OPENED/);
    assert.match(text.stdout, /60001 .*192\.0\.2\.7 .* 1m ago /);
    assert.match(text.stdout, /60002 .*unknown .* unknown /);
    const json = await cli(['status', '--json'], { scan, status: fake.edges });
    const parsed = JSON.parse(json.stdout) as { sessions: Array<Record<string, unknown>> };
    const byPort = (port: number) => parsed.sessions.find((entry) => entry.port === port);
    assert.equal(byPort(60001)?.openedAtMs, 1_800_000_000_000 - 90_000);
    assert.equal(byPort(60001)?.clientAddress, '192.0.2.7');
    assert.equal(byPort(60002)?.openedAtMs, null);
    assert.equal(byPort(60002)?.clientAddress, null);
  });

  it('without a daemon every open time is unknown', async () => {
    const fake = statusEdges(async () => undefined);
    const json = await cli(['status', '--json'], { scan, status: fake.edges });
    const parsed = JSON.parse(json.stdout) as { sessions: Array<Record<string, unknown>> };
    assert.deepEqual(
      parsed.sessions.map((entry) => entry.openedAtMs),
      [null, null],
    );
  });

  it('--watch redraws in place every --interval and ends with 0 on SIGINT, its timer cleared', async () => {
    let asked = 0;
    const fake = statusEdges(async () => {
      asked += 1;
      return [];
    });
    const running = cli(['status', '--watch', '--interval', '0.5'], { scan, status: fake.edges });
    await settle();
    assert.equal(asked, 1);
    assert.equal(fake.clears(), 1);
    fake.advance(499);
    await settle();
    assert.equal(asked, 1, 'not before the interval');
    fake.advance(1);
    await settle();
    assert.equal(asked, 2);
    assert.equal(fake.clears(), 2);
    fake.interrupt();
    const result = await running;
    assert.equal(result.code, 0);
    assert.equal(fake.pending(), 0, 'no timer left behind');
    assert.match(result.stdout, /every 0\.5 s, 2027-/);
  });

  it('--watch off a terminal prints one block after another, never clearing', async () => {
    const fake = statusEdges(async () => [], false);
    const running = cli(['status', '--watch'], { scan, status: fake.edges });
    await settle();
    fake.advance(2000);
    await settle();
    fake.interrupt();
    const result = await running;
    assert.equal(fake.clears(), 0);
    assert.equal(result.stdout.match(/^sessions \(2\):/gm)?.length, 2);
  });

  it('a bad --interval is a usage error (exit 2)', async () => {
    for (const value of ['0', '0.1', 'abc', '4000']) {
      const result = await cli(['status', '--watch', '--interval', value], { scan });
      assert.equal(result.code, 2, `${value}: ${result.stderr}`);
      assert.match(result.stderr, /--interval must be a number of seconds from 0\.2 to 3600/);
    }
  });
});
