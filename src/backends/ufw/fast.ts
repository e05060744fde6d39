import { type Clock, systemClock } from '../../clock.ts';
import { FirewallError } from '../../errors.ts';
import type { AppliedChange } from '../../firewall.ts';
import type { Family } from '../../model.ts';
import type { FirewallRule, RuleSpec } from '../../rules.ts';
import { createRecent } from '../kernel/recent.ts';
import {
  FAST_CHAINS,
  type FastMode,
  familiesWithIdleMembers,
  type HookLiveness,
  ruleOfMember,
} from './fastpath.ts';
import type { FastPathEdge } from './ipset.ts';

/** What the UFW backend asks of the fast path (see fastpath.ts for its two modes). */
export interface UfwFastPath {
  /**
   * True in a fast mode, while the hook is still in UFW's files (switched off, not yet uninstalled), or
   * while sets of ours are left from an earlier fast mode (see lookForLeftovers).
   */
  inUse(): boolean;
  /** Off only: notes whether sets of ours exist (left by an earlier mode), so they are listed and emptied. */
  lookForLeftovers(): Promise<void>;
  /** True while sets left by an earlier fast mode are being emptied (see lookForLeftovers). */
  hasLeftovers(): boolean;
  /**
   * Off only, once no member is left: our runtime rules and sets are removed, so switching back to
   * classic rules leaves nothing of the fast path behind. Returns what it removed.
   */
  retireLeftovers(): Promise<AppliedChange[]>;
  /** Our runtime rules out of UFW's chains and our sets destroyed (never in hook mode): after a flush. */
  removeFootprint(): Promise<AppliedChange[]>;
  /**
   * Members of our sets that open something, as rules of ours (none when not in use). A family whose chain
   * is loaded without our match rules has none: its members open nothing, listing them would pretend.
   */
  effectiveMembers(ipv6: boolean): Promise<FirewallRule[]>;
  /**
   * Makes sure our match rules are loaded for every family of `specs` UFW has loaded (as a listing of the
   * last second saw them live, or as checked now): in runtime mode it places missing ones; in hook mode
   * it throws, naming the fix.
   */
  assertLive(specs: RuleSpec[], ipv6: boolean): Promise<void>;
  /**
   * Runtime mode: places our match rules in every loaded chain of ours that lacks them (after a UFW
   * reload or enable), so the next session's change needs no placing; nothing in other modes.
   */
  placeMissing(ipv6: boolean): Promise<AppliedChange[]>;
  /** Adds or deletes members in one `ipset restore`; the watcher then takes a quiet baseline. */
  change(kind: 'allow' | 'revoke', specs: RuleSpec[]): Promise<AppliedChange>;
  /** One line on the hook, sets and members, and what is wrong (each with its fix). */
  describe(ipv6: boolean): Promise<{ detail: string; problems: string[] }>;
  /**
   * Every intervalMs one `ipset -t list`: when our sets' references (the hook's rules loaded) or member
   * counts (an admin's `ipset flush`) changed, onChange. A failed look is skipped (the resync covers it).
   */
  watch(onChange: (what: string) => void, intervalMs: number): { close(): void };
}

/** How long the hook state seen by a listing stands for the changes based on it. */
const LISTING_FRESH_MS = 1000;

/** The fast path over its edge; `afterFiles` name UFW's after.rules / after6.rules for messages. */
export function createUfwFastPath(options: {
  edge: FastPathEdge;
  /** The mode in force (the backend resolves "auto" once it has looked at the host). */
  mode: () => FastMode;
  afterFiles: Record<Family, string>;
  /** The age of the last listing and the watcher's interval (the machine's clock by default). */
  clock?: Clock;
}): UfwFastPath {
  const { edge: fast, mode, afterFiles } = options;
  const clock = options.clock ?? systemClock;
  /** Set while a watch runs: takes a new baseline of our sets after a change of our own. */
  let afterOwnChange: (() => void) | undefined;
  /** The hook's state as the last listing saw it: a change right after it is based on it. */
  const listed = createRecent<Partial<Record<Family, HookLiveness>>>(clock, LISTING_FRESH_MS);
  /** Off mode: sets of ours were found, left by an earlier fast mode. */
  let leftovers = false;
  const inUse = () => mode() !== 'off' || leftovers || fast.hookInFiles();
  /** Removes our runtime rules from both families, then our sets (they are referenced until then). */
  const removeAll = async (): Promise<AppliedChange[]> => {
    const rules = [...(await fast.removeRuntime('v4')), ...(await fast.removeRuntime('v6'))];
    const sets = await fast.destroySets();
    afterOwnChange?.();
    return [...rules, ...sets];
  };

  /** The hook's state per family, for the families UFW manages. */
  const hookState = async (
    ipv6: boolean,
    families: readonly Family[] = ['v4', 'v6'],
  ): Promise<Partial<Record<Family, HookLiveness>>> => {
    const wanted = families.filter((family) => family === 'v4' || ipv6);
    const states = await Promise.all(wanted.map((family) => fast.liveness(family)));
    return Object.fromEntries(wanted.map((family, index) => [family, states[index]]));
  };

  /** Places our runtime rules in every family `state` says lacks them; the listing is then out of date. */
  const placeWhereMissing = async (
    state: Partial<Record<Family, HookLiveness>>,
  ): Promise<AppliedChange[]> => {
    const placed: AppliedChange[] = [];
    for (const family of (['v4', 'v6'] as const).filter((each) => state[each] === 'missing'))
      placed.push(await fast.placeRuntime(family));
    if (placed.length > 0) {
      listed.forget();
      afterOwnChange?.();
    }
    return placed;
  };

  return {
    inUse,

    hasLeftovers: () => leftovers,

    async lookForLeftovers() {
      if (mode() !== 'off' || fast.hookInFiles()) return;
      // Without ipset (or its kernel part) there can be no sets of ours.
      leftovers = (await fast.setNames().catch(() => [])).length > 0;
    },

    async retireLeftovers() {
      if (!leftovers || mode() !== 'off' || fast.hookInFiles()) return [];
      if ((await fast.members()).specs.length > 0) return [];
      const removed = await removeAll();
      leftovers = false;
      return removed;
    },

    async removeFootprint() {
      if (mode() === 'hook' || fast.hookInFiles()) return [];
      if ((await fast.setNames().catch(() => [])).length === 0) return [];
      if ((await fast.members()).specs.length > 0) return [];
      leftovers = false;
      return removeAll();
    },

    async effectiveMembers(ipv6) {
      if (!inUse()) return [];
      const [{ specs }, state] = await Promise.all([fast.members(), hookState(ipv6)]);
      listed.remember(state);
      return specs.filter((spec) => (state[spec.family] ?? 'missing') !== 'missing').map(ruleOfMember);
    },

    async assertLive(specs, ipv6) {
      const families = [...new Set(specs.map((spec) => spec.family))];
      // A change decided on a listing of the last second relies on the hook state that listing saw (a
      // reconcile lists, then changes); the watcher notices the hook going away after that.
      const recent = listed.recent();
      const known = families.every((family) => recent?.[family] === 'live');
      const state = known && recent !== undefined ? recent : await hookState(ipv6, families);
      const [family] = (['v4', 'v6'] as const).filter(
        (candidate) => state[candidate] === 'missing' && specs.some((spec) => spec.family === candidate),
      );
      if (family === undefined) return;
      if (mode() === 'runtime') {
        // UFW loaded its chains without our rules (a reload, an enable): place them again, then stand.
        await placeWhereMissing(state);
        return;
      }
      throw new FirewallError(
        `The UFW fast path is not in force: ${FAST_CHAINS[family]} is loaded without moshwall's ipset rules, ` +
          'so adding set members would open nothing. Run `moshwall install` (adds the hook to ' +
          `${afterFiles[family]}) or \`ufw reload\` (loads it), then check \`moshwall doctor\``,
        { family, chain: FAST_CHAINS[family], file: afterFiles[family] },
      );
    },

    async placeMissing(ipv6) {
      if (mode() !== 'runtime') return [];
      return placeWhereMissing(listed.recent() ?? (await hookState(ipv6)));
    },

    async change(kind, specs) {
      const applied = await fast.change(kind, specs);
      afterOwnChange?.();
      return applied;
    },

    async describe(ipv6) {
      const inFiles = fast.hookInFiles();
      const current = mode();
      const [state, { specs, sets }] = await Promise.all([hookState(ipv6), fast.members()]);
      const loaded = Object.entries(state)
        .map(([family, live]) => `${family} ${live === 'no-chain' ? 'ufw chain not loaded' : live}`)
        .join(', ');
      const how = {
        runtime: `ipset sets matched by rules moshwall places into ${FAST_CHAINS.v4} at run time (no UFW file edited)`,
        hook: `ipset sets matched by the hook in ${afterFiles.v4}`,
        off: 'off (classic `ufw allow` rules), but sets of ours are left',
      }[current];
      const detail =
        `fast path: ${how}; hook in ${afterFiles.v4}: ${inFiles ? 'yes' : 'no'}; in the kernel: ${loaded}; ` +
        `sets: ${sets.length > 0 ? sets.join(' ') : 'none'}; members: ${specs.length}` +
        (specs.length > 0 ? ` (udp ${[...new Set(specs.map((spec) => spec.port))].join(',')})` : '');
      const problems: string[] = [];
      if (current === 'hook' && !inFiles)
        problems.push(
          `ufw_fast_path = "ipset" but ${afterFiles.v4} has no moshwall hook: run \`moshwall install\``,
        );
      for (const [family, live] of Object.entries(state)) {
        // In runtime mode the next change places missing rules again; members left idle meanwhile are a problem.
        const idle = current === 'runtime' && specs.some((spec) => spec.family === family);
        if (live === 'missing' && (current === 'hook' || inFiles || idle))
          problems.push(
            `${FAST_CHAINS[family as Family]} is loaded without moshwall's ipset rules, so set members open nothing: ` +
              `run \`${current === 'runtime' ? 'moshwall sync' : inFiles ? 'ufw reload' : 'moshwall install'}\``,
          );
      }
      if (current !== 'hook' && inFiles)
        problems.push(
          `the after-rules hook is installed but ufw_fast_path is not "ipset": run \`moshwall install\` again to remove it`,
        );
      return { detail, problems };
    },

    watch(onChange, intervalMs) {
      if (!inUse()) return { close() {} };
      let last: string | undefined;
      let running = false;
      /**
       * Runtime mode: members whose family's rules are gone while the digest stayed the same (UFW enabled
       * again after a disable) are reported once the chain is back without our rules.
       */
      const reportIdle = (digest: string) => {
        const families = familiesWithIdleMembers(digest);
        if (families.length === 0) return;
        hookState(true, families).then(
          (state) => {
            const missing = families.filter((family) => state[family] === 'missing');
            if (missing.length > 0)
              onChange(
                `${missing.map((family) => FAST_CHAINS[family]).join(', ')} loaded without moshwall's rules`,
              );
          },
          () => undefined,
        );
      };
      let queued: 'fire' | 'quiet' | undefined;
      /** One look; `fire`: report a difference (a quiet look only takes the new baseline, after our own change). */
      const look = (fire: boolean) => {
        if (running) {
          queued = queued === 'fire' || fire ? 'fire' : 'quiet';
          return;
        }
        running = true;
        fast
          .headers()
          .then(
            (digest) => {
              if (fire && last !== undefined && digest !== last)
                onChange(`moshwall's ipsets changed: ${digest || 'none left'}`);
              else if (fire && mode() === 'runtime') reportIdle(digest);
              last = digest;
            },
            () => undefined,
          )
          .finally(() => {
            running = false;
            const next = queued;
            queued = undefined;
            if (next !== undefined) look(next === 'fire');
          });
      };
      look(false);
      afterOwnChange = () => look(false);
      const timer = clock.setInterval(() => look(true), intervalMs);
      return {
        close: () => {
          clock.clear(timer);
          afterOwnChange = undefined;
        },
      };
    },
  };
}
