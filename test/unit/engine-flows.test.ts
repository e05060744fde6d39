// Closed means closed: every revoke of ours (sync, daemon, flush, uninstall) goes through one place in
// the engine, which then deletes the revoked ports' conntrack entries; a failure there is logged, never
// fatal. Doctor and status say when conntrack(8) is missing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import {
  CONNTRACK_FIX,
  CONNTRACK_MISSING,
  createFlowCleaner,
  type FlowCleaner,
} from '../../src/conntrack.ts';
import { type DoctorFacts, diagnose } from '../../src/doctor.ts';
import { collectStatus, type EngineDeps, flushOurs, reportFlowTool, syncOnce } from '../../src/engine.ts';
import { FirewallError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import type { MoshSession } from '../../src/model.ts';
import type { RuleSpec } from '../../src/rules.ts';
import { anySpec, session, v6 } from '../support/builders.ts';
import { createMemoryBackend, type MemoryBackend } from './backends/memory-backend.ts';
import { createRecordingRunner, notInstalled } from './backends/recording-runner.ts';

/** Engine deps over a memory backend, a scan the test sets, a log it reads and the given flow cleaner. */
function harness(flows: FlowCleaner | undefined, backend: MemoryBackend = createMemoryBackend()) {
  const log: string[] = [];
  let sessions: MoshSession[] = [];
  const deps: EngineDeps = {
    config: DEFAULT_CONFIG,
    backend,
    scan: () => ({ sessions, refused: [] }),
    groups: () => ({ gidOf: () => undefined, membersOf: () => [] }),
    log: createLogger((line) => log.push(line), 'debug'),
    lock: async () => async () => {},
    ...(flows === undefined ? {} : { flows }),
  };
  return {
    deps,
    backend,
    log,
    setSessions: (next: MoshSession[]) => {
      sessions = next;
    },
  };
}

/** A flow cleaner that records what it was asked to forget, with the order of events. */
function recordingCleaner(events: string[], deleted = 2): FlowCleaner & { asked: RuleSpec[][] } {
  const asked: RuleSpec[][] = [];
  return {
    asked,
    probe: async () => ({ available: true, version: '1.4.7' }),
    forget: async (specs) => {
      events.push('forget');
      asked.push(specs);
      return specs.map((spec) => ({ spec, ok: true, deleted, argv: ['conntrack'], durationMs: 3 }));
    },
  };
}

describe('engine: flows of revoked rules', () => {
  it('sync deletes the flows of exactly the rules it revoked, after revoking them, and logs it', async () => {
    const events: string[] = [];
    const cleaner = recordingCleaner(events);
    const { deps, backend, log, setSessions } = harness(cleaner);
    setSessions([session({ port: 60001 }), session({ port: 60002 })]);
    await syncOnce(deps, { dryRun: false });
    assert.deepEqual(cleaner.asked, [], 'opening forgets nothing');
    setSessions([session({ port: 60002 })]);
    const originalRevoke = backend.revoke.bind(backend);
    backend.revoke = async (specs) => {
      events.push('revoke');
      return originalRevoke(specs);
    };
    await syncOnce(deps, { dryRun: false });
    assert.deepEqual(events, ['revoke', 'forget']);
    assert.deepEqual(cleaner.asked, [[anySpec(60001)]]);
    assert.ok(
      log.includes('info flows-deleted port=60001 family=v4 source=0.0.0.0/0 deleted=2 ms=3'),
      log.join('\n'),
    );
  });

  it('a dry run and a sync with nothing to revoke forget nothing', async () => {
    const cleaner = recordingCleaner([]);
    const { deps, setSessions } = harness(cleaner);
    setSessions([session({ port: 60001 })]);
    await syncOnce(deps, { dryRun: false });
    setSessions([]);
    await syncOnce(deps, { dryRun: true });
    await syncOnce(
      { ...deps, scan: () => ({ sessions: [session({ port: 60001 })], refused: [] }) },
      { dryRun: false },
    );
    assert.deepEqual(cleaner.asked, []);
  });

  it('flush (daemon on_stop, uninstall) deletes the flows of every rule it removed', async () => {
    const cleaner = recordingCleaner([]);
    const { deps, setSessions } = harness(cleaner);
    // A '::' socket is dual-stack: both families' rules, and both families' flows.
    setSessions([session({ port: 60001 }), session({ port: 60003, family: 'v6', localAddress: '::' })]);
    await syncOnce(deps, { dryRun: false });
    await flushOurs(deps);
    assert.deepEqual(
      cleaner.asked.flat().sort((a, b) => a.port - b.port || a.family.localeCompare(b.family)),
      [anySpec(60001), anySpec(60003), v6(60003)],
    );
  });

  it('a failed delete is logged with its port and reason and never fails the revoke', async () => {
    const { runner } = createRecordingRunner(() => ({
      exitCode: 1,
      stdout: '',
      stderr: 'conntrack v1.4.7 (conntrack-tools): Operation failed: Invalid argument\n',
    }));
    const { deps, backend, log, setSessions } = harness(createFlowCleaner(runner, 1000));
    setSessions([session({ port: 60001 })]);
    await syncOnce(deps, { dryRun: false });
    setSessions([]);
    const report = await syncOnce(deps, { dryRun: false });
    assert.deepEqual(report.plan.revoke, [anySpec(60001)]);
    assert.deepEqual(
      backend.rules().filter((each) => each.ours),
      [],
    );
    const kept = log.find((line) => line.startsWith('warn flows-kept port=60001 family=v4 '));
    assert.ok(kept?.includes('Operation failed: Invalid argument'), log.join('\n'));
  });

  it('without the tool each close says which port keeps its flows and the fix', async () => {
    const { runner } = createRecordingRunner((argv) => notInstalled(argv));
    const { deps, log, setSessions } = harness(createFlowCleaner(runner, 1000));
    setSessions([session({ port: 60001 })]);
    await syncOnce(deps, { dryRun: false });
    setSessions([]);
    await syncOnce(deps, { dryRun: false });
    const kept = log.find((line) => line.startsWith('warn flows-kept port=60001 '));
    assert.ok(kept?.includes(CONNTRACK_FIX), log.join('\n'));
  });

  it('a revoke that fails part-way still deletes the flows, then throws its own error', async () => {
    const cleaner = recordingCleaner([]);
    const { deps, backend, setSessions } = harness(cleaner);
    setSessions([session({ port: 60001 })]);
    await syncOnce(deps, { dryRun: false });
    setSessions([]);
    backend.failNext('revoke', new FirewallError('ufw delete failed', {}));
    await assert.rejects(syncOnce(deps, { dryRun: false }), /ufw delete failed/);
    assert.deepEqual(cleaner.asked, [[anySpec(60001)]]);
  });

  it('reportFlowTool logs a missing tool once, with the fix; an installed one says nothing', async () => {
    const { runner } = createRecordingRunner((argv) => notInstalled(argv));
    const missing = harness(createFlowCleaner(runner, 1000));
    await reportFlowTool(missing.deps);
    assert.equal(missing.log.length, 1);
    assert.match(
      missing.log[0] ?? '',
      /^warn conntrack-missing problem=".*not installed.*" fix="apt-get install conntrack"$/,
    );
    const present = harness(recordingCleaner([]));
    await reportFlowTool(present.deps);
    assert.deepEqual(present.log, []);
  });

  it('status --json carries the tool state, and a warning when it is missing', async () => {
    const { runner } = createRecordingRunner((argv) => notInstalled(argv));
    const { deps } = harness(createFlowCleaner(runner, 1000));
    const status = await collectStatus(deps, Date.now());
    assert.deepEqual(status.conntrack, { available: false, problem: CONNTRACK_MISSING, fix: CONNTRACK_FIX });
    assert.ok(status.warnings.includes(`${CONNTRACK_MISSING}; fix: ${CONNTRACK_FIX}`));
    const healthy = await collectStatus(harness(recordingCleaner([])).deps, Date.now());
    assert.deepEqual(healthy.conntrack, { available: true, version: '1.4.7' });
    assert.deepEqual(healthy.warnings, []);
  });
});

describe('doctor: conntrack', () => {
  const facts: DoctorFacts = {
    isRoot: true,
    config: DEFAULT_CONFIG,
    backendName: 'nftables',
    probe: { installed: true, active: true, ipv6: true, detail: ['nftables v1.0.6'] },
    rules: [],
    moshServerProblem: undefined,
    hostHasIpv6: true,
  };
  const conntrackFindings = (f: DoctorFacts) =>
    diagnose(f).filter((finding) => finding.check === 'conntrack');

  it('warns, with why it matters and the fix, when the tool is missing', () => {
    assert.deepEqual(
      conntrackFindings({
        ...facts,
        conntrack: { available: false, problem: CONNTRACK_MISSING, fix: CONNTRACK_FIX },
      }),
      [{ level: 'warn', check: 'conntrack', message: CONNTRACK_MISSING, fix: 'apt-get install conntrack' }],
    );
  });

  it('says ok with the version when it is installed', () => {
    assert.deepEqual(conntrackFindings({ ...facts, conntrack: { available: true, version: '1.4.7' } }), [
      {
        level: 'ok',
        check: 'conntrack',
        message: "conntrack 1.4.7 is installed: a closed port's flows are deleted",
      },
    ]);
  });
});
