// The backend contract suite (test/backends/contract.ts) against the REAL ufw: createUfwBackend runs
// in this process, its ufw commands run inside the lab's server host (nsenter), and it reads the lab's
// own user.rules, user6.rules and /etc/default/ufw. Between tests every rule made by the test is deleted
// with the lab admin's ufw, and the lab is checked to be back where it began.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { createUfwBackend } from '../../src/backends/ufw.ts';
import { type Runner, runCommand } from '../../src/exec.ts';
import { testBackendContract } from '../backends/contract.ts';
import { createLab, type Lab, labSkipReason, type UfwTuple } from './lab.ts';

/** `ufw status numbered` → [number, rule text] for every rule, in ufw's order. */
function numberedRules(stdout: string): Array<[number, string]> {
  return stdout.split('\n').flatMap((line): Array<[number, string]> => {
    const match = /^\[\s*(\d+)\]\s+(.*?)\s*$/.exec(line);
    return match ? [[Number(match[1]), match[2] ?? '']] : [];
  });
}

describe('ufw backend contract, real ufw in the lab', { skip: labSkipReason() }, () => {
  let lab: Lab | undefined;
  /** What the lab starts with: the tuples, and the rule texts of `ufw status numbered`. */
  let baseline: UfwTuple[] = [];
  let baselineRules: string[] = [];

  const theLab = (): Lab => {
    assert.ok(lab, 'createLab failed in before()');
    return lab;
  };
  const admin = async (args: string[]): Promise<string> => {
    const result = await theLab().ufw(args);
    assert.equal(result.exitCode, 0, `ufw ${args.join(' ')}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  /** Deletes, as the lab's admin, every rule the lab did not start with, then checks the files. */
  const reset = async () => {
    const rules = numberedRules(await admin(['status', 'numbered']));
    const extra = rules.filter(([, text]) => !baselineRules.includes(text)).map(([number]) => number);
    // Highest number first, so the numbers of the rest do not shift.
    for (const number of extra.sort((a, b) => b - a)) await admin(['--force', 'delete', String(number)]);
    assert.deepEqual(await theLab().ufwTuples(), baseline, 'the lab is back to its baseline rules');
  };

  before(async () => {
    lab = await createLab();
    baseline = await lab.ufwTuples();
    baselineRules = numberedRules(await admin(['status', 'numbered'])).map(([, text]) => text);
    assert.equal(baselineRules.length, 2, baselineRules.join('\n'));
  });

  after(async () => {
    await lab?.destroy();
  });

  testBackendContract('ufw (real, in the e2e lab)', async () => {
    const current = theLab();
    if (JSON.stringify(await current.ufwTuples()) !== JSON.stringify(baseline)) await reset();
    // The real Runner of src/exec.ts, entering the server host first; results name the argv as asked.
    const runner: Runner = async (argv, options) => ({
      ...(await runCommand(current.serverArgv(argv), options)),
      argv,
    });
    const backend = createUfwBackend({
      runner,
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
