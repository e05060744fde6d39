import { FirewallError } from '../../errors.ts';
import type { Family } from '../../model.ts';
import { anywhere, parseCidr } from '../../net.ts';
import {
  assertValidRuleSpecs,
  type FirewallRule,
  RULE_TAG,
  type RuleSpec,
  ruleHasSpec,
  specKey,
  specOfRule,
} from '../../rules.ts';

/** One ufw invocation that adds or deletes rules of ours, and what it is expected to report on. */
export interface UfwCall {
  kind: 'allow' | 'revoke';
  specs: RuleSpec[];
  /** Families ufw will print one result line for ("Rule added", "Rule added (v6)", …). */
  families: Family[];
  argv: string[];
}

/** The ufw words naming one of our rules: "proto udp [from CIDR] to any port N comment moshwall". */
function ruleWords(port: number, source: string | undefined): string[] {
  const from = source === undefined ? [] : ['from', source];
  return ['proto', 'udp', ...from, 'to', 'any', 'port', String(port), 'comment', RULE_TAG];
}

/**
 * The ufw calls that add (`allow`) or delete (`revoke`) exactly these specs, in order of first mention of
 * each port. When both families are wanted from anywhere for a port, one call without "from" covers both
 * (ufw writes the v4 and the v6 rule); every other spec gets its own call with an explicit "from CIDR".
 * Specs are validated first; duplicates are dropped. Deletes always carry our comment, so ufw 0.36 only
 * matches a rule with that comment.
 */
export function planUfwCalls(kind: 'allow' | 'revoke', specs: readonly RuleSpec[]): UfwCall[] {
  assertValidRuleSpecs(specs);
  const verb = kind === 'allow' ? ['ufw', 'allow'] : ['ufw', 'delete', 'allow'];
  const byPort = new Map<number, Map<string, RuleSpec>>();
  for (const spec of specs) {
    const forPort = byPort.get(spec.port) ?? new Map<string, RuleSpec>();
    byPort.set(spec.port, forPort);
    if (!forPort.has(specKey(spec))) forPort.set(specKey(spec), spec);
  }
  const calls: UfwCall[] = [];
  for (const [port, forPort] of byPort) {
    const v4Any = forPort.get(specKey({ port, family: 'v4', source: anywhere('v4') }));
    const v6Any = forPort.get(specKey({ port, family: 'v6', source: anywhere('v6') }));
    const rest = [...forPort.values()];
    if (v4Any !== undefined && v6Any !== undefined) {
      calls.push({
        kind,
        specs: [v4Any, v6Any],
        families: ['v4', 'v6'],
        argv: [...verb, ...ruleWords(port, undefined)],
      });
      rest.splice(rest.indexOf(v4Any), 1);
      rest.splice(rest.indexOf(v6Any), 1);
    }
    for (const spec of rest) {
      calls.push({
        kind,
        specs: [spec],
        families: [spec.family],
        argv: [...verb, ...ruleWords(port, spec.source)],
      });
    }
  }
  return calls;
}

/** The argv lists that add these specs as rules of ours (see planUfwCalls). */
export function allowArgv(specs: readonly RuleSpec[]): string[][] {
  return planUfwCalls('allow', specs).map((call) => call.argv);
}

/** The argv lists that delete these specs' rules of ours, and only ours (see planUfwCalls). */
export function revokeArgv(specs: readonly RuleSpec[]): string[][] {
  return planUfwCalls('revoke', specs).map((call) => call.argv);
}

const READ_ONLY: Record<string, readonly string[][]> = {
  version: [[]],
  status: [[], ['verbose'], ['numbered']],
  show: [['added'], ['raw'], ['listening'], ['builtins'], ['before-rules'], ['user-rules'], ['after-rules']],
};

/** True when `words` (after "allow") are exactly the words of one of our rules, with valid port and CIDR. */
function isOurRuleWords(words: readonly string[]): boolean {
  const portText = words.at(-3) ?? '';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535 || String(port) !== portText) return false;
  if (words.length !== 8 && words.length !== 10) return false;
  const source = words.length === 10 ? (words[3] ?? '') : undefined;
  if (source !== undefined && parseCidr(source)?.network !== source) return false;
  return words.join(' ') === ruleWords(port, source).join(' ');
}

/** Why moshwall must not run this ufw argv, or undefined when it may (the last guard before the Runner). */
export function ufwArgvProblem(argv: readonly string[]): string | undefined {
  const [command, subcommand = '', ...rest] = argv;
  if (command !== 'ufw') return `not a ufw command: \`${argv.join(' ')}\``;
  const readOnly = READ_ONLY[subcommand];
  if (readOnly !== undefined) {
    return readOnly.some((allowed) => allowed.join(' ') === rest.join(' '))
      ? undefined
      : `unexpected arguments to \`ufw ${subcommand}\`: \`${rest.join(' ')}\``;
  }
  if (subcommand === 'allow' && isOurRuleWords(rest)) return undefined;
  if (subcommand === 'delete' && rest[0] === 'allow' && isOurRuleWords(rest.slice(1))) return undefined;
  if (subcommand === 'allow' || subcommand === 'delete') {
    return `\`${argv.join(' ')}\` is not a rule of ours (proto udp [from CIDR] to any port N comment ${RULE_TAG})`;
  }
  return `moshwall never runs \`ufw ${subcommand}\`; it only runs ufw allow, delete, status, version and show`;
}

/** Throws a FirewallError when moshwall must not run this ufw argv (see ufwArgvProblem). */
export function assertSafeUfwArgv(argv: readonly string[]): void {
  const problem = ufwArgvProblem(argv);
  if (problem !== undefined) {
    throw new FirewallError(`Refusing to run ufw: ${problem}`, { argv: argv.join(' ') });
  }
}

/** The one ufw command only `moshwall install`/`uninstall` run (after changing the fast path's hook). */
export const UFW_RELOAD_ARGV: readonly string[] = ['ufw', 'reload'];

/** Throws unless argv is one moshwall may run, counting `ufw reload` (install and uninstall only). */
export function assertSafeInstallUfwArgv(argv: readonly string[]): void {
  if (argv.join(' ') === UFW_RELOAD_ARGV.join(' ')) return;
  assertSafeUfwArgv(argv);
}

/**
 * Throws unless every spec can be allowed without ufw taking over a rule that is not ours: `ufw allow`
 * with the match of an existing rule but another action or comment rewrites that rule into ours (even a
 * deny into an allow), so such a spec is refused before anything runs.
 */
export function assertNoTakeover(rules: readonly FirewallRule[], specs: readonly RuleSpec[]): void {
  const conflicts = specs.flatMap((spec) =>
    rules.filter((rule) => !rule.ours && ruleHasSpec(rule, spec)).map((rule) => ({ spec, rule })),
  );
  const [first] = conflicts;
  if (first === undefined) return;
  throw new FirewallError(
    `Refusing to allow ${first.spec.family} udp port ${first.spec.port} from ${first.spec.source}: ` +
      `ufw would take over the existing rule \`${first.rule.raw}\`, which is not ours`,
    { port: first.spec.port, source: first.spec.source, rule: first.rule.raw, conflicts: conflicts.length },
  );
}

/** The specs that are rules of ours among `rules` (user.rules): the only ones a `ufw delete` is worth running for. */
export function oursAmong(rules: readonly FirewallRule[], specs: readonly RuleSpec[]): RuleSpec[] {
  const ours = new Set(
    rules
      .filter((rule) => rule.ours)
      .map((rule) => specOfRule(rule))
      .filter((spec): spec is RuleSpec => spec !== undefined)
      .map(specKey),
  );
  return specs.filter((spec) => ours.has(specKey(spec)));
}
