import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ExecError, FirewallError } from '../errors.ts';
import type { ExecResult, Runner } from '../exec.ts';
import type { Family } from '../model.ts';
import { ruleHasSpec, specKey, specOfRule } from './spec.ts';
import type { AppliedChange, Backend, BackendProbe, FirewallRule, RuleSpec } from './types.ts';
import { assertSafeUfwArgv, planUfwCalls, type UfwCall } from './ufw/commands.ts';
import { FAST_CHAINS, type HookLiveness, ruleOfMember } from './ufw/fastpath.ts';
import { createFastPathEdge } from './ufw/ipset.ts';
import { assertUfwSucceeded } from './ufw/output.ts';
import { parseUserRules } from './ufw/tuples.ts';
import { assertValidRuleSpecs } from './validate.ts';

export {
  allowArgv,
  assertSafeUfwArgv,
  planUfwCalls,
  revokeArgv,
  type UfwCall,
  ufwArgvProblem,
} from './ufw/commands.ts';
export { assertUfwSucceeded, parseUfwOutput, type UfwLine, type UfwLineKind } from './ufw/output.ts';
export { parseUserRules } from './ufw/tuples.ts';

export interface UfwBackendOptions {
  runner: Runner;
  /** Where user.rules and user6.rules live; /etc/ufw unless testing. */
  rulesDir?: string;
  /** ufw's defaults file (IPV6=yes|no); /etc/default/ufw unless testing. */
  defaultsFile?: string;
  /** Reads a whole text file; throws an error with code ENOENT when it is missing. */
  readFile?: (path: string) => string;
  /**
   * "ipset": our rules are members of moshwall's ipsets matched by a hook in UFW's after.rules (see
   * ufw/fastpath.ts), one `ipset restore` per change; absent: classic `ufw allow … comment moshwall` rules.
   */
  fastPath?: 'ipset';
  /** Fast path: how often watchChanges looks at our sets' headers (default 2000 ms). */
  watchIntervalMs?: number;
  /** Limit for each ufw run (ufw allow ~170 ms, delete ~300 ms, more while another ufw holds its lock). */
  timeoutMs: number;
}

/** ufw prints English only under the C locale, and its words are what we check. */
const UFW_ENV = { LANG: 'C', LC_ALL: 'C' };

/** True when `error` is a Node system error with this code (ENOENT, EACCES…). */
function hasCode(error: unknown, code: string): boolean {
  return error instanceof Error && 'code' in error && error.code === code;
}

/**
 * Whether ufw manages IPv6, from the text of /etc/default/ufw, read exactly as ufw reads it: lines matching
 * `^\w+="?\w+"?`, the value after the first "=" lowercased and unquoted, the last IPV6= winning.
 */
export function parseUfwDefaults(text: string): { ipv6: boolean } {
  let ipv6 = false;
  for (const line of text.split('\n')) {
    if (!/^\w+="?\w+"?/.test(line)) continue;
    const [key = '', value = ''] = line.trim().split('=');
    if (key.toLowerCase() === 'ipv6') ipv6 = value.toLowerCase().replace(/^["']+|["']+$/g, '') === 'yes';
  }
  return { ipv6 };
}

/** Whether the firewall is enforcing, from the first line of `ufw status`; undefined if it is neither. */
export function parseUfwStatus(stdout: string): boolean | undefined {
  const first = stdout.split('\n').find((line) => line.trim() !== '');
  if (first?.trim() === 'Status: active') return true;
  if (first?.trim() === 'Status: inactive') return false;
  return undefined;
}

/** "ino:size:mtime" of a file, or "-" when it cannot be stat'ed: changes whenever ufw rewrites it. */
function statToken(path: string): string {
  try {
    const facts = statSync(path);
    return `${facts.ino}:${facts.size}:${facts.mtimeMs}`;
  } catch {
    return '-';
  }
}

/** Creates the UFW backend: lists ufw's user rules from its files, adds and deletes ours with the ufw command. */
export function createUfwBackend(options: UfwBackendOptions): Backend {
  const rulesDir = options.rulesDir ?? '/etc/ufw';
  const defaultsFile = options.defaultsFile ?? '/etc/default/ufw';
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const rulesFiles = { v4: join(rulesDir, 'user.rules'), v6: join(rulesDir, 'user6.rules') };
  const afterFiles = { v4: join(rulesDir, 'after.rules'), v6: join(rulesDir, 'after6.rules') };
  const fast = createFastPathEdge({
    runner: options.runner,
    timeoutMs: options.timeoutMs,
    afterRulesFile: afterFiles.v4,
    readFile,
  });
  const fastMode = options.fastPath === 'ipset';
  /** Set while watchChanges runs: takes a new baseline of our sets after a change of our own. */
  let afterOwnChange: (() => void) | undefined;

  const read = (path: string, what: string): string => {
    try {
      return readFile(path);
    } catch (error) {
      throw new FirewallError(
        `Cannot read ${what} ${path}; is ufw installed and are we root?`,
        { path },
        error,
      );
    }
  };
  const ipv6Enabled = () => parseUfwDefaults(read(defaultsFile, "ufw's defaults file")).ipv6;
  const readRules = (ipv6: boolean): FirewallRule[] => [
    ...parseUserRules(read(rulesFiles.v4, 'ufw rules file'), 'v4', rulesFiles.v4),
    ...(ipv6 ? parseUserRules(read(rulesFiles.v6, 'ufw rules file'), 'v6', rulesFiles.v6) : []),
  ];
  const run = (argv: string[]): Promise<ExecResult> => {
    assertSafeUfwArgv(argv);
    return options.runner(argv, { timeoutMs: options.timeoutMs, env: UFW_ENV });
  };
  const apply = async (calls: UfwCall[]): Promise<AppliedChange[]> => {
    const changes: AppliedChange[] = [];
    for (const call of calls) {
      try {
        const result = await run(call.argv);
        assertUfwSucceeded(call, result);
        const output = [result.stdout.trim(), result.stderr.trim()].filter((text) => text !== '').join('\n');
        changes.push({ kind: call.kind, specs: call.specs, argv: call.argv, output });
      } catch (error) {
        if (changes.length === 0 || !(error instanceof FirewallError || error instanceof ExecError))
          throw error;
        // Earlier calls of this batch did take effect: say so, the caller's next reconcile will see them.
        const done = `${changes.length} of ${calls.length} ufw calls had succeeded`;
        throw new FirewallError(
          `${error.message} (${done})`,
          { ...error.context, completed: changes.length },
          error,
        );
      }
    }
    return changes;
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
  /**
   * Members of our sets that open something, as rules of ours: in fast-path mode, or while the hook is in
   * UFW's files (left over after switching it off). A family whose chain is loaded without our match rules
   * has none: its members open nothing, and listing them would pretend ports are open.
   */
  const effectiveMembers = async (ipv6: boolean): Promise<FirewallRule[]> => {
    if (!fastMode && !fast.hookInFiles()) return [];
    const [{ specs }, state] = await Promise.all([fast.members(), hookState(ipv6)]);
    return specs.filter((spec) => (state[spec.family] ?? 'missing') !== 'missing').map(ruleOfMember);
  };
  /** Throws, naming the fix, unless our match rules are loaded for every family of `specs` that UFW has loaded. */
  const assertHookLive = async (specs: RuleSpec[], ipv6: boolean): Promise<void> => {
    const state = await hookState(ipv6, [...new Set(specs.map((spec) => spec.family))]);
    const broken = (['v4', 'v6'] as const).filter(
      (family) => state[family] === 'missing' && specs.some((spec) => spec.family === family),
    );
    const [family] = broken;
    if (family === undefined) return;
    throw new FirewallError(
      `The UFW fast path is not in force: ${FAST_CHAINS[family]} is loaded without moshwall's ipset rules, ` +
        'so adding set members would open nothing. Run `moshwall install` (adds the hook to ' +
        `${afterFiles[family]}) or \`ufw reload\` (loads it), then check \`moshwall doctor\``,
      { family, chain: FAST_CHAINS[family], file: afterFiles[family] },
    );
  };
  /** One line on the fast path's hook, sets and members, and what is wrong with it (with the fix). */
  const describeFastPath = async (ipv6: boolean): Promise<{ detail: string; problems: string[] }> => {
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
  };
  /** Our classic rules (user.rules) among `specs`: the only ones a `ufw delete` is worth running for. */
  const classicOurs = (specs: RuleSpec[], ipv6: boolean): RuleSpec[] => {
    const ours = new Set(
      readRules(ipv6)
        .filter((rule) => rule.ours)
        .map((rule) => specOfRule(rule))
        .filter((spec): spec is RuleSpec => spec !== undefined)
        .map(specKey),
    );
    return specs.filter((spec) => ours.has(specKey(spec)));
  };

  return {
    name: 'ufw',

    changeToken(): string {
      return [rulesFiles.v4, rulesFiles.v6, afterFiles.v4, afterFiles.v6].map(statToken).join(' ');
    },

    /**
     * Fast path only: every watchIntervalMs, one `ipset -t list`; when our sets' references (the hook's
     * rules loaded, e.g. gone after an admin's `iptables -D`) or member counts (an admin's `ipset flush`)
     * changed, onChange. UFW's files are covered by changeToken. A failed look is skipped (resync covers it).
     */
    watchChanges(onChange: (what: string) => void): { close(): void } {
      if (!fastMode && !fast.hookInFiles()) return { close() {} };
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
      const timer = setInterval(() => look(true), options.watchIntervalMs ?? 2000);
      timer.unref();
      return {
        close: () => {
          clearInterval(timer);
          afterOwnChange = undefined;
        },
      };
    },

    async probe(): Promise<BackendProbe> {
      let version: ExecResult;
      try {
        version = await run(['ufw', 'version']);
      } catch (error) {
        if (
          !(error instanceof ExecError && (hasCode(error.cause, 'ENOENT') || hasCode(error.cause, 'EACCES')))
        ) {
          throw error;
        }
        const detail = [
          'ufw is not installed (no runnable `ufw` on PATH); install it (apt install ufw) or choose another backend',
        ];
        return { installed: false, active: false, ipv6: false, detail };
      }
      if (version.exitCode !== 0) {
        const why = version.stderr.trim() || version.stdout.trim();
        return {
          installed: false,
          active: false,
          ipv6: false,
          detail: [`\`ufw version\` failed (exit ${version.exitCode}): ${why}`],
        };
      }
      const status = await run(['ufw', 'status']);
      const active = status.exitCode === 0 ? parseUfwStatus(status.stdout) : undefined;
      if (active === undefined) {
        throw new FirewallError(
          `\`ufw status\` failed: ${status.stderr.trim() || status.stdout.trim() || 'no output'}`,
          {
            exitCode: status.exitCode,
            stdout: status.stdout.trim(),
            stderr: status.stderr.trim(),
          },
        );
      }
      let ipv6 = false;
      let ipv6Detail: string;
      try {
        ipv6 = parseUfwDefaults(readFile(defaultsFile)).ipv6;
        ipv6Detail = `IPv6: ${ipv6 ? 'yes' : 'no'} (IPV6= in ${defaultsFile})`;
      } catch (error) {
        if (!hasCode(error, 'ENOENT'))
          throw new FirewallError(`Cannot read ${defaultsFile}`, { path: defaultsFile }, error);
        ipv6Detail = `IPv6: no (${defaultsFile} is missing)`;
      }
      const detail = [
        version.stdout.split('\n')[0]?.trim() ?? 'ufw',
        `status: ${active ? 'active' : 'inactive'}`,
        ipv6Detail,
        `rules: ${ipv6 ? `${rulesFiles.v4}, ${rulesFiles.v6}` : rulesFiles.v4}`,
      ];
      if (!fastMode && !fast.hookInFiles()) return { installed: true, active, ipv6, detail };
      const fastPath = await describeFastPath(ipv6);
      detail.push(fastPath.detail);
      return { installed: true, active, ipv6, detail, problems: fastPath.problems };
    },

    async listRules(): Promise<FirewallRule[]> {
      const ipv6 = ipv6Enabled();
      return [...readRules(ipv6), ...(await effectiveMembers(ipv6))];
    },

    async allow(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      const ipv6 = ipv6Enabled();
      const v6 = specs.find((spec) => spec.family === 'v6');
      if (v6 !== undefined && !ipv6) {
        throw new FirewallError(
          `Cannot open v6 port ${v6.port}: ufw manages IPv6 only with IPV6=yes in ${defaultsFile}`,
          { port: v6.port, source: v6.source, defaultsFile },
        );
      }
      // `ufw allow` with the match of an existing rule but another action or comment rewrites that rule
      // into ours (even a deny into an allow): refuse before running anything.
      const rules = readRules(ipv6);
      const conflicts = specs.flatMap((spec) =>
        rules.filter((rule) => !rule.ours && ruleHasSpec(rule, spec)).map((rule) => ({ spec, rule })),
      );
      const [first] = conflicts;
      if (first !== undefined) {
        throw new FirewallError(
          `Refusing to allow ${first.spec.family} udp port ${first.spec.port} from ${first.spec.source}: ` +
            `ufw would take over the existing rule \`${first.rule.raw}\`, which is not ours`,
          {
            port: first.spec.port,
            source: first.spec.source,
            rule: first.rule.raw,
            conflicts: conflicts.length,
          },
        );
      }
      if (!fastMode) return apply(planUfwCalls('allow', specs));
      // The liveness check runs beside the change: while the hook is not loaded a member opens nothing,
      // so adding it at once is harmless, and it is taken out again before the error is thrown.
      const [live, change] = await Promise.allSettled([
        assertHookLive(specs, ipv6),
        fast.change('allow', specs),
      ]);
      if (live.status === 'rejected') {
        if (change.status === 'fulfilled') await fast.change('revoke', specs).catch(() => undefined);
        throw live.reason;
      }
      if (change.status === 'rejected') throw change.reason;
      afterOwnChange?.();
      return [change.value];
    },

    async revoke(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      // With IPV6=no ufw ignores user6.rules (and refuses v6 deletes): no v6 rule of ours is in force.
      const ipv6 = ipv6Enabled();
      const wanted = ipv6 ? specs : specs.filter((spec) => spec.family === 'v4');
      // Deleting a member that is not there is a no-op under `ipset -exist`: one restore, no listing first.
      const sets = fastMode || fast.hookInFiles();
      const setChange = sets && wanted.length > 0 ? [await fast.change('revoke', wanted)] : [];
      if (setChange.length > 0) afterOwnChange?.();
      // In fast-path mode only our classic rules that exist are deleted (each `ufw delete` reloads UFW).
      const classic = fastMode ? classicOurs(wanted, ipv6) : wanted;
      return [...setChange, ...(classic.length > 0 ? await apply(planUfwCalls('revoke', classic)) : [])];
    },
  };
}
