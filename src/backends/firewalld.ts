import type { Clock } from '../clock.ts';
import { ExecError, FirewallError } from '../errors.ts';
import type { ExecResult, LineWatcher, Runner } from '../exec.ts';
import type { AppliedChange, Backend, BackendProbe } from '../firewall.ts';
import { assertValidRuleSpecs, type FirewallRule, type RuleSpec } from '../rules.ts';
import {
  assertSafeFirewalldArgv,
  FIREWALLD_NAME,
  type FirewalldCall,
  planFirewalldCalls,
} from './firewalld/commands.ts';
import { firewallCmdProblems, parseZoneListing, type ZoneInfo, zoneRules } from './firewalld/output.ts';
import { createServiceCache } from './firewalld/services.ts';
import { FIREWALLD_WATCH_ARGV, firewalldEvent } from './firewalld/watch.ts';
import { findZone, type ZoneChoice } from './firewalld/zone.ts';
import { applyInOrder } from './kernel/apply.ts';
import { createTool, outputOf, probeVersion } from './kernel/tool.ts';
import { keepWatching } from './kernel/watch.ts';

export {
  assertSafeFirewalldArgv,
  FIREWALLD_NAME,
  FIREWALLD_RULES_PER_CALL,
  type FirewalldCall,
  firewalldArgvProblem,
  planFirewalldCall,
  planFirewalldCalls,
} from './firewalld/commands.ts';
export {
  defaultRouteInterface,
  firewallCmdProblems,
  parseServiceInfo,
  parseZoneListing,
  type ZoneInfo,
  zoneRules,
} from './firewalld/output.ts';
export { OUR_TAIL, parseOurRule, renderOurRule, richRuleToRules } from './firewalld/rich.ts';
export { FIREWALLD_WATCH_ARGV, firewalldEvent } from './firewalld/watch.ts';
export { findZone, type ZoneChoice } from './firewalld/zone.ts';

/*
 * firewalld, runtime only: moshwall adds and removes tagged rich rules (see firewalld/rich.ts) in one
 * zone of firewalld's runtime configuration, never its permanent one. `firewall-cmd --reload`, a restart
 * of firewalld or a reboot drops them; firewalld announces a reload with its D-Bus signal "Reloaded" and
 * a restart by taking its bus name again, which watchChanges turns into a reconcile that puts back what
 * live sessions hold (the daemon's periodic resync does the same if the watcher cannot run).
 *
 * The zone: `firewalld_zone` when configured; otherwise the zone of the interface that carries the
 * default route (`firewall-cmd --get-zone-of-interface`), otherwise firewalld's default zone (where
 * firewalld sends an interface bound to no zone). Admin rules of that zone — its target, plain ports,
 * protocols, services and rich rules — are listed for coverage; a zone bound to source addresses sends
 * those sources elsewhere, which moshwall does not follow. Only that zone is listed: should the admin
 * move the interface to another zone at runtime, rules of ours left in the old one are not swept (they
 * no longer apply to the interface; firewalld's next reload drops them).
 */

export interface FirewalldBackendOptions {
  runner: Runner;
  /** Limit for each firewall-cmd run (a Python start plus a D-Bus call: ~200 ms each). */
  timeoutMs: number;
  /** The zone our rules go in; found from the default route when absent. */
  zone?: string;
  /** Starts the long-running `dbus-monitor` that watchChanges listens to. */
  watcher?: LineWatcher;
  /** How long after the watcher ended it is started again (doubling up to 5 min); default 5 s. */
  restartDelayMs?: number;
  /** The watcher's restart timers (the machine's clock by default). */
  clock?: Clock;
}

/** Creates the firewalld backend: tagged runtime rich rules in one zone, through firewall-cmd. */
export function createFirewalldBackend(options: FirewalldBackendOptions): Backend {
  if (options.zone !== undefined && !FIREWALLD_NAME.test(options.zone)) {
    throw new FirewallError(`Bad firewalld zone name \`${options.zone}\``, { zone: options.zone });
  }
  let zoneChoice: Promise<ZoneChoice> | undefined;

  const run = createTool({
    runner: options.runner,
    timeoutMs: options.timeoutMs,
    guard: (argv) => {
      if (argv[0] === 'firewall-cmd') assertSafeFirewalldArgv(argv);
    },
  });
  /** Runs a read-only firewall-cmd and returns its stdout, or throws a FirewallError naming the failure. */
  const read = async (argv: string[]): Promise<string> => {
    const result = await run(argv);
    const problems = firewallCmdProblems(result);
    if (problems.length > 0) {
      throw new FirewallError(`\`${argv.join(' ')}\` failed: ${problems.join('; ')}`, {
        exitCode: result.exitCode,
        stderr: result.stderr.trim(),
      });
    }
    return result.stdout;
  };

  const resolveZone = () => findZone(run, read, options.zone);
  const currentZone = (): Promise<ZoneChoice> => {
    zoneChoice ??= resolveZone().catch((error: unknown) => {
      zoneChoice = undefined;
      throw error;
    });
    return zoneChoice;
  };
  const services = createServiceCache(run);
  const forget = () => {
    zoneChoice = undefined;
    services.clear();
  };

  const listZone = async (zone: string): Promise<ZoneInfo> =>
    parseZoneListing(await read(['firewall-cmd', `--zone=${zone}`, '--list-all']));

  /** Runs one call; a failure (or a timeout) says that other rules of it may have taken effect. */
  const applyOne = async (call: FirewalldCall): Promise<AppliedChange> => {
    const ports = [...new Set(call.specs.map((spec) => spec.port))].join(',');
    // firewall-cmd makes one D-Bus call per rule: others of this batch may have taken effect.
    const partly = call.specs.length > 1 ? ' (the other rules of this call may have been applied)' : '';
    let result: ExecResult;
    try {
      result = await run(call.argv);
    } catch (error) {
      if (!(error instanceof ExecError)) throw error;
      throw new FirewallError(
        `firewall-cmd could not ${call.kind} udp port(s) ${ports}: ${error.message}${partly}`,
        { argv: call.argv.join(' ') },
        error,
      );
    }
    const problems = firewallCmdProblems(result);
    if (problems.length > 0) {
      throw new FirewallError(
        `firewall-cmd could not ${call.kind} udp port(s) ${ports}: ${problems.join('; ')}${partly}`,
        { exitCode: result.exitCode, stderr: result.stderr.trim(), argv: call.argv.join(' ') },
      );
    }
    return { kind: call.kind, specs: call.specs, argv: call.argv, output: outputOf(result) };
  };
  /** Runs the calls one after another (firewalld serializes them anyway), stopping at the first failure. */
  const apply = (calls: FirewalldCall[]) => applyInOrder('firewall-cmd', calls, applyOne);

  return {
    name: 'firewalld',

    async probe(): Promise<BackendProbe> {
      const answer = await probeVersion(
        run,
        ['firewall-cmd', '--version'],
        'firewalld is not installed (no runnable `firewall-cmd` on PATH)',
        (result) => result.stderr.trim() || result.stdout.trim(),
      );
      if ('probe' in answer) return answer.probe;
      const { version } = answer;
      const state = await run(['firewall-cmd', '--state']);
      const running = state.exitCode === 0 && state.stdout.trim() === 'running';
      const head = `firewalld ${version.stdout.trim()}`;
      if (!running) {
        const why = state.stderr.trim() || state.stdout.trim() || `exit ${state.exitCode}`;
        return { installed: true, active: false, ipv6: false, detail: [head, `state: ${why}`] };
      }
      forget();
      const { zone, why } = await currentZone();
      return {
        installed: true,
        active: true,
        // firewalld filters both families in its one inet table; a rule without family covers both.
        ipv6: true,
        detail: [
          head,
          'state: running',
          `zone: ${zone}, ${why}`,
          'rules: runtime rich rules tagged nflog prefix="moshwall" (never --permanent); a firewalld reload drops them and moshwall puts them back',
        ],
      };
    },

    async listRules(): Promise<FirewallRule[]> {
      const { zone } = await currentZone();
      const info = await listZone(zone);
      const named = info.richRules.flatMap((text) => /\bservice name="([^"]+)"/.exec(text)?.[1] ?? []);
      // One firewall-cmd per service not yet known, side by side (each is a ~200 ms Python start).
      await Promise.all([...new Set([...info.services, ...named])].map((name) => services.load(name)));
      return zoneRules(info, (name) => services.get(name));
    },

    async allow(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      const { zone } = await currentZone();
      return apply(planFirewalldCalls('allow', zone, specs));
    },

    async revoke(specs: RuleSpec[]): Promise<AppliedChange[]> {
      assertValidRuleSpecs(specs);
      if (specs.length === 0) return [];
      const { zone } = await currentZone();
      return apply(planFirewalldCalls('revoke', zone, specs));
    },

    watchChanges(onChange: (what: string) => void): { close(): void } {
      const { watcher } = options;
      if (watcher === undefined) return { close() {} };
      return keepWatching({
        watcher,
        argv: FIREWALLD_WATCH_ARGV,
        label: 'the firewalld watcher',
        onLine: (line) => {
          const event = firewalldEvent(line);
          if (event === undefined) return;
          forget();
          onChange(event);
        },
        // Meanwhile the daemon's periodic resync still puts dropped rules back, only later.
        onChange,
        firstDelayMs: options.restartDelayMs ?? 5000,
        maxDelayMs: 300_000,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      });
    },
  };
}
