// The backend contract suite (test/backends/contract.ts) against the REAL ufw, twice: classic rules
// (`ufw allow … comment moshwall`), and the fast path (ufw_fast_path = "ipset": our rules are members of
// our ipsets, behind the hook moshwall's own install code puts in the lab). The backend runs in this
// process, its commands inside the lab's server host (nsenter), reading the lab's own user.rules,
// user6.rules and /etc/default/ufw. Between tests every rule made by the test is deleted with the lab
// admin's ufw, our sets are emptied, and the lab is checked to be back where it began.
import assert from 'node:assert/strict';
import { before, describe } from 'node:test';
import { createUfwBackend } from '../../src/backends/ufw.ts';
import { testBackendContract } from '../backends/contract.ts';
import {
  afterChains,
  fastSetMembers,
  flushFastSets,
  installLabFastPath,
  labFastBackend,
  removeLabFastPath,
} from './_fastpath.ts';
import { useLab } from './_moshwall.ts';
import { createLab, labRunner, labSkipReason, type UfwTuple } from './lab.ts';

/** `ufw status numbered` → [number, rule text] for every rule, in ufw's order. */
function numberedRules(stdout: string): Array<[number, string]> {
  return stdout.split('\n').flatMap((line): Array<[number, string]> => {
    const match = /^\[\s*(\d+)\]\s+(.*?)\s*$/.exec(line);
    return match ? [[Number(match[1]), match[2] ?? '']] : [];
  });
}

/** Registers the contract on real ufw in a lab of its own, classic or with the fast path's hook. */
function ufwContract(mode: 'classic' | 'fast path'): void {
  const fast = mode === 'fast path';
  describe(`ufw backend contract (${mode}), real ufw${fast ? ' + ipset' : ''} in the lab`, {
    skip: labSkipReason(),
  }, () => {
    /** What the lab starts with: the tuples, and the rule texts of `ufw status numbered`. */
    let baseline: UfwTuple[] = [];
    let baselineRules: string[] = [];

    const theLab = useLab(
      () => createLab(),
      async () => {
        if (fast) await removeLabFastPath(theLab()).catch(() => undefined);
      },
    );
    const admin = async (args: string[]): Promise<string> => {
      const result = await theLab().ufw(args);
      assert.equal(result.exitCode, 0, `ufw ${args.join(' ')}: ${result.stdout}${result.stderr}`);
      return result.stdout;
    };
    /** Deletes, as the lab's admin, every rule the lab did not start with (and our set members). */
    const reset = async () => {
      const rules = numberedRules(await admin(['status', 'numbered']));
      const extra = rules.filter(([, text]) => !baselineRules.includes(text)).map(([number]) => number);
      // Highest number first, so the numbers of the rest do not shift.
      for (const number of extra.sort((a, b) => b - a)) await admin(['--force', 'delete', String(number)]);
      assert.deepEqual(await theLab().ufwTuples(), baseline, 'the lab is back to its baseline rules');
      if (fast) {
        await flushFastSets(theLab());
        assert.deepEqual(await fastSetMembers(theLab()), []);
      }
    };

    before(async () => {
      baseline = await theLab().ufwTuples();
      baselineRules = numberedRules(await admin(['status', 'numbered'])).map(([, text]) => text);
      assert.equal(baselineRules.length, 2, baselineRules.join('\n'));
      if (fast) {
        await installLabFastPath(theLab());
        assert.match(await afterChains(theLab()), /--match-set moshwall-any4 dst -j ACCEPT/);
      }
    });

    testBackendContract(`ufw ${mode} (real, in the e2e lab)`, async () => {
      const current = theLab();
      await reset();
      const backend = fast
        ? labFastBackend(current)
        : createUfwBackend({
            runner: labRunner(current),
            rulesDir: current.serverPath('/etc/ufw'),
            defaultsFile: current.serverPath('/etc/default/ufw'),
            timeoutMs: 15_000,
          });
      return {
        backend,
        async addForeignRule(spec, comment) {
          const words = ['proto', 'udp', 'from', spec.source, 'to', 'any', 'port', String(spec.port)];
          await admin(['allow', ...words, ...(comment === undefined ? [] : ['comment', comment])]);
        },
        cleanup: reset,
      };
    });
  });
}

ufwContract('classic');
ufwContract('fast path');
