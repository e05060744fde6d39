import { errnoCode } from '../../discovery/errno.ts';
import { ExecError } from '../../errors.ts';
import type { ExecResult, Runner } from '../../exec.ts';
import type { BackendProbe } from '../../firewall.ts';

/** How a backend runs its firewall tool: through one runner, under one timeout, past its argv guard. */
export interface ToolOptions {
  runner: Runner;
  /** Limit for each run (the runner kills the child after it). */
  timeoutMs: number;
  /** Extra environment for every run (the runner's own is already LANG=C). */
  env?: Record<string, string>;
  /** Throws when argv must not be run (a backend's allowlist of its tool's words); runs before every call. */
  guard?: (argv: string[]) => void;
}

/** Runs one argv (with stdin input when given) and resolves with its result, whatever the exit code. */
export type RunTool = (argv: string[], input?: string) => Promise<ExecResult>;

/** The one way a backend runs its commands: argv guard, then the runner with the timeout and env. */
export function createTool(options: ToolOptions): RunTool {
  const { runner, timeoutMs, env, guard } = options;
  return async (argv, input) => {
    guard?.(argv);
    return runner(argv, {
      timeoutMs,
      ...(env === undefined ? {} : { env }),
      ...(input === undefined ? {} : { input }),
    });
  };
}

/** True when `error` is the runner's failure to start a program that is missing or not executable. */
export function isNotInstalled(error: unknown): boolean {
  const code = errnoCode(error instanceof ExecError ? error.cause : undefined);
  return code === 'ENOENT' || code === 'EACCES';
}

/** What a command printed, stdout then stderr, trimmed: the `output` of an applied change. */
export function outputOf(result: ExecResult): string {
  return [result.stdout.trim(), result.stderr.trim()].filter((text) => text !== '').join('\n');
}

/** What a failed command printed, in one line ("no output" when nothing). */
export function complaintOf(result: ExecResult): string {
  return (result.stderr.trim() || result.stdout.trim() || 'no output').split('\n').join(' / ');
}

/** The answer of a probe for a tool that is missing or does not answer its version question. */
function unusable(detail: string): BackendProbe {
  return { installed: false, active: false, ipv6: false, detail: [detail] };
}

/**
 * Runs the tool's version command, telling "not installed" (not on PATH, not executable) and "does not
 * answer" (non-zero exit) from a real failure, which it throws: `{ version }` when the tool answered,
 * `{ probe }` with the not-installed answer otherwise. `missing` names the fix ("install it (apt install nftables)").
 */
export async function probeVersion(
  run: RunTool,
  argv: string[],
  missing: string,
  complaint: (result: ExecResult) => string = complaintOf,
): Promise<{ version: ExecResult } | { probe: BackendProbe }> {
  let version: ExecResult;
  try {
    version = await run(argv);
  } catch (error) {
    if (!isNotInstalled(error)) throw error;
    return { probe: unusable(missing) };
  }
  if (version.exitCode === 0) return { version };
  return {
    probe: unusable(`\`${argv.join(' ')}\` failed (exit ${version.exitCode}): ${complaint(version)}`),
  };
}
