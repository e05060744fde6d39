// Closed means closed: when a rule of ours goes, the kernel's conntrack entries of its port go too.
// Admins' rulesets accept ESTABLISHED traffic before any rule of ours, so without this an old client's
// flow would keep reaching whatever binds the port next until the entry times out. The deletion is done
// by conntrack(8) (Debian's conntrack package) over netlink; Node has no netlink socket of its own.

import { ExecError } from './errors.ts';
import type { ExecResult, Runner } from './exec.ts';
import { anywhere } from './net.ts';
import { type RuleSpec, ruleSpecProblem } from './rules.ts';

/** The package that provides conntrack(8), and the command that installs it. */
export const CONNTRACK_FIX = 'apt-get install conntrack';

/** Why conntrack(8) matters, said where admins look (doctor, status, the daemon's log). */
export const CONNTRACK_WHY =
  "when a session ends and its rule is removed, its client's established UDP flow still passes the " +
  "firewall's ESTABLISHED rule and reaches whatever binds that port next, until the kernel forgets the " +
  'flow (nf_conntrack_udp_timeout_stream, 120 s or more)';

/** What doctor and the daemon say when conntrack(8) is not installed. */
export const CONNTRACK_MISSING = `conntrack (the conntrack package) is not installed: ${CONNTRACK_WHY}`;

/** Whether conntrack(8) can be run here. */
export interface FlowToolProbe {
  available: boolean;
  /** "1.4.7" when available. */
  version?: string;
  /** What is missing and why it matters, when not available. */
  problem?: string;
  fix?: string;
}

/** What closing the flows of one revoked rule did. */
export type FlowOutcome =
  | { spec: RuleSpec; ok: true; deleted: number; argv: string[]; durationMs: number }
  | { spec: RuleSpec; ok: false; missing: boolean; reason: string; argv: string[] };

/** Deletes the conntrack entries of revoked rules; never throws (the rules are already gone). */
export interface FlowCleaner {
  probe(): Promise<FlowToolProbe>;
  forget(specs: RuleSpec[]): Promise<FlowOutcome[]>;
  /**
   * The client address of the freshest UDP flow to each of `ports` ("port/family" → address), for
   * status; optional, and an empty map when conntrack cannot be run.
   */
  peers?(ports: ReadonlyArray<{ port: number; family: 'v4' | 'v6' }>): Promise<Map<string, string>>;
}

/**
 * From `conntrack -L -p udp` text: for each wanted "port/family", the original source address of the
 * flow to that port with the most time left (the one the client used last: a roamed client's old flow
 * times out first).
 */
export function parseFlowPeers(
  text: string,
  family: 'v4' | 'v6',
  ports: ReadonlySet<number>,
): Map<string, string> {
  const best = new Map<string, { address: string; left: number }>();
  for (const line of text.split('\n')) {
    const match = /^\S+\s+\d+\s+(\d+)\s.*?\bsrc=(\S+)\s+dst=\S+\s+sport=\d+\s+dport=(\d+)/.exec(line.trim());
    if (!match) continue;
    const port = Number(match[3]);
    if (!ports.has(port)) continue;
    const key = `${port}/${family}`;
    const left = Number(match[1]);
    const known = best.get(key);
    if (known === undefined || left > known.left) best.set(key, { address: match[2] ?? '', left });
  }
  return new Map([...best].map(([key, flow]) => [key, flow.address]));
}

/**
 * The argv that deletes the UDP conntrack entries whose original destination port is the spec's port,
 * of its family, and from its source network when the rule had one. Throws on a spec that is not valid.
 */
export function deleteFlowsArgv(spec: RuleSpec): string[] {
  const problem = ruleSpecProblem(spec);
  if (problem !== undefined) {
    throw new ExecError(`Refusing to delete conntrack entries for an invalid rule: ${problem}`, {
      port: String(spec.port),
      family: String(spec.family),
      source: String(spec.source),
    });
  }
  const family = spec.family === 'v6' ? 'ipv6' : 'ipv4';
  const source = spec.source === anywhere(spec.family) ? [] : ['--orig-src', spec.source];
  return ['conntrack', '-D', '-p', 'udp', '--orig-port-dst', String(spec.port), '-f', family, ...source];
}

/**
 * The specs whose flows need a delete of their own: a spec from a network is left out when a spec from
 * anywhere of the same port and family is there (its delete covers it), and duplicates go.
 */
export function flowFilters(specs: readonly RuleSpec[]): RuleSpec[] {
  const seen = new Set<string>();
  const open = new Set(
    specs
      .filter((spec) => spec.source === anywhere(spec.family))
      .map((spec) => `${spec.family}:${spec.port}`),
  );
  return specs.filter((spec) => {
    const key = `${spec.family}:${spec.port}:${spec.source}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return spec.source === anywhere(spec.family) || !open.has(`${spec.family}:${spec.port}`);
  });
}

/**
 * The number of entries a `conntrack -D` deleted, from its summary line on stderr ("conntrack v1.4.7
 * (conntrack-tools): 3 flow entries have been deleted."). It exits 1 when it deleted none, which is not
 * an error; any other exit, or no summary, throws with the tool's words.
 */
export function parseDeleteResult(result: ExecResult): number {
  const summary = /(\d+) flow entr(?:y|ies) (?:has|have) been deleted/.exec(result.stderr);
  const count = summary ? Number(summary[1]) : undefined;
  if (count !== undefined && (result.exitCode === 0 || (result.exitCode === 1 && count === 0))) return count;
  throw new ExecError(`conntrack exited ${result.exitCode}: ${result.stderr.trim() || '(no output)'}`, {
    command: result.argv.join(' '),
    exitCode: result.exitCode,
  });
}

/** The version in `conntrack --version` output ("conntrack v1.4.7 (conntrack-tools)"), or undefined. */
export function parseVersion(text: string): string | undefined {
  return /conntrack v(\d[\w.~+-]*)/.exec(text)?.[1];
}

/** True when the runner failed because the program does not exist (spawn ENOENT). */
function isMissing(error: unknown): boolean {
  return error instanceof ExecError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** The text of an error for a log line. */
function reasonOf(error: unknown): string {
  if (isMissing(error)) return `${CONNTRACK_MISSING}; fix: ${CONNTRACK_FIX}`;
  return error instanceof Error ? error.message : String(error);
}

/** The FlowCleaner that runs conntrack(8) through `runner` (argv only, the runner's timeout and LANG=C). */
export function createFlowCleaner(runner: Runner, timeoutMs: number): FlowCleaner {
  const forgetOne = async (spec: RuleSpec): Promise<FlowOutcome> => {
    let argv: string[] = [];
    try {
      argv = deleteFlowsArgv(spec);
      const result = await runner(argv, { timeoutMs });
      return { spec, ok: true, deleted: parseDeleteResult(result), argv, durationMs: result.durationMs };
    } catch (error) {
      return { spec, ok: false, missing: isMissing(error), reason: reasonOf(error), argv };
    }
  };
  return {
    async probe() {
      try {
        const result = await runner(['conntrack', '--version'], { timeoutMs });
        const version = parseVersion(`${result.stdout}${result.stderr}`);
        if (result.exitCode === 0 && version !== undefined) return { available: true, version };
        const said = `${result.stdout}${result.stderr}`.trim();
        return {
          available: false,
          problem: `conntrack --version exited ${result.exitCode} (${said || 'no output'}): ${CONNTRACK_WHY}`,
          fix: CONNTRACK_FIX,
        };
      } catch (error) {
        const problem = isMissing(error)
          ? CONNTRACK_MISSING
          : `conntrack cannot be run (${reasonOf(error)}): ${CONNTRACK_WHY}`;
        return { available: false, problem, fix: CONNTRACK_FIX };
      }
    },
    async peers(ports) {
      const found = new Map<string, string>();
      for (const family of ['v4', 'v6'] as const) {
        const wanted = new Set(ports.filter((each) => each.family === family).map((each) => each.port));
        if (wanted.size === 0) continue;
        try {
          const argv = ['conntrack', '-L', '-p', 'udp', '-f', family === 'v4' ? 'ipv4' : 'ipv6'];
          const result = await runner(argv, { timeoutMs });
          for (const [key, address] of parseFlowPeers(result.stdout, family, wanted)) found.set(key, address);
        } catch {
          // No conntrack (status says so elsewhere): the login's address stands.
        }
      }
      return found;
    },
    async forget(specs) {
      // One at a time: each run dumps the whole conntrack hash table in the kernel, and parallel runs
      // only contend there (bench/conntrack.ts). Once the tool turns out to be missing, the rest would
      // fail the same way: they are reported without trying.
      const outcomes: FlowOutcome[] = [];
      let missing: string | undefined;
      for (const spec of flowFilters(specs)) {
        if (missing !== undefined) {
          outcomes.push({ spec, ok: false, missing: true, reason: missing, argv: [] });
          continue;
        }
        const outcome = await forgetOne(spec);
        if (!outcome.ok && outcome.missing) missing = outcome.reason;
        outcomes.push(outcome);
      }
      return outcomes;
    },
  };
}
