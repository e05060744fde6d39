import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { MoshwallError } from '../../src/errors.ts';
import type { Backend } from '../../src/firewall.ts';
import { type FirewallRule, RULE_TAG, type RuleSpec, specKey, specOfRule } from '../../src/rules.ts';

/** What the contract needs from one backend under test: a fresh firewall, a way to add an admin's rule, cleanup. */
export interface ContractSubject {
  backend: Backend;
  /** Adds a rule that is not ours, with exactly the shape `spec` would create (no comment when omitted). */
  addForeignRule(spec: RuleSpec, comment?: string): Promise<void>;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** First of the ~10 consecutive ports the suite uses; pick ones no other test touches. */
  basePort?: number;
}

/** The specs of our rules, as sorted keys. */
function ourKeys(rules: FirewallRule[]): string[] {
  return rules
    .filter((rule) => rule.ours)
    .map((rule) => {
      const spec = specOfRule(rule);
      assert.ok(spec, `a rule flagged ours must have a spec's shape: ${rule.raw}`);
      return specKey(spec);
    })
    .sort();
}

/** Every rule as comparable text, sorted: equal snapshots mean nothing changed. */
function snapshot(rules: FirewallRule[]): string[] {
  return rules.map((rule) => JSON.stringify(rule)).sort();
}

/**
 * Registers one suite that every Backend must pass (unstorage's testDriver idea): listing, allow, revoke,
 * idempotency, per-family specs, source CIDRs, and never touching a rule that is not ours.
 */
export function testBackendContract(
  name: string,
  makeSubject: () => Promise<ContractSubject>,
  options: ContractOptions = {},
): void {
  const base = options.basePort ?? 60700;
  const v4 = (offset: number, source = '0.0.0.0/0'): RuleSpec => ({
    port: base + offset,
    family: 'v4',
    source,
  });
  const v6 = (offset: number, source = '::/0'): RuleSpec => ({ port: base + offset, family: 'v6', source });
  const keys = (specs: RuleSpec[]) => specs.map(specKey).sort();

  /**
   * Runs `body` against a fresh subject. A body that needs IPv6, on a firewall that has it off, is
   * replaced by what such a firewall owes instead (never a skip): a v6 spec refused with a MoshwallError
   * and nothing changed.
   */
  const check =
    (body: (subject: ContractSubject) => Promise<void>, needs: { ipv6?: boolean } = {}) =>
    async (t: TestContext) => {
      const subject = await makeSubject();
      try {
        if (needs.ipv6 === true && !(await subject.backend.probe()).ipv6) {
          t.diagnostic('IPv6 is off in this firewall: a v6 spec must be refused, nothing changed');
          const before = snapshot(await subject.backend.listRules());
          await assert.rejects(subject.backend.allow([v6(9)]), MoshwallError);
          assert.deepEqual(snapshot(await subject.backend.listRules()), before);
          return;
        }
        await body(subject);
      } finally {
        await subject.cleanup();
      }
    };

  describe(`backend contract: ${name}`, () => {
    it(
      'probe says the tool is installed',
      check(async ({ backend }) => {
        const probe = await backend.probe();
        assert.equal(probe.installed, true, probe.detail.join('; '));
        assert.ok(Array.isArray(probe.detail));
      }),
    );

    it(
      'lists no rule of ours before anything was allowed',
      check(async ({ backend }) => {
        assert.deepEqual(ourKeys(await backend.listRules()), []);
      }),
    );

    it(
      'allow v4+v6 from anywhere adds exactly one tagged rule per spec and reports every spec',
      check(
        async ({ backend }) => {
          const specs = [v4(0), v6(0)];
          const changes = await backend.allow(specs);
          assert.deepEqual(keys(changes.flatMap((change) => change.specs)), keys(specs));
          assert.ok(changes.every((change) => change.kind === 'allow'));
          const rules = (await backend.listRules()).filter((rule) => rule.ours);
          assert.deepEqual(ourKeys(rules), keys(specs));
          for (const rule of rules) {
            assert.equal(rule.action, 'allow');
            assert.equal(rule.comment, RULE_TAG);
          }
        },
        { ipv6: true },
      ),
    );

    it(
      'a batch over both families and several sources lands whole, and a revoke batch removes exactly its specs',
      check(
        async ({ backend }) => {
          const batch = [
            v4(0),
            v6(0),
            v4(1),
            v6(1),
            v4(2, '10.0.0.0/8'),
            v6(2, '2001:db8::/32'),
            v4(3),
            v4(4),
          ];
          const changes = await backend.allow(batch);
          assert.deepEqual(keys(changes.flatMap((change) => change.specs)), keys(batch));
          assert.deepEqual(ourKeys(await backend.listRules()), keys(batch));
          const gone = [v4(0), v6(1), v4(2, '10.0.0.0/8'), v4(4)];
          await backend.revoke(gone);
          const kept = batch.filter((spec) => !keys(gone).includes(keys([spec])[0] ?? ''));
          assert.deepEqual(ourKeys(await backend.listRules()), keys(kept));
          await backend.revoke(kept);
          assert.deepEqual(ourKeys(await backend.listRules()), []);
        },
        { ipv6: true },
      ),
    );

    it(
      'allow twice leaves one rule per spec',
      check(async ({ backend }) => {
        await backend.allow([v4(1)]);
        await backend.allow([v4(1)]);
        await backend.allow([v4(1), v4(1)]);
        assert.deepEqual(ourKeys(await backend.listRules()), keys([v4(1)]));
      }),
    );

    it(
      'revoke removes our rule, and revoking twice is fine',
      check(async ({ backend }) => {
        await backend.allow([v4(2), v4(3)]);
        const changes = await backend.revoke([v4(2)]);
        assert.deepEqual(keys(changes.flatMap((change) => change.specs)), keys([v4(2)]));
        assert.ok(changes.every((change) => change.kind === 'revoke'));
        assert.deepEqual(ourKeys(await backend.listRules()), keys([v4(3)]));
        await backend.revoke([v4(2)]);
        assert.deepEqual(ourKeys(await backend.listRules()), keys([v4(3)]));
      }),
    );

    it(
      'a v4-only spec opens v4 only',
      check(async ({ backend }) => {
        await backend.allow([v4(4)]);
        assert.deepEqual(ourKeys(await backend.listRules()), keys([v4(4)]));
      }),
    );

    it(
      'a v6-only spec opens v6 only, and revoking it leaves v4 alone',
      check(
        async ({ backend }) => {
          await backend.allow([v6(5)]);
          assert.deepEqual(ourKeys(await backend.listRules()), keys([v6(5)]));
          await backend.allow([v4(5)]);
          await backend.revoke([v6(5)]);
          assert.deepEqual(ourKeys(await backend.listRules()), keys([v4(5)]));
        },
        { ipv6: true },
      ),
    );

    it(
      'a source CIDR is kept exactly as given',
      check(async ({ backend }) => {
        await backend.allow([v4(6, '10.0.0.0/8'), v4(6, '192.0.2.7/32')]);
        assert.deepEqual(
          ourKeys(await backend.listRules()),
          keys([v4(6, '10.0.0.0/8'), v4(6, '192.0.2.7/32')]),
        );
        await backend.revoke([v4(6, '10.0.0.0/8')]);
        assert.deepEqual(ourKeys(await backend.listRules()), keys([v4(6, '192.0.2.7/32')]));
      }),
    );

    it(
      'a foreign rule with an identical spec is listed as not ours and survives our revoke',
      check(async ({ backend, addForeignRule }) => {
        await addForeignRule(v4(7), 'admin');
        await addForeignRule(v4(8));
        const before = await backend.listRules();
        const foreign = before.filter((rule) => specOfRule(rule) !== undefined && !rule.ours);
        assert.deepEqual(
          foreign.map((rule) => specKey(specOfRule(rule) ?? v4(-1))).sort(),
          keys([v4(7), v4(8)]),
        );
        assert.deepEqual(ourKeys(before), []);
        await backend.revoke([v4(7), v4(8)]);
        assert.deepEqual(snapshot(await backend.listRules()), snapshot(before));
      }),
    );

    it(
      'allowing a spec a foreign rule has never takes that rule over',
      check(async ({ backend, addForeignRule }) => {
        await addForeignRule(v4(9), 'admin');
        const before = await backend.listRules();
        try {
          await backend.allow([v4(9)]);
        } catch (error) {
          assert.ok(error instanceof MoshwallError && error.code === 'EFIREWALL', String(error));
        }
        const after = await backend.listRules();
        const admin = after.filter((rule) => !rule.ours && rule.comment === 'admin');
        assert.equal(admin.length, before.filter((rule) => rule.comment === 'admin').length);
        assert.ok(admin.every((rule) => rule.action === 'allow'));
      }),
    );

    it(
      'revoke of specs we do not have changes nothing',
      check(async ({ backend, addForeignRule }) => {
        await addForeignRule(v4(0), 'admin');
        await backend.allow([v4(1)]);
        const before = await backend.listRules();
        await backend.revoke([v4(0), v4(2), v4(1, '10.0.0.0/8')]);
        assert.deepEqual(snapshot(await backend.listRules()), snapshot(before));
      }),
    );

    it(
      'invalid specs are refused before anything changes',
      check(async ({ backend }) => {
        await backend.allow([v4(3)]);
        const before = await backend.listRules();
        const invalid: RuleSpec[] = [
          { port: 0, family: 'v4', source: '0.0.0.0/0' },
          { port: 65536, family: 'v4', source: '0.0.0.0/0' },
          { port: 60000.5, family: 'v4', source: '0.0.0.0/0' },
          v4(4, '10.0.0.1/8'),
          v4(4, 'any'),
          v4(4, '::/0'),
          v4(4, '0.0.0.0/0; reboot'),
        ];
        for (const spec of invalid) {
          await assert.rejects(backend.allow([v4(5), spec]), MoshwallError, JSON.stringify(spec));
          await assert.rejects(backend.revoke([v4(3), spec]), MoshwallError, JSON.stringify(spec));
        }
        assert.deepEqual(snapshot(await backend.listRules()), snapshot(before));
      }),
    );

    it(
      'empty allow and revoke change nothing',
      check(async ({ backend }) => {
        const before = await backend.listRules();
        await backend.allow([]);
        await backend.revoke([]);
        assert.deepEqual(snapshot(await backend.listRules()), snapshot(before));
      }),
    );
  });
}
