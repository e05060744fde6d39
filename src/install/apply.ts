import {
  chmodSync,
  chownSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { assertSafeInstallUfwArgv, UFW_RELOAD_ARGV } from '../backends/ufw/commands.ts';
import { MoshwallError } from '../errors.ts';
import type { ExecResult, Runner } from '../exec.ts';
import type { PathState } from './plan.ts';
import { describeStep, type Step } from './steps.ts';

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

/** Writes a file atomically (temporary + rename), owned by root with mode. */
function writeAtomically(path: string, content: string, mode: number): void {
  const temporary = temporaryBeside(path);
  writeFileSync(temporary, content, { mode: 0o600 });
  commit(temporary, path, mode);
}

/** Runs `ufw reload` (LANG=C); throws with ufw's words unless it exited 0. */
async function reloadUfw(runner: Runner, timeoutMs: number): Promise<void> {
  const argv = [...UFW_RELOAD_ARGV];
  assertSafeInstallUfwArgv(argv);
  const result = await runner(argv, { timeoutMs, env: { LANG: 'C', LC_ALL: 'C' } });
  if (result.exitCode !== 0) {
    throw new Error(
      `ufw reload failed (exit ${result.exitCode}): ${(result.stderr || result.stdout).trim()}`,
    );
  }
}

/**
 * `ufw reload` after a hook change; if it fails, puts the files back as they were and reloads again, so
 * UFW is left loading what it loaded before, then throws naming both outcomes.
 */
async function reloadOrRollBack(
  step: Extract<Step, { kind: 'ufw-reload' }>,
  runner: Runner,
  timeoutMs: number,
): Promise<void> {
  try {
    await reloadUfw(runner, timeoutMs);
  } catch (error) {
    for (const file of step.rollback) writeAtomically(file.path, file.content, file.mode);
    const again = await reloadUfw(runner, timeoutMs).then(
      () => 'the files were put back and UFW reloaded them',
      (second: unknown) =>
        `the files were put back, but reloading them failed too: ${second instanceof Error ? second.message : String(second)}`,
    );
    throw new Error(`${error instanceof Error ? error.message : String(error)}; ${again}`);
  }
}

/** Destroys each of these sets that exists (`ipset list -n` names them); no ipset installed means none. */
async function destroySets(sets: string[], runner: Runner, timeoutMs: number): Promise<string[]> {
  let names: ExecResult;
  try {
    names = await runner(['ipset', 'list', '-n'], { timeoutMs });
  } catch {
    return [];
  }
  if (names.exitCode !== 0) throw new Error(`ipset list -n failed: ${names.stderr.trim()}`);
  const existing = new Set(names.stdout.split('\n').map((line) => line.trim()));
  const destroyed: string[] = [];
  for (const set of sets.filter((name) => existing.has(name))) {
    const result = await runner(['ipset', 'destroy', set], { timeoutMs });
    if (result.exitCode !== 0) throw new Error(`ipset destroy ${set} failed: ${result.stderr.trim()}`);
    destroyed.push(set);
  }
  return destroyed;
}

/** The script `text` with its first line made `#!<interpreter>` (replacing a `#!` line it had). */
export function withInterpreter(text: string, interpreter: string): string {
  const rest = text.startsWith('#!') ? text.slice(text.indexOf('\n') + 1) : text;
  return `#!${interpreter}\n${rest}`;
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
          if (step.interpreter === undefined) copyFileSync(step.from, temporary);
          else writeFileSync(temporary, withInterpreter(readFileSync(step.from, 'utf8'), step.interpreter));
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
        case 'write':
          writeAtomically(step.path, step.content, step.mode);
          break;
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
        case 'ufw-reload':
          await reloadOrRollBack(step, edges.runner, edges.timeoutMs);
          break;
        case 'ipset-destroy': {
          const destroyed = await destroySets(step.sets, edges.runner, edges.timeoutMs);
          edges.say(`destroyed ipset(s): ${destroyed.length > 0 ? destroyed.join(', ') : 'none existed'}`);
          break;
        }
      }
    } catch (error) {
      // The step's own words (a run step's argv, a write's path) say what failed; the rest is kept.
      throw new MoshwallError(
        'EINSTALL',
        `install step failed: ${describeStep(step)}: ${error instanceof Error ? error.message : String(error)}; ` +
          'fix that and run the command again',
        {
          context: {
            step: step.kind,
            ...('argv' in step ? { argv: step.argv.join(' ') } : {}),
            ...('path' in step ? { path: step.path } : {}),
          },
          cause: error,
        },
      );
    }
  }
}
