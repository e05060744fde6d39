import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  createHolderWatch,
  DEFAULT_HOLDER_WATCH,
  holderStatus,
  SHARER_FULL_WALK_EVERY,
  sharerWalkDue,
  statusesCoverAlive,
} from '../../../src/daemon/holder-watch.ts';
import { session } from '../../support/builders.ts';

/** Edges over a table the test edits: pid → status (absent: gone). */
function host() {
  const table = new Map<number, { tracerPid: number; realUid: number; effectiveUid: number }>();
  const reads: number[] = [];
  return {
    table,
    reads,
    edges: {
      alive: (pid: number) => table.has(pid),
      status: (pid: number) => {
        reads.push(pid);
        return table.get(pid);
      },
    },
  };
}

test('a genuine holder that ends while its socket lives on is noticed at the next existence probe', () => {
  const { table, edges } = host();
  const sessions = [
    session({ pid: 10, port: 60001, uid: 1000 }),
    session({ pid: 11, port: 60002, uid: 1000 }),
  ];
  for (const each of sessions) table.set(each.pid, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  const watch = createHolderWatch(edges, {
    aliveEveryMs: 1000,
    statusEveryMs: 1000,
    statusReadsPerSecond: 0,
    sharersEveryMs: 1500,
  });
  watch.track(sessions, 0);
  assert.equal(watch.check(500), undefined);
  table.delete(11);
  assert.equal(watch.check(900), undefined, 'not probed before aliveEveryMs');
  assert.equal(watch.check(1000), 'holder pid 11 of port 60002 ended');
});

test('no existence probes while the status reads come round as often (a gone holder fails its read)', () => {
  const { table, edges } = host();
  let probes = 0;
  const counted = {
    ...edges,
    alive: (pid: number) => {
      probes += 1;
      return edges.alive(pid);
    },
  };
  const sessions = Array.from({ length: 1000 }, (_, index) =>
    session({ pid: 1000 + index, port: 60000 + index, uid: 1000 }),
  );
  for (const each of sessions) table.set(each.pid, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  const watch = createHolderWatch(counted, DEFAULT_HOLDER_WATCH);
  watch.track(sessions, 0);
  for (let now = 250; now <= 3000; now += 250) assert.equal(watch.check(now), undefined);
  assert.equal(probes, 0, '1000 holders at 667 status reads a second: each read every 1.5 s');
  table.delete(1500);
  let found: string | undefined;
  let at = 3000;
  while (found === undefined && at < 6000) {
    at += 250;
    found = watch.check(at);
  }
  assert.equal(found, 'holder pid 1500 of port 60500 ended');
  assert.ok(at - 3000 <= 1750, `found ${at - 3000} ms after it ended`);
  // Past the budget (2000 holders at 700 reads a second: each every 2.9 s) the probes run again.
  assert.equal(statusesCoverAlive(1000, 667, DEFAULT_HOLDER_WATCH), true);
  assert.equal(statusesCoverAlive(2000, 700, DEFAULT_HOLDER_WATCH), false);
  assert.equal(statusesCoverAlive(100, 0, DEFAULT_HOLDER_WATCH), false);
});

test('a tracer or a uid change is found within the status budget, round-robin over every session', () => {
  const { table, edges, reads } = host();
  const sessions = Array.from({ length: 10 }, (_, index) =>
    session({ pid: 100 + index, port: 60100 + index, uid: 1000 }),
  );
  for (const each of sessions) table.set(each.pid, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  const watch = createHolderWatch(edges, {
    aliveEveryMs: 1000,
    statusEveryMs: 1000,
    statusReadsPerSecond: 4,
    sharersEveryMs: 1500,
  });
  watch.track(sessions, 0);
  for (let now = 250; now <= 2500; now += 250) assert.equal(watch.check(now), undefined);
  assert.equal(reads.length, 10, '4 reads a second for 2.5 s: every session once');
  assert.deepEqual([...new Set(reads)].length, 10);
  table.set(103, { tracerPid: 4242, realUid: 1000, effectiveUid: 1000 });
  let found: string | undefined;
  for (let now = 2750; now <= 5000 && found === undefined; now += 250) found = watch.check(now);
  assert.equal(found, 'holder pid 103 of port 60103 is traced by pid 4242');
  table.set(103, { tracerPid: 0, realUid: 1000, effectiveUid: 0 });
  found = undefined;
  for (let now = 5250; now <= 8000 && found === undefined; now += 250) found = watch.check(now);
  assert.equal(found, 'holder pid 103 of port 60103 changed uid');
});

test('each holder is read once per statusEveryMs when the budget allows, not more; the budget caps it past that', () => {
  const { table, edges, reads } = host();
  const few = Array.from({ length: 3 }, (_, index) =>
    session({ pid: 200 + index, port: 60200 + index, uid: 1000 }),
  );
  for (const each of few) table.set(each.pid, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  const limits = { aliveEveryMs: 1000, statusEveryMs: 1500, statusReadsPerSecond: 700, sharersEveryMs: 1500 };
  const watch = createHolderWatch(edges, limits);
  watch.track(few, 0);
  for (let now = 250; now <= 3000; now += 250) watch.check(now);
  assert.equal(reads.length, 6, '3 holders, each once per 1.5 s, over 3 s');
  const many = Array.from({ length: 2000 }, (_, index) =>
    session({ pid: 1000 + index, port: 1000 + index, uid: 1000 }),
  );
  for (const each of many) table.set(each.pid, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  reads.length = 0;
  watch.track(many, 3000);
  for (let now = 3250; now <= 5000; now += 250) watch.check(now);
  assert.equal(reads.length, 1400, '2000 holders: 700 reads a second at most, over 2 s');
  const floored = createHolderWatch(edges, { ...limits, minStatusReadsPerSecond: 100 });
  reads.length = 0;
  floored.track(few.slice(0, 1), 5000);
  for (let now = 5250; now <= 6000; now += 250) floored.check(now);
  assert.equal(reads.length, 4, 'one holder, 100 a second at least: read at every check');
});

test('every track tells the edges which holders it now watches (an edge keeps their status files open)', () => {
  const { edges } = host();
  const told: number[][] = [];
  const watch = createHolderWatch({ ...edges, watching: (pids) => told.push([...pids].sort()) });
  watch.track([session({ pid: 31, port: 60031 }), session({ pid: 30, port: 60030 })], 0);
  watch.track([], 100);
  assert.deepEqual(told, [[30, 31], []]);
});

test('no sessions, nothing read; a new track starts over', () => {
  const { edges, reads } = host();
  const watch = createHolderWatch(edges);
  watch.track([], 0);
  assert.equal(watch.check(10_000), undefined);
  assert.deepEqual(reads, []);
});

test('holderStatus reads the tracer and uids of a real /proc/PID/status, and undefined from anything else', () => {
  const text = readFileSync(`/proc/${process.pid}/status`, 'utf8');
  const status = holderStatus(text);
  assert.deepEqual(status, {
    tracerPid: Number(/\nTracerPid:\t(\d+)/.exec(text)?.[1]),
    realUid: process.getuid?.(),
    effectiveUid: process.geteuid?.(),
  });
  assert.equal(holderStatus('Name:\tx\nUid:\t1\t1\t1\t1\n'), undefined);
  assert.equal(holderStatus(''), undefined);
});

test('a refused holder that ends (a helper that held the socket a moment) is noticed at the next check', () => {
  const { table, edges } = host();
  table.set(4300, { tracerPid: 0, realUid: 0, effectiveUid: 0 });
  const watch = createHolderWatch(edges, {
    aliveEveryMs: 1000,
    statusEveryMs: 1000,
    statusReadsPerSecond: 0,
    sharersEveryMs: 1500,
  });
  const helper = {
    pid: 4300,
    uid: 0,
    user: 'root',
    port: 60001,
    family: 'v4' as const,
    localAddress: '0.0.0.0',
    exe: '/usr/lib/x86_64-linux-gnu/utempter/utempter',
    reason: 'not named mosh-server',
  };
  watch.track([], 0, [helper]);
  assert.equal(watch.check(250), undefined, 'still there');
  table.delete(4300);
  assert.equal(watch.check(500), 'refused holder pid 4300 of port 60001 ended');
  assert.equal(watch.check(750), undefined, 'said once');
});

test("the owners' other processes are looked through for a session's socket every sharersEveryMs, asking with the sessions' uids, inodes and known holders", () => {
  const { table, edges } = host();
  const sessions = [
    session({ pid: 10, port: 60001, uid: 1000 }),
    session({ pid: 11, port: 60002, uid: 1001 }),
  ];
  for (const each of sessions)
    table.set(each.pid, { tracerPid: 0, realUid: each.uid, effectiveUid: each.uid });
  const asked: Array<{ inodes: number[]; uids: number[]; known: number[] }> = [];
  let holding: { pid: number; inode: number } | undefined;
  const watch = createHolderWatch(
    {
      ...edges,
      sharer(inodes, uids, known) {
        asked.push({ inodes: [...inodes].sort(), uids: [...uids].sort(), known: [...known].sort() });
        return holding;
      },
    },
    { aliveEveryMs: 1000, statusEveryMs: 1000, statusReadsPerSecond: 0, sharersEveryMs: 1500 },
  );
  const helper = {
    pid: 12,
    uid: 0,
    user: 'root',
    port: 60001,
    family: 'v4' as const,
    localAddress: '0.0.0.0',
    exe: '/x',
    reason: 'r',
  };
  table.set(12, { tracerPid: 0, realUid: 0, effectiveUid: 0 });
  watch.track(
    sessions,
    0,
    [helper],
    new Map([
      [5001, 60001],
      [5002, 60002],
    ]),
  );
  assert.equal(watch.check(1000), undefined);
  assert.equal(asked.length, 0, 'not before sharersEveryMs');
  assert.equal(watch.check(1500), undefined);
  assert.deepEqual(asked, [{ inodes: [5001, 5002], uids: [1000, 1001], known: [10, 11, 12] }]);
  holding = { pid: 77, inode: 5002 };
  assert.equal(watch.check(2000), undefined, 'the next look is 1.5 s later');
  assert.equal(watch.check(3000), 'pid 77 also holds the socket of port 60002');
});

test('without sockets to look for (or without the edge) no sharer look happens', () => {
  const { table, edges } = host();
  const sessions = [session({ pid: 10, port: 60001, uid: 1000 })];
  table.set(10, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  let asked = 0;
  const watch = createHolderWatch(
    {
      ...edges,
      sharer: () => {
        asked++;
        return { pid: 1, inode: 1 };
      },
    },
    { aliveEveryMs: 1000, statusEveryMs: 1000, statusReadsPerSecond: 0, sharersEveryMs: 1500 },
  );
  watch.track(sessions, 0);
  assert.equal(watch.check(5000), undefined);
  assert.equal(asked, 0);
  const plain = createHolderWatch(edges, {
    aliveEveryMs: 1000,
    statusEveryMs: 1000,
    statusReadsPerSecond: 0,
    sharersEveryMs: 1500,
  });
  plain.track(sessions, 0, [], new Map([[5001, 60001]]));
  assert.equal(plain.check(5000), undefined);
});

test("the sharer look walks an owner's process when new, when its fd count moved or is unknown, and once every SHARER_FULL_WALK_EVERY looks", () => {
  const single = { pid: 4000, fds: 4 };
  assert.equal(sharerWalkDue(undefined, single, 7), true, 'new to the look');
  assert.equal(sharerWalkDue({ fds: 4, look: 7 }, single, 8), false, 'same count, walked a look ago');
  assert.equal(
    sharerWalkDue({ fds: 4, look: 7 }, { ...single, fds: 5 }, 8),
    true,
    'a socket taken: one fd more',
  );
  assert.equal(
    sharerWalkDue({ fds: 4, look: 7 }, { ...single, fds: 0 }, 8),
    true,
    'no count (kernel before 6.2)',
  );
  const walks: number[] = [];
  let before = { fds: 4, look: 0 };
  for (let look = 1; look <= 3 * SHARER_FULL_WALK_EVERY; look += 1) {
    if (sharerWalkDue(before, single, look)) {
      walks.push(look);
      before = { fds: 4, look };
    }
  }
  assert.equal(walks.length, 3, 'an unchanged process: once every SHARER_FULL_WALK_EVERY looks');
  assert.ok(walks.every((look, index) => look - (walks[index - 1] ?? 0) <= SHARER_FULL_WALK_EVERY));
  const phases = new Set(
    Array.from({ length: 100 }, (_, pid) =>
      Array.from({ length: SHARER_FULL_WALK_EVERY }, (_, look) => look + 1).find((look) =>
        sharerWalkDue({ fds: 4, look: 0 }, { pid, fds: 4 }, look),
      ),
    ),
  );
  assert.equal(phases.size, SHARER_FULL_WALK_EVERY, 'spread over the looks by pid, not all at once');
});

test('with the defaults, on a locked host (Yama ptrace_scope 2 or more) status reads and sharer looks slow to 10 s; a track re-asks', () => {
  const { table, edges, reads } = host();
  let locked = true;
  const looks: number[] = [];
  const watch = createHolderWatch(
    {
      ...edges,
      locked: () => locked,
      sharer: () => {
        looks.push(1);
        return undefined;
      },
    },
    DEFAULT_HOLDER_WATCH,
  );
  const sessions = Array.from({ length: 1000 }, (_, index) =>
    session({ pid: 5000 + index, port: 1000 + index, uid: 1000 }),
  );
  for (const each of sessions) table.set(each.pid, { tracerPid: 0, realUid: 1000, effectiveUid: 1000 });
  const socketPorts = new Map(sessions.map((each) => [each.pid * 10, each.port]));
  watch.track(sessions, 0, [], socketPorts);
  assert.deepEqual(watch.pace(), { statusEveryMs: 10000, sharersEveryMs: 10000, locked: true });
  for (let now = 250; now <= 5000; now += 250) watch.check(now);
  assert.equal(reads.length, 500, '100 reads a second (the floor), not 667');
  assert.equal(looks.length, 0, 'no look before 10 s');
  locked = false;
  reads.length = 0;
  watch.track(sessions, 5000, [], socketPorts);
  assert.equal(watch.pace().locked, false);
  for (let now = 5250; now <= 8000; now += 250) watch.check(now);
  assert.ok(
    reads.length >= 1990 && reads.length <= 2000,
    `unlocked: each every 1.5 s again (about 2000 reads in 3 s), got ${reads.length}`,
  );
  assert.equal(looks.length, 2, 'a look every 1.5 s again: at 1.5 s and 3 s after the track');
});
