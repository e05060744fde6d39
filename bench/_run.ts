// How every bench script ends: its main's exit code (0 when it returns nothing), or 1 with the error;
// and how it prints and keeps its result.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Runs main and sets the exit code from it; a failure prints `<name> failed: <stack>` and exits 1. */
export function runBench(name: string, main: () => Promise<unknown>): void {
  main().then(
    (code) => {
      process.exitCode = typeof code === 'number' ? code : 0;
    },
    (error: unknown) => {
      process.stderr.write(
        `${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    },
  );
}

/** Prints a bench's result text and writes it to `file` (a URL or path under bench/results/). */
export function printAndWrite(file: string, text: string): void {
  process.stdout.write(text);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

/** A Markdown table with every column padded to its widest cell (as the formatter writes it). */
export function markdownTable(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(3, ...all.map((row) => [...(row[column] ?? '')].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell + ' '.repeat((widths[column] ?? 0) - [...cell].length)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)];
}
