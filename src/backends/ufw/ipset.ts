import { FirewallError } from '../../errors.ts';
import type { ExecResult, Runner } from '../../exec.ts';
import type { AppliedChange } from '../../firewall.ts';
import type { Family } from '../../model.ts';
import type { RuleSpec } from '../../rules.ts';
import { isNotInstalled, outputOf } from '../kernel/tool.ts';
import {
  FAST_CHAINS,
  FAST_SET_NAMES,
  FAST_SET_TYPES,
  type FastSetName,
  type HookLiveness,
  ipsetScript,
  ourSetNames,
  parseHookLiveness,
  parseIpsetSave,
  runtimeRules,
  runtimeRulesIn,
  setHeadersDigest,
} from './fastpath.ts';

/** The fast path's edge: our ipsets and the hook's rules in the kernel, over the Runner (argv only). */
export interface FastPathEdge {
  /** Whether our match rules for the family are loaded (see parseHookLiveness). */
  liveness(family: Family): Promise<HookLiveness>;
  /** Every member of our sets as specs (a set that does not exist has none), and which sets exist. */
  members(): Promise<{ specs: RuleSpec[]; sets: FastSetName[] }>;
  /** Adds or deletes these specs' members in one `ipset -exist restore` (creating our sets if missing). */
  change(kind: 'allow' | 'revoke', specs: RuleSpec[]): Promise<AppliedChange>;
  /** A digest of our sets' headers (references, member counts): see setHeadersDigest. */
  headers(): Promise<string>;
  /** True when UFW's after.rules holds our hook block (a file read, no command). */
  hookInFiles(): boolean;
  /** Which of our sets exist (`ipset -n list`); throws when ipset is missing or cannot talk to the kernel. */
  setNames(): Promise<FastSetName[]>;
  /** Appends our runtime rules to the family's UFW chain (the caller saw them missing). */
  placeRuntime(family: Family): Promise<AppliedChange>;
  /** Deletes every runtime rule of ours from the family's UFW chain (none when the chain is not loaded). */
  removeRuntime(family: Family): Promise<AppliedChange[]>;
  /** Destroys our sets that exist; a set still referenced by a loaded rule stays and is named in the error. */
  destroySets(): Promise<AppliedChange[]>;
}

/** The `-exist create` lines for our sets, so a change never fails on a set an admin destroyed. */
function createLines(): string {
  return FAST_SET_NAMES.map((name) => `create ${name} ${FAST_SET_TYPES[name].join(' ')}\n`).join('');
}

/** Throws a FirewallError naming the command unless it exited 0. */
function assertOk(result: ExecResult, what: string): void {
  if (result.exitCode === 0) return;
  throw new FirewallError(
    `${what} failed (exit ${result.exitCode}): ${result.stderr.trim() || result.stdout.trim() || 'no output'}`,
    { argv: result.argv.join(' '), exitCode: result.exitCode, stderr: result.stderr.trim() },
  );
}

/** The fast path edge for UFW rules in `afterRulesFile`, running ipset and ip[6]tables through `runner`. */
export function createFastPathEdge(options: {
  runner: Runner;
  timeoutMs: number;
  afterRulesFile: string;
  /** Reads a whole text file; throws when it is missing. */
  readFile: (path: string) => string;
}): FastPathEdge {
  const { timeoutMs } = options;
  /** The runner, with a missing ipset/iptables binary turned into an error that says what to install. */
  const runner: Runner = async (argv, runOptions) => {
    try {
      return await options.runner(argv, runOptions);
    } catch (error) {
      if (!isNotInstalled(error)) throw error;
      throw new FirewallError(
        `${argv[0]} is not installed, and UFW's fast path needs it (apt-get install ${argv[0] === 'ipset' ? 'ipset' : 'iptables'})`,
        { command: argv.join(' ') },
        error,
      );
    }
  };
  return {
    async liveness(family) {
      const tool = family === 'v4' ? 'iptables' : 'ip6tables';
      const result = await runner([tool, '-w', '-S', FAST_CHAINS[family]], { timeoutMs });
      return parseHookLiveness(family, result);
    },

    async members() {
      const saved = await Promise.all(
        FAST_SET_NAMES.map(async (set) => ({
          set,
          result: await runner(['ipset', 'save', set], { timeoutMs }),
        })),
      );
      const specs: RuleSpec[] = [];
      const sets: FastSetName[] = [];
      for (const { set, result } of saved) {
        if (result.exitCode !== 0 && /does not exist/.test(result.stderr)) continue;
        assertOk(result, `ipset save ${set}`);
        sets.push(set);
        specs.push(...parseIpsetSave(set, result.stdout));
      }
      return { specs, sets };
    },

    async change(kind, specs) {
      const argv = ['ipset', '-exist', 'restore'];
      const input = createLines() + ipsetScript(kind === 'allow' ? 'add' : 'del', specs);
      const result = await runner(argv, { timeoutMs, input });
      assertOk(result, `ipset restore (${kind} ${specs.length} member(s))`);
      return { kind, specs, argv, output: outputOf(result) };
    },

    async headers() {
      const result = await runner(['ipset', '-t', 'list'], { timeoutMs });
      assertOk(result, 'ipset -t list');
      return setHeadersDigest(result.stdout);
    },

    async setNames() {
      const result = await runner(['ipset', '-n', 'list'], { timeoutMs });
      assertOk(result, 'ipset -n list');
      return ourSetNames(result.stdout);
    },

    async placeRuntime(family) {
      const tool = family === 'v4' ? 'iptables' : 'ip6tables';
      // The rules name our sets: they must exist first (`-exist`: no change when they do).
      const created = await runner(['ipset', '-exist', 'restore'], { timeoutMs, input: createLines() });
      assertOk(created, 'ipset restore (creating our sets)');
      let output = '';
      let argv: string[] = [];
      for (const rule of runtimeRules(family)) {
        argv = [tool, '-w', ...rule.split(' ')];
        const result = await runner(argv, { timeoutMs });
        assertOk(result, `${tool} -A ${FAST_CHAINS[family]} (moshwall's runtime rule)`);
        output += outputOf(result);
      }
      return { kind: 'allow', specs: [], argv, output };
    },

    async removeRuntime(family) {
      const tool = family === 'v4' ? 'iptables' : 'ip6tables';
      const listed = await runner([tool, '-w', '-S', FAST_CHAINS[family]], { timeoutMs });
      if (parseHookLiveness(family, listed) === 'no-chain') return [];
      const removed: AppliedChange[] = [];
      for (const words of runtimeRulesIn(family, listed.stdout)) {
        const argv = [tool, '-w', '-D', ...words.slice(1)];
        const result = await runner(argv, { timeoutMs });
        assertOk(result, `${tool} -D ${FAST_CHAINS[family]} (moshwall's runtime rule)`);
        removed.push({ kind: 'revoke', specs: [], argv, output: outputOf(result) });
      }
      return removed;
    },

    async destroySets() {
      const names = ourSetNames(
        await runner(['ipset', '-n', 'list'], { timeoutMs }).then((result) => {
          assertOk(result, 'ipset -n list');
          return result.stdout;
        }),
      );
      const destroyed: AppliedChange[] = [];
      for (const name of names) {
        const argv = ['ipset', 'destroy', name];
        const result = await runner(argv, { timeoutMs });
        assertOk(result, `ipset destroy ${name}`);
        destroyed.push({ kind: 'revoke', specs: [], argv, output: outputOf(result) });
      }
      return destroyed;
    },

    hookInFiles() {
      try {
        return options.readFile(options.afterRulesFile).includes('# BEGIN moshwall fast path');
      } catch {
        return false;
      }
    },
  };
}
