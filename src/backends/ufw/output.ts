import { FirewallError } from '../../errors.ts';
import type { ExecResult } from '../../exec.ts';
import type { Family } from '../../model.ts';
import type { UfwCall } from './commands.ts';

/**
 * What one line printed by `ufw allow` / `ufw delete allow` says (ufw 0.36.2, LANG=C). ufw prints one
 * result line per family; "Rules updated" is all it says while the firewall is inactive, whatever it did.
 */
export type UfwLineKind =
  | 'added' // Rule added
  | 'existing' // Skipping adding existing rule
  | 'updated' // Rule updated: ufw replaced a rule with the same match but other action/comment (adoption)
  | 'inserted' // Rule inserted
  | 'written' // Rules updated: firewall inactive, only the rules file was written
  | 'deleted' // Rule deleted
  | 'absent' // Could not delete non-existent rule
  | 'warning' // WARN: …
  | 'unknown';

export interface UfwLine {
  kind: UfwLineKind;
  family: Family;
  text: string;
}

const LINE_KINDS: [RegExp, UfwLineKind][] = [
  [/^Rule added$/, 'added'],
  [/^Skipping adding existing rule$/, 'existing'],
  [/^Rule updated$/, 'updated'],
  [/^Rule inserted$/, 'inserted'],
  [/^Rules updated$/, 'written'],
  [/^Rule deleted$/, 'deleted'],
  [/^Could not delete non-existent rule$/, 'absent'],
  [/^WARN: /, 'warning'],
];

/** The meaning of each non-empty line ufw printed, with the family a " (v6)" suffix names. */
export function parseUfwOutput(stdout: string): UfwLine[] {
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((text) => {
      const v6 = text.endsWith(' (v6)');
      const body = v6 ? text.slice(0, -' (v6)'.length) : text;
      const kind = LINE_KINDS.find(([pattern]) => pattern.test(body))?.[1] ?? 'unknown';
      return { kind, family: v6 ? 'v6' : 'v4', text };
    });
}

const EXPECTED: Record<UfwCall['kind'], readonly UfwLineKind[]> = {
  allow: ['added', 'existing', 'written'],
  revoke: ['deleted', 'absent', 'written'],
};

/**
 * Throws a FirewallError unless ufw did what `call` asked: exit 0, no "ERROR:", no adoption ("Rule
 * updated"), and exactly one expected result line for each family of the call. Returns nothing.
 */
export function assertUfwSucceeded(call: UfwCall, result: ExecResult): void {
  const context = {
    argv: result.argv.join(' '),
    exitCode: result.exitCode,
    stdout: result.stdout.trim(),
    stderr: result.stderr.trim(),
  };
  const command = `ufw ${call.kind === 'allow' ? 'allow' : 'delete allow'} (port ${call.specs[0]?.port})`;
  const errorLine = `${result.stderr}\n${result.stdout}`
    .split('\n')
    .find((line) => line.startsWith('ERROR:'));
  if (result.exitCode !== 0 || errorLine !== undefined) {
    const why = errorLine ?? (result.stderr.trim() || result.stdout.trim() || 'no output');
    throw new FirewallError(`${command} failed with exit code ${result.exitCode}: ${why}`, context);
  }
  const lines = parseUfwOutput(result.stdout).filter((line) => line.kind !== 'warning');
  if (lines.some((line) => line.kind === 'updated' || line.kind === 'inserted')) {
    throw new FirewallError(
      `${command} changed an existing rule instead of adding ours ("Rule updated"): ufw took over a rule ` +
        'with the same match but another action or comment, or reloaded missing chains. Check `ufw status` ' +
        'and restore the rule if it was not ours.',
      context,
    );
  }
  for (const line of lines) {
    if (!EXPECTED[call.kind].includes(line.kind) || !call.families.includes(line.family)) {
      throw new FirewallError(`${command} printed an unexpected line: \`${line.text}\``, context);
    }
  }
  for (const family of call.families) {
    const count = lines.filter((line) => line.family === family).length;
    if (count !== 1) {
      const hint = family === 'v6' && count === 0 ? ' (is IPv6 enabled in the kernel?)' : '';
      throw new FirewallError(
        `${command} printed ${count} result lines for ${family}, expected 1${hint}`,
        context,
      );
    }
  }
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
