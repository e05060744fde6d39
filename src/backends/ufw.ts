import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import { errnoCode } from '../discovery/errno.ts';
import { FirewallError } from '../errors.ts';
import type { LineWatcher, Runner } from '../exec.ts';
import type { AppliedChange, Backend, BackendProbe } from '../firewall.ts';
import { assertValidRuleSpecs, type FirewallRule, type RuleSpec } from '../rules.ts';
import { variantOfVersion } from './iptables/probe.ts';
import { applyInOrder } from './kernel/apply.ts';
import { createTool, outputOf, probeVersion } from './kernel/tool.ts';
import { watchMonitor } from './monitor.ts';
import {
  assertNoTakeover,
  assertSafeUfwArgv,
  oursAmong,
  planUfwCalls,
  type UfwCall,
} from './ufw/commands.ts';
import { createUfwFastPath } from './ufw/fast.ts';
import { type FastMode, RUNTIME_TAG } from './ufw/fastpath.ts';
import { createFastPathEdge } from './ufw/ipset.ts';
import { assertUfwSucceeded, parseUfwDefaults, parseUfwStatus } from './ufw/output.ts';
import { parseUserRules } from './ufw/tuples.ts';

export {
  allowArgv,
  assertSafeUfwArgv,
  planUfwCalls,
  revokeArgv,
  type UfwCall,
  ufwArgvProblem,
} from './ufw/commands.ts';
export {
  assertUfwSucceeded,
  parseUfwDefaults,
  parseUfwOutput,
  parseUfwStatus,
  type UfwLine,
  type UfwLineKind,
} from './ufw/output.ts';
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
   * Our rules as members of moshwall's ipsets, one `ipset restore` per change (see ufw/fastpath.ts),
   * matched by rules placed into UFW's chain at run time ("runtime"), or by a hook in UFW's after.rules
   * ("ipset"); "auto": runtime where ipset works, else classic; absent: classic `ufw allow … comment
   * moshwall` rules.
   */
  fastPath?: 'ipset' | 'runtime' | 'auto';
  /** Starts `nft monitor` so a UFW reload on iptables-nft is noticed at once (runtime mode). */
  watcher?: LineWatcher;
  /** Fast path: how often watchChanges looks at our sets' headers (default 2000 ms). */
  watchIntervalMs?: number;
  /** The fast path's listing age and watcher interval (the machine's clock by default). */
  clock?: Clock;
  /** Limit for each ufw run (ufw allow ~170 ms, delete ~300 ms, more while another ufw holds its lock). */
  timeoutMs: number;
}

/** Rule events of iptables-nft: a UFW reload deletes and adds its chains' rules. */
export const UFW_RELOAD_MONITOR = ['nft', 'monitor', 'rules'];

/** ufw prints English only under the C locale, and its words are what we check. */
const UFW_ENV = { LANG: 'C', LC_ALL: 'C' };

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
  const configured = options.fastPath;
  /** The fast path's mode; "auto" is resolved by resolveMode (classic until then). */
  let mode: FastMode = configured === 'ipset' ? 'hook' : configured === 'runtime' ? 'runtime' : 'off';
  /** Why the mode is what it is, for doctor (auto only). */
  let modeReason = configured === undefined ? 'ufw_fast_path = "off"' : `ufw_fast_path = "${configured}"`;
  let resolved = configured !== 'auto';
  /** The iptables variant, for the reload monitor (runtime mode on iptables-nft). */
  let variant: 'nft' | 'legacy' | undefined;
  const fastEdge = createFastPathEdge({
    runner: options.runner,
    timeoutMs: options.timeoutMs,
    afterRulesFile: afterFiles.v4,
    readFile,
  });
  const fast = createUfwFastPath({
    edge: fastEdge,
    mode: () => mode,
    afterFiles,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });

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
  const run = createTool({
    runner: options.runner,
    timeoutMs: options.timeoutMs,
    env: UFW_ENV,
    guard: assertSafeUfwArgv,
  });
  /** Runs one `ufw allow|delete` and checks ufw's words, not only its exit code. */
  const runCall = async (call: UfwCall): Promise<AppliedChange> => {
    const result = await run(call.argv);
    assertUfwSucceeded(call, result);
    return { kind: call.kind, specs: call.specs, argv: call.argv, output: outputOf(result) };
  };
  const apply = (calls: UfwCall[]) => applyInOrder('ufw', calls, runCall);

  /**
   * Settles "auto" once: runtime when `ipset -n list` works (the tool and the kernel's ip_set), else
   * classic rules. In runtime mode it also learns the iptables variant, for the reload monitor.
   */
  const resolveMode = async (): Promise<void> => {
    if (!resolved) {
      try {
        await fastEdge.setNames();
        mode = 'runtime';
        modeReason = 'ufw_fast_path = "auto": ipset works here';
      } catch (error) {
        mode = 'off';
        modeReason = `ufw_fast_path = "auto": classic rules, because ${error instanceof Error ? error.message : String(error)}`;
      }
      resolved = true;
    }
    if (mode === 'runtime' && variant === undefined) {
      const version = await options
        .runner(['iptables', '--version'], { timeoutMs: options.timeoutMs })
        .catch(() => undefined);
      variant = (version?.exitCode === 0 ? variantOfVersion(version.stdout) : undefined) ?? 'legacy';
    }
  };

  /** Takes out members added beside a failed liveness check; if that fails too, both are in the error. */
  const takeBack = async (specs: RuleSpec[], why: unknown): Promise<void> => {
    try {
      await fast.change('revoke', specs);
    } catch (error) {
      const first = why instanceof Error ? why.message : String(why);
      throw new FirewallError(
        `${first}; and taking the members just added out again failed: ${error instanceof Error ? error.message : String(error)} ` +
          '(they open nothing while the hook is not loaded)',
        { members: specs.length },
        error,
      );
    }
  };

  return {
    name: 'ufw',

    changeToken(): string {
      return [rulesFiles.v4, rulesFiles.v6, afterFiles.v4, afterFiles.v6].map(statToken).join(' ');
    },

    /**
     * Fast path only: our sets watched for an admin's flush or a hook no longer loaded (see ufw/fast.ts);
     * in runtime mode on iptables-nft also `nft monitor`, so a UFW reload is answered at once.
     */
    watchChanges(onChange: (what: string) => void): { close(): void } {
      const sets = fast.watch(onChange, options.watchIntervalMs ?? 2000);
      if (mode !== 'runtime' || variant !== 'nft' || options.watcher === undefined) return sets;
      const monitor = watchMonitor({
        watcher: options.watcher,
        argv: UFW_RELOAD_MONITOR,
        // Our own runtime rules come and go with our changes; anything else may be UFW reloading.
        isOurs: (event) => event.rest.includes(`"${RUNTIME_TAG}"`),
        onChange,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      });
      return {
        close() {
          sets.close();
          monitor.close();
        },
      };
    },

    async probe(): Promise<BackendProbe> {
      const answer = await probeVersion(
        run,
        ['ufw', 'version'],
        'ufw is not installed (no runnable `ufw` on PATH); install it (apt install ufw) or choose another backend',
        (result) => result.stderr.trim() || result.stdout.trim(),
      );
      if ('probe' in answer) return answer.probe;
      const { version } = answer;
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
        if (errnoCode(error) !== 'ENOENT')
          throw new FirewallError(`Cannot read ${defaultsFile}`, { path: defaultsFile }, error);
        ipv6Detail = `IPv6: no (${defaultsFile} is missing)`;
      }
      const detail = [
        version.stdout.split('\n')[0]?.trim() ?? 'ufw',
        `status: ${active ? 'active' : 'inactive'}`,
        ipv6Detail,
        `rules: ${ipv6 ? `${rulesFiles.v4}, ${rulesFiles.v6}` : rulesFiles.v4}`,
      ];
      await resolveMode();
      await fast.lookForLeftovers();
      if (!fast.inUse())
        return { installed: true, active, ipv6, detail: [...detail, `fast path: ${modeReason}`] };
      // A fast path that cannot be looked at is a finding, never a failed probe (with UFW inactive, another
      // firewall may own the tables its chains would be in: auto must still be able to pick that one).
      const fastPath = await fast.describe(ipv6).catch((error: unknown) => {
        const why = `fast path: cannot be looked at: ${error instanceof Error ? error.message : String(error)}`;
        return { detail: why, problems: active ? [why] : [] };
      });
      detail.push(fastPath.detail, `fast path chosen by: ${modeReason}`);
      return { installed: true, active, ipv6, detail, problems: fastPath.problems };
    },

    async listRules(): Promise<FirewallRule[]> {
      await resolveMode();
      const ipv6 = ipv6Enabled();
      return [...readRules(ipv6), ...(await fast.effectiveMembers(ipv6))];
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
      assertNoTakeover(readRules(ipv6), specs);
      await resolveMode();
      if (mode === 'off') return apply(planUfwCalls('allow', specs));
      // The liveness check runs beside the change: while the hook is not loaded a member opens nothing,
      // so adding it at once is harmless, and it is taken out again before the error is thrown.
      const [live, change] = await Promise.allSettled([
        fast.assertLive(specs, ipv6),
        fast.change('allow', specs),
      ]);
      if (live.status === 'rejected') {
        if (change.status === 'fulfilled') await takeBack(specs, live.reason);
        throw live.reason;
      }
      if (change.status === 'rejected') throw change.reason;
      return [change.value];
    },

    async revoke(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      // With IPV6=no ufw ignores user6.rules (and refuses v6 deletes): no v6 rule of ours is in force.
      const ipv6 = ipv6Enabled();
      await resolveMode();
      const wanted = ipv6 ? specs : specs.filter((spec) => spec.family === 'v4');
      // Deleting a member that is not there is a no-op under `ipset -exist`: one restore, no listing first.
      const setChange = fast.inUse() && wanted.length > 0 ? [await fast.change('revoke', wanted)] : [];
      // In fast-path mode only our classic rules that exist are deleted (each `ufw delete` reloads UFW).
      // Classic mode deletes every spec, except while emptying sets left by a fast mode: then only the
      // classic rules that exist (a port is then either a member or a rule, and each counts once).
      const classic = mode !== 'off' || fast.hasLeftovers() ? oursAmong(readRules(ipv6), wanted) : wanted;
      const deleted = classic.length > 0 ? await apply(planUfwCalls('revoke', classic)) : [];
      // Back on classic rules: the fast path's sets and rules go once their last member has.
      const retired = setChange.length > 0 ? await fast.retireLeftovers() : [];
      return [...setChange, ...deleted, ...retired];
    },

    /** Runtime mode: our match rules placed again where a UFW reload or enable dropped them. */
    async prepare(): Promise<AppliedChange[]> {
      await resolveMode();
      return fast.placeMissing(ipv6Enabled());
    },

    /** Runtime mode (or sets left from it): our rules out of UFW's chains and our sets gone, once empty. */
    async removeFootprint(): Promise<AppliedChange[]> {
      await resolveMode();
      return fast.removeFootprint();
    },
  };
}
