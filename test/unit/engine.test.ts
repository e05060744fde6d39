import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import { collectStatus, type EngineDeps, flushOurs, openPortQuickly, syncOnce } from '../../src/engine.ts';
import { ProcError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import type { ScanResult } from '../../src/model.ts';
import { anySpec, rule, session } from '../support/builders.ts';
import { createMemoryBackend, type MemoryBackend } from './backends/memory-backend.ts';

/** Engine deps over a memory backend and a scan the test controls; counts lock use. */
function harness(scan: () => ScanResult, backend: MemoryBackend = createMemoryBackend()) {
  const locks = { taken: 0, released: 0 };
  const deps: EngineDeps = {
    config: DEFAULT_CONFIG,
    backend,
    scan,
    groups: () => ({ gidOf: () => undefined, membersOf: () => [] }),
    log: silentLogger,
    lock: async () => {
      locks.taken++;
      return async () => {
        locks.released++;
      };
    },
  };
  return { deps, backend, locks };
}

const ours = (backend: MemoryBackend) =>
  backend
    .rules()
    .filter((candidate) => candidate.ours)
    .map((candidate) => `${candidate.family}:${JSON.stringify(candidate.ports)}`)
    .sort();

describe('syncOnce', () => {
  it('opens a live session, keeps it on the next run, closes it when the session is gone', async () => {
    let sessions = [session({ port: 60001 })];
    const { deps, backend, locks } = harness(() => ({ sessions, refused: [] }));
    const first = await syncOnce(deps, { dryRun: false });
    assert.deepEqual(first.plan.allow, [anySpec(60001)]);
    assert.deepEqual(ours(backend), ['v4:[{"first":60001,"last":60001}]']);
    const second = await syncOnce(deps, { dryRun: false });
    assert.deepEqual([second.plan.allow, second.plan.revoke], [[], []]);
    assert.deepEqual(second.plan.keep, [anySpec(60001)]);
    sessions = [];
    const third = await syncOnce(deps, { dryRun: false });
    assert.deepEqual(third.plan.revoke, [anySpec(60001)]);
    assert.deepEqual(ours(backend), []);
    assert.deepEqual(locks, { taken: 3, released: 3 });
  });

  it('changes nothing on a dry run, and takes no lock', async () => {
    const { deps, backend, locks } = harness(() => ({ sessions: [session({ port: 60001 })], refused: [] }));
    const report = await syncOnce(deps, { dryRun: true });
    assert.deepEqual(report.plan.allow, [anySpec(60001)]);
    assert.deepEqual(backend.calls, []);
    assert.equal(locks.taken, 0);
  });

  it('changes nothing and warns when the firewall is inactive', async () => {
    const backend = createMemoryBackend({ active: false });
    const { deps } = harness(() => ({ sessions: [session({ port: 60001 })], refused: [] }), backend);
    const report = await syncOnce(deps, { dryRun: false });
    assert.deepEqual(backend.calls, []);
    assert.match(report.warnings[0] ?? '', /inactive/);
  });

  it('fails with exit-code-4 error when the firewall tool is missing', async () => {
    const { deps } = harness(
      () => ({ sessions: [], refused: [] }),
      createMemoryBackend({ installed: false }),
    );
    await assert.rejects(syncOnce(deps, { dryRun: false }), { code: 'ENOFIREWALL' });
  });

  it('closes nothing when the scan fails (a failed scan is not "no sessions")', async () => {
    const backend = createMemoryBackend();
    backend.addRule({ ...rule({ ports: [{ first: 60001, last: 60001 }] }), comment: 'moshwall', ours: true });
    const { deps, locks } = harness(() => {
      throw new ProcError('Cannot read /proc/net/udp', { file: '/proc/net/udp' });
    }, backend);
    await assert.rejects(syncOnce(deps, { dryRun: false }), ProcError);
    assert.deepEqual(backend.calls, []);
    assert.equal(ours(backend).length, 1);
    assert.equal(locks.released, locks.taken, 'the lock is released on failure');
  });

  it('never adopts or removes an admin rule with the very spec it would write', async () => {
    const backend = createMemoryBackend();
    backend.addForeignRule(anySpec(60012));
    let sessions = [session({ port: 60012 })];
    const { deps } = harness(() => ({ sessions, refused: [] }), backend);
    const open = await syncOnce(deps, { dryRun: false });
    assert.equal(open.plan.deferred[0]?.kind, 'covered');
    sessions = [];
    await syncOnce(deps, { dryRun: false });
    assert.deepEqual(backend.calls, []);
    assert.equal(backend.rules().length, 1);
    assert.equal(backend.rules()[0]?.ours, false);
  });
});

describe('flushOurs', () => {
  it('removes every rule of ours and nothing else', async () => {
    const backend = createMemoryBackend();
    backend.addForeignRule(anySpec(60010));
    const { deps } = harness(
      () => ({ sessions: [session({ port: 60001 }), session({ port: 60002 })], refused: [] }),
      backend,
    );
    await syncOnce(deps, { dryRun: false });
    const applied = await flushOurs(deps);
    assert.deepEqual(
      applied.flatMap((change) => change.specs),
      [anySpec(60001), anySpec(60002)],
    );
    assert.deepEqual(ours(backend), []);
    assert.equal(backend.rules().length, 1);
  });
});

describe('collectStatus', () => {
  it('shows rule state per session, stale rules of ours, and admin rules in the range', async () => {
    const backend = createMemoryBackend();
    backend.addForeignRule(anySpec(60012));
    let sessions = [session({ port: 60001 }), session({ port: 60002 })];
    const { deps } = harness(() => ({ sessions, refused: [] }), backend);
    await syncOnce(deps, { dryRun: false });
    sessions = [
      session({ port: 60001, startedAtMs: 1_000 }),
      session({ port: 60012 }),
      session({ port: 60003 }),
    ];
    const status = await collectStatus(deps, 61_000);
    assert.deepEqual(
      status.sessions.map((entry) => [entry.port, entry.rule]),
      [
        [60001, 'open'],
        [60003, 'missing'],
        [60012, 'covered'],
      ],
    );
    assert.equal(status.sessions[0]?.ageSeconds, 60);
    assert.deepEqual(
      status.rules.map((entry) => [entry.port, entry.state]),
      [
        [60001, 'live'],
        [60002, 'stale'],
      ],
    );
    assert.equal(status.foreignInRange.length, 1);
    assert.deepEqual(backend.calls.length, 1, 'status changes nothing');
  });
});

describe('openPortQuickly (the shim quick path)', () => {
  const firewall = { installed: true, active: true, ipv6: true, detail: [] };
  const none = () => new Set<number>();

  it("opens the port's session from the narrowed scan and revokes nothing, though other rules of ours have no session in it", async () => {
    const { deps, backend } = harness(() => ({ sessions: [session({ port: 60001 })], refused: [] }));
    await syncOnce(deps, { dryRun: false });
    deps.scanPort = (port) => ({ sessions: [session({ port })], refused: [] });
    const report = await openPortQuickly(deps, 60002, { firewall, knownPorts: none });
    assert.ok(report);
    assert.deepEqual(report.plan.allow, [anySpec(60002)]);
    assert.deepEqual(report.plan.revoke, []);
    assert.deepEqual(ours(backend), [
      'v4:[{"first":60001,"last":60001}]',
      'v4:[{"first":60002,"last":60002}]',
    ]);
  });

  it('leaves the answer to a full reconcile when a per-user cap could be crossed, or without a narrowed scan', async () => {
    const { deps, backend } = harness(() => ({ sessions: [], refused: [] }));
    assert.equal(await openPortQuickly(deps, 60002, { firewall, knownPorts: none }), undefined);
    deps.scanPort = (port) => ({ sessions: [session({ port })], refused: [] });
    deps.config = { ...DEFAULT_CONFIG, maxSessionsPerUser: 2 };
    const full = () => new Set([60010, 60011]);
    assert.equal(await openPortQuickly(deps, 60002, { firewall, knownPorts: full }), undefined);
    assert.deepEqual(backend.calls, []);
    const report = await openPortQuickly(deps, 60002, { firewall, knownPorts: () => new Set([60010]) });
    assert.deepEqual(report?.plan.allow, [anySpec(60002)]);
  });
});
