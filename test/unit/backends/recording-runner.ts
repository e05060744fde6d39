import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ExecError, MoshwallError } from '../../../src/errors.ts';
import type { ExecOptions, ExecResult, Runner } from '../../../src/exec.ts';
import type { Backend } from '../../../src/firewall.ts';
import type { RuleSpec } from '../../../src/rules.ts';
import { v4 } from '../../support/builders.ts';

/** What a fake command answers: its exit code and output, or an error to reject with (as spawn failures do). */
export type CannedAnswer = { exitCode: number; stdout: string; stderr: string } | Error;

export interface RecordedCall {
  argv: string[];
  options: ExecOptions;
}

/**
 * A Runner that records every call and answers from `answer` (fail2ban's golden-command recorder):
 * the test then asserts the exact argv list, options included, and that nothing else was run.
 */
export function createRecordingRunner(answer: (argv: string[], index: number) => CannedAnswer): {
  runner: Runner;
  calls: RecordedCall[];
} {
  const calls: RecordedCall[] = [];
  const runner: Runner = async (argv, options) => {
    calls.push({ argv: [...argv], options: structuredClone(options) });
    const canned = answer(argv, calls.length - 1);
    if (canned instanceof Error) throw canned;
    return { argv, durationMs: 1, ...canned } satisfies ExecResult;
  };
  return { runner, calls };
}

/** Answers calls in order from a list, failing the test (by throwing) if more calls come than answers. */
export function inOrder(answers: CannedAnswer[]): (argv: string[], index: number) => CannedAnswer {
  return (argv, index) => answers[index] ?? new Error(`unexpected extra command: ${argv.join(' ')}`);
}

/** The backend `create` makes over a recording runner that answers `answers` in order, with its recorded calls. */
export function recordedBackend<B>(
  answers: CannedAnswer[],
  create: (runner: Runner) => B,
): { backend: B; runner: Runner; calls: RecordedCall[] } {
  const recorder = createRecordingRunner(inOrder(answers));
  return { ...recorder, backend: create(recorder.runner) };
}

/** What a Runner throws when argv[0] is not installed: the ExecError of a spawn that failed with ENOENT. */
export function notInstalled(argv: string[]): ExecError {
  const enoent = Object.assign(new Error(`spawn ${argv[0]} ENOENT`), { code: 'ENOENT' });
  return new ExecError(`Could not run ${argv[0]}`, { command: argv.join(' ') }, enoent);
}

/** Specs no backend may act on: port 0 and 65536, a fractional port, host bits set, not a CIDR, wrong family. */
const INVALID_SPECS: RuleSpec[] = [
  v4(0),
  v4(65536),
  v4(60000.5),
  v4(60001, '10.0.0.1/8'),
  v4(60001, 'any'),
  v4(60001, '::/0'),
];

/**
 * Asserts that allow and revoke each refuse every invalid spec (INVALID_SPECS, then `more`, each batched
 * after a valid one) with a MoshwallError, and that no command ran at all.
 */
export async function assertRefusedBeforeAnyCommand(
  { backend, calls }: { backend: Backend; calls: RecordedCall[] },
  more: RuleSpec[],
): Promise<void> {
  for (const spec of [...INVALID_SPECS, ...more]) {
    await assert.rejects(backend.allow([v4(60002), spec]), MoshwallError, JSON.stringify(spec));
    await assert.rejects(backend.revoke([v4(60002), spec]), MoshwallError, JSON.stringify(spec));
  }
  assert.deepEqual(calls, []);
}

/** One real command run as a fixture capture.sh recorded it (test/fixtures/{ufw,iptables,nftables}/outputs.json). */
export interface CapturedRun {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** What capturedRuns gives a test file: every run by name, one run, and one run as a recording runner's answer. */
export interface CapturedRuns {
  outputs: Map<string, CapturedRun>;
  /** The run named `name`, failing the test if the fixture has none. */
  run(name: string): CapturedRun;
  /** The answer the real command gave in the run named `name`, for createRecordingRunner. */
  real(name: string): CannedAnswer;
}

/** The runs a fixture directory's capture.sh recorded in its outputs.json (`dir` ends with a slash). */
export function capturedRuns(dir: URL): CapturedRuns {
  const outputs = loadCapturedRuns(new URL('outputs.json', dir).pathname);
  const run = (name: string): CapturedRun => {
    const output = outputs.get(name);
    assert.ok(output, `no fixture output named ${name}`);
    return output;
  };
  const real = (name: string): CannedAnswer => {
    const { exitCode, stdout, stderr } = run(name);
    return { exitCode, stdout, stderr };
  };
  return { outputs, run, real };
}

/** The runs in an outputs.json, by name, each checked to be {argv, exitCode, stdout, stderr}. */
function loadCapturedRuns(path: string): Map<string, CapturedRun> {
  const data: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (typeof data !== 'object' || data === null) throw new Error(`${path}: expected an object`);
  const outputs = new Map<string, CapturedRun>();
  for (const [name, value] of Object.entries(data)) {
    const entry: unknown = value;
    if (
      typeof entry !== 'object' ||
      entry === null ||
      !(
        'argv' in entry &&
        Array.isArray(entry.argv) &&
        entry.argv.every((word) => typeof word === 'string')
      ) ||
      !('exitCode' in entry && typeof entry.exitCode === 'number') ||
      !('stdout' in entry && typeof entry.stdout === 'string') ||
      !('stderr' in entry && typeof entry.stderr === 'string')
    ) {
      throw new Error(`${path}: entry ${name} is not {argv, exitCode, stdout, stderr}`);
    }
    outputs.set(name, {
      argv: entry.argv,
      exitCode: entry.exitCode,
      stdout: entry.stdout,
      stderr: entry.stderr,
    });
  }
  return outputs;
}
