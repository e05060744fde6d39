import { readFileSync } from 'node:fs';
import type { ExecOptions, ExecResult, Runner } from '../../../src/exec.ts';

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

/** The outputs of real ufw runs in test/fixtures/ufw/outputs.json (see capture.sh there), by name. */
export function loadUfwOutputs(
  path: string,
): Map<string, { argv: string[]; exitCode: number; stdout: string; stderr: string }> {
  const data: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (typeof data !== 'object' || data === null) throw new Error(`${path}: expected an object`);
  const outputs = new Map<string, { argv: string[]; exitCode: number; stdout: string; stderr: string }>();
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
