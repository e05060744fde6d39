import { FAST_CHAINS, FAST_SET_NAMES, FAST_SET_TYPES, fastPathRules } from '../backends/ufw/fastpath.ts';
import { MoshwallError } from '../errors.ts';
import type { Family } from '../model.ts';
import type { Step } from './steps.ts';

/*
 * The UFW fast path's hook: a marked block in /etc/ufw/after.rules and after6.rules (our match rules,
 * first in ufw-after-input), and one in /etc/ufw/before.init's `start)` branch creating our sets before
 * UFW loads its rules (a rule naming a missing set would make the whole file fail to load). Blocks are
 * whole lines inserted before/after an anchor line, so removing them gives back the file byte for byte.
 */

export const BLOCK_BEGIN = '# BEGIN moshwall fast path';
export const BLOCK_END = '# END moshwall fast path';

/** The hook files in a UFW config directory (/etc/ufw). */
export function hookFiles(ufwDir: string): { v4: string; v6: string; init: string } {
  return { v4: `${ufwDir}/after.rules`, v6: `${ufwDir}/after6.rules`, init: `${ufwDir}/before.init` };
}

/** Lines of a text without their "\n" (a "\r" stays on its line), and whether lines end in CRLF. */
function splitLines(text: string): { lines: string[]; crlf: boolean } {
  const lines = text.split('\n');
  return { lines, crlf: lines.length > 1 && (lines[0] ?? '').endsWith('\r') };
}

/** The index of our BEGIN and END lines, undefined when there is no block; a damaged block throws. */
export function findBlock(text: string, file: string): { begin: number; end: number } | undefined {
  const { lines } = splitLines(text);
  const begins = lines.flatMap((line, index) => (line.trim().startsWith(BLOCK_BEGIN) ? [index] : []));
  const ends = lines.flatMap((line, index) => (line.trim() === BLOCK_END ? [index] : []));
  if (begins.length === 0 && ends.length === 0) return undefined;
  const [begin, end] = [begins[0] ?? -1, ends[0] ?? -1];
  if (begins.length !== 1 || ends.length !== 1 || begin > end) {
    throw new MoshwallError(
      'EINSTALL',
      `${file} has a damaged moshwall block (${begins.length} "${BLOCK_BEGIN}" and ${ends.length} "${BLOCK_END}" lines, ` +
        'expected one of each in that order); repair or remove it by hand, then run moshwall again',
      { context: { file } },
    );
  }
  return { begin, end };
}

/** The text with our block (if any) removed: exactly the lines from BEGIN to END. */
export function withoutBlock(text: string, file: string): string {
  const block = findBlock(text, file);
  if (block === undefined) return text;
  const { lines } = splitLines(text);
  lines.splice(block.begin, block.end - block.begin + 1);
  return lines.join('\n');
}

/** Throws the refusal for a file without the line our block goes next to. */
function noAnchor(file: string, expected: string): never {
  throw new MoshwallError(
    'EINSTALL',
    `${file} does not look like UFW's file: ${expected}; refusing to add the moshwall fast-path hook`,
    { context: { file } },
  );
}

/** Inserts `block` (lines without EOL) at `index`, with the file's line ending, replacing an old block of ours. */
function insertAt(text: string, file: string, place: (lines: string[]) => number, block: string[]): string {
  const clean = withoutBlock(text, file);
  const { lines, crlf } = splitLines(clean);
  const index = place(lines);
  lines.splice(index, 0, ...block.map((line) => (crlf ? `${line}\r` : line)));
  return lines.join('\n');
}

/** The block of after.rules / after6.rules: our two match rules for the family. */
export function rulesBlock(family: Family): string[] {
  return [
    `${BLOCK_BEGIN} (moshwall install added it; moshwall uninstall removes it; see \`moshwall doctor\`)`,
    ...fastPathRules(family),
    BLOCK_END,
  ];
}

/**
 * after.rules (v4) or after6.rules (v6) with our block first in ufw[6]-after-input: before the first "-A"
 * line of the *filter section (or its COMMIT). Throws when the file has no *filter section declaring the chain.
 */
export function withRulesBlock(text: string, file: string, family: Family): string {
  const chain = FAST_CHAINS[family];
  return insertAt(
    text,
    file,
    (lines) => {
      const bare = lines.map((line) => line.trim());
      const start = bare.indexOf('*filter');
      const commit = bare.indexOf('COMMIT', start + 1);
      if (start < 0 || commit < 0) noAnchor(file, 'no "*filter" section ending in "COMMIT"');
      const section = bare.slice(start + 1, commit);
      if (!section.some((line) => line.startsWith(`:${chain} `)))
        noAnchor(file, `its *filter section does not declare :${chain}`);
      const firstRule = section.findIndex((line) => line.startsWith('-A '));
      return firstRule < 0 ? commit : start + 1 + firstRule;
    },
    rulesBlock(family),
  );
}

/** The block of before.init: create our sets (-exist: keeps their members across `ufw reload`). */
export function initBlock(originalMode: number): string[] {
  const creates = FAST_SET_NAMES.map(
    (name) => `        ipset -exist create ${name} ${FAST_SET_TYPES[name].join(' ')} || true`,
  );
  return [
    `    ${BLOCK_BEGIN} (file mode before: ${originalMode.toString(8).padStart(4, '0')}; moshwall uninstall removes it)`,
    '    if command -v ipset >/dev/null 2>&1; then',
    ...creates,
    '    fi',
    `    ${BLOCK_END}`,
  ];
}

/** The file mode before.init had before our block, as our BEGIN line records it; undefined if none is recorded. */
export function recordedInitMode(text: string, file: string): number | undefined {
  const block = findBlock(text, file);
  if (block === undefined) return undefined;
  const match = /file mode before: ([0-7]{3,4})/.exec(splitLines(text).lines[block.begin] ?? '');
  return match ? Number.parseInt(match[1] ?? '', 8) : undefined;
}

/** before.init with our block right after its `start)` line. Throws when there is no such line. */
export function withInitBlock(text: string, file: string, originalMode: number): string {
  return insertAt(
    text,
    file,
    (lines) => {
      const start = lines.findIndex((line) => /^\s*start\)\s*$/.test(line));
      if (start < 0) noAnchor(file, 'no `start)` case line');
      return start + 1;
    },
    initBlock(originalMode),
  );
}

/** What the hook plan reads from the host: file text and mode, or undefined when missing. */
export interface HookFacts {
  ufwDir: string;
  readText: (path: string) => string | undefined;
  modeOf: (path: string) => number | undefined;
}

/** One hook file as it is, and what it becomes. */
interface FileChange {
  path: string;
  before: string;
  after: string;
  modeBefore: number;
  modeAfter: number;
}

/** The text and mode of a hook file, or an EINSTALL error naming it when it is missing. */
function readHookFile(facts: HookFacts, path: string): { text: string; mode: number } {
  const text = facts.readText(path);
  const mode = facts.modeOf(path);
  if (text === undefined || mode === undefined) {
    throw new MoshwallError('EINSTALL', `${path} not found: is UFW installed (apt-get install ufw)?`, {
      context: { path },
    });
  }
  return { text, mode };
}

/** Write steps for the files that change, then one `ufw reload` that puts them back if it fails. */
function stepsFor(changes: FileChange[]): Step[] {
  const changed = changes.filter(
    (change) => change.before !== change.after || change.modeBefore !== change.modeAfter,
  );
  if (changed.length === 0) return [];
  return [
    ...changed.map(
      (change): Step => ({ kind: 'write', path: change.path, content: change.after, mode: change.modeAfter }),
    ),
    {
      kind: 'ufw-reload',
      rollback: changed.map((change) => ({
        path: change.path,
        content: change.before,
        mode: change.modeBefore,
      })),
    },
  ];
}

/**
 * The steps that add the fast-path hook (idempotent): create our sets, add or refresh the blocks in
 * after.rules, after6.rules and before.init (made executable so UFW runs it), then `ufw reload`.
 */
export function planHookInstall(facts: HookFacts): Step[] {
  const files = hookFiles(facts.ufwDir);
  const v4 = readHookFile(facts, files.v4);
  const v6 = readHookFile(facts, files.v6);
  const init = readHookFile(facts, files.init);
  const originalMode = recordedInitMode(init.text, files.init) ?? init.mode;
  const changes: FileChange[] = [
    {
      path: files.v4,
      before: v4.text,
      after: withRulesBlock(v4.text, files.v4, 'v4'),
      modeBefore: v4.mode,
      modeAfter: v4.mode,
    },
    {
      path: files.v6,
      before: v6.text,
      after: withRulesBlock(v6.text, files.v6, 'v6'),
      modeBefore: v6.mode,
      modeAfter: v6.mode,
    },
    {
      path: files.init,
      before: init.text,
      after: withInitBlock(init.text, files.init, originalMode),
      modeBefore: init.mode,
      // UFW runs before.init only when it is executable (root's test -x: the owner bit suffices).
      modeAfter: init.mode | 0o100,
    },
  ];
  const creates = FAST_SET_NAMES.map(
    (name): Step => ({ kind: 'run', argv: ['ipset', '-exist', 'create', name, ...FAST_SET_TYPES[name]] }),
  );
  return [...creates, ...stepsFor(changes)];
}

/** True when any hook file holds our block (a damaged block counts, and makes removal refuse). */
export function hookInstalled(facts: HookFacts): boolean {
  const files = hookFiles(facts.ufwDir);
  return [files.v4, files.v6, files.init].some(
    (path) => facts.readText(path)?.includes(BLOCK_BEGIN.slice(2)) === true,
  );
}

/**
 * The steps that remove the hook: each file without our block (before.init back to its recorded mode),
 * `ufw reload` so no rule references our sets, then destroy our sets (only ours, only if they exist).
 */
export function planHookRemoval(facts: HookFacts): Step[] {
  const files = hookFiles(facts.ufwDir);
  const changes: FileChange[] = [];
  for (const path of [files.v4, files.v6, files.init]) {
    const text = facts.readText(path);
    const mode = facts.modeOf(path);
    if (text === undefined || mode === undefined) continue;
    const recorded = path === files.init ? recordedInitMode(text, path) : undefined;
    changes.push({
      path,
      before: text,
      after: withoutBlock(text, path),
      modeBefore: mode,
      modeAfter: recorded ?? mode,
    });
  }
  return [...stepsFor(changes), { kind: 'ipset-destroy', sets: [...FAST_SET_NAMES] }];
}
