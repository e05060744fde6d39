import { FirewallError } from '../../errors.ts';
import { assertValidRuleSpecs, type RuleSpec, specKey } from '../../rules.ts';
import { parseOurRule, renderOurRule } from './rich.ts';

/*
 * moshwall changes firewalld's runtime configuration only: never --permanent (the admin's saved
 * configuration stays theirs), never --reload, --complete-reload or --runtime-to-permanent. The guard
 * below is the last check before the Runner and refuses every other firewall-cmd verb.
 */

/** A zone, interface or service name firewalld accepts and that is safe in an argv word. */
export const FIREWALLD_NAME = /^[A-Za-z0-9][A-Za-z0-9_+.-]{0,31}$/;

/** One firewall-cmd run that adds or removes rules of ours in one zone. */
export interface FirewalldCall {
  kind: 'allow' | 'revoke';
  specs: RuleSpec[];
  argv: string[];
}

/** The one firewall-cmd call that adds (`allow`) or removes (`revoke`) these specs' rich rules in `zone`. */
export function planFirewalldCall(
  kind: 'allow' | 'revoke',
  zone: string,
  specs: readonly RuleSpec[],
): FirewalldCall | undefined {
  return planFirewalldCalls(kind, zone, specs, Number.POSITIVE_INFINITY)[0];
}

/**
 * Rich rules per firewall-cmd call: one call's cost grows faster than its size (measured on firewalld
 * 1.3.3: 10 rules 0.38 s, 100 rules 0.9 s, 300 rules 3.0 s, 1000 rules ~25 s, past the default
 * command timeout), so large batches go as several calls of this many.
 */
export const FIREWALLD_RULES_PER_CALL = 100;

/** The firewall-cmd calls that add or remove our rich rules for specs (duplicates once), in chunks. */
export function planFirewalldCalls(
  kind: 'allow' | 'revoke',
  zone: string,
  specs: readonly RuleSpec[],
  perCall = FIREWALLD_RULES_PER_CALL,
): FirewalldCall[] {
  assertValidRuleSpecs(specs);
  const unique = [...new Map(specs.map((spec) => [specKey(spec), spec])).values()];
  const option = kind === 'allow' ? '--add-rich-rule' : '--remove-rich-rule';
  const calls: FirewalldCall[] = [];
  for (let start = 0; start < unique.length; start += perCall) {
    const chunk = unique.slice(start, start + perCall);
    const argv = [
      'firewall-cmd',
      `--zone=${zone}`,
      ...chunk.map((spec) => `${option}=${renderOurRule(spec)}`),
    ];
    assertSafeFirewalldArgv(argv);
    calls.push({ kind, specs: chunk, argv });
  }
  return calls;
}

const READ_ONLY = new Set(['--version', '--state', '--get-default-zone', '--get-zones']);

/** Why moshwall must not run this firewall-cmd argv, or undefined when it may. */
export function firewalldArgvProblem(argv: readonly string[]): string | undefined {
  const [command, ...args] = argv;
  if (command !== 'firewall-cmd') return `not a firewall-cmd command: \`${argv.join(' ')}\``;
  const [first = '', ...rest] = args;
  const value = (option: string, word: string) =>
    word.startsWith(`${option}=`) ? word.slice(option.length + 1) : undefined;
  if (READ_ONLY.has(first) && rest.length === 0) return undefined;
  for (const option of ['--get-zone-of-interface', '--info-service']) {
    const name = value(option, first);
    if (name !== undefined && rest.length === 0) {
      return FIREWALLD_NAME.test(name) ? undefined : `bad name in \`${first}\``;
    }
  }
  const zone = value('--zone', first);
  if (zone === undefined) {
    return `moshwall never runs \`firewall-cmd ${args.join(' ')}\`; it only reads firewalld's runtime state and adds or removes its own runtime rich rules`;
  }
  if (!FIREWALLD_NAME.test(zone)) return `bad zone name \`${zone}\``;
  if (rest.length === 1 && rest[0] === '--list-all') return undefined;
  const kinds = new Set(rest.map((word) => word.split('=')[0]));
  if (
    rest.length === 0 ||
    kinds.size !== 1 ||
    !(kinds.has('--add-rich-rule') || kinds.has('--remove-rich-rule'))
  ) {
    return `\`firewall-cmd ${args.join(' ')}\` is not a runtime change of moshwall's rich rules (--permanent, --reload and the like are never run)`;
  }
  for (const word of rest) {
    const rule = word.slice(word.indexOf('=') + 1);
    if (parseOurRule(rule) === undefined) return `\`${rule}\` is not a rich rule of ours`;
  }
  return undefined;
}

/** Throws a FirewallError when moshwall must not run this firewall-cmd argv (see firewalldArgvProblem). */
export function assertSafeFirewalldArgv(argv: readonly string[]): void {
  const problem = firewalldArgvProblem(argv);
  if (problem !== undefined) {
    throw new FirewallError(`Refusing to run firewall-cmd: ${problem}`, { argv: argv.join(' ') });
  }
}
