import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseServiceInfo, parseZoneListing } from '../../../src/backends/firewalld/output.ts';
import { parseOurRule, renderOurRule } from '../../../src/backends/firewalld/rich.ts';
import { tableRules } from '../../../src/backends/iptables/rules.ts';
import { parseIptablesSave } from '../../../src/backends/iptables/save.ts';
import { ourRules } from '../../../src/backends/nftables/ours.ts';
import { parseNftRuleset } from '../../../src/backends/nftables/ruleset.ts';
import { type FastSetName, ipsetScript, parseIpsetSave } from '../../../src/backends/ufw/fastpath.ts';
import { parseUfwOutput } from '../../../src/backends/ufw/output.ts';
import { parseUserRules } from '../../../src/backends/ufw/tuples.ts';
import { RULE_TAG, type RuleSpec } from '../../../src/rules.ts';
import { damaged, fixture, holds, parsesOrRefuses, RUNS, reportCases } from './_arbitraries.ts';
import { anySpec } from './_specs.ts';

type Captures = Record<string, { stdout: string }>;
const captures = (tool: string): Captures => JSON.parse(fixture(`${tool}/outputs.json`)) as Captures;

test('ufw user rules: damaged files parse or are refused naming file and line; ours only when tagged', () => {
  for (const [path, family] of [
    ['ufw/mixed/user.rules', 'v4'],
    ['ufw/mixed/user6.rules', 'v6'],
    ['ufw/forms/user.rules', 'v4'],
  ] as const) {
    holds(
      fc.property(damaged(fixture(path)), (input) => {
        const rules = parsesOrRefuses(
          () => parseUserRules(input, family, '/etc/ufw/test.rules'),
          '/etc/ufw/test.rules',
        );
        for (const rule of rules ?? []) {
          if (!rule.ours) continue;
          assert.equal(rule.comment, RULE_TAG, rule.raw);
          assert.equal(rule.action, 'allow', rule.raw);
          assert.equal(rule.family, family, rule.raw);
        }
      }),
      { numRuns: RUNS },
    );
  }
});

test('ufw command output: any text is read line by line, never a crash', () => {
  const outputs = Object.values(captures('ufw')).map((capture) => capture.stdout);
  holds(
    fc.property(fc.constantFrom(...outputs).chain(damaged), (input) => {
      for (const line of parseUfwOutput(input)) assert.ok(line.text.trim() !== '');
    }),
    { numRuns: RUNS },
  );
});

test('iptables-save: damaged output parses or is refused naming the command; ours only in our chain, with our shape', () => {
  const outputs = Object.entries(captures('iptables'))
    .filter(([name]) => name.startsWith('save-') && !name.includes('not-root'))
    .map(([name, capture]) => [name.includes('-v6-') ? 'v6' : 'v4', capture.stdout] as const);
  holds(
    fc.property(
      fc
        .constantFrom(...outputs)
        .chain(([family, text]) => damaged(text).map((input) => [family, input] as const)),
      ([family, input]) => {
        const table = parsesOrRefuses(
          () => parseIptablesSave(input, 'iptables-save -t filter'),
          'iptables-save',
        );
        if (table === undefined) return;
        for (const rule of tableRules(table, family)) {
          if (!rule.ours) continue;
          // Compared by words: iptables-save separates them by one space, damage may add more.
          const words = rule.raw.trim().split(/\s+/);
          assert.deepEqual(words.slice(0, 2), ['-A', 'moshwall-input'], rule.raw);
          const comment = words[words.indexOf('--comment') + 1];
          assert.ok(comment === RULE_TAG || comment === `"${RULE_TAG}"`, rule.raw);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

/** A JSON value with one value somewhere inside replaced (what a changed nft could print). */
function jsonWithOneChange(value: unknown): fc.Arbitrary<unknown> {
  const paths: (string | number)[][] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (Array.isArray(node)) {
      for (const [index, child] of node.entries()) walk(child, [...path, index]);
    } else if (node !== null && typeof node === 'object')
      for (const [key, child] of Object.entries(node)) walk(child, [...path, key]);
  };
  walk(value, []);
  return fc
    .tuple(fc.constantFrom(...paths), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)))
    .map(([path, replacement]) => {
      if (path.length === 0) return replacement;
      const copy = structuredClone(value) as Record<string | number, unknown>;
      let node = copy;
      for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
      const last = path.at(-1) as string | number;
      if (replacement === undefined) delete node[last];
      else node[last] = replacement;
      return copy;
    });
}

test('nft -j list ruleset: changed JSON parses or is refused naming nft; ours only from moshwall sets', () => {
  const rulesets = Object.entries(captures('nftables'))
    .filter(([name]) => name.startsWith('list-') && !name.includes('not-root') && !name.includes('empty'))
    .map(([, capture]) => JSON.parse(capture.stdout) as unknown);
  holds(
    fc.property(
      fc.oneof(
        fc
          .constantFrom(...rulesets)
          .chain(jsonWithOneChange)
          .map((value) => JSON.stringify(value) ?? ''),
        fc.constantFrom(...rulesets).chain((value) => damaged(JSON.stringify(value))),
      ),
      (input) => {
        const ruleset = parsesOrRefuses(() => parseNftRuleset(input), 'nft');
        if (ruleset === undefined) return;
        for (const rule of ourRules(ruleset)) {
          assert.match(rule.raw, / moshwall_(v4|v6)_\w+$/, rule.raw);
          assert.ok(rule.ours && rule.comment === RULE_TAG);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

test('ipset save: what moshwall writes is read back; damaged output parses or is refused naming the set', () => {
  const sets: [FastSetName, (spec: RuleSpec) => boolean][] = [
    ['moshwall-any4', (spec) => spec.family === 'v4' && spec.source === '0.0.0.0/0'],
    ['moshwall-any6', (spec) => spec.family === 'v6' && spec.source === '::/0'],
    ['moshwall-net4', (spec) => spec.family === 'v4' && spec.source !== '0.0.0.0/0'],
    ['moshwall-net6', (spec) => spec.family === 'v6' && spec.source !== '::/0'],
  ];
  for (const [set, belongs] of sets) {
    holds(
      fc.property(
        fc.uniqueArray(anySpec.filter(belongs), { maxLength: 8, selector: (spec) => JSON.stringify(spec) }),
        (specs) => {
          const save = ipsetScript('add', specs);
          const listed = parseIpsetSave(set, `create ${set} hash:net,port\n${save}`);
          assert.deepEqual(
            new Set(listed.map((spec) => JSON.stringify(spec))),
            new Set(specs.map((spec) => JSON.stringify(spec))),
          );
          for (const input of fc.sample(damaged(save), 5)) {
            for (const spec of parsesOrRefuses(() => parseIpsetSave(set, input), set) ?? [])
              assert.ok(belongs(spec));
          }
        },
      ),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  }
});

test('firewalld rich rules: ours round-trip exactly; any other text is never ours', () => {
  holds(
    fc.property(anySpec, (spec) => assert.deepEqual(parseOurRule(renderOurRule(spec)), spec)),
    { numRuns: RUNS },
  );
  const texts = fixture('firewalld/list-rich-rules-mixed.txt').split('\n').filter(Boolean);
  holds(
    fc.property(fc.constantFrom(...texts).chain(damaged), (input) => {
      const spec = parseOurRule(input);
      if (spec !== undefined) assert.equal(renderOurRule(spec), input);
    }),
    { numRuns: RUNS },
  );
});

test('firewall-cmd listings: damaged zone and service listings parse or are refused, never a crash', () => {
  for (const file of ['list-all-mixed.txt', 'list-all-stock.txt', 'list-all-trusted.txt']) {
    holds(
      fc.property(damaged(fixture(`firewalld/${file}`)), (input) => {
        parsesOrRefuses(() => parseZoneListing(input), 'firewall-cmd');
      }),
      { numRuns: RUNS },
    );
  }
  for (const file of ['info-service-ssh.txt', 'info-service-mosh.txt', 'info-service-dns.txt']) {
    holds(
      fc.property(damaged(fixture(`firewalld/${file}`)), (input) => {
        parsesOrRefuses(() => parseServiceInfo(input), 'firewall-cmd');
      }),
      { numRuns: RUNS },
    );
  }
});

reportCases('firewall-outputs');
