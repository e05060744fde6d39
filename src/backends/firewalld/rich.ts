import type { Family, PortRange } from '../../model.ts';
import { anywhere, parseCidr } from '../../net.ts';
import { type FirewallRule, RULE_TAG, type RuleSpec } from '../../rules.ts';

/*
 * firewalld's `--add-port` carries no comment, so moshwall's rules are runtime rich rules with a tag: an
 * `nflog` element whose prefix is "moshwall", rate-limited to one message an hour. firewalld puts that
 * element in the zone's log chain (`... limit rate 1/hour log prefix "moshwall" group 0`) and the accept
 * in the zone's allow chain, unlimited. With nobody listening on NFLOG group 0 the kernel drops the
 * messages (nothing reaches dmesg or the journal, unlike `log`); with ulogd listening, it is at most one
 * line an hour per rule. A rich rule that is not exactly this text, byte for byte as firewalld lists it
 * back, belongs to the admin.
 */

/** The tail every rule of ours ends with, after the port element. */
export const OUR_TAIL = `nflog prefix="${RULE_TAG}" limit value="1/h" accept`;

/** firewalld's name for a family in rich rules. */
export function richFamily(family: Family): 'ipv4' | 'ipv6' {
  return family === 'v4' ? 'ipv4' : 'ipv6';
}

/** The rich rule of ours for one (valid) spec, exactly as firewalld lists it back with --list-rich-rules. */
export function renderOurRule(spec: RuleSpec): string {
  const source = spec.source === anywhere(spec.family) ? '' : ` source address="${spec.source}"`;
  return `rule family="${richFamily(spec.family)}"${source} port port="${spec.port}" protocol="udp" ${OUR_TAIL}`;
}

const OUR_SHAPE =
  /^rule family="(ipv4|ipv6)"(?: source address="([^"]+)")? port port="(\d{1,5})" protocol="udp" nflog prefix="moshwall" limit value="1\/h" accept$/;

/** The spec a rich rule of ours stands for, or undefined when the text is not exactly one of ours. */
export function parseOurRule(text: string): RuleSpec | undefined {
  const match = OUR_SHAPE.exec(text);
  if (!match) return undefined;
  const family: Family = match[1] === 'ipv4' ? 'v4' : 'v6';
  const source = match[2] ?? anywhere(family);
  const port = Number(match[3]);
  const cidr = parseCidr(source);
  if (cidr === undefined || cidr.family !== family || cidr.network !== source) return undefined;
  if (source === anywhere(family) && match[2] !== undefined) return undefined;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  const spec: RuleSpec = { port, family, source };
  return renderOurRule(spec) === text ? spec : undefined;
}

/** One element of a rich rule: its keyword, its attributes, and whether "not" came before it. */
interface Element {
  keyword: string;
  attributes: Record<string, string>;
  not: boolean;
}

const TOKEN = /([a-z][a-z0-9_-]*)="([^"]*)"|(\S+)/g;

/** The elements of a rich rule as firewalld prints it: `rule family="ipv4" source address="…" … accept`. */
export function richElements(text: string): Element[] {
  const elements: Element[] = [];
  for (const match of text.matchAll(TOKEN)) {
    const [, name, value, word] = match;
    const last = elements.at(-1);
    // firewalld lists "source NOT address=…" (and accepts "not"): it negates the element it follows.
    if (word?.toLowerCase() === 'not' && last !== undefined) {
      last.not = true;
      continue;
    }
    if (word !== undefined) {
      elements.push({ keyword: word, attributes: {}, not: false });
      continue;
    }
    if (last !== undefined && name !== undefined) last.attributes[name] = value ?? '';
  }
  return elements;
}

/** "60000" or "60000-61000" → a port range, or undefined. */
export function parsePortText(text: string): PortRange | undefined {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!match) return undefined;
  const first = Number(match[1]);
  const last = Number(match[2] ?? match[1]);
  if (first < 1 || last > 65535 || first > last) return undefined;
  return { first, last };
}

/** A firewalld address ("10.0.0.1", "10.0.0.0/8", "2001:db8::/32") as a CIDR, or the text as is. */
function addressCidr(address: string): string {
  const cidr = parseCidr(address.includes('/') ? address : `${address}/${address.includes(':') ? 128 : 32}`);
  return cidr === undefined ? address : cidr.network;
}

/** The ports and protocol a service (as listed by --info-service) opens, per family it applies to. */
export interface ServicePorts {
  ports: { range: PortRange; protocol: string }[];
  protocols: string[];
  /** Destination per family ("ipv4:…"/"ipv6:…" in firewalld); a family absent here is not restricted. */
  destination: Partial<Record<Family, string>>;
}

/** What a rule's match looks like for one protocol and set of ports. */
interface Match {
  protocol: FirewallRule['protocol'];
  ports: PortRange[] | 'any';
  destination?: string;
}

/** The protocol names FirewallRule distinguishes. */
function protocolOf(name: string | undefined): FirewallRule['protocol'] {
  if (name === 'udp' || name === 'tcp') return name;
  return 'other';
}

/** The matches one service stands for in `family` (none when its destination is for the other family). */
export function serviceMatches(service: ServicePorts, family: Family): Match[] | undefined {
  const other: Family = family === 'v4' ? 'v6' : 'v4';
  if (service.destination[other] !== undefined && service.destination[family] === undefined) return [];
  const destination = service.destination[family];
  const withDestination = destination === undefined ? {} : { destination };
  return [
    ...service.ports.map(
      (entry): Match => ({ protocol: protocolOf(entry.protocol), ports: [entry.range], ...withDestination }),
    ),
    ...service.protocols.map(
      (name): Match => ({ protocol: protocolOf(name), ports: 'any', ...withDestination }),
    ),
  ];
}

/**
 * A rich rule as FirewallRules, one per family and match (a rule without family applies to both). The
 * comment is its log/nflog prefix; `ours` only for exactly our text. Rules that do not filter inbound
 * packets by port (masquerade, forward-port, icmp) are left out: they cannot cover or conflict with ours.
 * `services` resolves `service name="…"`; an unknown service yields a rule marked "other".
 */
export function richRuleToRules(
  text: string,
  services: (name: string) => ServicePorts | undefined,
): FirewallRule[] {
  const ours = parseOurRule(text);
  const elements = richElements(text);
  const rule = elements.find((element) => element.keyword === 'rule');
  const get = (keyword: string) => elements.find((element) => element.keyword === keyword);
  if (rule === undefined) return [];
  if (['masquerade', 'forward-port', 'icmp-block', 'icmp-type'].some((keyword) => get(keyword))) return [];
  const familyText = rule.attributes.family;
  const families: Family[] = familyText === 'ipv4' ? ['v4'] : familyText === 'ipv6' ? ['v6'] : ['v4', 'v6'];
  const accept = get('accept');
  // "accept limit value=…" rate-limits the accept itself; a limit after log/nflog only limits the log.
  const action: FirewallRule['action'] =
    accept !== undefined
      ? elements[elements.indexOf(accept) + 1]?.keyword === 'limit'
        ? 'limit'
        : 'allow'
      : get('reject')
        ? 'reject'
        : get('drop')
          ? 'deny'
          : 'other';
  const comment = get('nflog')?.attributes.prefix ?? get('log')?.attributes.prefix ?? '';
  const source = get('source');
  const destination = get('destination');
  const sourcePort = get('source-port');
  const portElement = get('port');
  const protocolElement = get('protocol');
  const serviceElement = get('service');

  const out: FirewallRule[] = [];
  for (const family of families) {
    const sourceText =
      source === undefined
        ? anywhere(family)
        : source.not || source.attributes.address === undefined
          ? `not a network: ${source.not ? 'not ' : ''}${Object.entries(source.attributes)
              .map(([key, value]) => `${key}=${value}`)
              .join(' ')}`
          : addressCidr(source.attributes.address);
    const destinationText =
      destination === undefined
        ? anywhere(family)
        : destination.not || destination.attributes.address === undefined
          ? 'not a network'
          : addressCidr(destination.attributes.address);
    let matches: Match[];
    if (portElement !== undefined) {
      const range = parsePortText(portElement.attributes.port ?? '');
      matches = [
        {
          protocol: protocolOf(portElement.attributes.protocol),
          ports: range === undefined ? [] : [range],
        },
      ];
    } else if (protocolElement !== undefined) {
      matches = [{ protocol: protocolOf(protocolElement.attributes.value), ports: 'any' }];
    } else if (serviceElement !== undefined) {
      const service = services(serviceElement.attributes.name ?? '');
      matches =
        service === undefined
          ? [{ protocol: 'other', ports: 'any' }]
          : (serviceMatches(service, family) ?? []);
    } else {
      matches = [{ protocol: 'any', ports: 'any' }];
    }
    for (const match of matches) {
      out.push({
        family,
        action,
        direction: 'in',
        protocol: match.protocol,
        ports: match.ports,
        source: sourceText,
        destination: match.destination ?? destinationText,
        ...(sourcePort === undefined ? {} : { sourcePorts: sourcePort.attributes.port ?? '?' }),
        comment,
        ours: ours !== undefined && ours.family === family,
        raw: text,
      });
    }
  }
  return out;
}
