import { FirewallError } from '../../errors.ts';

/*
 * The filter table as `iptables-save -t filter` prints it (iptables 1.4 to 1.8, legacy and nft):
 *   *filter
 *   :INPUT DROP [0:0]                      built-in chain: policy and counters
 *   :moshwall-input - [0:0]                user chain: "-"
 *   -A INPUT -p udp -m udp --dport 60010 -m comment --comment "admin mosh" -j ACCEPT
 *   COMMIT
 * Words with characters outside [A-Za-z0-9_-] are double-quoted, with \ before " \ and '
 * (xtables_save_string), as iptables-restore reads them back. iptables-nft prints
 * "# Table `filter' is incompatible, use 'nft' tool." instead of the rules of a table it cannot read.
 */

/** One -A line: the chain, its words after "-A CHAIN" (quotes removed), and the line as printed. */
export interface SavedRule {
  chain: string;
  words: string[];
  line: string;
}

/** The filter table: chain policies ("-" for user chains) and rules in order. */
export interface SavedTable {
  policies: Map<string, string>;
  rules: SavedRule[];
}

/** The words of one line, splitting on spaces outside double quotes and undoing backslash escapes. */
export function splitSaveWords(line: string): string[] | undefined {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (let index = 0; index < line.length; index++) {
    const char = line[index] ?? '';
    if (quoted) {
      if (char === '\\' && index + 1 < line.length) word += line[++index] ?? '';
      else if (char === '"') quoted = false;
      else word += char;
    } else if (char === ' ' || char === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      inWord = true;
      if (char === '"') quoted = true;
      else word += char;
    }
  }
  if (quoted) return undefined;
  if (inWord) words.push(word);
  return words;
}

/**
 * The filter table in the stdout of `iptables-save -t filter` / `ip6tables-save -t filter`. Empty output
 * (no filter table loaded yet) is an empty table; a line save never prints throws a FirewallError.
 */
export function parseIptablesSave(stdout: string, command: string): SavedTable {
  const table: SavedTable = { policies: new Map(), rules: [] };
  let inFilter = false;
  for (const [index, raw] of stdout.split('\n').entries()) {
    const line = raw.trim();
    const fail = (reason: string): never => {
      throw new FirewallError(`Cannot read \`${command}\` output, line ${index + 1}: ${reason}`, {
        line: raw,
      });
    };
    // iptables-nft cannot show a table nft has changed beyond its ken; it says so in a comment and prints no
    // rules. Reading that as "no rules" would hide the firewall, so it is an error.
    if (/^# Table `\w+' is incompatible/.test(line)) return fail(line.slice(2));
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      inFilter = line === '*filter';
      continue;
    }
    if (line === 'COMMIT') {
      inFilter = false;
      continue;
    }
    if (!inFilter) continue;
    if (line.startsWith(':')) {
      const match = /^:(\S+) (\S+)(?: \[\d+:\d+\])?$/.exec(line);
      if (match === null) return fail(`bad chain line \`${line}\``);
      table.policies.set(match[1] ?? '', match[2] ?? '');
      continue;
    }
    const words = splitSaveWords(line);
    if (words === undefined || words[0] !== '-A' || words[1] === undefined)
      return fail(`bad rule line \`${line}\``);
    table.rules.push({ chain: words[1], words: words.slice(2), line });
  }
  return table;
}
