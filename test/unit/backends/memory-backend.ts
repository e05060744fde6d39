import { FirewallError } from '../../../src/errors.ts';
import type { AppliedChange, Backend, BackendProbe } from '../../../src/firewall.ts';
import {
  assertValidRuleSpecs,
  type FirewallRule,
  RULE_TAG,
  type RuleSpec,
  ruleHasSpec,
  ruleOfSpec,
  specKey,
} from '../../../src/rules.ts';

/**
 * An in-memory firewall behind the Backend interface, with ufw's semantics where they matter: our
 * rules carry RULE_TAG, allowing a spec that a rule not ours already has is refused (ufw would take
 * that rule over), and v6 specs need `ipv6`. For reconcile tests and the contract suite.
 */
export interface MemoryBackend extends Backend {
  /** Every allow/revoke call, in order, with the specs as passed. */
  readonly calls: { kind: 'allow' | 'revoke'; specs: RuleSpec[] }[];
  /** A snapshot of every rule, ours and not. */
  rules(): FirewallRule[];
  /** Adds a rule that is not ours with exactly the shape `spec` would create. */
  addForeignRule(spec: RuleSpec, comment?: string): void;
  /** Adds any rule as is (a deny, a range, an interface rule…); `ours` is taken as given. */
  addRule(rule: FirewallRule): void;
  /** Makes the next call of `kind` reject with `error` without changing anything. */
  failNext(kind: 'probe' | 'listRules' | 'allow' | 'revoke', error: Error): void;
}

export interface MemoryBackendOptions {
  installed?: boolean;
  active?: boolean;
  ipv6?: boolean;
}

/** The rule a spec becomes, ours or not. */
function ruleOf(spec: RuleSpec, comment: string, ours: boolean): FirewallRule {
  const note = comment === '' ? '' : ` # ${comment}`;
  return ruleOfSpec(
    spec,
    comment,
    ours,
    `allow udp ${spec.port} from ${spec.source} (${spec.family})${note}`,
  );
}

/** Creates an empty in-memory backend (see MemoryBackend). */
export function createMemoryBackend(options: MemoryBackendOptions = {}): MemoryBackend {
  const { installed = true, active = true, ipv6 = true } = options;
  let rules: FirewallRule[] = [];
  const calls: MemoryBackend['calls'] = [];
  const failures = new Map<string, Error>();
  const copy = (rule: FirewallRule): FirewallRule => ({
    ...rule,
    ports: rule.ports === 'any' ? 'any' : rule.ports.map((range) => ({ ...range })),
  });
  const takeFailure = (kind: string) => {
    const error = failures.get(kind);
    failures.delete(kind);
    if (error !== undefined) throw error;
  };

  return {
    name: 'memory',
    calls,
    rules: () => rules.map(copy),
    addForeignRule(spec, comment = '') {
      rules.push(ruleOf(spec, comment, false));
    },
    addRule(rule) {
      rules.push(copy(rule));
    },
    failNext(kind, error) {
      failures.set(kind, error);
    },

    async probe(): Promise<BackendProbe> {
      takeFailure('probe');
      return { installed, active: installed && active, ipv6, detail: ['memory backend'] };
    },

    async listRules() {
      takeFailure('listRules');
      return rules.map(copy);
    },

    async allow(specs): Promise<AppliedChange[]> {
      calls.push({ kind: 'allow', specs: [...specs] });
      takeFailure('allow');
      assertValidRuleSpecs(specs);
      for (const spec of specs) {
        if (spec.family === 'v6' && !ipv6) throw new FirewallError('IPv6 is off', { port: spec.port });
        const foreign = rules.find((rule) => !rule.ours && ruleHasSpec(rule, spec));
        if (foreign !== undefined) {
          throw new FirewallError(`Refusing to take over \`${foreign.raw}\``, { port: spec.port });
        }
      }
      const changes: AppliedChange[] = [];
      const seen = new Set<string>();
      for (const spec of specs) {
        if (seen.has(specKey(spec))) continue;
        seen.add(specKey(spec));
        const exists = rules.some((rule) => rule.ours && ruleHasSpec(rule, spec));
        if (!exists) rules.push(ruleOf(spec, RULE_TAG, true));
        const output = exists ? 'exists' : 'added';
        changes.push({ kind: 'allow', specs: [spec], argv: ['memory', 'allow', specKey(spec)], output });
      }
      return changes;
    },

    async revoke(specs): Promise<AppliedChange[]> {
      calls.push({ kind: 'revoke', specs: [...specs] });
      takeFailure('revoke');
      assertValidRuleSpecs(specs);
      return specs.map((spec) => {
        const before = rules.length;
        rules = rules.filter((rule) => !(rule.ours && rule.comment === RULE_TAG && ruleHasSpec(rule, spec)));
        const output = rules.length < before ? 'deleted' : 'absent';
        return { kind: 'revoke', specs: [spec], argv: ['memory', 'revoke', specKey(spec)], output };
      });
    },
  };
}
