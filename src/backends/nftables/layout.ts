import { isDeepStrictEqual } from 'node:util';
import type { Family } from '../../model.ts';
import { anywhere, parseCidr } from '../../net.ts';
import { RULE_TAG, type RuleSpec } from '../../rules.ts';
import { isRecord, type NftRule } from './ruleset.ts';

/*
 * What moshwall adds to the admin's nftables table (and nothing else):
 *
 *   table inet filter {                                   # the admin's table, found or configured
 *     set moshwall_v4_any { type inet_service; flags timeout; }   # v4 ports open to any source
 *     set moshwall_v6_any { type inet_service; flags timeout; }   # v6 ports open to any source
 *     set moshwall_v4_net24 { type ipv4_addr . inet_service; flags interval, timeout; }  # /24 . port
 *     chain moshwall_input {                              # ours: one rule per set
 *       meta nfproto ipv4 udp dport @moshwall_v4_any accept comment "moshwall"
 *       meta nfproto ipv6 udp dport @moshwall_v6_any accept comment "moshwall"
 *       ip saddr . udp dport @moshwall_v4_net24 accept comment "moshwall"
 *     }
 *     chain input {                                       # the admin's input chain
 *       type filter hook input priority filter; policy drop;
 *       jump moshwall_input comment "moshwall"            # ours, inserted at the top once
 *       …the admin's rules, untouched
 *     }
 *   }
 *
 * One set per family and source prefix length, because the kernel's concatenated-range sets (pipapo)
 * refuse overlapping elements ("File exists"), and two networks of one prefix length are either equal
 * or disjoint: 10.0.0.0/8 . 60001 and 0.0.0.0/0 . 60001 can then both exist, in two sets, as two
 * specs must. Sources from anywhere (the default) use a plain port set, which any nftables kernel has;
 * concatenated ranges (source networks) need Linux 5.6. Sets and their rules are made when first
 * needed and kept when empty (cheap); an `ip` or `ip6` table carries only its own family, an `inet`
 * table both, with `meta nfproto` telling them apart in the port-only sets.
 *
 * A spec's element is in force only while the whole path exists: the jump in some chain of the table
 * and our rule for its set. Only such elements are listed as ours.
 */

/** Our regular chain in the admin's table, holding one accept rule per set of ours. */
export const OUR_CHAIN = 'moshwall_input';

/** The table families moshwall can put its objects in. */
export type NftTableFamily = 'inet' | 'ip' | 'ip6';

/** True for the table families moshwall manages. */
export function isManagedFamily(family: string): family is NftTableFamily {
  return family === 'inet' || family === 'ip' || family === 'ip6';
}

/** One of our sets: the family and source prefix length (0 = from anywhere) of every element in it. */
export interface OurSet {
  name: string;
  family: Family;
  prefix: number;
}

const SET_NAME = /^moshwall_(v4|v6)_(?:any|net([1-9][0-9]{0,2}))$/;

/** Our set for specs of this family and source prefix length. */
export function ourSet(family: Family, prefix: number): OurSet {
  return { name: `moshwall_${family}_${prefix === 0 ? 'any' : `net${prefix}`}`, family, prefix };
}

/** Our set named `name` ("moshwall_v4_any", "moshwall_v6_net64"…), or undefined when it is not one. */
export function parseOurSetName(name: string): OurSet | undefined {
  const match = SET_NAME.exec(name);
  if (match === null) return undefined;
  const family: Family = match[1] === 'v6' ? 'v6' : 'v4';
  const prefix = match[2] === undefined ? 0 : Number(match[2]);
  if (prefix > (family === 'v6' ? 128 : 32)) return undefined;
  return ourSet(family, prefix);
}

/** The set a (validated) spec's element belongs in. */
export function setOfSpec(spec: RuleSpec): OurSet {
  return ourSet(spec.family, parseCidr(spec.source)?.prefix ?? 0);
}

/** The families a table of this family can filter. */
export function tableFamilies(family: NftTableFamily): Family[] {
  if (family === 'ip') return ['v4'];
  if (family === 'ip6') return ['v6'];
  return ['v4', 'v6'];
}

/** The key type a set of ours is declared with: ["inet_service"] or ["ipv4_addr", "inet_service"]. */
export function setKeyType(set: OurSet): string[] {
  if (set.prefix === 0) return ['inet_service'];
  return [set.family === 'v6' ? 'ipv6_addr' : 'ipv4_addr', 'inet_service'];
}

/**
 * The body of `add set` for one of our sets. Declared with `flags timeout` so that a revoke can be a
 * timeout of 1 ms on the element (one cheap commit) instead of a delete, whose commit waits for an RCU
 * grace period (10-20 ms); sets made by older moshwall, without the flag, are still ours (deleted from).
 */
export function setDeclaration(set: OurSet): string {
  const type = setKeyType(set).join(' . ');
  return set.prefix === 0 ? `{ type ${type}; flags timeout; }` : `{ type ${type}; flags interval, timeout; }`;
}

/** What a revoke by timeout gives the element: it stops matching 1 ms later, and the kernel's GC frees it. */
export const EXPIRE_NOW = 'timeout 1ms';

/** The flags a set of ours may be declared with: as we make it now, or as older moshwall made it. */
export function ourSetFlags(set: OurSet): { current: string[]; older: string[] } {
  return set.prefix === 0
    ? { current: ['timeout'], older: [] }
    : { current: ['interval', 'timeout'], older: ['interval'] };
}

/** The match of our rule for a set, as nft text: "meta nfproto ipv4 udp dport @moshwall_v4_any". */
export function ruleMatchText(set: OurSet, tableFamily: NftTableFamily): string {
  if (set.prefix > 0) return `${set.family === 'v6' ? 'ip6' : 'ip'} saddr . udp dport @${set.name}`;
  const nfproto = tableFamily === 'inet' ? `meta nfproto ${set.family === 'v6' ? 'ipv6' : 'ipv4'} ` : '';
  return `${nfproto}udp dport @${set.name}`;
}

/** The expressions nft lists for our rule of a set (ruleMatchText + "accept"). */
function ruleExpr(set: OurSet, tableFamily: NftTableFamily): unknown[] {
  const dport = { payload: { protocol: 'udp', field: 'dport' } };
  const accept = { accept: null };
  if (set.prefix > 0) {
    const saddr = { payload: { protocol: set.family === 'v6' ? 'ip6' : 'ip', field: 'saddr' } };
    return [{ match: { op: '==', left: { concat: [saddr, dport] }, right: `@${set.name}` } }, accept];
  }
  const port = { match: { op: '==', left: dport, right: `@${set.name}` } };
  if (tableFamily !== 'inet') return [port, accept];
  const nfproto = {
    match: { op: '==', left: { meta: { key: 'nfproto' } }, right: set.family === 'v6' ? 'ipv6' : 'ipv4' },
  };
  return [nfproto, port, accept];
}

/** True when `rule` is exactly our accept rule for `set`, with our comment, in our chain. */
export function isOurSetRule(rule: NftRule, set: OurSet, tableFamily: NftTableFamily): boolean {
  return (
    rule.chain === OUR_CHAIN &&
    rule.comment === RULE_TAG &&
    isDeepStrictEqual(rule.expr, ruleExpr(set, tableFamily))
  );
}

/** True when `rule` is exactly our jump into our chain, with our comment. */
export function isOurJump(rule: NftRule): boolean {
  return (
    rule.chain !== OUR_CHAIN &&
    rule.comment === RULE_TAG &&
    isDeepStrictEqual(rule.expr, [{ jump: { target: OUR_CHAIN } }])
  );
}

/** The element text of a (validated) spec in its set: "60001" or "10.0.0.0/8 . 60001". */
export function elementText(spec: RuleSpec): string {
  return setOfSpec(spec).prefix === 0 ? String(spec.port) : `${spec.source} . ${spec.port}`;
}

/** A port as nft lists it: an integer 1..65535. */
function portOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535
    ? value
    : undefined;
}

/** An address element of nft's JSON as text: "192.0.2.7", or "10.0.0.0/8" from {"prefix": {addr, len}}. */
export function addressText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (!isRecord(value) || !isRecord(value.prefix)) return undefined;
  const { addr, len } = value.prefix;
  return typeof addr === 'string' && typeof len === 'number' ? `${addr}/${len}` : undefined;
}

/**
 * The canonical network of an element of our sets, or undefined when it is not one we write: we never
 * write host bits, so an element with them set is not ours (an admin's rule may have them: admin.ts).
 */
function networkOf(value: unknown, family: Family): string | undefined {
  const text = addressText(value);
  const cidr = text === undefined ? undefined : parseCidr(text);
  if (cidr === undefined || cidr.family !== family || cidr.hostBitsSet) return undefined;
  return cidr.network;
}

/** The spec one element of our set stands for, or undefined when it has a shape we never add. */
export function specOfElement(set: OurSet, element: unknown): RuleSpec | undefined {
  if (set.prefix === 0) {
    const port = portOf(element);
    return port === undefined ? undefined : { port, family: set.family, source: anywhere(set.family) };
  }
  if (!isRecord(element) || !Array.isArray(element.concat) || element.concat.length !== 2) return undefined;
  const source = networkOf(element.concat[0], set.family);
  const port = portOf(element.concat[1]);
  if (source === undefined || port === undefined || parseCidr(source)?.prefix !== set.prefix)
    return undefined;
  return { port, family: set.family, source };
}
