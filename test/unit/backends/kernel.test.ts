import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyInOrder, describePlannedStep } from '../../../src/backends/kernel/apply.ts';
import { createRecent } from '../../../src/backends/kernel/recent.ts';
import { createTool, isNotInstalled, probeVersion } from '../../../src/backends/kernel/tool.ts';
import { ExecError, FirewallError } from '../../../src/errors.ts';
import type { AppliedChange } from '../../../src/firewall.ts';
import { v4, v6 } from '../../support/builders.ts';
import { createRecordingRunner, inOrder, notInstalled } from './recording-runner.ts';

const ok = (stdout = '') => ({ exitCode: 0, stdout, stderr: '' });

describe('backend kernel: running the tool', () => {
  it('runs argv past the guard with the timeout, env and input, and runs nothing the guard refuses', async () => {
    const { runner, calls } = createRecordingRunner(inOrder([ok('v1'), ok()]));
    const run = createTool({
      runner,
      timeoutMs: 1234,
      env: { LANG: 'C' },
      guard: (argv) => {
        if (argv.includes('reset')) throw new FirewallError('never reset', {});
      },
    });
    assert.equal((await run(['tool', '--version'])).stdout, 'v1');
    await run(['tool', '-f', '-'], 'script');
    await assert.rejects(run(['tool', 'reset']), /never reset/);
    assert.deepEqual(calls, [
      { argv: ['tool', '--version'], options: { timeoutMs: 1234, env: { LANG: 'C' } } },
      { argv: ['tool', '-f', '-'], options: { timeoutMs: 1234, env: { LANG: 'C' }, input: 'script' } },
    ]);
  });

  it('tells "not installed" (ENOENT, EACCES from spawn) from every other failure', () => {
    assert.equal(isNotInstalled(notInstalled(['nft'])), true);
    const denied = new ExecError('x', {}, Object.assign(new Error('spawn EACCES'), { code: 'EACCES' }));
    assert.equal(isNotInstalled(denied), true);
    assert.equal(isNotInstalled(new ExecError('nft did not finish within 5 ms', {})), false);
    assert.equal(
      isNotInstalled(Object.assign(new Error('x'), { code: 'ENOENT' })),
      false,
      'not from the runner',
    );
  });

  it('probes a version: the answer, "not installed", "failed (exit N)", or the real failure thrown', async () => {
    const answers = [
      ok('tool 1.0\n'),
      notInstalled(['tool']),
      { exitCode: 3, stdout: '', stderr: 'Error: broken\n' },
      new ExecError('tool did not finish within 5 ms', {}),
    ];
    const run = createTool({ runner: createRecordingRunner(inOrder(answers)).runner, timeoutMs: 5 });
    const probe = () => probeVersion(run, ['tool', '--version'], 'tool is not installed; install it');
    assert.deepEqual(await probe(), {
      version: { argv: ['tool', '--version'], durationMs: 1, ...ok('tool 1.0\n') },
    });
    assert.deepEqual(await probe(), {
      probe: { installed: false, active: false, ipv6: false, detail: ['tool is not installed; install it'] },
    });
    assert.deepEqual(await probe(), {
      probe: {
        installed: false,
        active: false,
        ipv6: false,
        detail: ['`tool --version` failed (exit 3): Error: broken'],
      },
    });
    await assert.rejects(probe(), /did not finish/);
  });
});

describe('backend kernel: applying a plan in order', () => {
  const steps = [
    { kind: 'allow' as const, specs: [v4(60001), v6(60001)] },
    { kind: 'allow' as const, specs: [v4(60002)] },
    { kind: 'revoke' as const, specs: [v4(60003), v4(60004)] },
  ];
  const change = (step: (typeof steps)[number]): AppliedChange => ({ ...step, argv: ['tool'], output: '' });

  it('describes a step by kind, families and ports', () => {
    assert.deepEqual(steps.map(describePlannedStep), [
      'allow v4+v6 udp 60001',
      'allow v4 udp 60002',
      'revoke v4 udp 60003,60004',
    ]);
  });

  it('runs every step in order and returns their changes', async () => {
    const ran: string[] = [];
    const applied = await applyInOrder('tool', steps, async (step) => {
      ran.push(describePlannedStep(step));
      return change(step);
    });
    assert.deepEqual(ran, ['allow v4+v6 udp 60001', 'allow v4 udp 60002', 'revoke v4 udp 60003,60004']);
    assert.equal(applied.length, 3);
  });

  it('after a partial success: one error saying which steps were applied and which not, with the cause', async () => {
    const refused = new FirewallError('tool refused to allow udp port(s) 60002', { exitCode: 1 });
    await assert.rejects(
      applyInOrder('tool', steps, async (step) => {
        if (step === steps[1]) throw refused;
        return change(step);
      }),
      (error: unknown) => {
        assert.ok(error instanceof FirewallError);
        assert.equal(
          error.message,
          'tool refused to allow udp port(s) 60002 (1 of 3 tool steps had succeeded; applied: allow v4+v6 udp 60001; ' +
            'not applied: allow v4 udp 60002; revoke v4 udp 60003,60004)',
        );
        assert.deepEqual(error.context, { exitCode: 1, completed: 1, steps: 3 });
        assert.equal(error.cause, refused);
        return true;
      },
    );
  });

  it('a failing first step, and a bug at any step, are thrown as they are', async () => {
    const refused = new FirewallError('refused', {});
    await assert.rejects(
      applyInOrder('tool', steps, async () => {
        throw refused;
      }),
      (error) => error === refused,
    );
    const bug = new TypeError('a bug');
    let count = 0;
    await assert.rejects(
      applyInOrder('tool', steps, async (step) => {
        count += 1;
        if (count === 2) throw bug;
        return change(step);
      }),
      (error) => error === bug,
    );
  });
});

describe('backend kernel: the recent-listing cache', () => {
  it('trusts a value for trustedMs after it was read, and forgets it on demand', () => {
    let now = 0;
    const recent = createRecent<string>({ now: () => now }, 1000);
    assert.equal(recent.recent(), undefined);
    recent.remember('listing');
    now = 1000;
    assert.equal(recent.recent(), 'listing');
    now = 1001;
    assert.equal(recent.recent(), undefined);
    recent.remember('again');
    recent.forget();
    assert.equal(recent.recent(), undefined);
  });
});
