import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_CONFIG } from '../../../src/config.ts';
import { type EngineDeps, syncOnce } from '../../../src/engine.ts';
import { ExecError, FirewallError, ProcError } from '../../../src/errors.ts';
import type { Backend } from '../../../src/firewall.ts';
import { silentLogger } from '../../../src/log.ts';
import type { MoshSession } from '../../../src/model.ts';
import { type RuleSpec, specKey } from '../../../src/rules.ts';
import { anySpec, session } from '../../support/builders.ts';
import { createMemoryBackend, type MemoryBackend } from '../backends/memory-backend.ts';
import { holds, RUNS, reportCases } from './_arbitraries.ts';

/*
 * Fault injection at the edges, as a state machine: sessions come and go, and each reconcile may meet a
 * fault — /proc failing mid-scan, the firewall's listing failing, a batch that applies only its first k
 * changes and then fails (a command that exits non-zero or hangs past its timeout mid-batch, or the
 * daemon killed mid-batch: the next run is a fresh reconcile over whatever the firewall holds).
 * After every step: nothing is open that no live session wants unless it was open before (a failure
 * never opens anything wrongly), a port that stayed wanted is never closed, admin rules are untouched,
 * and the first clean reconcile converges to exactly the wanted rules.
 */

type Fault =
  | { kind: 'none' }
  | { kind: 'scan' }
  | { kind: 'list' }
  | { kind: 'allow' | 'revoke'; applied: number; error: 'exit' | 'timeout' };

type Step =
  | { kind: 'start'; port: number; family: 'v4' | 'v6' }
  | { kind: 'end'; index: number }
  | { kind: 'reconcile'; fault: Fault };

const PORTS = { min: 60000, max: 60009 };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('start' as const),
    port: fc.integer(PORTS),
    family: fc.constantFrom('v4' as const, 'v6' as const),
  }),
  fc.record({ kind: fc.constant('end' as const), index: fc.nat() }),
  fc.record({
    kind: fc.constant('reconcile' as const),
    fault: fc.oneof(
      { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'scan' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'list' as const }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constantFrom('allow' as const, 'revoke' as const),
          applied: fc.nat(4),
          error: fc.constantFrom('exit' as const, 'timeout' as const),
        }),
      },
    ),
  }),
);

/** A backend that passes through to `inner`, except a batch that meets the armed fault: its first k changes apply, then it fails. */
function faulty(inner: MemoryBackend) {
  let armed: Fault = { kind: 'none' };
  const batch = (kind: 'allow' | 'revoke') => async (specs: RuleSpec[]) => {
    const fault = armed;
    if (fault.kind !== kind) return inner[kind](specs);
    armed = { kind: 'none' };
    if (fault.applied > 0) await inner[kind](specs.slice(0, fault.applied));
    throw fault.error === 'exit'
      ? new FirewallError(`test: ${kind} failed after ${fault.applied} of ${specs.length}`, {
          applied: fault.applied,
        })
      : new ExecError(`test: ${kind} timed out after ${fault.applied} of ${specs.length}`, {
          applied: fault.applied,
        });
  };
  const backend: Backend = {
    ...inner,
    async listRules() {
      if (armed.kind === 'list') {
        armed = { kind: 'none' };
        throw new FirewallError('test: listing failed', {});
      }
      return inner.listRules();
    },
    allow: batch('allow'),
    revoke: batch('revoke'),
  };
  return { backend, arm: (fault: Fault) => (armed = fault) };
}

/** The specs of our rules in the firewall now. */
const oursNow = (memory: MemoryBackend): Set<string> =>
  new Set(
    memory
      .rules()
      .filter((rule) => rule.ours)
      .map(
        (rule) =>
          `${rule.family} udp/${rule.ports === 'any' ? '?' : rule.ports[0]?.first} from ${rule.source}`,
      ),
  );

test('faults mid-scan, mid-listing and mid-batch: nothing wrongly open or closed; the next clean run converges', async () => {
  await holds(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
      const memory = createMemoryBackend();
      // An admin's own rule in the range: never touched, and its port is never ours.
      memory.addForeignRule(anySpec(60005), 'admin');
      const { backend, arm } = faulty(memory);
      let live: MoshSession[] = [];
      let scanFails = false;
      const deps: EngineDeps = {
        config: DEFAULT_CONFIG,
        backend,
        scan: () => {
          if (scanFails)
            throw new ProcError('test: /proc/4242/fd vanished mid-scan', { file: '/proc/4242/fd' });
          return { sessions: live, refused: [] };
        },
        groups: () => ({ gidOf: () => undefined, membersOf: () => [] }),
        log: silentLogger,
        lock: async () => async () => {},
      };
      const wanted = () =>
        new Set(
          live
            .map((entry) => specKey(anySpec(entry.port, entry.family)))
            .filter((key) => key !== specKey(anySpec(60005))),
        );
      let pid = 5000;
      for (const next of steps) {
        if (next.kind === 'start') {
          const localAddress = next.family === 'v4' ? '0.0.0.0' : '2001:db8::1';
          live = [...live, session({ port: next.port, family: next.family, localAddress, pid: pid++ })];
          continue;
        }
        if (next.kind === 'end') {
          if (live.length > 0) live = live.filter((_, index) => index !== next.index % live.length);
          continue;
        }
        const before = oursNow(memory);
        const want = wanted();
        scanFails = next.fault.kind === 'scan';
        arm(next.fault);
        const failed = await syncOnce(deps, { dryRun: false }).then(
          () => false,
          (error: unknown) => {
            assert.ok(
              error instanceof ProcError || error instanceof FirewallError || error instanceof ExecError,
              String(error),
            );
            return true;
          },
        );
        scanFails = false;
        const after = oursNow(memory);
        for (const key of after) assert.ok(want.has(key) || before.has(key), `wrongly open: ${key}`);
        for (const key of before) if (want.has(key)) assert.ok(after.has(key), `wrongly closed: ${key}`);
        assert.ok(
          memory.rules().some((rule) => !rule.ours && rule.comment === 'admin'),
          'admin rule touched',
        );
        if (!failed) assert.deepEqual(after, want, 'a clean reconcile converges');
      }
      arm({ kind: 'none' });
      await syncOnce(deps, { dryRun: false });
      assert.deepEqual(oursNow(memory), wanted(), 'the next clean reconcile converges');
    }),
    { numRuns: RUNS },
  );
});

reportCases('faults');
