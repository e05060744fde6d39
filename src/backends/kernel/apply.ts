import { FirewallError, MoshwallError } from '../../errors.ts';
import type { AppliedChange } from '../../firewall.ts';
import type { RuleSpec } from '../../rules.ts';

/** One change of a backend's plan: what it does to which specs (its argv and input are the backend's). */
export interface PlannedStep {
  kind: 'allow' | 'revoke';
  specs: RuleSpec[];
}

/** "allow v4 udp 60001,60002": a step in a message. */
export function describePlannedStep(step: PlannedStep): string {
  const families = [...new Set(step.specs.map((spec) => spec.family))].join('+');
  const ports = [...new Set(step.specs.map((spec) => spec.port))].join(',');
  return `${step.kind} ${families} udp ${ports}`;
}

/**
 * Runs a plan's steps in order, stopping at the first failure. A failure after some steps took effect is
 * one FirewallError for every backend, saying which steps were applied and which not (the next reconcile
 * lists the firewall and carries on from there); a first-step failure or a bug is thrown as it is.
 */
export async function applyInOrder<S extends PlannedStep>(
  tool: string,
  steps: readonly S[],
  runStep: (step: S) => Promise<AppliedChange>,
): Promise<AppliedChange[]> {
  const applied: AppliedChange[] = [];
  for (const step of steps) {
    try {
      applied.push(await runStep(step));
    } catch (error) {
      if (applied.length === 0 || !(error instanceof MoshwallError)) throw error;
      throw partialFailure(tool, steps, applied.length, error);
    }
  }
  return applied;
}

/** The error of a plan that failed at step `done` (0-based) after the steps before it took effect. */
export function partialFailure(
  tool: string,
  steps: readonly PlannedStep[],
  done: number,
  error: MoshwallError,
): FirewallError {
  const list = (part: readonly PlannedStep[]) => part.map(describePlannedStep).join('; ');
  const applied = `applied: ${list(steps.slice(0, done))}`;
  const notApplied = `not applied: ${list(steps.slice(done))}`;
  return new FirewallError(
    `${error.message} (${done} of ${steps.length} ${tool} steps had succeeded; ${applied}; ${notApplied})`,
    { ...error.context, completed: done, steps: steps.length },
    error,
  );
}
