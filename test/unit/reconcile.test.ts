import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planChanges } from '../../src/reconcile.ts';
import { anySpec, ourRule, rule } from '../support/builders.ts';

describe('planChanges', () => {
  it('allows what is wanted and missing, keeps what is there, revokes ours that nobody wants', () => {
    const plan = planChanges(
      [anySpec(60001), anySpec(60002)],
      [ourRule(anySpec(60002)), ourRule(anySpec(60003)), ourRule(anySpec(60003, 'v6'))],
    );
    assert.deepEqual(plan.allow, [anySpec(60001)]);
    assert.deepEqual(plan.keep, [anySpec(60002)]);
    assert.deepEqual(plan.revoke, [anySpec(60003), anySpec(60003, 'v6')]);
    assert.deepEqual(plan.deferred, []);
  });

  it('creates nothing for a port an admin rule with the same spec already allows, and never revokes it', () => {
    const admin = rule({ ports: [{ first: 60012, last: 60012 }] });
    const plan = planChanges([anySpec(60012)], [admin]);
    assert.deepEqual(plan.allow, []);
    assert.deepEqual(plan.revoke, []);
    assert.equal(plan.deferred[0]?.kind, 'covered');
    assert.equal(plan.deferred[0]?.rule, admin);
    assert.deepEqual(planChanges([], [admin]).revoke, [], 'a foreign rule is never revoked');
  });

  it('leaves a port alone when an admin rule with the same match denies it (ufw would adopt it)', () => {
    const deny = rule({ action: 'deny', ports: [{ first: 60013, last: 60013 }] });
    const plan = planChanges([anySpec(60013)], [deny]);
    assert.deepEqual(plan.allow, []);
    assert.equal(plan.deferred[0]?.kind, 'conflict');
  });

  it('treats a commented admin rule as foreign even if its comment mentions moshwall', () => {
    const admin = rule({ ports: [{ first: 60014, last: 60014 }], comment: 'moshwall port, keep' });
    const plan = planChanges([anySpec(60014)], [admin]);
    assert.deepEqual(plan.allow, []);
    assert.deepEqual(planChanges([], [admin]).revoke, []);
  });

  const coverage: [string, Parameters<typeof rule>[0], boolean][] = [
    ['a covering range', { ports: [{ first: 60000, last: 61000 }] }, true],
    ['any protocol', { protocol: 'any', ports: [{ first: 60020, last: 60020 }] }, true],
    ['all ports', { ports: 'any' }, true],
    ['a range that misses', { ports: [{ first: 60100, last: 60200 }] }, false],
    ['tcp only', { protocol: 'tcp', ports: [{ first: 60020, last: 60020 }] }, false],
    ['a narrower source', { source: '192.0.2.0/24', ports: [{ first: 60020, last: 60020 }] }, false],
    ['an interface rule', { interface: 'eth0', ports: [{ first: 60020, last: 60020 }] }, false],
    [
      'a specific destination',
      { destination: '192.0.2.1/32', ports: [{ first: 60020, last: 60020 }] },
      false,
    ],
    ['the other family', { family: 'v6', ports: [{ first: 60020, last: 60020 }] }, false],
    ['a deny range', { action: 'deny', ports: [{ first: 60000, last: 61000 }] }, false],
  ];
  for (const [name, overrides, covered] of coverage) {
    it(`${covered ? 'defers to' : 'is not covered by'} ${name}`, () => {
      const plan = planChanges([anySpec(60020)], [rule(overrides)]);
      assert.equal(plan.allow.length, covered ? 0 : 1);
      assert.equal(plan.deferred.length, covered ? 1 : 0);
    });
  }

  it('is covered for a configured source network by an admin rule from anywhere', () => {
    const spec = { port: 60030, family: 'v4' as const, source: '192.0.2.0/24' };
    assert.deepEqual(planChanges([spec], [rule({ ports: [{ first: 60030, last: 60030 }] })]).allow, []);
    assert.deepEqual(
      planChanges([spec], [rule({ source: '198.51.100.0/24', ports: [{ first: 60030, last: 60030 }] })])
        .allow,
      [spec],
    );
  });

  it('plans nothing when wanted and ours agree (idempotent)', () => {
    const wanted = [anySpec(60001), anySpec(60001, 'v6')];
    const plan = planChanges(wanted, wanted.map(ourRule));
    assert.deepEqual([plan.allow, plan.revoke], [[], []]);
  });

  it('revokes ours outside the range or of an old source (config changed)', () => {
    const old = { port: 60040, family: 'v4' as const, source: '198.51.100.0/24' };
    const plan = planChanges([anySpec(60040)], [ourRule(old)]);
    assert.deepEqual(plan.allow, [anySpec(60040)]);
    assert.deepEqual(plan.revoke, [old]);
  });
});
