import type { Family, PortRange } from '../../model.ts';
import { anywhere, parseCidr } from '../../net.ts';
import type { FirewallRule } from '../../rules.ts';
import { addressText, isOurJump, type NftTableFamily, tableFamilies } from './layout.ts';
import { isRecord, type NftRule, type NftRuleset, rulesOf } from './ruleset.ts';

/*
 * The admin's rules, read best effort from nft's JSON: a rule is understood only when every statement
 * in it is one of these (anything else, e.g. ct state, fib, marks, negations, named address sets, makes
 * it protocol "other", which never counts as covering a port):
 *   meta nfproto ipv4|ipv6        meta l4proto udp|tcp|{…}     ip protocol …   ip6 nexthdr …
 *   ip|ip6 saddr ADDR|PREFIX|{…}  ip|ip6 daddr ADDR|PREFIX     iif|iifname NAME
 *   udp|tcp|th dport N|N-M|{…}|@named-port-set                udp|tcp|th sport …
 *   counter  log  limit (→ action "limit")   accept|drop|reject (→ allow|deny|reject), other verdicts → "other"
 */

/** nft-like text of a JSON value (right-hand sides, keys), for messages. */
function renderValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return String(value);
  if (Array.isArray(value)) return value.map(renderValue).join(',');
  if (!isRecord(value)) return JSON.stringify(value);
  const { prefix, range, set, concat, payload, meta, ct } = value;
  if (isRecord(prefix)) return `${renderValue(prefix.addr)}/${renderValue(prefix.len)}`;
  if (Array.isArray(range)) return range.map(renderValue).join('-');
  if (Array.isArray(set)) return `{ ${set.map(renderValue).join(', ')} }`;
  if (Array.isArray(concat)) return concat.map(renderValue).join(' . ');
  if (isRecord(payload)) return `${renderValue(payload.protocol)} ${renderValue(payload.field)}`;
  if (isRecord(meta)) {
    const key = renderValue(meta.key);
    return ['iif', 'iifname', 'oif', 'oifname', 'mark'].includes(key) ? key : `meta ${key}`;
  }
  if (isRecord(ct)) return `ct ${renderValue(ct.key)}`;
  return JSON.stringify(value);
}

/** nft-like text of one statement of a rule. */
function renderStatement(statement: unknown): string {
  if (!isRecord(statement)) return JSON.stringify(statement);
  const { match } = statement;
  if (isRecord(match)) {
    const op =
      match.op === undefined || match.op === '==' || match.op === 'in' ? '' : `${renderValue(match.op)} `;
    return `${renderValue(match.left)} ${op}${renderValue(match.right)}`;
  }
  for (const verdict of ['accept', 'drop', 'reject', 'return', 'continue', 'counter', 'log', 'queue']) {
    if (verdict in statement) return verdict;
  }
  for (const verdict of ['jump', 'goto']) {
    const target = statement[verdict];
    if (isRecord(target)) return `${verdict} ${renderValue(target.target)}`;
  }
  const { limit } = statement;
  if (isRecord(limit)) return `limit rate ${renderValue(limit.rate)}/${renderValue(limit.per)}`;
  return JSON.stringify(statement);
}

/** The rule as nft-like text with where it is: "inet filter input handle 9: udp dport 60010 accept". */
export function renderRule(rule: NftRule): string {
  const comment = rule.comment === undefined ? '' : ` comment ${JSON.stringify(rule.comment)}`;
  return `${rule.family} ${rule.table} ${rule.chain} handle ${rule.handle}: ${rule.expr.map(renderStatement).join(' ')}${comment}`;
}

/** What a rule's statements say, as far as they were understood. */
interface Reading {
  families: Set<Family>;
  /** Transport protocols allowed; undefined for any. */
  l4: Set<string> | undefined;
  ports: PortRange[] | undefined;
  sources: string[] | undefined;
  destination: string | undefined;
  sourcePorts: string | undefined;
  iface: string | undefined;
  limited: boolean;
  action: FirewallRule['action'];
  understood: boolean;
}

const L4_NUMBERS: Record<number, string> = { 6: 'tcp', 17: 'udp' };

/** The protocol names of an l4proto / ip protocol / ip6 nexthdr right-hand side, or undefined. */
function protocolNames(right: unknown): string[] | undefined {
  const items = isRecord(right) && Array.isArray(right.set) ? right.set : [right];
  const names = items.map((item) =>
    typeof item === 'string'
      ? item
      : typeof item === 'number'
        ? (L4_NUMBERS[item] ?? String(item))
        : undefined,
  );
  return names.every((name): name is string => name !== undefined) ? names : undefined;
}

/** The canonical networks of an address right-hand side (address, prefix, or anonymous set of them). */
function networks(right: unknown, family: Family): string[] | undefined {
  const items = isRecord(right) && Array.isArray(right.set) ? right.set : [right];
  const result: string[] = [];
  for (const item of items) {
    // Host bits set ("10.0.0.1/8") match the network as nft does: an admin's rule covers it.
    const text = addressText(item);
    const cidr = text === undefined ? undefined : parseCidr(text);
    if (cidr === undefined || cidr.family !== family) return undefined;
    result.push(cidr.network);
  }
  return result;
}

/** The port ranges of a port right-hand side: N, {range}, anonymous set, or a named inet_service set. */
function portRanges(right: unknown, rule: NftRule, ruleset: NftRuleset): PortRange[] | undefined {
  let items: unknown[] = isRecord(right) && Array.isArray(right.set) ? right.set : [right];
  if (typeof right === 'string' && right.startsWith('@')) {
    const named = ruleset.sets.find(
      (set) => set.family === rule.family && set.table === rule.table && set.name === right.slice(1),
    );
    if (named === undefined || named.type.join(' . ') !== 'inet_service') return undefined;
    items = named.elements;
  }
  const ranges: PortRange[] = [];
  const isPort = (value: unknown): value is number =>
    typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65535;
  for (const item of items) {
    const pair = isRecord(item) && Array.isArray(item.range) ? item.range : [item, item];
    const [first, last] = pair;
    if (pair.length !== 2 || !isPort(first) || !isPort(last) || first > last) return undefined;
    ranges.push({ first, last });
  }
  return ranges.length > 0 ? ranges : undefined;
}

/** Narrows the reading to `family` (an ip/ip6 match or meta nfproto). */
function onlyFamily(reading: Reading, family: Family): void {
  reading.families = new Set([...reading.families].filter((each) => each === family));
}

/** Narrows the transport protocols to `names` (intersection with what is already required). */
function onlyProtocols(reading: Reading, names: string[]): void {
  reading.l4 = new Set(reading.l4 === undefined ? names : names.filter((name) => reading.l4?.has(name)));
}

/** Applies one match statement to the reading; false when it is not one we understand. */
function readMatch(
  match: Record<string, unknown>,
  reading: Reading,
  rule: NftRule,
  ruleset: NftRuleset,
): boolean {
  if (match.op !== undefined && match.op !== '==' && match.op !== 'in') return false;
  const { left, right } = match;
  if (isRecord(left) && isRecord(left.meta)) {
    const key = left.meta.key;
    if (key === 'nfproto' && (right === 'ipv4' || right === 'ipv6')) {
      onlyFamily(reading, right === 'ipv6' ? 'v6' : 'v4');
      return true;
    }
    const names = key === 'l4proto' ? protocolNames(right) : undefined;
    if (names !== undefined) onlyProtocols(reading, names);
    if ((key === 'iif' || key === 'iifname') && typeof right === 'string' && reading.iface === undefined) {
      reading.iface = right;
      return true;
    }
    return names !== undefined;
  }
  if (!isRecord(left) || !isRecord(left.payload)) return false;
  const { protocol, field } = left.payload;
  if (protocol === 'ip' || protocol === 'ip6') {
    const family: Family = protocol === 'ip6' ? 'v6' : 'v4';
    onlyFamily(reading, family);
    if (field === (family === 'v6' ? 'nexthdr' : 'protocol')) {
      const names = protocolNames(right);
      if (names !== undefined) onlyProtocols(reading, names);
      return names !== undefined;
    }
    const found = networks(right, family);
    if (field === 'saddr' && found !== undefined && reading.sources === undefined) reading.sources = found;
    else if (field === 'daddr' && found?.length === 1 && reading.destination === undefined)
      [reading.destination] = found;
    else return false;
    return true;
  }
  if (protocol !== 'udp' && protocol !== 'tcp' && protocol !== 'th') return false;
  if (protocol !== 'th') onlyProtocols(reading, [protocol]);
  const ports = portRanges(right, rule, ruleset);
  if (field === 'dport' && ports !== undefined && reading.ports === undefined) reading.ports = ports;
  else if (field === 'sport' && ports !== undefined && reading.sourcePorts === undefined) {
    reading.sourcePorts = ports
      .map((range) => (range.first === range.last ? `${range.first}` : `${range.first}:${range.last}`))
      .join(',');
  } else return false;
  return true;
}

/** Applies one statement; false when it is not one we understand. */
function readStatement(statement: unknown, reading: Reading, rule: NftRule, ruleset: NftRuleset): boolean {
  if (!isRecord(statement)) return false;
  if (isRecord(statement.match)) return readMatch(statement.match, reading, rule, ruleset);
  if ('counter' in statement || 'log' in statement) return true;
  if ('limit' in statement) {
    reading.limited = true;
    return true;
  }
  const verdicts: [string, FirewallRule['action']][] = [
    ['accept', 'allow'],
    ['drop', 'deny'],
    ['reject', 'reject'],
    ['jump', 'other'],
    ['goto', 'other'],
    ['return', 'other'],
    ['continue', 'other'],
    ['queue', 'other'],
  ];
  const verdict = verdicts.find(([key]) => key in statement);
  if (verdict === undefined) return false;
  reading.action = verdict[1];
  return true;
}

/**
 * What one of the admin's rules means for inbound traffic: one FirewallRule per family (of those the
 * table filters) and source network it matches, never flagged ours. A rule with any statement outside
 * the forms listed above becomes protocol "other", so it is shown but never taken as covering a port.
 */
export function adminRules(rule: NftRule, tableFamily: NftTableFamily, ruleset: NftRuleset): FirewallRule[] {
  const reading: Reading = {
    families: new Set(tableFamilies(tableFamily)),
    l4: undefined,
    ports: undefined,
    sources: undefined,
    destination: undefined,
    sourcePorts: undefined,
    iface: undefined,
    limited: false,
    action: 'other',
    understood: true,
  };
  for (const statement of rule.expr) {
    if (!readStatement(statement, reading, rule, ruleset)) reading.understood = false;
  }
  let protocol: FirewallRule['protocol'] = 'other';
  if (reading.understood) {
    if (reading.l4 === undefined) protocol = 'any';
    else if (reading.l4.has('udp')) protocol = 'udp';
    else if (reading.l4.size === 1 && reading.l4.has('tcp')) protocol = 'tcp';
  }
  const action = reading.action === 'allow' && reading.limited ? 'limit' : reading.action;
  // A rule matching no family of the table (ip6 saddr in an ip table) still shows, as "other".
  const families = reading.families.size > 0 ? [...reading.families] : tableFamilies(tableFamily).slice(0, 1);
  return families.flatMap((family) => {
    const sources = reading.sources?.filter((source) => parseCidr(source)?.family === family) ?? [
      anywhere(family),
    ];
    return sources.map((source) => {
      const parsed: FirewallRule = {
        family,
        action,
        direction: 'in',
        protocol: reading.families.size > 0 ? protocol : 'other',
        ports: reading.ports ?? 'any',
        source,
        destination: reading.destination ?? anywhere(family),
        comment: rule.comment ?? '',
        ours: false,
        raw: renderRule(rule),
      };
      if (reading.sourcePorts !== undefined) parsed.sourcePorts = reading.sourcePorts;
      if (reading.iface !== undefined) parsed.interface = reading.iface;
      return parsed;
    });
  });
}

/**
 * The admin's rules of the chain our jump goes in (not the jump itself), each flagged afterOurs when the
 * firewall evaluates it after our accept: our jump goes in at the top, so every rule below it (all of
 * them, before it exists) comes after ours.
 */
export function anchorRules(
  ruleset: NftRuleset,
  anchor: { family: NftTableFamily; table: string; chain: string },
): FirewallRule[] {
  const chain = rulesOf(ruleset, anchor.family, anchor.table, anchor.chain);
  const jumpAt = chain.findIndex(isOurJump);
  return chain.flatMap((rule, index) =>
    isOurJump(rule)
      ? []
      : adminRules(rule, anchor.family, ruleset).map((each) => ({
          ...each,
          afterOurs: jumpAt === -1 || index > jumpAt,
        })),
  );
}
