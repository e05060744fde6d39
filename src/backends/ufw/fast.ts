import { type Clock, systemClock } from '../../clock.ts';
import { FirewallError } from '../../errors.ts';
import type { AppliedChange } from '../../firewall.ts';
import type { Family } from '../../model.ts';
import type { FirewallRule, RuleSpec } from '../../rules.ts';
import { createRecent } from '../kernel/recent.ts';
import { FAST_CHAINS, type HookLiveness, ruleOfMember } from './fastpath.ts';
import type { FastPathEdge } from './ipset.ts';

/** What the UFW backend asks of the fast path (ufw_fast_path = "ipset"; see fastpath.ts). */
export interface UfwFastPath {
  /** True in fast-path mode, or while the hook is still in UFW's files (switched off, not yet uninstalled). */
  inUse(): boolean;
  /**
   * Members of our sets that open something, as rules of ours (none when not in use). A family whose chain
   * is loaded without our match rules has none: its members open nothing, listing them would pretend.
   */
  effectiveMembers(ipv6: boolean): Promise<FirewallRule[]>;
  /**
   * Throws, naming the fix, unless our match rules are loaded for every family of `specs` UFW has loaded
   * (as a listing of the last second saw them live, or as checked now).
   */
  assertLive(specs: RuleSpec[], ipv6: boolean): Promise<void>;
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
  fastMode: boolean;
  afterFiles: Record<Family, string>;
  /** The age of the last listing and the watcher's interval (the machine's clock by default). */
  clock?: Clock;
}): UfwFastPath {
  const { edge: fast, fastMode, afterFiles } = options;
  const clock = options.clock ?? systemClock;
  /** Set while a watch runs: takes a new baseline of our sets after a change of our own. */
  let afterOwnChange: (() => void) | undefined;
  /** The hook's state as the last listing saw it: a change right after it is based on it. */
  const listed = createRecent<Partial<Record<Family, HookLiveness>>>(clock, LISTING_FRESH_MS);
  const inUse = () => fastMode || fast.hookInFiles();

  /** The hook's state per family, for the families UFW manages. */
  const hookState = async (
    ipv6: boolean,
    families: readonly Family[] = ['v4', 'v6'],
  ): Promise<Partial<Record<Family, HookLiveness>>> => {
    const wanted = families.filter((family) => family === 'v4' || ipv6);
    const states = await Promise.all(wanted.map((family) => fast.liveness(family)));
    return Object.fromEntries(wanted.map((family, index) => [family, states[index]]));
  };

  return {
    inUse,

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
      throw new FirewallError(
        `The UFW fast path is not in force: ${FAST_CHAINS[family]} is loaded without moshwall's ipset rules, ` +
          'so adding set members would open nothing. Run `moshwall install` (adds the hook to ' +
          `${afterFiles[family]}) or \`ufw reload\` (loads it), then check \`moshwall doctor\``,
        { family, chain: FAST_CHAINS[family], file: afterFiles[family] },
      );
    },

    async change(kind, specs) {
      const applied = await fast.change(kind, specs);
      afterOwnChange?.();
      return applied;
    },

    async describe(ipv6) {
      const inFiles = fast.hookInFiles();
      const [state, { specs, sets }] = await Promise.all([hookState(ipv6), fast.members()]);
      const loaded = Object.entries(state)
        .map(([family, live]) => `${family} ${live === 'no-chain' ? 'ufw chain not loaded' : live}`)
        .join(', ');
      const detail =
        `fast path: ${fastMode ? 'ipset' : 'off, but its hook is still installed'}; hook in ${afterFiles.v4}: ` +
        `${inFiles ? 'yes' : 'no'}; in the kernel: ${loaded}; sets: ${sets.length > 0 ? sets.join(' ') : 'none'}; ` +
        `members: ${specs.length}`;
      const problems: string[] = [];
      if (fastMode && !inFiles)
        problems.push(
          `ufw_fast_path = "ipset" but ${afterFiles.v4} has no moshwall hook: run \`moshwall install\``,
        );
      for (const [family, live] of Object.entries(state)) {
        if (live === 'missing' && (fastMode || inFiles))
          problems.push(
            `${FAST_CHAINS[family as Family]} is loaded without moshwall's ipset rules, so set members open nothing: ` +
              `run \`${inFiles ? 'ufw reload' : 'moshwall install'}\``,
          );
      }
      if (!fastMode && inFiles)
        problems.push(
          'the fast-path hook is installed but ufw_fast_path is off: run `moshwall install` again to remove it',
        );
      return { detail, problems };
    },

    watch(onChange, intervalMs) {
      if (!inUse()) return { close() {} };
      let last: string | undefined;
      let running = false;
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
