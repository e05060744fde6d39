import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseIptablesSave } from '../../../src/backends/iptables/save.ts';
import { planIptablesFootprintRemoval, restoreInputProblem } from '../../../src/backends/iptables.ts';
import { parseNftRuleset } from '../../../src/backends/nftables/ruleset.ts';
import { nftScriptProblem, planNftFootprintRemoval } from '../../../src/backends/nftables/script.ts';
import { capturedRuns } from './recording-runner.ts';

const nft = capturedRuns(new URL('../../fixtures/nftables/', import.meta.url));
const iptables = capturedRuns(new URL('../../fixtures/iptables/', import.meta.url));

/** A listing real nft gave, with every element of our sets taken out (as after a flush's revoke). */
function emptied(name: string) {
  const ruleset = parseNftRuleset(nft.run(`list-${name}`).stdout);
  return { ...ruleset, sets: ruleset.sets.map((set) => ({ ...set, elements: [] })) };
}

describe('footprint removal after a flush (issue 11 §4)', () => {
  it('nftables: the jump by its handle, our chain and every set of ours go, in one safe script', () => {
    const batch = planNftFootprintRemoval(emptied('after-allow-2'));
    assert.ok(batch, 'something to remove');
    const lines = batch.script.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^delete rule inet filter input handle \d+$/);
    assert.ok(lines.some((line) => /^delete rule inet filter moshwall_input handle \d+$/.test(line)));
    assert.ok(lines.includes('delete chain inet filter moshwall_input'));
    assert.ok(lines.some((line) => /^delete set inet filter moshwall_v4_any$/.test(line)));
    assert.equal(nftScriptProblem(batch.script, batch.ourHandles), undefined);
    assert.match(
      nftScriptProblem(batch.script) ?? '',
      /not a statement/,
      'no rule deleted by handle unlisted',
    );
    assert.deepEqual(batch.specs, []);
  });

  it('nftables: nothing is removed while a set still holds an element, or when nothing of ours exists', () => {
    assert.equal(planNftFootprintRemoval(parseNftRuleset(nft.run('list-after-allow-2').stdout)), undefined);
    assert.equal(planNftFootprintRemoval(parseNftRuleset(nft.run('list-debian').stdout)), undefined);
  });

  it('the nft guard still refuses to delete another chain or set than ours', () => {
    assert.match(nftScriptProblem('delete chain inet filter input\n') ?? '', /not a statement/);
    assert.match(nftScriptProblem('delete set inet filter admins\n') ?? '', /not a statement/);
    assert.match(nftScriptProblem('delete table inet filter\n') ?? '', /not a statement/);
    const handles = ['inet filter input handle 7'];
    assert.equal(nftScriptProblem('delete rule inet filter input handle 7\n', handles), undefined);
    assert.match(
      nftScriptProblem('delete rule inet filter input handle 3\n', handles) ?? '',
      /not a statement/,
    );
  });

  it('iptables: an empty chain of ours goes with its jump; a chain with a rule in it stays', () => {
    const withRule = parseIptablesSave(iptables.run('save-nft-v4-after-revoke-1').stdout, 'iptables-save');
    assert.equal(planIptablesFootprintRemoval(withRule, 'v4'), undefined);
    const empty = { ...withRule, rules: withRule.rules.filter((rule) => rule.chain !== 'moshwall-input') };
    const batch = planIptablesFootprintRemoval(empty, 'v4');
    assert.equal(
      batch?.input,
      '*filter\n-D INPUT -m comment --comment moshwall -j moshwall-input\n-X moshwall-input\nCOMMIT\n',
    );
    assert.equal(restoreInputProblem(batch?.input ?? '', 'v4'), undefined);
    const baseline = parseIptablesSave(iptables.run('save-nft-v4-baseline').stdout, 'iptables-save');
    assert.equal(planIptablesFootprintRemoval(baseline, 'v4'), undefined);
  });
});
