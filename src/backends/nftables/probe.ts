/* What the nftables backend says in its probe and errors, and its placement options checked (pure). */
import { FirewallError } from '../../errors.ts';
import type { ExecResult } from '../../exec.ts';
import { type AnchorChoice, chainLabel, type NftPlacement, nftNameProblem } from './anchor.ts';
import { OUR_CHAIN } from './layout.ts';

/** The first "Error: …" line nft printed, or all it printed. */
export function nftComplaint(result: ExecResult): string {
  const text = `${result.stderr}\n${result.stdout}`;
  const line = text.split('\n').find((each) => each.startsWith('Error:'));
  return line?.trim() ?? (text.trim() || 'no output');
}

/** The placement options as given, after checking the names can be written in a script. */
export function placementOf(options: NftPlacement): NftPlacement {
  const placement: NftPlacement = {};
  if (options.table !== undefined) {
    const { family, name } = options.table;
    if (family !== 'inet' && family !== 'ip' && family !== 'ip6') {
      throw new FirewallError(`nftables table family must be inet, ip or ip6, got \`${String(family)}\``, {
        family: String(family),
      });
    }
    const problem = nftNameProblem(name);
    if (problem !== undefined)
      throw new FirewallError(`Bad nftables table name: ${problem}`, { table: name });
    placement.table = { family, name };
  }
  if (options.chain !== undefined) {
    const problem = nftNameProblem(options.chain);
    if (problem !== undefined)
      throw new FirewallError(`Bad nftables chain name: ${problem}`, { chain: options.chain });
    placement.chain = options.chain;
  }
  return placement;
}

/** Lines for `doctor`: every input chain, what blocks, where our rules go, and the runtime-only caveat. */
export function probeDetail(version: string, choice: AnchorChoice): string[] {
  const lines = [version];
  for (const { chain, blocks, owner } of choice.inputChains) {
    const state =
      blocks === undefined ? 'accepts all input (no drop policy or rule)' : `drops input: ${blocks}`;
    lines.push(
      `input chain ${chainLabel(chain)}: ${state}${owner === undefined ? '' : `; belongs to ${owner}`}`,
    );
  }
  const { anchor } = choice;
  if (anchor === undefined) lines.push(`no chain for moshwall's rules: ${choice.problem ?? 'none found'}`);
  else {
    lines.push(
      `moshwall's rules: jump to ${OUR_CHAIN} at the top of ${chainLabel({ ...anchor, name: anchor.chain })}`,
    );
    lines.push(`IPv6: ${anchor.family === 'ip' ? 'no (an ip table)' : `yes (an ${anchor.family} table)`}`);
  }
  lines.push(...choice.warnings);
  lines.push(
    "runtime only: a reboot or a reload of the admin's ruleset removes moshwall's rules; sync re-adds them",
    'the daemon watches `nft monitor rules` and re-adds them at once after a reload; moshwall never writes /etc/nftables.conf',
  );
  return lines;
}
