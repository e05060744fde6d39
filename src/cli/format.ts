import type { AppliedChange } from '../firewall.ts';
import type { RuleSpec } from '../rules.ts';

/** C0/C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides a terminal obeys. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const TERMINAL_CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same, less newline and tab: what may never reach a terminal even inside multi-line output. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const OUTPUT_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A control character as visible text: \n, \r, \t, else \u followed by four hex digits. */
function visibleControl(char: string): string {
  if (char === '\n') return '\\n';
  if (char === '\r') return '\\r';
  if (char === '\t') return '\\t';
  return `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`;
}

/**
 * A value from outside (a process's exe or name, a user name, a reason quoting them) made safe for one
 * line of terminal output: every control character, newlines included, shown as an escape, so nobody
 * can forge lines or send escape sequences through what moshwall prints.
 */
export function terminalText(value: string): string {
  return value.replace(TERMINAL_CONTROLS, visibleControl);
}

/**
 * Whole output text made safe for a terminal: newlines and tabs stay, every other control character
 * (ESC, C1 CSI, bidi overrides) is shown as a \u escape. Inside JSON strings that escape is the
 * same value, so JSON output stays valid and equal.
 */
export function escapeControls(text: string): string {
  return text.replace(OUTPUT_CONTROLS, visibleControl);
}

/** "60001/udp v4 from 0.0.0.0/0" — how a spec reads in terminal output. */
export function describeSpec(spec: RuleSpec): string {
  return `${spec.port}/udp ${spec.family} from ${spec.source}`;
}

/** Seconds as a short age: "42s", "5m", "3h12m", "2d4h". */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** Rows as left-aligned columns separated by two spaces; the first row is the header. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  const safeRows = rows.map((row) => row.map(terminalText));
  for (const row of safeRows) {
    for (const [index, cell] of row.entries()) widths[index] = Math.max(widths[index] ?? 0, cell.length);
  }
  return safeRows
    .map((row) =>
      row
        .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The commands run, one per line, for --verbose output. */
export function describeApplied(applied: AppliedChange[]): string[] {
  return applied.map((change) => `  ran: ${change.argv.join(' ')}`);
}
