// The backend contract suite (test/backends/contract.ts) against the REAL ufw + ipset with the fast
// path on: the hook is installed in the lab's server host by moshwall's own install code, the backend
// runs in this process (its commands entering the server host), our rules are members of our sets.
// Between tests the admin's extra rules are deleted and our sets emptied.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { testBackendContract } from '../backends/contract.ts';
import {
  afterChains,
  fastSetMembers,
  flushFastSets,
  installLabFastPath,
  labFastBackend,
  removeLabFastPath,
} from './_fastpath.ts';
import { createLab, type Lab, labSkipReason, type UfwTuple } from './lab.ts';

/** `ufw status numbered` → [number, rule text] for every rule, in ufw's order. */
function numberedRules(stdout: string): Array<[number, string]> {
  return stdout.split('\n').flatMap((line): Array<[number, string]> => {
    const match = /^\[\s*(\d+)\]\s+(.*?)\s*$/.exec(line);
    return match ? [[Number(match[1]), match[2] ?? '']] : [];
  });
}

describe('ufw fast-path backend contract, real ufw + ipset in the lab', { skip: labSkipReason() }, () => {
  let lab: Lab | undefined;
  let baseline: UfwTuple[] = [];
  let baselineRules: string[] = [];

  const theLab = (): Lab => {
    assert.ok(lab, 'createLab failed in before()');
    return lab;
  };
  /** Deletes (as the admin, highest number first) every rule the lab did not start with; empties our sets. */
  const reset = async () => {
    const numbered = await theLab().ufw(['status', 'numbered']);
    const extra = numberedRules(numbered.stdout)
      .filter(([, text]) => !baselineRules.includes(text))
      .map(([number]) => number);
    for (const number of extra.sort((a, b) => b - a)) {
      const deleted = await theLab().ufw(['--force', 'delete', String(number)]);
      assert.equal(deleted.exitCode, 0, deleted.stderr);
    }
    await flushFastSets(theLab());
    assert.deepEqual(await theLab().ufwTuples(), baseline, 'the lab is back to its baseline rules');
    assert.deepEqual(await fastSetMembers(theLab()), []);
  };

  before(async () => {
    lab = await createLab();
    baseline = await lab.ufwTuples();
    assert.equal(baseline.length, 2);
    baselineRules = numberedRules((await lab.ufw(['status', 'numbered'])).stdout).map(([, text]) => text);
    await installLabFastPath(lab);
    assert.match(await afterChains(lab), /--match-set moshwall-any4 dst -j ACCEPT/);
  });

  after(async () => {
    if (lab) await removeLabFastPath(lab).catch(() => undefined);
    await lab?.destroy();
  });

  testBackendContract('ufw fast path (real ufw + ipset, in the e2e lab)', async () => {
    await reset();
    return {
      backend: labFastBackend(theLab()),
      async addForeignRule(spec, comment) {
        const words = ['proto', 'udp', 'from', spec.source, 'to', 'any', 'port', String(spec.port)];
        const added = await theLab().ufw([
          'allow',
          ...words,
          ...(comment === undefined ? [] : ['comment', comment]),
        ]);
        assert.equal(added.exitCode, 0, added.stderr);
      },
      cleanup: reset,
    };
  });
});
