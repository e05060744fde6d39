import { FirewallError } from '../../errors.ts';
import type { Family } from '../../model.ts';
import { assertValidRuleSpecs, type RuleSpec, specKey } from '../../rules.ts';
import { isOurJump, JUMP_WORDS, OUR_CHAIN, ourChainState, ourRuleWords, specOfOurWords } from './rules.ts';
import type { SavedTable } from './save.ts';

/** Which iptables: the system's `iptables` (whatever it links to), or explicitly the nft or legacy one. */
export type IptablesVariant = 'nft' | 'legacy';

/** The three programs moshwall runs for one family. */
export interface IptablesCommands {
  cli: string;
  save: string;
  restore: string;
}

/** The programs for a family: iptables/ip6tables, with "-nft" or "-legacy" when a variant is chosen. */
export function iptablesCommands(variant: IptablesVariant | undefined, family: Family): IptablesCommands {
  const base = family === 'v6' ? 'ip6tables' : 'iptables';
  const cli = variant === undefined ? base : `${base}-${variant}`;
  return { cli, save: `${cli}-save`, restore: `${cli}-restore` };
}

/** One `iptables-restore --noflush` run for one family: one commit, all or nothing. */
export interface RestoreBatch {
  kind: 'allow' | 'revoke';
  family: Family;
  specs: RuleSpec[];
  input: string;
}

/** The specs of one family without duplicates, in order of first mention. */
function uniqueOf(specs: readonly RuleSpec[], family: Family): RuleSpec[] {
  return [
    ...new Map(specs.filter((spec) => spec.family === family).map((spec) => [specKey(spec), spec])).values(),
  ];
}

/** The restore input around these lines. */
function commit(lines: string[]): string {
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}

/**
 * The restore input that puts this family's specs in force, or undefined when all already are: our chain
 * if missing, our jump at INPUT position 1 if missing, then one -A per missing spec. When the jump was gone
 * (an admin's `iptables -F INPUT`), our chain is flushed first, so no rule nobody asked for comes back.
 */
export function planIptablesAllow(
  table: SavedTable,
  family: Family,
  specs: readonly RuleSpec[],
): RestoreBatch | undefined {
  assertValidRuleSpecs(specs);
  const state = ourChainState(table, family, specKey);
  const inForce = state.chainExists && state.jump;
  const missing = uniqueOf(specs, family).filter((spec) => !inForce || !state.specs.has(specKey(spec)));
  if (missing.length === 0) return undefined;
  const lines: string[] = [];
  if (!state.chainExists) lines.push(`:${OUR_CHAIN} - [0:0]`);
  else if (!state.jump && (state.specs.size > 0 || state.odd > 0)) lines.push(`-F ${OUR_CHAIN}`);
  if (!state.jump) lines.push(`-I INPUT 1 ${JUMP_WORDS.join(' ')}`);
  for (const spec of missing) lines.push(`-A ${OUR_CHAIN} ${ourRuleWords(spec).join(' ')}`);
  return { kind: 'allow', family, specs: missing, input: commit(lines) };
}

/**
 * The restore input that deletes this family's rules of ours with these specs (every copy), or undefined
 * when none exists: a -D of a missing rule fails the whole commit.
 */
export function planIptablesRevoke(
  table: SavedTable,
  family: Family,
  specs: readonly RuleSpec[],
): RestoreBatch | undefined {
  assertValidRuleSpecs(specs);
  const state = ourChainState(table, family, specKey);
  const present = uniqueOf(specs, family).filter((spec) => state.specs.has(specKey(spec)));
  if (present.length === 0) return undefined;
  const lines = present.flatMap((spec) => {
    const count = state.specs.get(specKey(spec))?.count ?? 1;
    return new Array<string>(count).fill(`-D ${OUR_CHAIN} ${ourRuleWords(spec).join(' ')}`);
  });
  return { kind: 'revoke', family, specs: present, input: commit(lines) };
}

/**
 * The restore input that removes our empty chain and every jump into it, or undefined when there is no
 * chain of ours, or it still holds a rule (ours or anyone's): -X of a chain in use would fail the commit.
 */
export function planIptablesFootprintRemoval(table: SavedTable, family: Family): RestoreBatch | undefined {
  const state = ourChainState(table, family, specKey);
  if (!state.chainExists || state.specs.size > 0 || state.odd > 0) return undefined;
  const jumps = table.rules.filter(isOurJump).length;
  const lines = [...new Array<string>(jumps).fill(`-D INPUT ${JUMP_WORDS.join(' ')}`), `-X ${OUR_CHAIN}`];
  return { kind: 'revoke', family, specs: [], input: commit(lines) };
}

/**
 * Why moshwall must not feed this input to iptables-restore --noflush, or undefined when it may: only
 * "*filter", our chain's declaration, flush and deletion, our jump and its deletion, -A/-D of rules of exactly our shape for this
 * family, and a final COMMIT (the last guard before the Runner).
 */
export function restoreInputProblem(input: string, family: Family): string | undefined {
  const lines = input.split('\n');
  if (lines[0] !== '*filter' || lines.at(-2) !== 'COMMIT' || lines.at(-1) !== '') {
    return 'restore input must be "*filter", our lines, "COMMIT" and a final newline';
  }
  const fixed = new Set([
    `:${OUR_CHAIN} - [0:0]`,
    `-F ${OUR_CHAIN}`,
    `-I INPUT 1 ${JUMP_WORDS.join(' ')}`,
    `-D INPUT ${JUMP_WORDS.join(' ')}`,
    `-X ${OUR_CHAIN}`,
  ]);
  for (const line of lines.slice(1, -2)) {
    if (fixed.has(line)) continue;
    const words = line.split(' ');
    const ours = (words[0] === '-A' || words[0] === '-D') && words[1] === OUR_CHAIN;
    if (!ours || specOfOurWords(words.slice(2), family) === undefined) {
      return `\`${line}\` is not a line moshwall writes for ${family}`;
    }
  }
  return undefined;
}

/** Throws a FirewallError when moshwall must not run this restore input (see restoreInputProblem). */
export function assertSafeRestoreInput(input: string, family: Family): void {
  const problem = restoreInputProblem(input, family);
  if (problem !== undefined)
    throw new FirewallError(`Refusing to run iptables-restore: ${problem}`, { input });
}
