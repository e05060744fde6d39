import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { anywhere } from '../../../src/net.ts';
import { planChanges } from '../../../src/reconcile.ts';
import { type FirewallRule, type RuleSpec, ruleHasSpec, ruleOfSpec, specKey } from '../../../src/rules.ts';
import { holds, RUNS, reportCases } from './_arbitraries.ts';
import { network } from './_specs.ts';

/** Specs over a few ports, so that wanted, ours and the admin's rules often meet. */
const spec: fc.Arbitrary<RuleSpec> = fc.constantFrom('v4' as const, 'v6' as const).chain((family) =>
  fc
    .record({
      port: fc.integer({ min: 60000, max: 60003 }),
      family: fc.constant(family),
      source: fc.oneof(
        { weight: 3, arbitrary: fc.constant(anywhere(family)) },
        { weight: 1, arbitrary: network(family) },
      ),
    })
    .map((value): RuleSpec => ({ ...value })),
);

/** An admin's rule: any action, protocol, ports (or a range), source, sometimes an interface or a tag-like comment. */
const foreign: fc.Arbitrary<FirewallRule> = fc
  .record({
    spec,
    action: fc.constantFrom('allow', 'deny', 'reject', 'limit', 'other') as fc.Arbitrary<
      FirewallRule['action']
    >,
    protocol: fc.oneof(
      { weight: 4, arbitrary: fc.constant('udp' as const) },
      { weight: 1, arbitrary: fc.constantFrom('tcp' as const, 'any' as const, 'other' as const) },
    ),
    range: fc.option(fc.integer({ min: 0, max: 3 }), { freq: 2 }),
    interface: fc.oneof(
      { weight: 4, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.constantFrom('eth0', 'lo') },
    ),
    comment: fc.constantFrom('', 'admin', 'moshwall'),
  })
  .map(({ spec: base, action, protocol, range, interface: iface, comment }) => {
    const rule: FirewallRule = {
      ...ruleOfSpec(base, comment, false, 'admin rule'),
      action,
      protocol,
      ports:
        range === null
          ? [{ first: base.port, last: base.port }]
          : [{ first: base.port, last: base.port + range }],
    };
    if (iface !== null) rule.interface = iface;
    return rule;
  });

test('reconcile: never touches a rule that is not ours, never adopts one, accounts for every wanted spec once', () => {
  holds(
    fc.property(
      fc.array(spec, { maxLength: 12 }),
      fc.array(spec, { maxLength: 12 }),
      fc.array(foreign, { maxLength: 8 }),
      (wanted, oursSpecs, admin) => {
        const ours = oursSpecs.map((value) => ruleOfSpec(value, 'moshwall', true, 'ours'));
        const plan = planChanges(wanted, [...admin, ...ours]);
        const oursKeys = new Set(oursSpecs.map(specKey));
        const wantedKeys = new Set(wanted.map(specKey));
        // Revokes are ours and unwanted; keeps are ours and wanted; together they are all of ours.
        for (const revoked of plan.revoke)
          assert.ok(oursKeys.has(specKey(revoked)) && !wantedKeys.has(specKey(revoked)));
        for (const kept of plan.keep) assert.ok(oursKeys.has(specKey(kept)) && wantedKeys.has(specKey(kept)));
        assert.equal(plan.keep.length + plan.revoke.length, oursKeys.size);
        // Every wanted spec is kept, allowed or deferred: exactly once.
        const decided = [...plan.keep, ...plan.allow, ...plan.deferred.map((entry) => entry.spec)].map(
          specKey,
        );
        assert.equal(decided.length, wantedKeys.size);
        assert.deepEqual(new Set(decided), wantedKeys);
        // An allow never has the same match as an admin rule (UFW would adopt or convert it).
        for (const allowed of plan.allow) {
          assert.ok(!oursKeys.has(specKey(allowed)));
          assert.ok(!admin.some((rule) => ruleHasSpec(rule, allowed)), specKey(allowed));
        }
        // A deferral names a rule of the admin's, never one of ours.
        for (const entry of plan.deferred) assert.equal(entry.rule.ours, false);
      },
    ),
    { numRuns: RUNS * 2 },
  );
});

test('reconcile: planning again after the plan is carried out changes nothing', () => {
  holds(
    fc.property(
      fc.array(spec, { maxLength: 12 }),
      fc.array(spec, { maxLength: 12 }),
      fc.array(foreign, { maxLength: 8 }),
      (wanted, oursSpecs, admin) => {
        const first = planChanges(wanted, [
          ...admin,
          ...oursSpecs.map((value) => ruleOfSpec(value, 'moshwall', true, 'ours')),
        ]);
        const after = [...first.keep, ...first.allow].map((value) =>
          ruleOfSpec(value, 'moshwall', true, 'ours'),
        );
        const second = planChanges(wanted, [...admin, ...after]);
        assert.deepEqual(second.allow, []);
        assert.deepEqual(second.revoke, []);
      },
    ),
    { numRuns: RUNS * 2 },
  );
});

reportCases('plan');
