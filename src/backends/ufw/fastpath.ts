import { FirewallError } from '../../errors.ts';
import type { Family } from '../../model.ts';
import { anywhere, parseCidr } from '../../net.ts';
import { type FirewallRule, RULE_TAG, type RuleSpec, ruleOfSpec, specKey } from '../../rules.ts';

/*
 * The UFW fast path: two rules per family in UFW's chain ufw-after-input match four kernel ipsets, and
 * opening or closing a port is one `ipset restore` instead of a UFW reload. The rules get there either at
 * run time (mode "runtime", the default where ipset works: moshwall appends them, tagged, and places them
 * again whenever a UFW reload drops them; no file of UFW's is edited) or from a hook block in UFW's
 * after.rules (mode "hook", config `ufw_fast_path = "ipset"`, kept for admins who chose it).
 *   moshwall-any4 / moshwall-any6  bitmap:port 0-65535        ports open from anywhere
 *   moshwall-net4 / moshwall-net6  hash:net,port (inet/inet6) "CIDR,udp:PORT" for source-restricted specs
 * hash:net,port rejects a /0 prefix, so "from anywhere" lives in the bitmap sets (cheapest set type).
 * The rules sit in ufw-after-input (after.rules), i.e. after the admin's own UFW rules, exactly where
 * `ufw allow` appends ours: an admin's deny/reject/limit rule keeps winning as it does without the fast path.
 */

/** The names of our four sets: nothing else is ever listed, changed or destroyed. */
export const FAST_SETS = {
  any4: 'moshwall-any4',
  any6: 'moshwall-any6',
  net4: 'moshwall-net4',
  net6: 'moshwall-net6',
} as const;

export type FastSetName = (typeof FAST_SETS)[keyof typeof FAST_SETS];

/** Every set of ours, in a fixed order. */
export const FAST_SET_NAMES: readonly FastSetName[] = Object.values(FAST_SETS);

/** The UFW chain (after.rules / after6.rules) our match rules live in, per family. */
export const FAST_CHAINS: Record<Family, string> = { v4: 'ufw-after-input', v6: 'ufw6-after-input' };

/** The `ipset create` words of each set of ours (without `ipset -exist create`). */
export const FAST_SET_TYPES: Record<FastSetName, string[]> = {
  'moshwall-any4': ['bitmap:port', 'range', '0-65535'],
  'moshwall-any6': ['bitmap:port', 'range', '0-65535'],
  'moshwall-net4': ['hash:net,port', 'family', 'inet'],
  'moshwall-net6': ['hash:net,port', 'family', 'inet6'],
};

/** The rule lines (iptables-restore syntax, as `iptables -S` prints them) our block adds for a family. */
export function fastPathRules(family: Family): string[] {
  const chain = FAST_CHAINS[family];
  const [any, net] = family === 'v4' ? [FAST_SETS.any4, FAST_SETS.net4] : [FAST_SETS.any6, FAST_SETS.net6];
  return [
    `-A ${chain} -p udp -m set --match-set ${any} dst -j ACCEPT`,
    `-A ${chain} -p udp -m set --match-set ${net} src,dst -j ACCEPT`,
  ];
}

/** The comment that marks the match rules moshwall places into UFW's chain at run time (mode "runtime"). */
export const RUNTIME_TAG = 'moshwall-runtime';

/**
 * The match rules moshwall appends at run time to the family's UFW chain (iptables -S syntax): the same
 * matches as the after-rules hook, tagged so they are told apart from it and removed by exact text.
 */
export function runtimeRules(family: Family): string[] {
  return fastPathRules(family).map((rule) =>
    rule.replace(/ -j ACCEPT$/, ` -m comment --comment ${RUNTIME_TAG} -j ACCEPT`),
  );
}

/** How our fast path reaches UFW's chain: the after-rules hook, rules placed at run time, or not at all. */
export type FastMode = 'hook' | 'runtime' | 'off';

/** The set a spec is a member of, and its member text ("60001" or "192.0.2.0/24,udp:60001"). */
export function memberOfSpec(spec: RuleSpec): { set: FastSetName; member: string } {
  if (spec.source === anywhere(spec.family)) {
    return { set: spec.family === 'v4' ? FAST_SETS.any4 : FAST_SETS.any6, member: String(spec.port) };
  }
  return {
    set: spec.family === 'v4' ? FAST_SETS.net4 : FAST_SETS.net6,
    member: `${spec.source},udp:${spec.port}`,
  };
}

/** The spec a member of one of our sets stands for, or undefined when it is not one we would write. */
export function specOfMember(set: FastSetName, member: string): RuleSpec | undefined {
  const family: Family = set.endsWith('4') ? 'v4' : 'v6';
  if (set === FAST_SETS.any4 || set === FAST_SETS.any6) {
    // ipset prints bitmap:port members as "N" (or "udp:N" when added so on older versions).
    const match = /^(?:udp:)?(\d{1,5})$/.exec(member);
    const port = Number(match?.[1]);
    return match && port >= 1 && port <= 65535 ? { port, family, source: anywhere(family) } : undefined;
  }
  const match = /^(.+),udp:(\d{1,5})$/.exec(member);
  if (!match) return undefined;
  const port = Number(match[2]);
  // ipset prints a host (/32, /128) without its prefix length.
  const text = match[1] ?? '';
  const cidr = parseCidr(text.includes('/') ? text : `${text}/${family === 'v4' ? 32 : 128}`);
  if (cidr === undefined || cidr.family !== family || cidr.hostBitsSet || port < 1 || port > 65535)
    return undefined;
  return { port, family, source: cidr.network };
}

/** The members of one set of ours, from `ipset save NAME` output; a line that is neither throws. */
export function parseIpsetSave(set: FastSetName, stdout: string): RuleSpec[] {
  const specs: RuleSpec[] = [];
  for (const line of stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === '' || words[0] === 'create') continue;
    if (words[0] !== 'add' || words[1] !== set || words.length !== 3) {
      throw new FirewallError(`Cannot read \`ipset save ${set}\`: unexpected line \`${line.trim()}\``, {
        set,
      });
    }
    const spec = specOfMember(set, words[2] ?? '');
    if (spec === undefined) {
      throw new FirewallError(`Set ${set} holds a member moshwall never writes: \`${words[2]}\``, { set });
    }
    specs.push(spec);
  }
  return specs;
}

/** A set member of ours as a listed rule (ours, tagged, with the set named in `raw`). */
export function ruleOfMember(spec: RuleSpec): FirewallRule {
  const { set, member } = memberOfSpec(spec);
  return ruleOfSpec(spec, RULE_TAG, true, `ipset ${set} ${member} (moshwall fast path)`);
}

/** The `ipset restore` input that adds (`add`) or deletes (`del`) these specs' members; duplicates dropped. */
export function ipsetScript(verb: 'add' | 'del', specs: readonly RuleSpec[]): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const spec of specs) {
    if (seen.has(specKey(spec))) continue;
    seen.add(specKey(spec));
    const { set, member } = memberOfSpec(spec);
    lines.push(`${verb} ${set} ${member}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** What `iptables -S CHAIN` says about our hook in one family. */
export type HookLiveness = 'live' | 'no-chain' | 'missing';

/**
 * Whether our match rules are loaded, from `iptables -S <chain>` (exit code and output): "no-chain" when
 * UFW has not loaded that chain at all (inactive, or IPv6 off), "missing" when the chain is there without them.
 */
export function parseHookLiveness(
  family: Family,
  result: { exitCode: number; stdout: string; stderr: string },
): HookLiveness {
  const { exitCode, stdout, stderr } = result;
  if (exitCode !== 0) {
    if (/No chain|does not exist/i.test(stderr)) return 'no-chain';
    throw new FirewallError(
      `\`${family === 'v4' ? 'iptables' : 'ip6tables'} -S ${FAST_CHAINS[family]}\` failed (exit ${exitCode}): ${stderr.trim() || stdout.trim()}`,
      { family, exitCode },
    );
  }
  const lines = new Set(stdout.split('\n').map((line) => line.trim()));
  const complete = (rules: string[]) => rules.every((rule) => lines.has(rule));
  return complete(fastPathRules(family)) || complete(runtimeRules(family)) ? 'live' : 'missing';
}

/** How many of the chain's lines (from `iptables -S CHAIN`) are runtime rules of ours, each as its words. */
export function runtimeRulesIn(family: Family, stdout: string): string[][] {
  const ours = new Set(runtimeRules(family));
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => ours.has(line))
    .map((line) => line.split(' '));
}

/** The names of our sets in `ipset -n list` output (one name per line; other sets ignored). */
export function ourSetNames(stdout: string): FastSetName[] {
  const present = new Set(stdout.split('\n').map((line) => line.trim()));
  return FAST_SET_NAMES.filter((name) => present.has(name));
}

/**
 * The families whose hook a `ipset -t list` digest says is not loaded though its sets hold members
 * (references 0, entries > 0): after a UFW reload dropped runtime rules, or before UFW is enabled again.
 */
export function familiesWithIdleMembers(digest: string): Family[] {
  const families = new Set<Family>();
  for (const match of digest.matchAll(/moshwall-(?:any|net)([46]) refs=0 entries=(\d+)/g)) {
    if (Number(match[2]) > 0) families.add(match[1] === '4' ? 'v4' : 'v6');
  }
  return [...families].sort();
}

/**
 * What `ipset -t list` says about our sets, as one comparable line: for each of ours its references (our
 * match rules loaded in the kernel hold one each) and member count. Other sets are ignored.
 */
export function setHeadersDigest(stdout: string): string {
  const ours = new Set<string>(FAST_SET_NAMES);
  return stdout
    .split(/\n\s*\n/)
    .map((section) => {
      const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(section)?.[1]?.trim();
      const name = field('Name');
      if (name === undefined || !ours.has(name)) return undefined;
      return `${name} refs=${field('References') ?? '?'} entries=${field('Number of entries') ?? '?'}`;
    })
    .filter((line): line is string => line !== undefined)
    .sort()
    .join(', ');
}
