import { type Clock, systemClock } from '../clock.ts';
import { FirewallError, MoshwallError } from '../errors.ts';
import type { LineWatcher, Runner } from '../exec.ts';
import type { AppliedChange, Backend, BackendProbe } from '../firewall.ts';
import { assertValidRuleSpecs, type FirewallRule, type RuleSpec, specKey } from '../rules.ts';
import { applyInOrder } from './kernel/apply.ts';
import { createRecent } from './kernel/recent.ts';
import { createTool, outputOf, probeVersion } from './kernel/tool.ts';
import { watchMonitor } from './monitor.ts';
import { anchorRules } from './nftables/admin.ts';
import { chooseAnchor } from './nftables/anchor.ts';
import type { NftTableFamily } from './nftables/layout.ts';
import { ourRules, ourTables } from './nftables/ours.ts';
import { nftComplaint, placementOf, probeDetail } from './nftables/probe.ts';
import { type NftRuleset, parseNftRuleset } from './nftables/ruleset.ts';
import {
  assertSafeNftScript,
  type NftBatch,
  planNftAllow,
  planNftFootprintRemoval,
  planNftQuickAllow,
  planNftQuickRevoke,
  planNftRevoke,
} from './nftables/script.ts';
import { isOurNftEvent } from './nftables/watch.ts';

export { adminRules, renderRule } from './nftables/admin.ts';
export {
  type AnchorChoice,
  blockingReason,
  chooseAnchor,
  type InputChain,
  inputChains,
  type NftAnchor,
  type NftPlacement,
  nftNameProblem,
  tableOwner,
} from './nftables/anchor.ts';
export { OUR_CHAIN, parseOurSetName, setOfSpec } from './nftables/layout.ts';
export { ourRules, ourTableState } from './nftables/ours.ts';
export { type NftRuleset, parseNftRuleset } from './nftables/ruleset.ts';
export {
  assertSafeNftScript,
  type NftBatch,
  nftScriptProblem,
  planNftAllow,
  planNftFootprintRemoval,
  planNftRevoke,
} from './nftables/script.ts';
export { isOurNftEvent } from './nftables/watch.ts';

/*
 * nftables, runtime only: moshwall adds a chain, sets and two kinds of rules to the admin's table (see
 * nftables/layout.ts) and never writes /etc/nftables.conf. A reboot, or reloading the admin's ruleset
 * (`flush ruleset` in nftables.conf), removes all of it, and with it every port of ours: the next sync
 * or daemon resync adds back what live sessions hold. Every change is one `nft -f -` transaction.
 */

export interface NftablesBackendOptions {
  runner: Runner;
  /** Limit for each nft run (a listing or a transaction takes a few milliseconds). */
  timeoutMs: number;
  /** Starts `nft monitor` for watchChanges; without it the backend has no watcher. */
  watcher?: LineWatcher;
  /** The admin's table to use; found automatically when absent (see chooseAnchor). */
  table?: { family: NftTableFamily; name: string };
  /** The chain of that table our jump goes in; the table's input-hook chain when absent. */
  chain?: string;
  /** The age of the last listing and the monitor's timers (the machine's clock by default). */
  clock?: Clock;
  /**
   * The running kernel's release (`uname -r`). From Linux 6.12 a re-add updates an element's timeout, so
   * a revoke expires the element (~3 ms) instead of deleting it (10-20 ms); before, the kernel ignores
   * such an update, so elements are deleted. Absent: deleted.
   */
  kernelRelease?: string;
}

/** How long after a revoke by timeout a listing must no longer show the element (else the kernel ignored it). */
const EXPIRED_CHECK_MS = 100;

/** True when the kernel release is 6.12 or newer: it updates an existing element's timeout on a re-add. */
export function kernelUpdatesTimeouts(release: string | undefined): boolean {
  const match = /^(\d+)\.(\d+)/.exec(release ?? '');
  if (match === null) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 6 || (major === 6 && minor >= 12);
}

const NFT_LIST = ['nft', '-j', 'list', 'ruleset'];
/**
 * How long a listing is trusted for the quick path (one `nft -f -` with elements only, no listing
 * first): long enough for the allow and revoke that follow a reconcile's listRules.
 */
export const NFT_LISTING_TRUSTED_MS = 1000;
const NFT_APPLY = ['nft', '-f', '-'];
export const NFT_MONITOR = ['nft', 'monitor', 'rules'];

/** Creates the nftables backend: a set of ports per family (and source prefix) in the admin's table. */
export function createNftablesBackend(options: NftablesBackendOptions): Backend {
  const placement = placementOf(options);
  const { watcher } = options;
  const clock = options.clock ?? systemClock;
  /**
   * The last listing. Our own changes keep it: the quick plans rely only on our chain, sets, set rules
   * and jump being there, which our changes only ever add (a listing that lacks something we added since
   * merely sends the next change down the full path). A refusal forgets it.
   */
  const listing = createRecent<NftRuleset>(clock, NFT_LISTING_TRUSTED_MS);
  const run = createTool({ runner: options.runner, timeoutMs: options.timeoutMs });
  /** Revokes expire elements (see kernelUpdatesTimeouts); turned off for good if a listing shows one lived on. */
  let expire = kernelUpdatesTimeouts(options.kernelRelease);
  /** Specs taken out since the last listing (which may still show them). */
  const goneSinceListing = new Set<string>();
  /** Specs our allows added since the last listing (which does not show them). */
  const addedSinceListing = new Set<string>();
  /**
   * The first revokes by timeout, and when, until a listing has shown the kernel honours them: one
   * still listed over EXPIRED_CHECK_MS later means it ignored the update, and expiry is off for good;
   * none listed, and the check is done (a port opened again later is no evidence either way).
   */
  const expiredAt = new Map<string, number>();
  let expiryProven = false;
  /** The one check of the kernel's handling of expiry (see expiredAt). */
  const checkExpired = (ruleset: NftRuleset): void => {
    if (expiryProven || expiredAt.size === 0) return;
    const listed = new Set(
      ourTables(ruleset).flatMap((state) => state.sets.flatMap((set) => set.specs.map(specKey))),
    );
    const now = clock.now();
    const due = [...expiredAt].filter(([, at]) => now - at >= EXPIRED_CHECK_MS);
    if (due.length === 0) return;
    if (due.some(([key]) => listed.has(key))) expire = false;
    else expiryProven = true;
    expiredAt.clear();
  };
  const list = async (): Promise<NftRuleset> => {
    const result = await run(NFT_LIST);
    if (result.exitCode !== 0) {
      throw new FirewallError(
        `\`nft -j list ruleset\` failed (exit ${result.exitCode}): ${nftComplaint(result)}`,
        {
          exitCode: result.exitCode,
          stderr: result.stderr.trim(),
        },
      );
    }
    const ruleset = parseNftRuleset(result.stdout);
    checkExpired(ruleset);
    goneSinceListing.clear();
    addedSinceListing.clear();
    listing.remember(ruleset);
    return ruleset;
  };
  /** Runs one batch as one `nft -f -` transaction: all of it takes effect, or nothing. */
  const runBatch = async (batch: NftBatch): Promise<AppliedChange> => {
    assertSafeNftScript(batch.script, batch.ourHandles);
    const result = await run(NFT_APPLY, batch.script);
    if (result.exitCode !== 0) {
      listing.forget();
      const ports = [...new Set(batch.specs.map((spec) => spec.port))].join(',');
      throw new FirewallError(
        `nft refused to ${batch.kind} udp port(s) ${ports} (exit ${result.exitCode}), nothing changed: ${nftComplaint(result)}`,
        { exitCode: result.exitCode, stderr: result.stderr.trim(), script: batch.script },
      );
    }
    return { kind: batch.kind, specs: batch.specs, argv: NFT_APPLY, output: outputOf(result) };
  };
  const apply = (batch: NftBatch | undefined): Promise<AppliedChange[]> =>
    applyInOrder('nft', batch === undefined ? [] : [batch], runBatch);
  /**
   * Applies a batch planned on a recent listing; undefined when there is none or nft refused it (the
   * caller then lists and plans again; the refusal is not lost: the full path meets it again or fixes it).
   */
  const quick = async (
    plan: (ruleset: NftRuleset) => NftBatch | undefined,
  ): Promise<AppliedChange[] | undefined> => {
    const ruleset = listing.recent();
    const batch = ruleset === undefined ? undefined : plan(ruleset);
    if (batch === undefined) return undefined;
    try {
      return await apply(batch);
    } catch (error) {
      // A refusal or a timeout sends the change down the full path, which meets it again or gets past
      // it; anything else is a bug and is thrown.
      if (!(error instanceof MoshwallError)) throw error;
      listing.forget();
      return undefined;
    }
  };

  return {
    name: 'nftables',

    async probe(): Promise<BackendProbe> {
      const answer = await probeVersion(
        run,
        ['nft', '--version'],
        'nft is not installed (no runnable `nft` on PATH); install it (apt install nftables)',
        nftComplaint,
      );
      if ('probe' in answer) return answer.probe;
      const { version } = answer;
      const ruleset = await list();
      const choice = chooseAnchor(ruleset, placement);
      // Active: an admin's own chain drops input (one of iptables-nft or firewalld makes those active instead).
      const active = choice.inputChains.some(
        (chain) => chain.blocks !== undefined && chain.owner === undefined,
      );
      const ipv6 = choice.anchor !== undefined && choice.anchor.family !== 'ip';
      const detail = probeDetail(version.stdout.trim() || 'nft', choice);
      return { installed: true, active, ipv6, detail };
    },

    async listRules(): Promise<FirewallRule[]> {
      const ruleset = await list();
      const { anchor } = chooseAnchor(ruleset, placement);
      return [...(anchor === undefined ? [] : anchorRules(ruleset, anchor)), ...ourRules(ruleset)];
    },

    async allow(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      // Wanted again: a listing showing it proves nothing about the expiry of its revoke.
      for (const spec of specs) expiredAt.delete(specKey(spec));
      /** Notes the specs as members the last listing does not show yet (see planNftQuickRevoke). */
      const added = (changes: AppliedChange[]) => {
        for (const spec of specs) {
          addedSinceListing.add(specKey(spec));
          goneSinceListing.delete(specKey(spec));
        }
        return changes;
      };
      const quickly = await quick((cached) => {
        const { anchor } = chooseAnchor(cached, placement);
        return anchor === undefined ? undefined : planNftQuickAllow(cached, anchor, specs);
      });
      if (quickly !== undefined) return added(quickly);
      const ruleset = await list();
      const choice = chooseAnchor(ruleset, placement);
      if (choice.anchor === undefined) {
        throw new FirewallError(`Cannot open ports with nftables: ${choice.problem ?? 'no input chain'}`, {
          ports: [...new Set(specs.map((spec) => spec.port))].join(','),
        });
      }
      return added(await apply(planNftAllow(ruleset, choice.anchor, specs)));
    },

    async revoke(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      const changes =
        (await quick((cached) =>
          planNftQuickRevoke(cached, specs, { expire, goneSinceListing, addedSinceListing }),
        )) ?? (await apply(planNftRevoke(await list(), specs, { expire })));
      const now = clock.now();
      for (const spec of specs) {
        goneSinceListing.add(specKey(spec));
        addedSinceListing.delete(specKey(spec));
        if (expire && !expiryProven) expiredAt.set(specKey(spec), now);
      }
      return changes;
    },

    async removeFootprint(): Promise<AppliedChange[]> {
      const removed = await apply(planNftFootprintRemoval(await list()));
      listing.forget();
      return removed;
    },

    ...(watcher === undefined
      ? {}
      : {
          watchChanges: (onChange: (what: string) => void) =>
            watchMonitor({ watcher, argv: NFT_MONITOR, isOurs: isOurNftEvent, onChange, clock }),
        }),
  };
}
