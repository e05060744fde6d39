import { anywhere, parseCidr } from '../net.ts';
import type { FirewallRule, RuleSpec } from './types.ts';

/** A string that is equal for two specs exactly when they describe the same rule. */
export function specKey(spec: RuleSpec): string {
  return `${spec.family} udp/${spec.port} from ${spec.source}`;
}

/**
 * The spec whose rule has exactly this rule's shape, action and comment aside: inbound UDP to one port,
 * no interface, application or source port, to any address, from a canonical CIDR. Undefined otherwise.
 */
export function specOfRule(rule: FirewallRule): RuleSpec | undefined {
  if (rule.protocol !== 'udp' || rule.direction !== 'in') return undefined;
  if (rule.interface !== undefined || rule.application !== undefined || rule.sourcePorts !== undefined) {
    return undefined;
  }
  if (rule.destination !== anywhere(rule.family)) return undefined;
  if (rule.ports === 'any' || rule.ports.length !== 1) return undefined;
  const [range] = rule.ports;
  if (range === undefined || range.first !== range.last) return undefined;
  const source = parseCidr(rule.source);
  if (source === undefined || source.family !== rule.family || source.network !== rule.source)
    return undefined;
  return { port: range.first, family: rule.family, source: rule.source };
}

/** True when `rule` has exactly the shape `spec` would create (whatever its action, comment or owner). */
export function ruleHasSpec(rule: FirewallRule, spec: RuleSpec): boolean {
  const shape = specOfRule(rule);
  return shape !== undefined && specKey(shape) === specKey(spec);
}

/** The allow rule a spec stands for, as a backend lists it (`ours` and `raw` as the backend knows them). */
export function ruleOfSpec(spec: RuleSpec, comment: string, ours: boolean, raw: string): FirewallRule {
  return {
    family: spec.family,
    action: 'allow',
    direction: 'in',
    protocol: 'udp',
    ports: [{ first: spec.port, last: spec.port }],
    source: spec.source,
    destination: anywhere(spec.family),
    comment,
    ours,
    raw,
  };
}
