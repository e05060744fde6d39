import { FirewallError } from '../../errors.ts';

/*
 * The objects of `nft -j list ruleset` (libnftables JSON, schema 1; nft 0.9.3 to 1.1) that moshwall reads:
 *   {"nftables": [{"metainfo": {...}}, {"table": {...}}, {"chain": {...}}, {"set": {...}}, {"rule": {...}}, …]}
 * Everything else (maps, flowtables, counters, quotas, ct helpers…) is skipped. Rules come in chain order.
 */

/** A chain; `hook`, `type` and `policy` are set only for base chains. */
export interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  type?: string;
  policy?: string;
}

/** A named set: its key type (one entry per concatenated field), flags and elements as nft prints them. */
export interface NftSet {
  family: string;
  table: string;
  name: string;
  type: string[];
  flags: string[];
  /** Element values ({"elem": {"val": …}} wrappers removed), e.g. 60001 or {"concat": [{prefix}, 60001]}. */
  elements: unknown[];
}

/** A rule: its statements are JSON expressions, kept as they are for the readers that understand them. */
export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
  expr: unknown[];
}

export interface NftRuleset {
  /** nft's version from metainfo, e.g. "1.0.6". */
  version?: string;
  tables: { family: string; name: string }[];
  chains: NftChain[];
  sets: NftSet[];
  rules: NftRule[];
}

/** True for a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A one-or-many JSON field ("interval" or ["interval"]) as a list of strings; undefined if not strings. */
function stringList(value: unknown): string[] | undefined {
  const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return list.every((item): item is string => typeof item === 'string') ? list : undefined;
}

/** The value of one set element, with an {"elem": {"val": …}} wrapper (timeouts, comments) removed. */
function elementValue(item: unknown): unknown {
  if (isRecord(item) && isRecord(item.elem) && 'val' in item.elem) return item.elem.val;
  return item;
}

/**
 * True for an element given a timeout under a second (nft prints timeouts in whole seconds: moshwall's
 * revoke by expiry, 1 ms, prints as 0): it stops matching within a kernel tick and is listed as gone.
 */
function isExpiring(item: unknown): boolean {
  return (
    isRecord(item) && isRecord(item.elem) && typeof item.elem.timeout === 'number' && item.elem.timeout < 1
  );
}

/**
 * The tables, chains, sets and rules in the stdout of `nft -j list ruleset`. Output that is not
 * libnftables JSON, or an object lacking a field nft always prints, throws a FirewallError.
 */
export function parseNftRuleset(stdout: string): NftRuleset {
  const fail = (reason: string): never => {
    throw new FirewallError(`Cannot read \`nft -j list ruleset\`: ${reason}`, {
      output: stdout.slice(0, 300),
    });
  };
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch (error) {
    return fail(`not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!isRecord(data) || !Array.isArray(data.nftables)) return fail('no "nftables" array');
  const ruleset: NftRuleset = { tables: [], chains: [], sets: [], rules: [] };
  for (const entry of data.nftables) {
    if (!isRecord(entry)) return fail(`an entry is not an object: ${JSON.stringify(entry)}`);
    const { metainfo, table, chain, set, rule } = entry;
    const strings = (object: Record<string, unknown>, keys: string[], what: string) => {
      for (const key of keys) {
        if (typeof object[key] !== 'string')
          fail(`${what} without a string "${key}": ${JSON.stringify(object)}`);
      }
    };
    if (isRecord(metainfo)) {
      if (typeof metainfo.version === 'string') ruleset.version = metainfo.version;
    } else if (isRecord(table)) {
      strings(table, ['family', 'name'], 'table');
      ruleset.tables.push({ family: String(table.family), name: String(table.name) });
    } else if (isRecord(chain)) {
      strings(chain, ['family', 'table', 'name'], 'chain');
      const parsed: NftChain = {
        family: String(chain.family),
        table: String(chain.table),
        name: String(chain.name),
      };
      if (typeof chain.hook === 'string') parsed.hook = chain.hook;
      if (typeof chain.type === 'string') parsed.type = chain.type;
      if (typeof chain.policy === 'string') parsed.policy = chain.policy;
      ruleset.chains.push(parsed);
    } else if (isRecord(set)) {
      strings(set, ['family', 'table', 'name'], 'set');
      const type = stringList(set.type);
      const flags = stringList(set.flags);
      if (type === undefined || type.length === 0) return fail(`set without a type: ${JSON.stringify(set)}`);
      if (flags === undefined) return fail(`set with odd flags: ${JSON.stringify(set)}`);
      const elements = Array.isArray(set.elem)
        ? set.elem.filter((item) => !isExpiring(item)).map(elementValue)
        : [];
      ruleset.sets.push({
        family: String(set.family),
        table: String(set.table),
        name: String(set.name),
        type,
        flags,
        elements,
      });
    } else if (isRecord(rule)) {
      strings(rule, ['family', 'table', 'chain'], 'rule');
      if (typeof rule.handle !== 'number' || !Array.isArray(rule.expr)) {
        return fail(`rule without a handle or expressions: ${JSON.stringify(rule)}`);
      }
      const parsed: NftRule = {
        family: String(rule.family),
        table: String(rule.table),
        chain: String(rule.chain),
        handle: rule.handle,
        expr: rule.expr,
      };
      if (typeof rule.comment === 'string') parsed.comment = rule.comment;
      ruleset.rules.push(parsed);
    }
  }
  return ruleset;
}

/** The rules of one chain, in chain order. */
export function rulesOf(ruleset: NftRuleset, family: string, table: string, chain: string): NftRule[] {
  return ruleset.rules.filter(
    (rule) => rule.family === family && rule.table === table && rule.chain === chain,
  );
}
