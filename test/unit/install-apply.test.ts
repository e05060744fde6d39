import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoshwallError } from '../../src/errors.ts';
import type { Runner } from '../../src/exec.ts';
import { applySteps } from '../../src/install/apply.ts';

describe('install: a failed step', () => {
  it('is an EINSTALL error naming the step with its argv, what went wrong and what to do', async () => {
    const runner: Runner = async (argv) => ({
      argv,
      durationMs: 1,
      exitCode: 1,
      stdout: '',
      stderr: 'Failed to connect to bus: No such file or directory',
    });
    const ran: string[] = [];
    await assert.rejects(
      applySteps([{ kind: 'run', argv: ['systemctl', 'daemon-reload'] }], {
        runner: async (argv, options) => {
          ran.push(argv.join(' '));
          return runner(argv, options);
        },
        timeoutMs: 1000,
        flush: async () => 0,
        say: () => undefined,
      }),
      (error: unknown) => {
        assert.ok(error instanceof MoshwallError);
        assert.equal(error.code, 'EINSTALL');
        assert.match(
          error.message,
          /^install step failed: run systemctl daemon-reload: .*Failed to connect to bus/,
        );
        assert.match(error.message, /fix that and run the command again$/);
        assert.deepEqual(error.context, { step: 'run', argv: 'systemctl daemon-reload' });
        return true;
      },
    );
    assert.deepEqual(ran, ['systemctl daemon-reload']);
  });
});
