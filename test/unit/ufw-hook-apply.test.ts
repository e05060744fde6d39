import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Runner } from '../../src/exec.ts';
import { applySteps } from '../../src/install/apply.ts';
import { planHookInstall } from '../../src/install/ufw-hook.ts';

const FIXTURES = new URL('../fixtures/ufw/hook/', import.meta.url);
const asRoot = process.getuid?.() === 0;

describe('hook install: a failed `ufw reload` puts the files back', {
  skip: asRoot ? false : 'needs root (files are chowned to root)',
}, () => {
  it('restores every file byte for byte with its mode, reloads again, and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moshwall-hook-'));
    try {
      for (const name of ['after.rules', 'after6.rules', 'before.init']) {
        writeFileSync(join(dir, name), readFileSync(new URL(name, FIXTURES)), { mode: 0o640 });
      }
      const before = (name: string) =>
        `${statSync(join(dir, name)).mode & 0o7777} ${readFileSync(join(dir, name), 'base64')}`;
      const original = ['after.rules', 'after6.rules', 'before.init'].map(before);
      const steps = planHookInstall({
        ufwDir: dir,
        readText: (path) => readFileSync(path, 'utf8'),
        modeOf: (path) => statSync(path).mode & 0o7777,
      });
      const ran: string[] = [];
      let reloads = 0;
      const runner: Runner = async (argv) => {
        ran.push(argv.join(' '));
        const failed = argv[0] === 'ufw' && reloads++ === 0;
        return {
          argv,
          durationMs: 1,
          exitCode: failed ? 1 : 0,
          stdout: '',
          stderr: failed ? "ERROR: problem running ufw-init\nProblem running '/etc/ufw/after.rules'" : '',
        };
      };
      await assert.rejects(
        applySteps(steps, { runner, timeoutMs: 1000, flush: async () => 0, say: () => undefined }),
        /ufw reload failed \(exit 1\): ERROR: problem running ufw-init.*; the files were put back and UFW reloaded them/s,
      );
      assert.deepEqual(['after.rules', 'after6.rules', 'before.init'].map(before), original);
      assert.deepEqual(
        ran.filter((line) => line.startsWith('ufw')),
        ['ufw reload', 'ufw reload'],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
