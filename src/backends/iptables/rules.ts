import type { Family, PortRange } from '../../model.ts';
import { anywhere, parseCidr } from '../../net.ts';
import { type FirewallRule, RULE_TAG, type RuleSpec } from '../../rules.ts';
import type { SavedRule, SavedTable } from './save.ts';

/*
 * What moshwall adds to the filter table of iptables and of ip6tables (and nothing else):
 *   :moshwall-input - [0:0]                                                  our chain
 *   -A INPUT -m comment --comment moshwall -j moshwall-input                 inserted at position 1, once
 *   -A moshwall-input [-s CIDR] -p udp -m udp --dport N -m comment --comment moshwall -j ACCEPT
 * written exactly as iptables-save prints them, so a rule of ours is recognised word for word. A rule
 * in our chain is in force only while the jump is in INPUT; only then is it listed as ours.
 */

/** Our chain in the filter table of each family. */
export const OUR_CHAIN = 'moshwall-input';

/** The words of our jump after "-A INPUT" (and after "-I INPUT 1"). */
export const JUMP_WORDS: readonly string[] = ['-m', 'comment', '--comment', RULE_TAG, '-j', OUR_CHAIN];

/** The words of our rule for a (validated) spec, after "-A moshwall-input", as iptables-save prints them. */
export function ourRuleWords(spec: RuleSpec): string[] {
  const source = spec.source === anywhere(spec.family) ? [] : ['-s', spec.source];
  return [
    ...source,
    '-p',
    'udp',
    '-m',
    'udp',
    '--dport',
    String(spec.port),
    '-m',
    'comment',
    '--comment',
    RULE_TAG,
    '-j',
    'ACCEPT',
  ];
}

/** The spec whose rule has exactly these words (after "-A moshwall-input"), or undefined. */
export function specOfOurWords(words: readonly string[], family: Family): RuleSpec | undefined {
  const source = words[0] === '-s' ? words[1] : anywhere(family);
  const portText = words[words.indexOf('--dport') + 1] ?? '';
  const port = /^[1-9][0-9]{0,4}$/.test(portText) ? Number(portText) : 0;
  const cidr = source === undefined ? undefined : parseCidr(source);
  if (port > 65535 || port < 1 || cidr === undefined || cidr.family !== family || cidr.network !== source) {
    return undefined;
  }
  const spec = { port, family, source };
  return ourRuleWords(spec).join(' ') === words.join(' ') ? spec : undefined;
}

/** True when a saved rule is our jump from INPUT. */
export function isOurJump(rule: SavedRule): boolean {
  return rule.chain === 'INPUT' && rule.words.join(' ') === JUMP_WORDS.join(' ');
}

/** What one rule's words say, as far as they were understood. */
interface Reading {
  action: FirewallRule['action'];
  protocol: FirewallRule['protocol'];
  ports: PortRange[] | 'any';
  source: string;
  destination: string;
  sourcePorts?: string;
  iface?: string;
  comment: string;
  limited: boolean;
  understood: boolean;
}

/** Port ranges of a --dport/--dports value: "N", "N:M", or a comma list of those. */
function portList(text: string): PortRange[] | undefined {
  const ranges: PortRange[] = [];
  for (const part of text.split(',')) {
    const match = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(part);
    const first = Number(match?.[1]);
    const last = match?.[2] === undefined ? first : Number(match[2]);
    if (match === null || first > last || last > 65535) return undefined;
    ranges.push({ first, last });
  }
  return ranges;
}

/** An address as a canonical network, or as written (a non-contiguous mask, never exact). */
function address(text: string, family: Family): string | undefined {
  const cidr = parseCidr(text);
  if (cidr !== undefined) return cidr.family === family ? cidr.network : undefined;
  const [base = '', mask = ''] = text.split('/');
  return family === 'v4' && parseCidr(base)?.family === 'v4' && parseCidr(mask)?.family === 'v4'
    ? text
    : undefined;
}

const UNDERSTOOD_MODULES = new Set(['udp', 'tcp', 'multiport', 'comment', 'limit']);
const VALUE_OPTIONS = new Set([
  '--dport',
  '--dports',
  '--sport',
  '--sports',
  '--comment',
  '--limit',
  '--limit-burst',
  '--reject-with',
]);

/**
 * What one saved rule means for inbound traffic, best effort: -s -d -i -p, the udp/tcp/multiport port
 * options, comment, limit (→ action "limit") and -j ACCEPT|DROP|REJECT (→ allow|deny|reject, any other
 * target → "other"). Anything else (conntrack, negations, other modules) makes it protocol "other", which
 * is shown but never taken as covering a port. Never flagged ours.
 */
export function savedRuleToFirewallRule(rule: SavedRule, family: Family): FirewallRule {
  const reading: Reading = {
    action: 'other',
    protocol: 'any',
    ports: 'any',
    source: anywhere(family),
    destination: anywhere(family),
    comment: '',
    limited: false,
    understood: true,
  };
  const { words } = rule;
  for (let index = 0; index < words.length; index++) {
    const word = words[index] ?? '';
    const value = words[index + 1];
    const takes = (): string => {
      index++;
      return value ?? '';
    };
    if (word === '-s' || word === '-d') {
      const network = address(takes(), family);
      if (network === undefined) reading.understood = false;
      else if (word === '-s') reading.source = network;
      else reading.destination = network;
    } else if (word === '-i') reading.iface = takes();
    else if (word === '-p') {
      const name = takes();
      reading.protocol = name === 'udp' || name === 'tcp' ? name : name === 'all' ? 'any' : 'other';
    } else if (word === '-m') {
      const module = takes();
      if (module === 'limit') reading.limited = true;
      if (!UNDERSTOOD_MODULES.has(module)) reading.understood = false;
    } else if (word === '--dport' || word === '--dports') {
      const ports = portList(takes());
      if (ports === undefined) reading.understood = false;
      else reading.ports = ports;
    } else if (word === '--sport' || word === '--sports') reading.sourcePorts = takes();
    else if (word === '--comment') reading.comment = takes();
    else if (word === '-j' || word === '-g') {
      const target = takes();
      const actions: Record<string, FirewallRule['action']> = {
        ACCEPT: 'allow',
        DROP: 'deny',
        REJECT: 'reject',
      };
      reading.action = word === '-j' ? (actions[target] ?? 'other') : 'other';
    } else if (VALUE_OPTIONS.has(word)) takes();
    else {
      // "!", -f, options of modules we do not read: the rule is not understood; skip the option's values.
      reading.understood = false;
      while (
        word.startsWith('--') &&
        words[index + 1] !== undefined &&
        !(words[index + 1] ?? '').startsWith('-')
      )
        index++;
    }
  }
  const parsed: FirewallRule = {
    family,
    action: reading.action === 'allow' && reading.limited ? 'limit' : reading.action,
    direction: 'in',
    protocol: reading.understood ? reading.protocol : 'other',
    ports: reading.ports,
    source: reading.source,
    destination: reading.destination,
    comment: reading.comment,
    ours: false,
    raw: rule.line,
  };
  if (reading.sourcePorts !== undefined) parsed.sourcePorts = reading.sourcePorts;
  if (reading.iface !== undefined) parsed.interface = reading.iface;
  return parsed;
}

/**
 * Why INPUT drops some traffic (policy DROP, a DROP or REJECT rule, or a jump to a chain that does), or
 * undefined when it accepts everything.
 */
export function inputBlockingReason(
  table: SavedTable,
  chain = 'INPUT',
  seen = new Set<string>(),
): string | undefined {
  if (table.policies.get(chain) === 'DROP') return 'policy DROP';
  seen.add(chain);
  for (const rule of table.rules.filter((each) => each.chain === chain)) {
    const jump = rule.words.findIndex((word) => word === '-j' || word === '-g');
    const target = jump === -1 ? undefined : rule.words[jump + 1];
    if (target === 'DROP' || target === 'REJECT') return `\`${rule.line}\``;
    if (target === undefined || target === OUR_CHAIN || seen.has(target) || !table.policies.has(target))
      continue;
    const why = inputBlockingReason(table, target, seen);
    if (why !== undefined) return `\`${rule.line}\` leads to ${why}`;
  }
  return undefined;
}

/** The state of our objects in one family's filter table. */
export interface OurChainState {
  chainExists: boolean;
  jump: boolean;
  /** Our rules by spec key, with how many copies exist (a duplicate is deleted with the original). */
  specs: Map<string, { spec: RuleSpec; count: number }>;
  /** Other rules in our chain (not our shape): flushed with the chain when the jump is re-made. */
  odd: number;
}

/** What of ours the table holds. */
export function ourChainState(
  table: SavedTable,
  family: Family,
  key: (spec: RuleSpec) => string,
): OurChainState {
  const state: OurChainState = {
    chainExists: table.policies.has(OUR_CHAIN),
    jump: table.rules.some(isOurJump),
    specs: new Map(),
    odd: 0,
  };
  for (const rule of table.rules.filter((each) => each.chain === OUR_CHAIN)) {
    const spec = specOfOurWords(rule.words, family);
    if (spec === undefined) {
      state.odd++;
      continue;
    }
    const entry = state.specs.get(key(spec)) ?? { spec, count: 0 };
    entry.count++;
    state.specs.set(key(spec), entry);
  }
  return state;
}

/**
 * Every rule of one family that matters for inbound traffic: the admin's INPUT rules (our jump aside)
 * and, while our jump puts it in force, every rule in our chain, flagged ours when it has our exact shape.
 */
export function tableRules(table: SavedTable, family: Family): FirewallRule[] {
  const jump = table.rules.some(isOurJump);
  // Our jump goes in at INPUT position 1: every INPUT rule below it (all, before it exists) comes after ours.
  const input = table.rules.filter((rule) => rule.chain === 'INPUT');
  const jumpAt = input.findIndex(isOurJump);
  const rules: FirewallRule[] = [];
  for (const rule of table.rules) {
    if (rule.chain === 'INPUT' && !isOurJump(rule)) {
      const afterOurs = jumpAt === -1 || input.indexOf(rule) > jumpAt;
      rules.push({ ...savedRuleToFirewallRule(rule, family), afterOurs });
    }
    if (rule.chain !== OUR_CHAIN || !jump) continue;
    const ours = specOfOurWords(rule.words, family) !== undefined;
    rules.push({ ...savedRuleToFirewallRule(rule, family), ours });
  }
  return rules;
}
