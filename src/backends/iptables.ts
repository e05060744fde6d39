import type { Clock } from '../clock.ts';
import { FirewallError } from '../errors.ts';
import type { LineWatcher, Runner } from '../exec.ts';
import type { AppliedChange, Backend, BackendProbe } from '../firewall.ts';
import type { Family } from '../model.ts';
import { assertValidRuleSpecs, type FirewallRule, type RuleSpec } from '../rules.ts';
import { probeAnswer, variantOfVersion } from './iptables/probe.ts';
import {
  assertSafeRestoreInput,
  type IptablesVariant,
  iptablesCommands,
  planIptablesAllow,
  planIptablesFootprintRemoval,
  planIptablesRevoke,
  type RestoreBatch,
} from './iptables/restore.ts';
import { tableRules } from './iptables/rules.ts';
import { parseIptablesSave, type SavedTable } from './iptables/save.ts';
import { isOurIptablesNftEvent } from './iptables/watch.ts';
import { applyInOrder } from './kernel/apply.ts';
import { complaintOf, createTool, outputOf, probeVersion } from './kernel/tool.ts';
import { watchMonitor } from './monitor.ts';

export { probeAnswer, variantOfVersion } from './iptables/probe.ts';
export {
  assertSafeRestoreInput,
  type IptablesCommands,
  type IptablesVariant,
  iptablesCommands,
  planIptablesAllow,
  planIptablesFootprintRemoval,
  planIptablesRevoke,
  type RestoreBatch,
  restoreInputProblem,
} from './iptables/restore.ts';
export {
  inputBlockingReason,
  isOurJump,
  JUMP_WORDS,
  OUR_CHAIN,
  ourChainState,
  ourRuleWords,
  savedRuleToFirewallRule,
  specOfOurWords,
  tableRules,
} from './iptables/rules.ts';
export { parseIptablesSave, type SavedRule, type SavedTable, splitSaveWords } from './iptables/save.ts';
export { isOurIptablesNftEvent } from './iptables/watch.ts';

/*
 * iptables and ip6tables, runtime only: moshwall's chain, jump and rules (see iptables/rules.ts) live in
 * the kernel's filter tables; moshwall never writes /etc/iptables/rules.v4 or runs netfilter-persistent.
 * A reboot or a restore of the admin's saved rules removes them; the next sync re-adds what live sessions
 * hold (and if an admin saved them, the next sync finds them and revokes the stale ones). Each family's
 * batch is one `iptables-restore --noflush -w` commit; -w waits for the xtables lock.
 */

export interface IptablesBackendOptions {
  runner: Runner;
  /** Limit for each command (a save or restore takes a few milliseconds, more while the lock is held). */
  timeoutMs: number;
  /** iptables-nft or iptables-legacy explicitly; absent: the system's iptables, whichever it is. */
  variant?: IptablesVariant;
  /**
   * Starts `nft monitor` for watchChanges on iptables-nft (its rules are nf_tables rules); without it, or
   * on iptables-legacy (which has no change events), the daemon's periodic resync notices changes.
   */
  watcher?: LineWatcher;
  /** The monitor's timers (the machine's clock by default). */
  clock?: Clock;
}

/** The monitor of iptables-nft's changes (xtables-monitor 1.8.9 buffers its output and dies on some ip6 rules). */
export const IPTABLES_NFT_MONITOR = ['nft', 'monitor', 'rules'];

const FAMILIES: Family[] = ['v4', 'v6'];

/** Creates the iptables backend: our chain in each family's filter table, entered from INPUT by one jump. */
export function createIptablesBackend(options: IptablesBackendOptions): Backend {
  const commands = {
    v4: iptablesCommands(options.variant, 'v4'),
    v6: iptablesCommands(options.variant, 'v6'),
  };
  const run = createTool({ runner: options.runner, timeoutMs: options.timeoutMs });

  /** The family's filter table, or the reason it cannot be read (no IPv6, not root…). */
  const read = async (family: Family): Promise<SavedTable | string> => {
    const argv = [commands[family].save, '-t', 'filter'];
    const result = await run(argv);
    if (result.exitCode !== 0)
      return `\`${argv.join(' ')}\` failed (exit ${result.exitCode}): ${complaintOf(result)}`;
    return parseIptablesSave(result.stdout, argv.join(' '));
  };
  /** The family's table, throwing when it is needed and cannot be read. */
  const readOrFail = async (family: Family): Promise<SavedTable> => {
    const table = await read(family);
    if (typeof table === 'string')
      throw new FirewallError(`Cannot read the ${family} firewall: ${table}`, { family });
    return table;
  };
  /** Runs one family's batch as one `iptables-restore --noflush -w` commit: all of it, or nothing. */
  const runBatch = async (batch: RestoreBatch): Promise<AppliedChange> => {
    assertSafeRestoreInput(batch.input, batch.family);
    const argv = [commands[batch.family].restore, '--noflush', '-w'];
    const result = await run(argv, batch.input);
    if (result.exitCode !== 0) {
      throw new FirewallError(
        `${argv[0]} refused to ${batch.kind} ${batch.family} udp port(s) ` +
          `${[...new Set(batch.specs.map((spec) => spec.port))].join(',')} (exit ${result.exitCode}): ${complaintOf(result)}`,
        { exitCode: result.exitCode, stderr: result.stderr.trim(), input: batch.input },
      );
    }
    return { kind: batch.kind, specs: batch.specs, argv, output: outputOf(result) };
  };
  const apply = (batches: RestoreBatch[]) => applyInOrder('iptables-restore', batches, runBatch);
  /** The variant in use: configured, or as the last probe's `--version` said. */
  let variant = options.variant;
  const families = (specs: RuleSpec[]) =>
    FAMILIES.filter((family) => specs.some((spec) => spec.family === family));

  return {
    name: 'iptables',

    async probe(): Promise<BackendProbe> {
      const cli = commands.v4.cli;
      const answer = await probeVersion(
        run,
        [cli, '--version'],
        `${cli} is not installed (no runnable \`${cli}\` on PATH); install it (apt install iptables)`,
      );
      if ('probe' in answer) return answer.probe;
      const { version } = answer;
      const v4 = await read('v4');
      if (typeof v4 === 'string') return { installed: false, active: false, ipv6: false, detail: [v4] };
      const v6 = await read('v6');
      variant ??= variantOfVersion(version.stdout);
      return probeAnswer({ version: version.stdout.trim() || cli, commands, tables: { v4, v6 }, variant });
    },

    async listRules(): Promise<FirewallRule[]> {
      const v4 = await readOrFail('v4');
      // Without IPv6 in the kernel, ip6tables cannot list anything: there is then no v6 rule to report.
      const v6 = await read('v6');
      return [...tableRules(v4, 'v4'), ...(typeof v6 === 'string' ? [] : tableRules(v6, 'v6'))];
    },

    async allow(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      const batches: RestoreBatch[] = [];
      for (const family of families(specs)) {
        const batch = planIptablesAllow(await readOrFail(family), family, specs);
        if (batch !== undefined) batches.push(batch);
      }
      return apply(batches);
    },

    async revoke(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      const batches: RestoreBatch[] = [];
      for (const family of families(specs)) {
        // An unreadable ip6tables (no IPv6 in the kernel) holds no rule of ours to delete.
        const table = family === 'v6' ? await read(family) : await readOrFail(family);
        const batch = typeof table === 'string' ? undefined : planIptablesRevoke(table, family, specs);
        if (batch !== undefined) batches.push(batch);
      }
      return apply(batches);
    },

    async removeFootprint(): Promise<AppliedChange[]> {
      const batches: RestoreBatch[] = [];
      for (const family of FAMILIES) {
        const table = await read(family);
        const batch = typeof table === 'string' ? undefined : planIptablesFootprintRemoval(table, family);
        if (batch !== undefined) batches.push(batch);
      }
      return apply(batches);
    },

    watchChanges(onChange: (what: string) => void): { close(): void } {
      if (options.watcher === undefined || variant !== 'nft') return { close() {} };
      const { watcher } = options;
      return watchMonitor({
        watcher,
        argv: IPTABLES_NFT_MONITOR,
        isOurs: isOurIptablesNftEvent,
        onChange,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      });
    },
  };
}
