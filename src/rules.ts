/** Rule types and helpers shared by the core and every backend: what a rule of ours is, and how to compare. */

import { FirewallError } from './errors.ts';
import type { Family, PortRange } from './model.ts';
import { anywhere, parseCidr } from './net.ts';

/** The comment every rule of ours carries; a rule without it is never touched. */
export const RULE_TAG = 'moshwall';

/** One rule moshwall wants to exist: UDP to `port` from `source` (a CIDR), to any local address. */
export interface RuleSpec {
  port: number;
  family: Family;
  /** CIDR; "0.0.0.0/0" or "::/0" means from anywhere. */
  source: string;
}

/** A rule as the firewall lists it, ours or not, reduced to what coverage decisions need. */
export interface FirewallRule {
  family: Family;
  action: 'allow' | 'deny' | 'reject' | 'limit' | 'other';
  direction: 'in' | 'out' | 'other';
  protocol: 'udp' | 'tcp' | 'any' | 'other';
  /** Destination ports; "any" when the rule does not restrict them. */
  ports: PortRange[] | 'any';
  /** CIDR of allowed sources ("0.0.0.0/0" / "::/0" for anywhere). */
  source: string;
  /** Restricted source port, or undefined for any. */
  sourcePorts?: string;
  /** CIDR of the destination ("0.0.0.0/0" / "::/0" for any). */
  destination: string;
  /** Interface the rule is bound to, if any. */
  interface?: string;
  /** Application profile names, if the rule uses them. */
  application?: string;
  comment: string;
  /** True only when the rule carries our tag and has exactly the shape we create. */
  ours: boolean;
  /**
   * True when the firewall evaluates this rule only after moshwall's accept (nftables, iptables: our jump
   * is, or will be inserted, above it), so it cannot block a port moshwall opens.
   */
  afterOurs?: boolean;
  /** The firewall's own text for this rule, for messages. */
  raw: string;
}

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

/** The specs without duplicates, sorted by port, family, source. */
export function uniqueSpecs(specs: RuleSpec[]): RuleSpec[] {
  const byKey = new Map(specs.map((spec) => [specKey(spec), spec]));
  return [...byKey.values()].sort(
    (a, b) => a.port - b.port || a.family.localeCompare(b.family) || a.source.localeCompare(b.source),
  );
}

/** Why `port` is not a usable port number (integer 1..65535), or undefined when it is. */
export function portProblem(port: unknown): string | undefined {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `port must be an integer from 1 to 65535, got \`${String(port)}\` (${typeof port})`;
  }
  return undefined;
}

/**
 * Why `spec` cannot be turned into a rule, or undefined when it can: the port must be valid and the
 * source a CIDR of the spec's family in canonical form ("10.0.0.0/8", "2001:db8::/32", prefix always given).
 */
export function ruleSpecProblem(spec: RuleSpec): string | undefined {
  const port = portProblem(spec.port);
  if (port !== undefined) return port;
  if (spec.family !== 'v4' && spec.family !== 'v6') {
    return `family must be "v4" or "v6", got \`${String(spec.family)}\``;
  }
  const source = typeof spec.source === 'string' ? spec.source : '';
  const cidr = source.includes('/') ? parseCidr(source) : undefined;
  if (cidr === undefined) {
    return `source must be a CIDR such as "10.0.0.0/8" or "::/0", got \`${String(spec.source)}\``;
  }
  if (cidr.family !== spec.family) {
    return `source \`${source}\` is an ${cidr.family} network but the rule is for ${spec.family}`;
  }
  if (cidr.hostBitsSet) return `source \`${source}\` has host bits set; use \`${cidr.network}\``;
  if (cidr.network !== source)
    return `source \`${source}\` is not in canonical form; use \`${cidr.network}\``;
  return undefined;
}

/** Throws a FirewallError naming the first spec that could not safely become a rule; returns nothing. */
export function assertValidRuleSpecs(specs: readonly RuleSpec[]): void {
  for (const spec of specs) {
    const problem = ruleSpecProblem(spec);
    if (problem !== undefined) {
      throw new FirewallError(`Refusing rule spec: ${problem}`, {
        port: String(spec.port),
        family: String(spec.family),
        source: String(spec.source),
      });
    }
  }
}
