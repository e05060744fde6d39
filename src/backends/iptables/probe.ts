/* What the iptables backend's probe says: the variant in use, what each INPUT does, where our rules go (pure). */
import type { BackendProbe } from '../../firewall.ts';
import type { Family } from '../../model.ts';
import type { IptablesCommands, IptablesVariant } from './restore.ts';
import { inputBlockingReason, OUR_CHAIN } from './rules.ts';
import type { SavedTable } from './save.ts';

/** The variant a `iptables --version` output names: "iptables v1.8.9 (nf_tables)" or "(legacy)". */
export function variantOfVersion(text: string): IptablesVariant | undefined {
  if (/\(nf_tables\)/.test(text)) return 'nft';
  if (/\(legacy\)/.test(text)) return 'legacy';
  return undefined;
}

/**
 * The probe of an installed iptables from its version line and each family's filter table (or why it
 * could not be read): active when an INPUT drops, IPv6 when ip6tables could be read.
 */
export function probeAnswer(facts: {
  version: string;
  commands: Record<Family, IptablesCommands>;
  tables: Record<Family, SavedTable | string>;
  variant: IptablesVariant | undefined;
}): BackendProbe {
  const { commands, tables, variant } = facts;
  const detail = [facts.version];
  let active = false;
  for (const family of ['v4', 'v6'] as const) {
    const table = tables[family];
    if (typeof table === 'string') continue;
    const why = inputBlockingReason(table);
    active ||= why !== undefined;
    const state =
      why === undefined ? 'accepts all input (policy ACCEPT, no DROP or REJECT rule)' : `drops input: ${why}`;
    detail.push(`${commands[family].cli} INPUT: ${state}`);
  }
  const v6 = tables.v6;
  detail.push(typeof v6 === 'string' ? `IPv6: no (${v6})` : `IPv6: yes (${commands.v6.cli})`);
  detail.push(`moshwall's rules: chain ${OUR_CHAIN}, jumped to from INPUT position 1 (filter table)`);
  detail.push(
    'runtime only: not written to any rules file; a reboot or restore of saved rules removes them; sync re-adds them',
    variant === 'nft'
      ? 'the daemon watches `nft monitor rules` (iptables-nft rules are nf_tables rules; needs the nft command) and re-adds them at once'
      : `the daemon re-adds them at its next resync (${variant === 'legacy' ? 'iptables-legacy has no change events' : 'unknown iptables variant'})`,
  );
  return { installed: true, active, ipv6: typeof v6 !== 'string', detail };
}
