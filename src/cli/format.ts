import type { AppliedChange } from '../firewall.ts';
import type { RuleSpec } from '../rules.ts';

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
  for (const row of rows) {
    for (const [index, cell] of row.entries()) widths[index] = Math.max(widths[index] ?? 0, cell.length);
  }
  return rows
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
