import { anywhere, cidrContains } from './net.ts';
import { type FirewallRule, type RuleSpec, ruleHasSpec, specKey, specOfRule, uniqueSpecs } from './rules.ts';

/** A wanted spec that moshwall will not create because a rule that is not ours decides that port. */
export interface Deferred {
  spec: RuleSpec;
  rule: FirewallRule;
  /** "covered": an admin rule already allows it; "conflict": an admin rule with the same match would be adopted. */
  kind: 'covered' | 'conflict';
}

/** What one reconcile will do. */
export interface Plan {
  allow: RuleSpec[];
  revoke: RuleSpec[];
  keep: RuleSpec[];
  deferred: Deferred[];
}

/** True when an allow rule lets every packet of the spec in (same family, port inside, wider source). */
function covers(rule: FirewallRule, spec: RuleSpec): boolean {
  if (rule.action !== 'allow' || rule.direction !== 'in' || rule.family !== spec.family) return false;
  if (rule.interface !== undefined || rule.sourcePorts !== undefined) return false;
  if (rule.protocol !== 'udp' && rule.protocol !== 'any') return false;
  if (rule.destination !== anywhere(spec.family)) return false;
  if (
    rule.ports !== 'any' &&
    !rule.ports.some((range) => range.first <= spec.port && spec.port <= range.last)
  ) {
    return false;
  }
  return cidrContains(rule.source, spec.source);
}

/**
 * Compares wanted specs with the firewall's rules: creates what is missing unless a foreign rule
 * covers it or would be adopted, and revokes our rules nobody wants. Foreign rules are never planned.
 */
export function planChanges(wanted: RuleSpec[], rules: FirewallRule[]): Plan {
  const ours = new Map<string, RuleSpec>();
  for (const rule of rules) {
    const spec = rule.ours ? specOfRule(rule) : undefined;
    if (spec) ours.set(specKey(spec), spec);
  }
  const foreign = rules.filter((rule) => !rule.ours);
  const wantedKeys = new Set(wanted.map(specKey));
  const plan: Plan = { allow: [], revoke: [], keep: [], deferred: [] };
  for (const spec of uniqueSpecs(wanted)) {
    if (ours.has(specKey(spec))) {
      plan.keep.push(spec);
      continue;
    }
    const conflict = foreign.find((rule) => ruleHasSpec(rule, spec));
    const cover = foreign.find((rule) => covers(rule, spec));
    if (cover) plan.deferred.push({ spec, rule: cover, kind: 'covered' });
    else if (conflict) plan.deferred.push({ spec, rule: conflict, kind: 'conflict' });
    else plan.allow.push(spec);
  }
  plan.revoke = uniqueSpecs([...ours.values()].filter((spec) => !wantedKeys.has(specKey(spec))));
  return plan;
}
