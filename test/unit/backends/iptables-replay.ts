import type { ExecResult, Runner } from '../../../src/exec.ts';
import type { Family } from '../../../src/model.ts';
import type { RuleSpec } from '../../../src/rules.ts';
import { type CapturedRuns, capturedRuns } from './recording-runner.ts';

/*
 * A replay of iptables-{nft,legacy}-save and -restore --noflush over recorded real outputs
 * (test/fixtures/iptables/outputs.json): each family's filter table starts as the recorded baseline, and a
 * restore input changes it the way the real restore did in the recordings (the unit test checks it
 * reproduces each recorded save). Answers are the recorded ones; only the table text is kept here.
 */

/** One family's filter table: chain declarations in order, and each chain's rules as save lines. */
interface Table {
  header: string[];
  chains: { name: string; declaration: string }[];
  rules: Map<string, string[]>;
  footer: string[];
}

/** A save text split into its declarations and rules. */
function parseSave(text: string): Table {
  const table: Table = { header: [], chains: [], rules: new Map(), footer: [] };
  let inside = false;
  for (const line of text.split('\n')) {
    if (line === '*filter') inside = true;
    else if (line === 'COMMIT') inside = false;
    else if (!inside && line.startsWith('#'))
      (table.chains.length === 0 ? table.header : table.footer).push(line);
    else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0] ?? '';
      table.chains.push({ name, declaration: line });
      table.rules.set(name, []);
    } else if (line.startsWith('-A ')) table.rules.get(line.split(' ')[1] ?? '')?.push(line);
  }
  return table;
}

/** The table as iptables-save prints it. */
function renderSave(table: Table): string {
  const rules = table.chains.flatMap((chain) => table.rules.get(chain.name) ?? []);
  const lines = [...table.header, '*filter', ...table.chains.map((chain) => chain.declaration), ...rules];
  return `${[...lines, 'COMMIT', ...table.footer].join('\n')}\n`;
}

/**
 * Applies a restore --noflush input to a copy of `table`: the new table, or the 1-based number of the
 * line that failed (a -D or -A in a chain that lacks the rule or the chain), when nothing changes.
 */
export function applyRestore(table: Table, input: string): Table | number {
  const next: Table = {
    ...table,
    chains: [...table.chains],
    rules: new Map([...table.rules].map(([k, v]) => [k, [...v]])),
  };
  const lines = input.split('\n');
  for (const [index, line] of lines.entries()) {
    const words = line.split(' ');
    const chain =
      words[0] === '-I' || words[0] === '-A' || words[0] === '-D' || words[0] === '-F' ? words[1] : undefined;
    const rules = chain === undefined ? undefined : next.rules.get(chain);
    if (line === '' || line === '*filter' || line === 'COMMIT') continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0] ?? '';
      if (next.rules.has(name)) next.rules.set(name, []);
      else {
        next.chains.push({ name, declaration: line });
        next.rules.set(name, []);
      }
      continue;
    }
    if (rules === undefined || chain === undefined) return index + 1;
    if (words[0] === '-F') next.rules.set(chain, []);
    else if (words[0] === '-I' && words[2] === '1') rules.unshift(['-A', chain, ...words.slice(3)].join(' '));
    else if (words[0] === '-A') rules.push(line);
    else if (words[0] === '-D') {
      const at = rules.indexOf(['-A', ...words.slice(1)].join(' '));
      if (at === -1) return index + 1;
      rules.splice(at, 1);
    } else return index + 1;
  }
  return next;
}

/** The recorded runs of test/fixtures/iptables. */
export const IPTABLES_RUNS: CapturedRuns = capturedRuns(new URL('../../fixtures/iptables/', import.meta.url));

/** The save text a recorded run printed, parsed. */
export function recordedTable(name: string): Table {
  return parseSave(IPTABLES_RUNS.run(name).stdout);
}

export { renderSave, type Table };

/**
 * A Runner that behaves as iptables-`variant` on a host whose filter tables start as the recorded
 * baseline, answering with the recorded outputs; `addAdminRule` appends an admin's rule to INPUT.
 */
export function createIptablesReplay(variant: 'nft' | 'legacy') {
  const tables: Record<Family, Table> = {
    v4: recordedTable(`save-${variant}-v4-baseline`),
    v6: recordedTable(`save-${variant}-v6-baseline`),
  };
  const familyOf = (program: string): Family => (program.startsWith('ip6') ? 'v6' : 'v4');
  const answer = (name: string, argv: string[]): ExecResult =>
    ({ argv, durationMs: 1, ...IPTABLES_RUNS.real(name) }) as ExecResult;
  const runner: Runner = async (argv, options) => {
    const [program = '', ...args] = argv;
    const family = familyOf(program);
    const base = family === 'v6' ? 'ip6tables' : 'iptables';
    if (program === `iptables-${variant}` && args.join(' ') === '--version')
      return answer(`version-${variant}`, argv);
    if (program === `${base}-${variant}-save` && args.join(' ') === '-t filter') {
      return { argv, exitCode: 0, stdout: renderSave(tables[family]), stderr: '', durationMs: 1 };
    }
    if (program === `${base}-${variant}-restore` && args.join(' ') === '--noflush -w') {
      const next = applyRestore(tables[family], options.input ?? '');
      if (typeof next === 'number') {
        const failed = answer(`restore-${variant}-revoke-v4-missing`, argv);
        return {
          ...failed,
          stderr: failed.stderr.replace(/line \d+ failed/, `line ${next} failed`).replace(/^iptables/, base),
        };
      }
      tables[family] = next;
      return answer(`restore-${variant}-allow-v4-1`, argv);
    }
    throw new Error(`the iptables replay has no answer for: ${argv.join(' ')}`);
  };
  return {
    runner,
    /** The table as iptables-save would print it now. */
    save: (family: Family) => renderSave(tables[family]),
    /** An admin's `iptables -A INPUT -p udp --dport … [-s …] [-m comment --comment …] -j ACCEPT`, as save prints it. */
    addAdminRule(spec: RuleSpec, comment?: string) {
      const anywhere = spec.source === '0.0.0.0/0' || spec.source === '::/0';
      const words = ['-A', 'INPUT', ...(anywhere ? [] : ['-s', spec.source]), '-p', 'udp', '-m', 'udp'];
      words.push(
        '--dport',
        String(spec.port),
        ...(comment === undefined ? [] : ['-m', 'comment', '--comment', comment]),
      );
      tables[spec.family].rules.get('INPUT')?.push([...words, '-j', 'ACCEPT'].join(' '));
    },
  };
}
