import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createIptablesBackend } from '../../../src/backends/iptables.ts';
import { testBackendContract } from '../../backends/contract.ts';
import {
  applyRestore,
  createIptablesReplay,
  IPTABLES_RUNS,
  recordedTable,
  renderSave,
} from './iptables-replay.ts';

/** A restore input capture.sh fed to the real iptables-restore (test/fixtures/iptables/inputs). */
const input = (name: string): string =>
  readFileSync(new URL(`../../fixtures/iptables/inputs/${name}.txt`, import.meta.url), 'utf8');

/** The save text without its "# Generated/Completed" lines (their times differ between recordings). */
const body = (text: string): string =>
  text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n');

for (const variant of ['nft', 'legacy'] as const) {
  describe(`iptables replay (${variant}) reproduces the recorded real runs`, () => {
    it('baseline + each recorded restore input = the recorded save after it', () => {
      const steps: [string, string, string][] = [
        [`save-${variant}-v4-baseline`, 'allow-v4-1', `save-${variant}-v4-after-allow-1`],
        [`save-${variant}-v6-baseline`, 'allow-v6-1', `save-${variant}-v6-after-allow-1`],
        [`save-${variant}-v4-after-allow-1`, 'revoke-v4-1', `save-${variant}-v4-after-revoke-1`],
        [`save-${variant}-v4-jump-gone`, 'allow-v4-2', `save-${variant}-v4-after-allow-2`],
      ];
      for (const [before, restore, after] of steps) {
        const next = applyRestore(recordedTable(before), input(restore));
        assert.notEqual(typeof next, 'number', `${restore} failed on ${before}`);
        if (typeof next === 'number') return;
        assert.equal(body(renderSave(next)), body(IPTABLES_RUNS.run(after).stdout), `${before} + ${restore}`);
      }
    });

    it('refuses the recorded failing input as the real restore did (the line that failed, nothing changed)', () => {
      const recorded = IPTABLES_RUNS.run(`restore-${variant}-revoke-v4-missing`);
      assert.notEqual(recorded.exitCode, 0);
      const line = Number(/line (\d+) failed/.exec(recorded.stderr)?.[1]);
      assert.equal(
        applyRestore(recordedTable(`save-${variant}-v4-after-revoke-1`), input('revoke-v4-missing')),
        line,
      );
    });
  });

  testBackendContract(`iptables-${variant} over recorded outputs (no root)`, async () => {
    const replay = createIptablesReplay(variant);
    return {
      backend: createIptablesBackend({ runner: replay.runner, timeoutMs: 1000, variant }),
      addForeignRule: async (spec, comment) => replay.addAdminRule(spec, comment),
      cleanup: async () => {},
    };
  });
}
