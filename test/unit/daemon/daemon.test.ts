import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Clock, Timer } from '../../../src/clock.ts';
import { type Config, DEFAULT_CONFIG } from '../../../src/config.ts';
import {
  type DaemonDeps,
  FULL_POLL_EVERY,
  type LastScan,
  mayReuseScan,
  RESYNC_SCAN_REUSES,
  runDaemon,
} from '../../../src/daemon/daemon.ts';
import type { HolderEdges } from '../../../src/daemon/holder-watch.ts';
import type { DaemonResponse } from '../../../src/daemon/protocol.ts';
import { ConfigError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/log.ts';
import type { MoshSession, RefusedHolder, UninspectedProcess } from '../../../src/model.ts';
import { anySpec, session } from '../../support/builders.ts';
import { createMemoryBackend } from '../backends/memory-backend.ts';

const UDP = readFileSync('test/fixtures/proc/lab/net/udp', 'utf8');
const HEADER = UDP.split('\n')[0] ?? '';

/** A /proc/net/udp text with one socket per port (inode = port), as the daemon's poll reads it. */
function udpText(ports: number[]): string {
  const lines = ports.map(
    (port, index) =>
      ` ${4000 + index}: 00000000:${port.toString(16).toUpperCase()} 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 ${port} 2 0000000000000000 0`,
  );
  return `${[HEADER, ...lines].join('\n')}\n`;
}

/**
 * A manual clock for the daemon (its poll timer and its idea of now): time moves only when the test
 * advances it, and each advance runs the timers that fell due, in order.
 */
function manualClock() {
  let now = 0;
  let nextId = 1;
  const timers = new Map<number, { at: number; every?: number; fn: () => void }>();
  const add = (fn: () => void, ms: number, every?: number): Timer => {
    const id = nextId++;
    timers.set(id, { at: now + ms, fn, ...(every === undefined ? {} : { every }) });
    return id as unknown as Timer;
  };
  const clock: Clock & { advance(ms: number): void } = {
    now: () => now,
    setTimeout: (fn, ms) => add(fn, ms),
    setInterval: (fn, ms) => add(fn, ms, ms),
    clear: (timer) => {
      timers.delete(timer as unknown as number);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers.entries()]
          .filter(([, timer]) => timer.at <= until)
          .sort((a, b) => a[1].at - b[1].at)[0];
        if (due === undefined) break;
        const [id, timer] = due;
        now = timer.at;
        if (timer.every === undefined) timers.delete(id);
        else timer.at += timer.every;
        timer.fn();
      }
      now = until;
    },
  };
  return clock;
}

/** Lets the daemon's pending promises (a reconcile, a reply) settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** The clock of the daemon under test (one test at a time). */
let clock = manualClock();

/** Advances the daemon's clock by `ms` in poll-sized steps, letting its work settle after each. */
async function wait(ms: number): Promise<void> {
  for (let passed = 0; passed < ms; passed += 20) {
    clock.advance(20);
    for (let round = 0; round < 5; round += 1) await settle();
  }
}

/** Advances the daemon's time poll by poll until `check` holds (or fails the test after 2 s of its time). */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    if (check()) return;
    await wait(10);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

/** A daemon over a memory backend with sessions, config and signals the test controls. */
function fakeDaemon(
  initial: Partial<Config> = {},
  backend = createMemoryBackend(),
  socketCounts?: () => string | undefined,
  fullPollEvery?: number,
  holderEdges?: HolderEdges,
  extra: Partial<DaemonDeps> = {},
) {
  clock = manualClock();
  const state = {
    udpReads: 0,
    fullScans: 0,
    portScans: [] as number[],
    /** "full" and "port N", in the order the scans ran. */
    scans: [] as string[],
    /** Give the engine a narrowed scan (the shim's quick path). */
    quick: false,
    sessions: [] as MoshSession[],
    scan: undefined as undefined | (() => { sessions: MoshSession[]; refused: RefusedHolder[] }),
    nextConfig: (): Config => ({ ...DEFAULT_CONFIG, ...initial }),
  };
  const handlers = new Map<string, () => void>();
  const lines: string[] = [];
  let handle: (line: string) => Promise<DaemonResponse> = async () => ({ ok: false, error: 'not started' });
  let closed = false;
  const config: Config = { ...DEFAULT_CONFIG, pollIntervalMs: 20, ...initial };
  const deps: DaemonDeps = {
    config,
    reloadConfig: () => state.nextConfig(),
    makeEngine: (current) => ({
      config: current,
      backend,
      log: createLogger((line) => lines.push(line), 'debug'),
      scan: () => {
        state.fullScans += 1;
        state.scans.push('full');
        return state.scan?.() ?? { sessions: state.sessions, refused: [] };
      },
      scanPort: (port) => {
        if (!state.quick) throw new Error('no quick path in this test');
        state.portScans.push(port);
        state.scans.push(`port ${port}`);
        return { sessions: state.sessions.filter((entry) => entry.port === port), refused: [] };
      },
      groups: () => ({ gidOf: () => undefined, membersOf: () => [] }),
      lock: async () => async () => {},
    }),
    readUdp: () => {
      state.udpReads += 1;
      return { udp: udpText(state.sessions.map((entry) => entry.port)), udp6: undefined };
    },
    ...(socketCounts === undefined ? {} : { readSocketCounts: socketCounts }),
    ...(fullPollEvery === undefined ? {} : { fullPollEvery }),
    ...(holderEdges === undefined ? {} : { holderEdges }),
    log: createLogger((line) => lines.push(line), 'debug'),
    onSignal: (signal, handler) => handlers.set(signal, handler),
    startServer: async (_path, handler) => {
      handle = handler;
      return {
        close: () => {
          closed = true;
        },
      };
    },
    clock,
    version: 'test',
    ...extra,
  };
  const exit = runDaemon(deps);
  const ours = () =>
    backend
      .rules()
      .filter((rule) => rule.ours)
      .map((rule) => (rule.ports === 'any' ? 0 : (rule.ports[0]?.first ?? 0)));
  return {
    backend,
    state,
    lines,
    exit,
    ours,
    ask: (line: string) => handle(line),
    signal: (name: string) => handlers.get(name)?.(),
    isClosed: () => closed,
  };
}

/**
 * A daemon whose socket count never moves (only the holder watch can start a reconcile), watched
 * through `edges`, with one session (pid 4242, port 60001, uid 1000) opened.
 */
async function watchedDaemon(edges: HolderEdges, initial: Partial<Config> = {}) {
  const daemon = fakeDaemon(
    { resyncIntervalMs: 3_600_000, ...initial },
    createMemoryBackend(),
    () => 'UDP: inuse 1',
    1000,
    edges,
  );
  daemon.state.sessions = [session({ pid: 4242, port: 60001, uid: 1000 })];
  await eventually(() => daemon.ours().includes(60001), 'opened');
  return daemon;
}

describe('mayReuseScan', () => {
  const last = (over: Partial<LastScan> = {}, result: Partial<LastScan['result']> = {}): LastScan => ({
    result: { sessions: [session({ port: 60001 })], refused: [], uninspected: [], ...result },
    fingerprint: 'v4:60001:4242',
    reuses: 0,
    ...over,
  });
  it('reuses the last scan only for a resync alone, watched, with the same sockets and nothing refused', () => {
    assert.equal(mayReuseScan(last(), 'v4:60001:4242', true, true), true);
    assert.equal(mayReuseScan(undefined, 'v4:60001:4242', true, true), false, 'no scan yet');
    assert.equal(mayReuseScan(last(), 'v4:60001:4242', false, true), false, 'something else asked');
    assert.equal(mayReuseScan(last(), 'v4:60001:4242', true, false), false, 'no holder watch');
    assert.equal(mayReuseScan(last(), 'v4:60001:4243', true, true), false, 'the sockets changed');
    const refused: RefusedHolder = {
      pid: 5,
      uid: 1000,
      user: 'alice',
      port: 60001,
      family: 'v4',
      localAddress: '0.0.0.0',
      exe: '/usr/bin/python3',
      reason: 'not genuine',
    };
    const uninspected: UninspectedProcess = {
      pid: 6,
      uids: [1000],
      root: false,
      exe: '',
      path: '/proc/6/fd',
      code: 'EACCES',
    };
    assert.equal(
      mayReuseScan(last({}, { refused: [refused] }), 'v4:60001:4242', true, true),
      false,
      'a holder refused',
    );
    assert.equal(
      mayReuseScan(last({}, { uninspected: [uninspected] }), 'v4:60001:4242', true, true),
      false,
      'a process left uninspected',
    );
    assert.equal(mayReuseScan(last({ reuses: RESYNC_SCAN_REUSES - 1 }), 'v4:60001:4242', true, true), true);
    assert.equal(
      mayReuseScan(last({ reuses: RESYNC_SCAN_REUSES }), 'v4:60001:4242', true, true),
      false,
      'walked in full at least every 10th resync',
    );
  });
});

describe('runDaemon', () => {
  it('with metrics_listen, serves counts of the opens, sessions and answered requests it made', async () => {
    let render = () => '';
    let metricsClosed = false;
    const daemon = fakeDaemon(
      { metricsListen: { host: '127.0.0.1', port: 9654 } },
      createMemoryBackend(),
      undefined,
      undefined,
      undefined,
      {
        wallNow: () => 1234,
        startMetrics: async (listen, rendering) => {
          render = rendering;
          return {
            address: listen,
            close: () => {
              metricsClosed = true;
            },
          };
        },
      },
    );
    daemon.state.sessions = [session({ port: 60001 })];
    assert.equal((await daemon.ask('{"op":"open","port":60001}')).ok, true);
    await daemon.ask('not json');
    // The answer may come before the reconcile's end (once the rule is in): its counts follow.
    await eventually(() => render().includes('moshwall_last_good_reconcile_age_seconds '), 'reconcile ended');
    const text = render();
    assert.match(text, /^moshwall_build_info\{version="test",backend="memory"\} 1$/m);
    assert.match(text, /^moshwall_opens_total\{family="v4"\} 1$/m);
    assert.match(text, /^moshwall_sessions\{family="v4"\} 1$/m);
    assert.match(text, /^moshwall_rules\{family="v4"\} 1$/m);
    assert.match(text, /^moshwall_shim_requests_total\{outcome="open"\} 1$/m);
    assert.match(text, /^moshwall_shim_requests_total\{outcome="bad_request"\} 1$/m);
    assert.match(text, /^moshwall_open_latency_seconds_count\{outcome="open"\} 1$/m);
    assert.match(text, /^moshwall_last_good_reconcile_age_seconds \d/m);
    assert.ok(!text.includes(session({ port: 60001 }).user), 'no user name by default');
    const opened = await daemon.ask('{"op":"opened"}');
    assert.deepEqual(opened, { ok: true, op: 'opened', opened: [{ port: 60001, family: 'v4', atMs: 1234 }] });
    // A reload cannot move the endpoint: it says so and keeps serving where it listens.
    daemon.state.nextConfig = () => ({ ...DEFAULT_CONFIG, pollIntervalMs: 20 });
    daemon.signal('SIGHUP');
    assert.ok(daemon.lines.some((line) => /^warn reload-partial .*metrics_listen/.test(line)));
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
    assert.equal(metricsClosed, true);
  });

  it('sweeps stale rules at start, opens on request, closes when the socket goes, stops on SIGTERM keeping live rules', async () => {
    const daemon = fakeDaemon();
    await daemon.backend.allow([anySpec(60999)]);
    await eventually(() => daemon.ours().length === 0, 'stale rule swept at start');
    daemon.state.sessions = [session({ port: 60001 })];
    const answer = await daemon.ask('{"op":"open","port":60001}');
    assert.deepEqual(answer, { ok: true, op: 'open', port: 60001, state: 'open' });
    assert.deepEqual(daemon.ours(), [60001], 'the rule exists when the answer comes');
    daemon.state.sessions = [session({ port: 60001 }), session({ port: 60002 })];
    await eventually(() => daemon.ours().includes(60002), 'poll opens a session nobody asked for');
    daemon.state.sessions = [session({ port: 60002 })];
    await eventually(() => !daemon.ours().includes(60001), 'closed after its socket went away');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
    assert.deepEqual(daemon.ours(), [60002], 'on_stop = keep leaves live rules');
    assert.equal(daemon.isClosed(), true);
    assert.ok(daemon.lines.some((line) => /^info opened port=60002/.test(line)));
    assert.ok(daemon.lines.some((line) => /^info closed port=60001/.test(line)));
  });

  it("serves a shim request from its port's narrowed scan, before any full scan, then runs the full one", async () => {
    const daemon = fakeDaemon();
    daemon.state.quick = true;
    await eventually(
      () => daemon.lines.some((line) => line.startsWith('debug reconciled')),
      'first reconcile',
    );
    const fullBefore = daemon.state.fullScans;
    const from = daemon.state.scans.length;
    daemon.state.sessions = [session({ port: 60001 })];
    const answer = await daemon.ask('{"op":"open","port":60001}');
    assert.deepEqual(answer, { ok: true, op: 'open', port: 60001, state: 'open' });
    assert.deepEqual(daemon.state.portScans, [60001]);
    assert.equal(daemon.state.scans[from], 'port 60001', 'the narrowed scan ran first');
    assert.deepEqual(daemon.ours(), [60001]);
    await eventually(() => daemon.state.fullScans > fullBefore, 'the full check follows');
    // A port whose narrowed scan finds no session is left to the full path (which refuses it here).
    const refused = await daemon.ask('{"op":"open","port":60005}');
    assert.equal(refused.ok, false);
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('with socket counts, reads the socket tables when the count changes and every FULL_POLL_EVERY polls', async () => {
    let count = 'UDP: inuse 0';
    const daemon = fakeDaemon({}, createMemoryBackend(), () => count);
    await eventually(
      () => daemon.lines.some((line) => line.startsWith('debug reconciled')),
      'first reconcile',
    );
    const readsAtRest = daemon.state.udpReads;
    await wait(20 * 3);
    assert.ok(daemon.state.udpReads - readsAtRest <= 1, 'no full read on most polls while the count stands');
    daemon.state.sessions = [session({ port: 60001 })];
    count = 'UDP: inuse 1';
    await eventually(() => daemon.ours().includes(60001), 'a new socket (the count moved) is opened');
    // Another socket replaces it: the count stands, and a full poll within FULL_POLL_EVERY notices.
    daemon.state.sessions = [session({ port: 60002 })];
    await eventually(() => daemon.ours().includes(60002), 'the swap is noticed by a periodic full poll');
    assert.deepEqual(daemon.ours(), [60002]);
    assert.ok(FULL_POLL_EVERY * 20 < 2000, 'within the test patience');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('with socket counts, a socket only a shim request saw is closed at the next poll once it goes', async () => {
    let count = 'UDP: inuse 0';
    const daemon = fakeDaemon({}, createMemoryBackend(), () => count, 1_000_000);
    await eventually(
      () => daemon.lines.some((line) => line.startsWith('debug reconciled')),
      'first reconcile',
    );
    daemon.state.sessions = [session({ port: 60001 })];
    count = 'UDP: inuse 1';
    assert.deepEqual(await daemon.ask('{"op":"open","port":60001}'), {
      ok: true,
      op: 'open',
      port: 60001,
      state: 'open',
    });
    daemon.state.sessions = [];
    count = 'UDP: inuse 0';
    try {
      await eventually(() => daemon.ours().length === 0, 'closed: the count moved since the request saw it');
    } finally {
      daemon.signal('SIGTERM');
    }
    assert.equal(await daemon.exit, 0);
  });

  it('answers hostile and wrong requests with errors and keeps serving', async () => {
    const daemon = fakeDaemon();
    for (const line of [
      'garbage',
      '{"op":"open","port":22}',
      '{"op":"open","port":60005}',
      'x'.repeat(600),
    ]) {
      const answer = await daemon.ask(line);
      assert.equal(answer.ok, false, line.slice(0, 40));
    }
    assert.match(
      JSON.stringify(await daemon.ask('{"op":"open","port":60005}')),
      /no genuine mosh-server holds port 60005/,
    );
    assert.deepEqual(await daemon.ask('{"op":"ping"}'), { ok: true, op: 'ping', version: 'test' });
    assert.deepEqual(daemon.ours(), []);
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('a resync alone reuses the last scan (walking in full every 10th) but still lists and repairs the firewall', async () => {
    const edges: HolderEdges = {
      alive: () => true,
      status: () => ({ tracerPid: 0, realUid: 1000, effectiveUid: 1000 }),
    };
    const daemon = await watchedDaemon(edges, { resyncIntervalMs: 100 });
    const resyncs = () => daemon.lines.filter((line) => line.startsWith('debug reconciled')).length;
    const scansBefore = daemon.state.fullScans;
    const resyncsBefore = resyncs();
    await eventually(() => resyncs() - resyncsBefore >= 12, '12 resyncs');
    const runs = resyncs() - resyncsBefore;
    const scans = daemon.state.fullScans - scansBefore;
    assert.ok(
      scans >= 1 && scans <= Math.ceil(runs / (RESYNC_SCAN_REUSES + 1)) + 1,
      `${scans} scans in ${runs} resyncs`,
    );
    assert.ok(daemon.lines.some((line) => /^debug reconciled .*scan=reused/.test(line)));
    // A rule removed behind our back is put back by a resync that reused the scan.
    await daemon.backend.revoke([anySpec(60001, 'v4')]);
    assert.deepEqual(daemon.ours(), []);
    const scansThen = daemon.state.fullScans;
    await eventually(() => daemon.ours().includes(60001), 'put back');
    assert.ok(daemon.state.fullScans - scansThen <= 1);
    // Anything else that asks (here a shim request) walks /proc in full.
    const asked = daemon.state.fullScans;
    assert.equal((await daemon.ask('{"op":"open","port":60001}')).ok, true);
    assert.ok(daemon.state.fullScans > asked, 'a request scans');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('paces the look for sharers by watch_interval_ms, and a SIGHUP with a new value re-paces it', async () => {
    const looks: number[] = [];
    const edges: HolderEdges = {
      alive: () => true,
      status: () => ({ tracerPid: 0, realUid: 1000, effectiveUid: 1000 }),
      sharer: () => {
        looks.push(performance.now());
        return undefined;
      },
    };
    const daemon = await watchedDaemon(edges, { watchIntervalMs: 250 });
    await eventually(() => looks.length >= 3, 'looked every 250 ms');
    daemon.state.nextConfig = () => ({ ...DEFAULT_CONFIG, pollIntervalMs: 20, watchIntervalMs: 60_000 });
    daemon.signal('SIGHUP');
    await eventually(() => daemon.lines.some((line) => /^info reloaded /.test(line)), 'reloaded');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const settled = looks.length;
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(looks.length, settled, 'no look within a second once watch_interval_ms is 60 s');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('says once when the host is locked (Yama ptrace_scope 2 or more) and the watch slows, and again when it is not', async () => {
    let locked = true;
    const edges: HolderEdges = {
      alive: () => true,
      status: () => ({ tracerPid: 0, realUid: 1000, effectiveUid: 1000 }),
      locked: () => locked,
    };
    const daemon = await watchedDaemon(edges);
    const said = () => daemon.lines.filter((line) => /^info holder-watch /.test(line));
    await eventually(() => said().length === 1, 'said');
    assert.match(said()[0] ?? '', /everyMs=10000 reason="ptrace_scope 2 or more/);
    locked = false;
    daemon.signal('SIGHUP');
    await eventually(
      () => daemon.lines.some((line) => /^info reloaded /.test(line)),
      'reloaded: a reconcile tracks again',
    );
    await eventually(() => said().length === 2, 'said again');
    assert.match(said()[1] ?? '', /everyMs=1500 reason="users can attach to their own processes"/);
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('never slows the watch with allow_foreign_namespaces: a user owning a namespace may ptrace in it whatever Yama says', async () => {
    let looks = 0;
    const edges: HolderEdges = {
      alive: () => true,
      status: () => ({ tracerPid: 0, realUid: 1000, effectiveUid: 1000 }),
      sharer: () => {
        looks += 1;
        return undefined;
      },
      locked: () => true,
    };
    const daemon = await watchedDaemon(edges, { allowForeignNamespaces: true, watchIntervalMs: 250 });
    await eventually(() => looks >= 3, 'looked every 250 ms');
    assert.equal(daemon.lines.filter((line) => /^info holder-watch /.test(line)).length, 0);
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('closes a port soon after its genuine holder ends while the socket lives on (no socket change), and says why', async () => {
    const alive = new Set([4242]);
    const edges: HolderEdges = {
      alive: (pid) => alive.has(pid),
      status: (pid) => (alive.has(pid) ? { tracerPid: 0, realUid: 1000, effectiveUid: 1000 } : undefined),
    };
    const daemon = await watchedDaemon(edges);
    // Another process took the socket and the server ended: the socket table and its count stand still,
    // and the next full scan sees a holder that is not genuine (here: no session any more).
    alive.delete(4242);
    daemon.state.sessions = [];
    await eventually(
      () => !daemon.ours().includes(60001),
      'closed by the holder watch, long before the resync',
    );
    assert.ok(
      daemon.lines.some((line) =>
        /^info holder-changed reason="holder pid 4242 of port 60001 ended"/.test(line),
      ),
    );
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('a shim request refused because of a holder that held the socket a moment (utempter) is looked at again and served', async () => {
    const daemon = fakeDaemon();
    await eventually(
      () => daemon.lines.some((line) => line.startsWith('debug reconciled')),
      'first reconcile',
    );
    const genuine = session({ pid: 4242, port: 60001 });
    const helper: RefusedHolder = {
      pid: 4300,
      uid: 0,
      user: 'root',
      port: 60001,
      family: 'v4',
      localAddress: '0.0.0.0',
      exe: '/usr/lib/x86_64-linux-gnu/utempter/utempter',
      reason: 'executable /usr/lib/x86_64-linux-gnu/utempter/utempter is not named mosh-server',
    };
    // The first look sees the helper still holding the socket (no genuine session); the next only mosh-server.
    let transient = true;
    daemon.state.scan = () => {
      if (!transient) return { sessions: [genuine], refused: [] };
      transient = false;
      return { sessions: [], refused: [helper] };
    };
    const asked = daemon.ask('{"op":"open","port":60001}');
    await wait(1000);
    assert.deepEqual(await asked, { ok: true, op: 'open', port: 60001, state: 'open' });
    assert.equal(transient, false, 'the helper was seen first');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('puts back a live rule an admin removed (its change token moved)', async () => {
    const daemon = fakeDaemon();
    let edits = 0;
    daemon.backend.changeToken = () => String(edits);
    daemon.state.sessions = [session({ port: 60001 })];
    await eventually(() => daemon.ours().includes(60001), 'opened');
    await daemon.backend.revoke([anySpec(60001)]);
    edits++;
    await eventually(() => daemon.ours().includes(60001), 'put back after the firewall changed');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
  });

  it('starts the backend watcher after the first reconcile, reconciles on its events, closes it on stop', async () => {
    const backend = createMemoryBackend();
    let notify: ((what: string) => void) | undefined;
    let started = 0;
    let closed = 0;
    backend.watchChanges = (onChange) => {
      started++;
      notify = onChange;
      return { close: () => closed++ };
    };
    const daemon = fakeDaemon({ resyncIntervalMs: 3_600_000 }, backend);
    daemon.state.sessions = [session({ port: 60001 })];
    await eventually(() => daemon.ours().includes(60001), 'opened');
    assert.equal(started, 1, 'one watcher');
    await daemon.backend.revoke([anySpec(60001)]);
    assert.ok(notify, 'the watcher got a callback');
    notify('table reloaded');
    await eventually(() => daemon.ours().includes(60001), 'put back after the watcher reported a change');
    assert.ok(daemon.lines.some((line) => /firewall changed: table reloaded/.test(line)));
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
    assert.equal(started, 1, 'still one watcher: it is not restarted per reconcile');
    assert.equal(closed, 1, 'closed on stop');
  });

  it('keeps the old config when SIGHUP brings a bad one; flushes on SIGTERM with on_stop = "flush"', async () => {
    const daemon = fakeDaemon({ onStop: 'flush' });
    daemon.state.sessions = [session({ port: 60001 })];
    await eventually(() => daemon.ours().includes(60001), 'opened');
    daemon.state.nextConfig = () => {
      throw new ConfigError('/etc/moshwall/moshwall.toml:3: port_range: bad', {
        file: '/etc/moshwall/moshwall.toml',
        line: 3,
      });
    };
    daemon.signal('SIGHUP');
    assert.ok(daemon.lines.some((line) => /^error reload-failed .*port_range: bad/.test(line)));
    assert.deepEqual(await daemon.ask('{"op":"open","port":60001}'), {
      ok: true,
      op: 'open',
      port: 60001,
      state: 'open',
    });
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
    assert.deepEqual(daemon.ours(), [], 'on_stop = flush removes every rule of ours');
  });

  it('on_stop = "flush": no reconcile runs after the flush (a quick open\'s follow-up or a queued one put a live rule back)', async () => {
    const daemon = fakeDaemon({ onStop: 'flush' });
    daemon.state.quick = true;
    await eventually(
      () => daemon.lines.some((line) => line.startsWith('debug reconciled')),
      'first reconcile',
    );
    daemon.state.sessions = [session({ port: 60001 })];
    // Served by the quick path: its full follow-up is due QUICK_FOLLOW_UP_MS later, after the stop.
    assert.deepEqual(await daemon.ask('{"op":"open","port":60001}'), {
      ok: true,
      op: 'open',
      port: 60001,
      state: 'open',
    });
    // A request the quick path leaves to the full path: its answer and the stop race.
    const refused = daemon.ask('{"op":"open","port":60005}');
    daemon.signal('SIGTERM');
    assert.equal(await daemon.exit, 0);
    await refused;
    const scansAtExit = daemon.state.scans.length;
    await wait(2000);
    assert.deepEqual(daemon.ours(), [], 'the flush is the last change');
    assert.equal(daemon.state.scans.length, scansAtExit, 'no scan after the stop');
    assert.ok(
      daemon.lines.some((line) => line === 'info flushed rules=1'),
      daemon.lines.join('\n'),
    );
  });

  it('exits 4 by itself when the firewall tool is missing', async () => {
    const daemon = fakeDaemon({}, createMemoryBackend({ installed: false }));
    assert.equal(await daemon.exit, 4);
    assert.ok(daemon.lines.some((line) => /^error reconcile-failed .*not usable/.test(line)));
  });
});
