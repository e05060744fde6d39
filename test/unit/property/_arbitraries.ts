import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after } from 'node:test';
import fc from 'fast-check';
import { MoshwallError } from '../../../src/errors.ts';

/** How many generated cases each property runs; MOSHWALL_PROPERTY_RUNS raises it for a deeper search. */
export const RUNS = Number(process.env.MOSHWALL_PROPERTY_RUNS ?? 300);

/** A fixture file of the repository as text. */
export function fixture(path: string): string {
  return readFileSync(new URL(`../../fixtures/${path}`, import.meta.url), 'utf8');
}

/** One edit of a text: what hostile or broken input does to a well-formed one. */
type Edit =
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'duplicate-line'; at: number }
  | { kind: 'drop-line'; at: number }
  | { kind: 'swap-lines'; at: number; with: number }
  | { kind: 'truncate'; at: number };

/** Characters that matter to line- and word-based parsers, plus any code unit at all. */
const nasty = fc.oneof(
  fc.constantFrom('\n', '\t', ' ', '\0', '\r', '"', "'", ':', '/', '#', '=', '(', ')', '-', '%', '\u001b[2J'),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ maxLength: 12 }),
);

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: nasty }),
  fc.record({ kind: fc.constant('duplicate-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('drop-line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap-lines' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

/** The text after one edit (positions taken modulo the text's length). */
function applyEdit(text: string, change: Edit): string {
  const at = text.length === 0 ? 0 : change.at % text.length;
  const lines = text.split('\n');
  const line = lines.length === 0 ? 0 : change.at % lines.length;
  switch (change.kind) {
    case 'delete':
      return text.slice(0, at) + text.slice(at + change.length);
    case 'insert':
      return text.slice(0, at) + change.text + text.slice(at);
    case 'duplicate-line':
      return [...lines.slice(0, line + 1), ...lines.slice(line)].join('\n');
    case 'drop-line':
      return [...lines.slice(0, line), ...lines.slice(line + 1)].join('\n');
    case 'swap-lines': {
      const other = change.with % lines.length;
      const swapped = [...lines];
      [swapped[line], swapped[other]] = [lines[other] ?? '', lines[line] ?? ''];
      return swapped.join('\n');
    }
    case 'truncate':
      return text.slice(0, at);
  }
}

/** Texts made from a well-formed one by one to four edits, and now and then any text at all. */
export function damaged(text: string): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => edits.reduce(applyEdit, text)),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  );
}

/**
 * Runs parse on input: it may return, or refuse with a MoshwallError whose message (or context) names
 * `names`; anything else (a TypeError, a RangeError, a plain Error) is a crash and fails the property.
 */
export function parsesOrRefuses<T>(parse: () => T, names: string): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof MoshwallError)) {
      throw new Error(`crashed instead of refusing: ${error instanceof Error ? error.stack : String(error)}`);
    }
    const said = `${error.message} ${JSON.stringify(error.context)}`;
    assert.ok(said.includes(names), `the refusal does not name ${names}: ${said}`);
    return undefined;
  }
}

let casesRun = 0;

/** fc.assert that also counts the generated cases, for the figure `reportCases` prints. */
export function holds<T>(property: fc.IProperty<T>, options: { numRuns: number }): void;
export function holds<T>(property: fc.IAsyncProperty<T>, options: { numRuns: number }): Promise<void>;
export function holds<T>(
  property: fc.IProperty<T> | fc.IAsyncProperty<T>,
  options: { numRuns: number },
): void | Promise<void> {
  casesRun += options.numRuns;
  if (property.isAsync()) return fc.assert(property as fc.IAsyncProperty<T>, options).catch(withCause);
  try {
    fc.assert(property as fc.IProperty<T>, options);
  } catch (error) {
    withCause(error);
  }
}

/** Rethrows fast-check's failure with the failing assertion's message in its own (the TAP output shows only that). */
function withCause(error: unknown): never {
  if (error instanceof Error && error.cause instanceof Error)
    throw new Error(`${error.message}\nCause: ${error.cause.message}`, { cause: error.cause });
  throw error;
}

/** Prints how many generated cases this file's properties ran (a TAP comment line). */
export function reportCases(file: string): void {
  after(() => console.log(`property tests, ${file}: ${casesRun} generated cases`));
}
