import { isManagedFamily, type NftTableFamily, OUR_CHAIN } from './layout.ts';
import { isRecord, type NftChain, type NftRuleset, rulesOf } from './ruleset.ts';

/** Where our jump goes: the admin's table and (input) chain. */
export interface NftAnchor {
  family: NftTableFamily;
  table: string;
  chain: string;
}

/** The table and chain an admin configured (either may be left to discovery). */
export interface NftPlacement {
  table?: { family: NftTableFamily; name: string };
  chain?: string;
}

/** One base chain on the input hook, as probe and anchor discovery see it. */
export interface InputChain {
  chain: NftChain;
  /** Why it drops some input ("policy drop", "rule 12: drop"…), or undefined when it accepts all. */
  blocks: string | undefined;
  /** Whose table it is when that is not the admin's own nftables (iptables-nft, firewalld). */
  owner: string | undefined;
}

export interface AnchorChoice {
  anchor?: NftAnchor;
  /** Why no anchor could be chosen, saying what to configure or which backend to use. */
  problem?: string;
  /** Facts worth a line in `doctor`: other chains that still drop what our rule accepts. */
  warnings: string[];
  inputChains: InputChain[];
}

/** A name nft's parser takes unquoted (nft 1.0 cannot quote table or chain names). */
const NFT_NAME = /^[A-Za-z_.][A-Za-z0-9_.-]{0,254}$/;

/** Why `name` cannot be written in an nft script as a table or chain name, or undefined when it can. */
export function nftNameProblem(name: string): string | undefined {
  return NFT_NAME.test(name)
    ? undefined
    : `\`${name}\` is not a plain nftables name (letters, digits, "_", "." and "-", not starting with a digit)`;
}

/** "inet filter input": a chain as nft names it. */
export function chainLabel(chain: { family: string; table: string; name: string }): string {
  return `${chain.family} ${chain.table} ${chain.name}`;
}

const XTABLES_TABLES = new Set(['filter', 'mangle', 'raw', 'security', 'nat']);
const XTABLES_CHAINS = new Set(['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING']);

/** Every value under `node` (depth first), to find verdicts inside vmaps and nested expressions. */
function* walk(node: unknown): Generator<Record<string, unknown>> {
  if (Array.isArray(node)) for (const item of node) yield* walk(item);
  else if (isRecord(node)) {
    yield node;
    for (const value of Object.values(node)) yield* walk(value);
  }
}

/**
 * Who owns a table that is not the admin's plain nftables: firewalld's (`firewalld` tables) or
 * iptables-nft's (xtables expressions, or iptables' table and chain names). iptables-nft lists our
 * set rule as a plain `-p udp -j ACCEPT`, so one iptables-save/restore would open every UDP port.
 */
export function tableOwner(ruleset: NftRuleset, family: string, table: string): string | undefined {
  if (table === 'firewalld') return 'firewalld (use the firewalld backend)';
  const xt = ruleset.rules.some(
    (rule) =>
      rule.family === family && rule.table === table && [...walk(rule.expr)].some((node) => 'xt' in node),
  );
  const xtNames =
    (family === 'ip' || family === 'ip6') &&
    XTABLES_TABLES.has(table) &&
    ruleset.chains.some(
      (c) => c.family === family && c.table === table && c.hook && XTABLES_CHAINS.has(c.name),
    );
  return xt || xtNames ? 'iptables-nft (use the iptables backend)' : undefined;
}

/**
 * Why a chain drops some input, or undefined when it cannot: policy drop, a rule with a drop or reject
 * verdict (vmaps included), or a jump/goto to a chain of the table that does (followed once each).
 */
export function blockingReason(
  ruleset: NftRuleset,
  chain: NftChain,
  seen: Set<string> = new Set(),
): string | undefined {
  if (chain.policy === 'drop') return 'policy drop';
  seen.add(chain.name);
  for (const rule of rulesOf(ruleset, chain.family, chain.table, chain.name)) {
    for (const node of walk(rule.expr)) {
      if ('drop' in node || 'reject' in node) return `rule handle ${rule.handle} drops or rejects`;
      const jump = isRecord(node.jump) ? node.jump : isRecord(node.goto) ? node.goto : undefined;
      const target = typeof jump?.target === 'string' ? jump.target : undefined;
      if (target === undefined || target === OUR_CHAIN || seen.has(target)) continue;
      const next = ruleset.chains.find(
        (c) => c.family === chain.family && c.table === chain.table && c.name === target,
      );
      const why = next === undefined ? undefined : blockingReason(ruleset, next, seen);
      if (why !== undefined) return `rule handle ${rule.handle} jumps to ${target}, where ${why}`;
    }
  }
  return undefined;
}

/** Every filter base chain on the input hook of an inet, ip or ip6 table, with what blocks and who owns it. */
export function inputChains(ruleset: NftRuleset): InputChain[] {
  return ruleset.chains
    .filter((chain) => chain.hook === 'input' && chain.type === 'filter' && isManagedFamily(chain.family))
    .map((chain) => ({
      chain,
      blocks: blockingReason(ruleset, chain),
      owner: tableOwner(ruleset, chain.family, chain.table),
    }));
}

/** The anchor for a chain, or a problem when its names cannot be written in a script. */
function anchorOf(chain: NftChain): { anchor: NftAnchor } | { problem: string } {
  const bad = nftNameProblem(chain.table) ?? nftNameProblem(chain.name);
  if (bad !== undefined || !isManagedFamily(chain.family)) {
    return { problem: `cannot use ${chainLabel(chain)}: ${bad ?? 'not an inet, ip or ip6 table'}` };
  }
  return { anchor: { family: chain.family, table: chain.table, chain: chain.name } };
}

/**
 * Chooses the chain our jump goes in. Configured: that table and chain (any chain; the admin knows it is
 * reached), or the table's one input chain. Discovered: the one admin input chain that blocks, or the only
 * input chain when none blocks. A chain of iptables-nft or firewalld is never used, and one of them
 * blocking makes discovery refuse (our rule could not open that port there).
 */
export function chooseAnchor(ruleset: NftRuleset, placement: NftPlacement): AnchorChoice {
  const chains = inputChains(ruleset);
  const choice = (chain: NftChain): AnchorChoice => {
    const made = anchorOf(chain);
    if ('problem' in made) return { problem: made.problem, warnings: [], inputChains: chains };
    const others = chains.filter(
      (other) => other.blocks !== undefined && chainLabel(other.chain) !== chainLabel(chain),
    );
    const warnings = others.map(
      (other) =>
        `${chainLabel(other.chain)} also drops input (${other.blocks}); moshwall's rule in ` +
        `${chainLabel(chain)} cannot open ports there`,
    );
    return { anchor: made.anchor, warnings, inputChains: chains };
  };
  const refuse = (problem: string): AnchorChoice => ({ problem, warnings: [], inputChains: chains });
  const list = (items: InputChain[]) => items.map((item) => chainLabel(item.chain)).join(', ');
  const { table, chain } = placement;

  if (table !== undefined || chain !== undefined) {
    const matches = ruleset.chains.filter(
      (c) =>
        (table === undefined
          ? isManagedFamily(c.family)
          : c.family === table.family && c.table === table.name) &&
        (chain === undefined ? c.hook === 'input' && c.type === 'filter' : c.name === chain),
    );
    const wanted = `${table === undefined ? '' : `${table.family} ${table.name} `}${chain ?? '(input chain)'}`;
    const [only] = matches;
    if (only === undefined || matches.length > 1) {
      return refuse(
        matches.length === 0
          ? `the configured chain ${wanted} does not exist`
          : `the configured ${wanted} matches ${matches.length} chains: ${matches.map(chainLabel).join(', ')}; set both table and chain`,
      );
    }
    const owner = only.name === OUR_CHAIN ? 'moshwall itself' : tableOwner(ruleset, only.family, only.table);
    if (owner !== undefined) return refuse(`${chainLabel(only)} belongs to ${owner}`);
    return choice(only);
  }

  const owned = chains.filter((item) => item.owner !== undefined && item.blocks !== undefined);
  if (owned.length > 0) {
    return refuse(
      `${owned.map((item) => `${chainLabel(item.chain)} (${item.owner})`).join(', ')} drops input, and ` +
        'moshwall never adds to it from the nftables backend',
    );
  }
  const candidates = chains.filter((item) => item.owner === undefined);
  const blocking = candidates.filter((item) => item.blocks !== undefined);
  const [first] = blocking.length > 0 ? blocking : candidates;
  if (first === undefined) return refuse('no table has a filter chain on the input hook');
  if (blocking.length > 1) {
    return refuse(
      `several input chains drop input (${list(blocking)}); configure the table and chain to use`,
    );
  }
  if (blocking.length === 0 && candidates.length > 1) {
    return refuse(`several input chains (${list(candidates)}); configure the table and chain to use`);
  }
  return choice(first.chain);
}
