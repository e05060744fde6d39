import { isDeepStrictEqual } from 'node:util';
import { type FirewallRule, RULE_TAG, type RuleSpec, ruleOfSpec, specKey } from '../../rules.ts';
import {
  elementText,
  isManagedFamily,
  isOurJump,
  isOurSetRule,
  type NftTableFamily,
  OUR_CHAIN,
  type OurSet,
  ourSetFlags,
  parseOurSetName,
  setKeyType,
  specOfElement,
} from './layout.ts';
import type { NftRuleset } from './ruleset.ts';

/** One set of ours as it stands in a table. */
export interface OurSetState {
  set: OurSet;
  /** Declared with the key type and flags we create (or older moshwall did); otherwise nothing is added. */
  typeOk: boolean;
  /** Declared with `flags timeout`: a revoke may expire an element instead of deleting it. */
  expiring: boolean;
  /** Our chain has our accept rule for it. */
  ruleOk: boolean;
  /** The elements of our shape, as specs. */
  specs: RuleSpec[];
  /** Elements of a shape we never add (left alone, never listed as ours). */
  odd: unknown[];
}

/** What of ours exists in one table: our chain, our jump into it, our sets. */
export interface OurTableState {
  family: NftTableFamily;
  table: string;
  chainExists: boolean;
  /** Chains holding our jump rule (normally just the admin's input chain). */
  jumpsFrom: string[];
  sets: OurSetState[];
}

/** The state of our objects in one table (all absent when the table has none). */
export function ourTableState(ruleset: NftRuleset, family: NftTableFamily, table: string): OurTableState {
  const inTable = <T extends { family: string; table: string }>(item: T) =>
    item.family === family && item.table === table;
  const rules = ruleset.rules.filter(inTable);
  const sets: OurSetState[] = [];
  for (const nftSet of ruleset.sets.filter(inTable)) {
    const set = parseOurSetName(nftSet.name);
    if (set === undefined || (set.family === 'v6' ? family === 'ip' : family === 'ip6')) continue;
    const flags = ourSetFlags(set);
    const sortedFlags = [...nftSet.flags].sort();
    const expiring = isDeepStrictEqual(sortedFlags, flags.current);
    const typeOk =
      isDeepStrictEqual(nftSet.type, setKeyType(set)) &&
      (expiring || isDeepStrictEqual(sortedFlags, flags.older));
    const specs: RuleSpec[] = [];
    const odd: unknown[] = [];
    for (const element of nftSet.elements) {
      const spec = typeOk ? specOfElement(set, element) : undefined;
      if (spec === undefined) odd.push(element);
      else specs.push(spec);
    }
    const ruleOk = rules.some((rule) => isOurSetRule(rule, set, family));
    sets.push({ set, typeOk, expiring: typeOk && expiring, ruleOk, specs, odd });
  }
  return {
    family,
    table,
    chainExists: ruleset.chains.some((chain) => inTable(chain) && chain.name === OUR_CHAIN),
    jumpsFrom: [...new Set(rules.filter(isOurJump).map((rule) => rule.chain))],
    sets,
  };
}

/** Every table (of a managed family) that holds an object of ours. */
export function ourTables(ruleset: NftRuleset): OurTableState[] {
  const tables = ruleset.tables.filter(
    (table) =>
      isManagedFamily(table.family) &&
      (ruleset.chains.some(
        (c) => c.family === table.family && c.table === table.name && c.name === OUR_CHAIN,
      ) ||
        ruleset.sets.some(
          (s) => s.family === table.family && s.table === table.name && parseOurSetName(s.name) !== undefined,
        )),
  );
  return tables.flatMap((table) =>
    isManagedFamily(table.family) ? [ourTableState(ruleset, table.family, table.name)] : [],
  );
}

/** True when the elements of this set are in force: the jump exists, and our rule for the set. */
export function inForce(state: OurTableState, set: OurSetState): boolean {
  return state.chainExists && state.jumpsFrom.length > 0 && set.typeOk && set.ruleOk;
}

/** Our elements that are in force, in every table, one FirewallRule each (flagged ours). */
export function ourRules(ruleset: NftRuleset): FirewallRule[] {
  const rules: FirewallRule[] = [];
  const seen = new Set<string>();
  for (const state of ourTables(ruleset)) {
    for (const set of state.sets) {
      if (!inForce(state, set)) continue;
      for (const spec of set.specs) {
        // One spec in force twice (two tables) is still one rule of ours.
        if (seen.has(specKey(spec))) continue;
        seen.add(specKey(spec));
        rules.push(elementRule(state, set.set, spec));
      }
    }
  }
  return rules;
}

/** The FirewallRule of one element of ours. */
function elementRule(state: OurTableState, set: OurSet, spec: RuleSpec): FirewallRule {
  const raw = `element ${elementText(spec)} of set ${state.family} ${state.table} ${set.name}`;
  return ruleOfSpec(spec, RULE_TAG, true, raw);
}
