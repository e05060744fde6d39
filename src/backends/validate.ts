import { FirewallError } from '../errors.ts';
import { parseCidr } from '../net.ts';
import type { RuleSpec } from '../rules.ts';

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
