import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';

/*
 * The import graph of src/, read from the source files' import and export-from lines (type-only ones
 * included): no module may reach itself through its imports, and the core never imports from backends/.
 */

const SRC = new URL('../../../src/', import.meta.url).pathname;

/**
 * The core: every module at the top of src/ (model, rules, firewall, policy, reconcile, engine, status,
 * doctor, config, errors…): plain values and decisions that every backend builds on, never the other way.
 */
const CORE = readdirSync(SRC).filter((name) => name.endsWith('.ts'));
const CORE_NAMED = [
  'model.ts',
  'rules.ts',
  'firewall.ts',
  'policy.ts',
  'reconcile.ts',
  'engine.ts',
  'status.ts',
];

/** Every .ts file under `dir`, relative to src/. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** The relative modules a file's text imports, resolved against its own path (relative to src/). */
export function importsOf(file: string, text: string): string[] {
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s+'([^']+)'/gms),
    ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
  ].map((match) => match[1] ?? '');
  return specifiers
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => relative(SRC, join(SRC, dirname(file), specifier)));
}

/** The first import circle in `graph` (each module's imports), as a path back to its start, if any. */
export function findCircle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const circle = visit(next);
      if (circle !== undefined) return circle;
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const circle = visit(node);
    if (circle !== undefined) return circle;
  }
  return undefined;
}

const graph = new Map(
  sourceFiles(SRC).map((file) => [file, importsOf(file, readFileSync(join(SRC, file), 'utf8'))]),
);

describe('import graph of src/', () => {
  it('finds the imports of a file, type-only, multi-line and re-exports included', () => {
    const text =
      "import type { A } from './a.ts';\nimport {\n  b,\n  c,\n} from '../b.ts';\nexport { d } from './d/e.ts';\nimport { x } from 'node:fs';\n";
    assert.deepEqual(importsOf('backends/ufw.ts', text), ['backends/a.ts', 'b.ts', 'backends/d/e.ts']);
  });

  it('finds a circle when there is one, and none in a tree', () => {
    const circle = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
    ]);
    assert.deepEqual(findCircle(circle), ['a.ts', 'b.ts', 'c.ts', 'a.ts']);
    assert.equal(
      findCircle(
        new Map([
          ['a.ts', ['b.ts', 'c.ts']],
          ['b.ts', ['c.ts']],
        ]),
      ),
      undefined,
    );
  });

  it('reads every source file, and each import it names exists', () => {
    assert.ok(graph.size > 50, `only ${graph.size} files found under ${SRC}`);
    for (const [file, imports] of graph) {
      for (const target of imports)
        assert.ok(graph.has(target), `${file} imports ${target}, which is not in src/`);
    }
  });

  it('has no import circle', () => {
    const circle = findCircle(graph);
    assert.equal(circle, undefined, `import circle: ${circle?.join(' -> ')}`);
  });

  it('has no import from the core into backends/', () => {
    for (const file of CORE_NAMED) assert.ok(CORE.includes(file), `core module ${file} is missing`);
    const arrows = CORE.flatMap((file) =>
      (graph.get(file) ?? [])
        .filter((target) => target.startsWith('backends/'))
        .map((target) => `${file} -> ${target}`),
    );
    assert.deepEqual(arrows, []);
  });
});
