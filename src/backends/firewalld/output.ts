import { FirewallError } from '../../errors.ts';
import type { ExecResult } from '../../exec.ts';
import type { Family } from '../../model.ts';
import { anywhere } from '../../net.ts';
import type { FirewallRule } from '../../rules.ts';
import { parsePortText, richRuleToRules, type ServicePorts, serviceMatches } from './rich.ts';

/** A zone as `firewall-cmd --zone=Z --list-all` prints it, the fields moshwall reads. */
export interface ZoneInfo {
  name: string;
  target: string;
  interfaces: string[];
  sources: string[];
  services: string[];
  /** "60001/udp", "60000-61000/udp". */
  ports: string[];
  protocols: string[];
  sourcePorts: string[];
  richRules: string[];
}

/** The "key: value" lines of firewall-cmd's listings, values split on spaces, rich rules collected. */
function fieldsOf(text: string): { first: string; fields: Map<string, string[]>; rich: string[] } {
  const lines = text.split('\n');
  const fields = new Map<string, string[]>();
  const rich: string[] = [];
  let inRich = false;
  for (const line of lines.slice(1)) {
    if (line.startsWith('\t')) {
      if (inRich && line.trim() !== '') rich.push(line.trim());
      continue;
    }
    const match = /^\s+([a-z][a-z -]*):(.*)$/.exec(line);
    if (!match) continue;
    const key = match[1] ?? '';
    inRich = key === 'rich rules';
    fields.set(key, (match[2] ?? '').trim().split(/\s+/).filter(Boolean));
  }
  return { first: lines[0]?.trim() ?? '', fields, rich };
}

/** The zone `firewall-cmd --zone=Z --list-all` describes; throws on text that is not such a listing. */
export function parseZoneListing(text: string): ZoneInfo {
  const { first, fields, rich } = fieldsOf(text);
  const target = fields.get('target')?.[0];
  if (first === '' || target === undefined) {
    throw new FirewallError('Unexpected output from `firewall-cmd --list-all` (no zone name or target)', {
      output: text.slice(0, 500),
    });
  }
  const get = (key: string) => fields.get(key) ?? [];
  return {
    name: first.split(/\s/)[0] ?? first,
    target,
    interfaces: get('interfaces'),
    sources: get('sources'),
    services: get('services'),
    ports: get('ports'),
    protocols: get('protocols'),
    sourcePorts: get('source-ports'),
    richRules: rich,
  };
}

/** A service's ports, protocols and destinations from `firewall-cmd --info-service=S`, with its includes. */
export function parseServiceInfo(text: string): ServicePorts & { includes: string[] } {
  const { fields } = fieldsOf(text);
  const ports = (fields.get('ports') ?? []).flatMap((entry) => {
    const [portText = '', protocol = ''] = entry.split('/');
    const range = parsePortText(portText);
    return range === undefined ? [] : [{ range, protocol }];
  });
  const destination: Partial<Record<Family, string>> = {};
  for (const entry of fields.get('destination') ?? []) {
    const colon = entry.indexOf(':');
    const family = entry.slice(0, colon);
    if (family === 'ipv4') destination.v4 = entry.slice(colon + 1);
    if (family === 'ipv6') destination.v6 = entry.slice(colon + 1);
  }
  return {
    ports,
    protocols: fields.get('protocols') ?? [],
    destination,
    includes: fields.get('includes') ?? [],
  };
}

/** An allow rule from anywhere for a plain port, protocol or service entry of a zone. */
function plainRule(
  family: Family,
  protocol: FirewallRule['protocol'],
  ports: FirewallRule['ports'],
  raw: string,
  extra: Partial<FirewallRule> = {},
): FirewallRule {
  return {
    family,
    action: 'allow',
    direction: 'in',
    protocol,
    ports,
    source: anywhere(family),
    destination: anywhere(family),
    comment: '',
    ours: false,
    raw,
    ...extra,
  };
}

/**
 * Every rule of a zone that can let inbound packets in or keep them out, as FirewallRules: its target
 * (ACCEPT lets everything in), plain ports, protocols, source ports, services (resolved through
 * `services`) and rich rules (ours flagged). Plain entries apply to both families.
 */
export function zoneRules(
  zone: ZoneInfo,
  services: (name: string) => ServicePorts | undefined,
): FirewallRule[] {
  const families: Family[] = ['v4', 'v6'];
  const protocol = (name: string): FirewallRule['protocol'] =>
    name === 'udp' || name === 'tcp' ? name : 'other';
  const rules: FirewallRule[] = [];
  for (const family of families) {
    if (zone.target === 'ACCEPT')
      rules.push(plainRule(family, 'any', 'any', `zone ${zone.name}: target ACCEPT`));
    for (const entry of zone.ports) {
      const [portText = '', name = ''] = entry.split('/');
      const range = parsePortText(portText);
      rules.push(plainRule(family, protocol(name), range === undefined ? [] : [range], `port ${entry}`));
    }
    for (const name of zone.protocols)
      rules.push(plainRule(family, protocol(name), 'any', `protocol ${name}`));
    for (const entry of zone.sourcePorts) {
      const [portText = '', name = ''] = entry.split('/');
      rules.push(plainRule(family, protocol(name), 'any', `source-port ${entry}`, { sourcePorts: portText }));
    }
    for (const name of zone.services) {
      const service = services(name);
      if (service === undefined) {
        rules.push(plainRule(family, 'other', 'any', `service ${name} (unknown)`));
        continue;
      }
      for (const match of serviceMatches(service, family) ?? []) {
        rules.push(
          plainRule(family, match.protocol, match.ports, `service ${name}`, {
            ...(match.destination === undefined ? {} : { destination: match.destination }),
          }),
        );
      }
    }
  }
  for (const text of zone.richRules) rules.push(...richRuleToRules(text, services));
  return rules;
}

/** firewall-cmd's codes that mean "already so": adding what is there, removing what is not. */
const HARMLESS = new Set(['ALREADY_ENABLED', 'NOT_ENABLED']);

/** The "Warning: CODE: …" and "Error: CODE: …" lines of a firewall-cmd run that are real failures. */
export function firewallCmdProblems(result: ExecResult): string[] {
  const lines = `${result.stderr}\n${result.stdout}`.split('\n').map((line) => line.trim());
  const problems = lines.filter((line) => {
    const match = /^(Warning|Error): ([A-Z_]+)\b/.exec(line);
    return match !== null && !HARMLESS.has(match[2] ?? '');
  });
  if (result.exitCode !== 0 && problems.length === 0) {
    problems.push(`exit ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim() || 'no output'}`);
  }
  return problems;
}

/** The interface of the first default route in `ip -o route show default` output, if any. */
export function defaultRouteInterface(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const match = /^default\b.*\bdev (\S+)/.exec(line.trim());
    if (match?.[1] !== undefined) return match[1];
  }
  return undefined;
}
