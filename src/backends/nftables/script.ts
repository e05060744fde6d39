import { FirewallError } from '../../errors.ts';
import { parseCidr } from '../../net.ts';
import { assertValidRuleSpecs, portProblem, RULE_TAG, type RuleSpec, specKey } from '../../rules.ts';
import { type NftAnchor, nftNameProblem } from './anchor.ts';
import {
  EXPIRE_NOW,
  elementText,
  isOurJump,
  isOurSetRule,
  OUR_CHAIN,
  type OurSet,
  parseOurSetName,
  ruleMatchText,
  setDeclaration,
  setOfSpec,
  tableFamilies,
} from './layout.ts';
import { inForce, type OurSetState, ourTableState, ourTables } from './ours.ts';
import type { NftRuleset } from './ruleset.ts';

/** One `nft -f -` run: the specs it changes and the script, applied by nft as one transaction. */
export interface NftBatch {
  kind: 'allow' | 'revoke';
  specs: RuleSpec[];
  script: string;
  /**
   * The rules of ours this batch deletes by handle ("inet filter input handle 7"), as the listing it was
   * planned on showed them: the guard lets a `delete rule` through only for these.
   */
  ourHandles?: string[];
}

/** The specs without duplicates, in order of first mention. */
function unique(specs: readonly RuleSpec[]): RuleSpec[] {
  return [...new Map(specs.map((spec) => [specKey(spec), spec])).values()];
}

/** Throws a FirewallError unless `name` can be written in a script. */
function assertName(name: string, what: string): void {
  const problem = nftNameProblem(name);
  if (problem !== undefined) throw new FirewallError(`Cannot name the ${what} in nft: ${problem}`, { name });
}

/**
 * The script that puts `specs` in force in the anchor's table, or undefined when all already are: our
 * chain, sets and set rules where missing, our jump at the top of the anchor chain where missing, then
 * the elements. A set whose elements were not in force (its rule or the jump was gone: an admin's
 * `flush chain`) is flushed first, so no element nobody asked for comes back to life with the path.
 */
export function planNftAllow(
  ruleset: NftRuleset,
  anchor: NftAnchor,
  specs: readonly RuleSpec[],
): NftBatch | undefined {
  assertValidRuleSpecs(specs);
  assertName(anchor.table, 'table');
  assertName(anchor.chain, 'chain');
  const families = tableFamilies(anchor.family);
  const outside = specs.find((spec) => !families.includes(spec.family));
  if (outside !== undefined) {
    throw new FirewallError(
      `Cannot open ${outside.family} port ${outside.port}: moshwall's rules live in the ${anchor.family} table ` +
        `${anchor.table}, which filters ${families.join(' and ')} only`,
      { port: outside.port, source: outside.source, table: `${anchor.family} ${anchor.table}` },
    );
  }
  const state = ourTableState(ruleset, anchor.family, anchor.table);
  const where = `${anchor.family} ${anchor.table}`;
  const structure: string[] = [];
  const flushes: string[] = [];
  const additions = new Map<string, { set: OurSet; specs: RuleSpec[] }>();
  if (!state.chainExists) structure.push(`add chain ${where} ${OUR_CHAIN}`);
  for (const existing of state.sets) {
    if (!inForce(state, existing) && (existing.specs.length > 0 || existing.odd.length > 0)) {
      flushes.push(`flush set ${where} ${existing.set.name}`);
    }
  }
  const declared = new Set<string>();
  for (const spec of unique(specs)) {
    const set = setOfSpec(spec);
    const existing = state.sets.find((each) => each.set.name === set.name);
    if (existing !== undefined && !existing.typeOk) {
      throw new FirewallError(
        `Set ${set.name} in ${where} was not made by moshwall (wrong type or flags); delete it and retry`,
        { set: set.name, table: where },
      );
    }
    if (
      existing !== undefined &&
      inForce(state, existing) &&
      existing.specs.some((s) => specKey(s) === specKey(spec))
    ) {
      continue;
    }
    if (!declared.has(set.name)) {
      declared.add(set.name);
      if (existing === undefined) structure.push(`add set ${where} ${set.name} ${setDeclaration(set)}`);
      if (existing?.ruleOk !== true) {
        structure.push(
          `add rule ${where} ${OUR_CHAIN} ${ruleMatchText(set, anchor.family)} accept comment "${RULE_TAG}"`,
        );
      }
    }
    const entry = additions.get(set.name) ?? { set, specs: [] };
    entry.specs.push(spec);
    additions.set(set.name, entry);
  }
  if (additions.size === 0) return undefined;
  if (!state.jumpsFrom.includes(anchor.chain)) {
    structure.push(`insert rule ${where} ${anchor.chain} jump ${OUR_CHAIN} comment "${RULE_TAG}"`);
  }
  const elements = [...additions.values()].map(
    (entry) => `add element ${where} ${entry.set.name} { ${entry.specs.map(elementText).join(', ')} }`,
  );
  const script = [...structure, ...flushes, ...elements].join('\n');
  return {
    kind: 'allow',
    specs: [...additions.values()].flatMap((entry) => entry.specs),
    script: `${script}\n`,
  };
}

/** How a revoke may take elements out (see setDeclaration). */
export interface RevokeOptions {
  /** The kernel updates an existing element's timeout on a re-add (Linux 6.12+): expire instead of delete. */
  expire: boolean;
  /**
   * Spec keys taken out since the listing planned on was made (it may still show them): planned as
   * deletes, which nft refuses for a missing element, never as a re-add that would live 1 ms.
   */
  goneSinceListing?: ReadonlySet<string>;
  /** Spec keys our own allows added since that listing: members, though it does not show them. */
  addedSinceListing?: ReadonlySet<string>;
}

/** The lines that take `specs` (all members of one set) out: expired where the set allows, else deleted. */
function takeOutLines(where: string, set: OurSetState, specs: RuleSpec[], options: RevokeOptions): string[] {
  const expirable = (spec: RuleSpec) =>
    options.expire && set.expiring && options.goneSinceListing?.has(specKey(spec)) !== true;
  const expire = specs.filter(expirable);
  const remove = specs.filter((spec) => !expirable(spec));
  return [
    ...(expire.length === 0
      ? []
      : [
          `add element ${where} ${set.set.name} { ${expire.map((spec) => `${elementText(spec)} ${EXPIRE_NOW}`).join(', ')} }`,
        ]),
    ...(remove.length === 0
      ? []
      : [`delete element ${where} ${set.set.name} { ${remove.map(elementText).join(', ')} }`]),
  ];
}

/**
 * The script that takes the elements of `specs` out of our sets, in every table that has them (in force
 * or not), or undefined when none is there: nft refuses to delete a missing element, and one refusal
 * would undo the whole transaction. An element of a set declared with `flags timeout` is expired (timeout
 * 1 ms: one cheap commit) where `options.expire` says the kernel updates timeouts, else deleted.
 */
export function planNftRevoke(
  ruleset: NftRuleset,
  specs: readonly RuleSpec[],
  options: RevokeOptions = { expire: false },
): NftBatch | undefined {
  assertValidRuleSpecs(specs);
  const wanted = new Map(unique(specs).map((spec) => [specKey(spec), spec]));
  const lines: string[] = [];
  const removed = new Map<string, RuleSpec>();
  for (const state of ourTables(ruleset)) {
    for (const existing of state.sets) {
      const present = existing.specs.filter((spec) => wanted.has(specKey(spec)));
      if (present.length === 0) continue;
      assertName(state.table, 'table');
      lines.push(...takeOutLines(`${state.family} ${state.table}`, existing, present, options));
      for (const spec of present) removed.set(specKey(spec), spec);
    }
  }
  if (lines.length === 0) return undefined;
  return { kind: 'revoke', specs: [...removed.values()], script: `${lines.join('\n')}\n` };
}

/**
 * The script that removes everything of ours from every table where nothing of ours is left in a set:
 * the jumps into our chain (by handle), our chain, our sets. A table whose sets still hold any element
 * (ours, or one of a shape we never add) is left whole; undefined when there is nothing to remove.
 */
export function planNftFootprintRemoval(ruleset: NftRuleset): NftBatch | undefined {
  const lines: string[] = [];
  const ourHandles: string[] = [];
  for (const state of ourTables(ruleset)) {
    if (state.sets.some((set) => set.specs.length > 0 || set.odd.length > 0)) continue;
    assertName(state.table, 'table');
    const where = `${state.family} ${state.table}`;
    const inTable = ruleset.rules.filter(
      (rule) => rule.family === state.family && rule.table === state.table,
    );
    const ourChainRules = inTable.filter((rule) => rule.chain === OUR_CHAIN);
    // Our chain goes only when it holds nothing but our set rules (an admin's rule in it keeps it).
    const onlyOurs = ourChainRules.every((rule) =>
      state.sets.some((set) => isOurSetRule(rule, set.set, state.family)),
    );
    if (!onlyOurs) continue;
    for (const rule of [...inTable.filter(isOurJump), ...ourChainRules]) {
      assertName(rule.chain, 'chain');
      const handle = `${where} ${rule.chain} handle ${rule.handle}`;
      ourHandles.push(handle);
      lines.push(`delete rule ${handle}`);
    }
    if (state.chainExists) lines.push(`delete chain ${where} ${OUR_CHAIN}`);
    for (const set of state.sets) lines.push(`delete set ${where} ${set.set.name}`);
  }
  if (lines.length === 0) return undefined;
  return { kind: 'revoke', specs: [], script: `${lines.join('\n')}\n`, ourHandles };
}

/**
 * The quick allow, planned on a recent listing without listing again: only `add element` lines (nft's
 * add is idempotent), and only when every spec's set is in force there (typed as ours, with its rule in
 * our chain and our jump in the anchor chain) and no set of ours needs flushing; otherwise undefined,
 * and the caller lists and plans in full. Should the listing be out of date (a set gone), nft refuses
 * the transaction as a whole and the caller falls back to the full plan.
 */
export function planNftQuickAllow(
  ruleset: NftRuleset,
  anchor: NftAnchor,
  specs: readonly RuleSpec[],
): NftBatch | undefined {
  assertValidRuleSpecs(specs);
  if (nftNameProblem(anchor.table) !== undefined) return undefined;
  const families = tableFamilies(anchor.family);
  if (specs.some((spec) => !families.includes(spec.family))) return undefined;
  const state = ourTableState(ruleset, anchor.family, anchor.table);
  if (!state.chainExists || !state.jumpsFrom.includes(anchor.chain)) return undefined;
  if (state.sets.some((each) => !inForce(state, each) && (each.specs.length > 0 || each.odd.length > 0)))
    return undefined;
  const additions = new Map<string, RuleSpec[]>();
  for (const spec of unique(specs)) {
    const name = setOfSpec(spec).name;
    const existing = state.sets.find((each) => each.set.name === name);
    if (existing === undefined || !existing.typeOk || !inForce(state, existing)) return undefined;
    additions.set(name, [...(additions.get(name) ?? []), spec]);
  }
  if (additions.size === 0) return undefined;
  const where = `${anchor.family} ${anchor.table}`;
  const lines = [...additions].map(
    ([name, added]) => `add element ${where} ${name} { ${added.map(elementText).join(', ')} }`,
  );
  return { kind: 'allow', specs: [...additions.values()].flat(), script: `${lines.join('\n')}\n` };
}

/**
 * The quick revoke, planned on a recent listing without listing again: every spec taken out of its set
 * in each table of ours that has that set (expired where the listing shows it and the set and kernel
 * allow, else deleted), or undefined when a spec's set is in none. nft refuses the whole transaction
 * when a deleted element is not there (the listing was out of date, or the spec was never allowed), and
 * the caller then lists and plans in full, which takes out only what is there.
 */
export function planNftQuickRevoke(
  ruleset: NftRuleset,
  specs: readonly RuleSpec[],
  options: RevokeOptions = { expire: false },
): NftBatch | undefined {
  assertValidRuleSpecs(specs);
  const tables = ourTables(ruleset);
  const lines: string[] = [];
  for (const spec of unique(specs)) {
    const name = setOfSpec(spec).name;
    const holders = tables.filter((state) => state.sets.some((each) => each.set.name === name));
    if (holders.length === 0 || holders.some((state) => nftNameProblem(state.table) !== undefined))
      return undefined;
    for (const state of holders) {
      const set = state.sets.find((each) => each.set.name === name);
      if (set === undefined) continue;
      // Expired only where the listing shows the element (an absent one would be created for 1 ms).
      const member =
        set.specs.some((each) => specKey(each) === specKey(spec)) ||
        options.addedSinceListing?.has(specKey(spec)) === true;
      lines.push(
        ...takeOutLines(
          `${state.family} ${state.table}`,
          member ? set : { ...set, expiring: false },
          [spec],
          options,
        ),
      );
    }
  }
  if (lines.length === 0) return undefined;
  return { kind: 'revoke', specs: unique(specs), script: `${lines.join('\n')}\n` };
}

const FAMILY = '(inet|ip|ip6)';
const NAME = '([A-Za-z_.][A-Za-z0-9_.-]*)';
const SET = '(moshwall_v[46]_(?:any|net[0-9]+))';
const TAG = `comment "${RULE_TAG}"`;
const LINE_FORMS: RegExp[] = [
  new RegExp(`^add chain ${FAMILY} ${NAME} ${OUR_CHAIN}$`),
  new RegExp(
    `^add set ${FAMILY} ${NAME} ${SET} \\{ type (?:inet_service|ipv[46]_addr \\. inet_service); (?:flags (?:interval|timeout|interval, timeout); )?\\}$`,
  ),
  new RegExp(
    `^add rule ${FAMILY} ${NAME} ${OUR_CHAIN} (?:meta nfproto ipv[46] )?udp dport @${SET} accept ${TAG}$`,
  ),
  new RegExp(`^add rule ${FAMILY} ${NAME} ${OUR_CHAIN} ip6? saddr \\. udp dport @${SET} accept ${TAG}$`),
  new RegExp(`^insert rule ${FAMILY} ${NAME} ${NAME} jump ${OUR_CHAIN} ${TAG}$`),
  new RegExp(`^flush set ${FAMILY} ${NAME} ${SET}$`),
  // The footprint removal: our (empty) chain and sets; its rule deletions are checked by handle.
  new RegExp(`^delete chain ${FAMILY} ${NAME} ${OUR_CHAIN}$`),
  new RegExp(`^delete set ${FAMILY} ${NAME} ${SET}$`),
];
const ELEMENT_LINE = new RegExp(`^(?:add|delete) element ${FAMILY} ${NAME} ${SET} \\{ (.+) \\}$`);

/** Why an element text cannot be in `set`, or undefined when it is a valid element of it. */
function elementProblem(set: OurSet, text: string): string | undefined {
  const [first = '', second, ...rest] = text.split(' . ');
  const portText = set.prefix === 0 ? first : (second ?? '');
  if (rest.length > 0 || (set.prefix === 0) !== (second === undefined))
    return `element \`${text}\` does not fit ${set.name}`;
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (portProblem(port) !== undefined) return `bad port in element \`${text}\``;
  if (set.prefix === 0) return undefined;
  const cidr = parseCidr(first);
  const exact =
    cidr !== undefined && cidr.network === first && cidr.family === set.family && cidr.prefix === set.prefix;
  return exact ? undefined : `element \`${text}\` has no ${set.family} /${set.prefix} network`;
}

/**
 * Why moshwall must not feed this script to `nft -f -`, or undefined when it may: every line must be one
 * of the statements planNftAllow/planNftRevoke/planNftFootprintRemoval write, on our chain, our sets or our jump, with valid
 * elements (the last guard before the Runner).
 */
export function nftScriptProblem(script: string, ourHandles: readonly string[] = []): string | undefined {
  if (!script.endsWith('\n')) return 'a script must end with a newline';
  for (const line of script.slice(0, -1).split('\n')) {
    if (LINE_FORMS.some((form) => form.test(line))) continue;
    if (line.startsWith('delete rule ') && ourHandles.includes(line.slice('delete rule '.length))) continue;
    const match = ELEMENT_LINE.exec(line);
    const set = match?.[3] === undefined ? undefined : parseOurSetName(match[3]);
    if (match === null || set === undefined) return `\`${line}\` is not a statement moshwall writes`;
    // An added element may carry the revoke's 1 ms timeout (and nothing else).
    const expiring = line.startsWith('add element ');
    for (const element of (match[4] ?? '').split(', ')) {
      const bare =
        expiring && element.endsWith(` ${EXPIRE_NOW}`) ? element.slice(0, -EXPIRE_NOW.length - 1) : element;
      const problem = elementProblem(set, bare);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

/** Throws a FirewallError when moshwall must not run this script (see nftScriptProblem). */
export function assertSafeNftScript(script: string, ourHandles: readonly string[] = []): void {
  const problem = nftScriptProblem(script, ourHandles);
  if (problem !== undefined) throw new FirewallError(`Refusing to run nft: ${problem}`, { script });
}
