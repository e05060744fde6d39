import {
  chmodSync,
  chownSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { MoshwallError } from '../errors.ts';
import type { Runner } from '../exec.ts';
import type { PathState, Step } from './plan.ts';

/** What a path is now (symlinks not followed). */
export function pathState(path: string): PathState {
  try {
    const facts = lstatSync(path);
    if (facts.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(path) };
    if (facts.isDirectory()) return { kind: 'directory' };
    return { kind: 'file' };
  } catch {
    return { kind: 'missing' };
  }
}

/** A temporary name beside path that sudo, systemd and ufw all ignore (leading dot). */
function temporaryBeside(path: string): string {
  return join(dirname(path), `.${path.split('/').at(-1)}.moshwall-new`);
}

/** Puts a prepared temporary file in place atomically, owned by root with mode. */
function commit(temporary: string, path: string, mode: number): void {
  chownSync(temporary, 0, 0);
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}

/** Removes a file or link, or a directory if it is empty; missing is fine. */
function remove(path: string): void {
  const state = pathState(path);
  if (state.kind === 'missing') return;
  if (state.kind !== 'directory') {
    unlinkSync(path);
    return;
  }
  try {
    rmdirSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw error;
  }
}

/**
 * Carries out install/uninstall steps in order; each file lands atomically (temporary + rename), the
 * sudoers drop-in only after `visudo -c` accepted it. Stops at the first failure, naming the step.
 */
export async function applySteps(
  steps: Step[],
  edges: { runner: Runner; timeoutMs: number; flush: () => Promise<number>; say: (line: string) => void },
): Promise<void> {
  for (const step of steps) {
    try {
      switch (step.kind) {
        case 'mkdir':
          if (pathState(step.path).kind === 'missing') mkdirSync(step.path, { mode: step.mode });
          chownSync(step.path, 0, 0);
          chmodSync(step.path, step.mode);
          break;
        case 'copy': {
          const temporary = temporaryBeside(step.to);
          copyFileSync(step.from, temporary);
          commit(temporary, step.to, step.mode);
          break;
        }
        case 'symlink': {
          const temporary = temporaryBeside(step.path);
          remove(temporary);
          symlinkSync(step.target, temporary);
          renameSync(temporary, step.path);
          break;
        }
        case 'write': {
          const temporary = temporaryBeside(step.path);
          writeFileSync(temporary, step.content, { mode: 0o600 });
          commit(temporary, step.path, step.mode);
          break;
        }
        case 'sudoers': {
          const temporary = temporaryBeside(step.path);
          writeFileSync(temporary, step.content, { mode: 0o440 });
          const check = await edges.runner(['visudo', '-c', '-q', '-f', temporary], {
            timeoutMs: edges.timeoutMs,
          });
          if (check.exitCode !== 0) {
            remove(temporary);
            throw new Error(`visudo rejected it: ${(check.stderr || check.stdout).trim()}`);
          }
          commit(temporary, step.path, 0o440);
          break;
        }
        case 'run': {
          const result = await edges.runner(step.argv, { timeoutMs: edges.timeoutMs });
          if (result.exitCode !== 0) throw new Error(`exit ${result.exitCode}: ${result.stderr.trim()}`);
          break;
        }
        case 'flush':
          edges.say(`removed ${await edges.flush()} firewall rule(s) of ours`);
          break;
        case 'remove':
          remove(step.path);
          break;
        case 'note':
          edges.say(`note: ${step.text}`);
          break;
      }
    } catch (error) {
      throw new MoshwallError(
        'EINSTALL',
        `install step failed: ${JSON.stringify(step.kind)} ${'path' in step ? step.path : ''}: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
        },
      );
    }
  }
}
