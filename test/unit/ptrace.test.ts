import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import { diagnose } from '../../src/doctor.ts';
import { collectStatus } from '../../src/engine.ts';
import { MoshwallError } from '../../src/errors.ts';
import {
  describeStep,
  layoutFor,
  type PathState,
  planInstall,
  planUninstall,
} from '../../src/install/plan.ts';
import { silentLogger } from '../../src/log.ts';
import {
  isOurSysctlFile,
  PTRACE_SYSCTL_FILE,
  PTRACE_SYSCTL_TEXT,
  parsePtraceScope,
  ptraceFinding,
  ptraceReport,
} from '../../src/ptrace.ts';
import { createMemoryBackend } from './backends/memory-backend.ts';

describe('Yama ptrace_scope', () => {
  it('reads the scope, and no Yama as undefined', () => {
    assert.equal(parsePtraceScope('0\n'), 0);
    assert.equal(parsePtraceScope('2\n'), 2);
    assert.equal(parsePtraceScope(undefined), undefined);
    assert.equal(parsePtraceScope('garbage'), undefined);
    assert.equal(parsePtraceScope('7\n'), undefined);
  });

  it('doctor warns below 2 (1 is not enough), with the fix and its cost; 2 and 3 are ok', () => {
    for (const scope of [0, 1, undefined]) {
      const finding = ptraceFinding(scope);
      assert.equal(finding.level, 'warn', `scope ${scope}`);
      assert.match(finding.message, /write into their own genuine mosh-server/);
    }
    assert.match(
      ptraceFinding(1).message,
      /1 is not enough: .*PTRACE_TRACEME child, patches it and detaches/,
    );
    assert.match(
      ptraceFinding(0).fix ?? '',
      /"kernel\.yama\.ptrace_scope = 2" in \/etc\/sysctl\.d\/60-moshwall-ptrace\.conf/,
    );
    assert.match(ptraceFinding(0).fix ?? '', /users can no longer debug their own processes/);
    assert.match(ptraceFinding(undefined).message, /no Yama/);
    assert.equal(ptraceFinding(2).level, 'ok');
    assert.equal(ptraceFinding(3).level, 'ok');
  });

  it("is one of doctor's findings when looked at", () => {
    const facts = {
      isRoot: true,
      config: DEFAULT_CONFIG,
      backendName: 'nftables',
      probe: { installed: true, active: true, ipv6: true, detail: [] },
      rules: [],
      moshServerProblem: undefined,
      hostHasIpv6: true,
    };
    assert.equal(diagnose(facts).filter((finding) => finding.check === 'ptrace').length, 0);
    const found = diagnose({ ...facts, ptrace: { scope: 0 } }).filter(
      (finding) => finding.check === 'ptrace',
    );
    assert.deepEqual(
      found.map((finding) => finding.level),
      ['warn'],
    );
  });

  it('status --json carries it', async () => {
    assert.deepEqual(ptraceReport(2), {
      yamaPtraceScope: 2,
      injectionBlocked: true,
      detail: 'only root may write into a mosh-server: its port serves the genuine program',
    });
    assert.equal(ptraceReport(undefined).yamaPtraceScope, null);
    assert.equal(ptraceReport(1).injectionBlocked, false);
    const status = await collectStatus(
      {
        config: DEFAULT_CONFIG,
        backend: createMemoryBackend(),
        scan: () => ({ sessions: [], refused: [] }),
        groups: () => ({ gidOf: () => undefined, membersOf: () => [] }),
        log: silentLogger,
        lock: async () => async () => {},
        readPtraceScope: () => 0,
      },
      0,
    );
    assert.deepEqual(status.ptrace, ptraceReport(0));
  });
});

describe('install --ptrace-scope (never by default)', () => {
  const layout = layoutFor();
  const facts = (files: Record<string, string> = {}, yama = true) => ({
    layout,
    selfPath: '/home/admin/moshwall/dist/moshwall.js',
    nodePath: '/usr/bin/node',
    state: (path: string): PathState => (files[path] === undefined ? { kind: 'missing' } : { kind: 'file' }),
    systemdRunning: false,
    yama,
    readText: (path: string) => files[path],
  });
  const touching = (steps: ReturnType<typeof planInstall>) =>
    steps.map(describeStep).filter((line) => line.includes('ptrace') || line.includes('sysctl'));

  it('writes nothing and runs nothing about ptrace without the option', () => {
    assert.deepEqual(touching(planInstall(facts(), { sudoers: false })), []);
  });

  it('writes the sysctl.d file with the option, applies it only with --apply-ptrace-scope', () => {
    const written = planInstall(facts(), { sudoers: false, ptraceScope: 'write' });
    assert.deepEqual(touching(written), [
      `write ${PTRACE_SYSCTL_FILE} (mode 644, ${PTRACE_SYSCTL_TEXT.length} bytes)`,
      `note: ${PTRACE_SYSCTL_FILE} takes effect at the next boot (--apply-ptrace-scope: now)`,
    ]);
    assert.ok(!written.some((step) => step.kind === 'run' && step.argv[0] === 'sysctl'));
    assert.match(PTRACE_SYSCTL_TEXT, /^kernel\.yama\.ptrace_scope = 2$/m);
    const applied = planInstall(facts(), { sudoers: false, ptraceScope: 'apply' });
    assert.ok(touching(applied).includes(`run sysctl -p ${PTRACE_SYSCTL_FILE}`));
    const manifest = applied.find((step) => step.kind === 'write' && step.path === layout.manifest);
    assert.ok(manifest && 'content' in manifest && manifest.content.includes(PTRACE_SYSCTL_FILE));
  });

  it("refuses a kernel without Yama, and a file that is not moshwall's", () => {
    assert.throws(
      () => planInstall(facts({}, false), { sudoers: false, ptraceScope: 'write' }),
      (error: unknown) => error instanceof MoshwallError && /has no Yama/.test(error.message),
    );
    assert.throws(
      () =>
        planInstall(facts({ [PTRACE_SYSCTL_FILE]: 'kernel.yama.ptrace_scope = 1\n' }), {
          sudoers: false,
          ptraceScope: 'write',
        }),
      /exists and is not moshwall's/,
    );
  });

  it('a later install without the option keeps our file listed; uninstall removes it', () => {
    assert.ok(isOurSysctlFile(PTRACE_SYSCTL_TEXT));
    const host = facts({ [PTRACE_SYSCTL_FILE]: PTRACE_SYSCTL_TEXT });
    const again = planInstall(host, { sudoers: false });
    const manifest = again.find((step) => step.kind === 'write' && step.path === layout.manifest);
    assert.ok(manifest && 'content' in manifest && manifest.content.includes(PTRACE_SYSCTL_FILE));
    const removal = planUninstall(
      host,
      { version: 1, paths: [PTRACE_SYSCTL_FILE], configCreated: true },
      { purge: false },
    ).map(describeStep);
    assert.ok(removal.includes(`rm ${PTRACE_SYSCTL_FILE} (a directory only if empty)`), removal.join('\n'));
    assert.ok(removal.some((line) => line.includes('the running kernel keeps kernel.yama.ptrace_scope')));
  });
});
