import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createNftablesBackend } from '../../src/backends/nftables.ts';
import { parseGlobalArgs } from '../../src/cli/args.ts';
import { runMain } from '../../src/cli/run.ts';
import { DEFAULT_CONFIG, parseConfig } from '../../src/config.ts';
import { holdersOf } from '../../src/discovery/sockets.ts';
import { probeOrFail, withLock } from '../../src/engine.ts';
import { describeError, type ErrorCode, EXIT_CODES, exitCodeFor, MoshwallError } from '../../src/errors.ts';
import { runCommand } from '../../src/exec.ts';
import { layoutFor, planInstall } from '../../src/install/plan.ts';
import { assertValidRuleSpecs } from '../../src/rules.ts';
import { notInstalled } from './backends/recording-runner.ts';
import { createFakeProc } from './discovery/fake-proc.ts';

/** The error `make` throws or rejects with (failing the test when it does not). */
async function caught(make: () => unknown): Promise<unknown> {
  try {
    await make();
  } catch (error) {
    return error;
  }
  assert.fail('expected an error');
}

/**
 * One error of each code, made by the code that raises it for real, with the value its message must name
 * and the words of the fix it must give (house style 6: what, which value, what to do).
 */
const EXAMPLES: Record<ErrorCode, { make: () => Promise<unknown>; value: string; fix: RegExp | undefined }> =
  {
    EUSAGE: {
      make: () => caught(() => parseGlobalArgs(['--bogus'])),
      value: '--bogus',
      fix: /see `moshwall --help`/,
    },
    ECONFIG: {
      make: () => caught(() => parseConfig('backend = "bogus"\n', '/etc/moshwall/moshwall.toml')),
      value: '"bogus"',
      fix: /expected "ufw", "nftables"/,
    },
    EPROC: {
      make: () =>
        caught(() => holdersOf(createFakeProc(new Map([['/proc', { error: 'EIO' }]])).reader, new Set([7]))),
      value: '/proc (EIO)',
      fix: /fix: check that procfs is mounted at \/proc/,
    },
    EFIREWALL: {
      make: () => caught(() => assertValidRuleSpecs([{ port: 60001, family: 'v4', source: '10.0.0.1/8' }])),
      value: '10.0.0.1/8',
      fix: /use `10\.0\.0\.0\/8`/,
    },
    ENOFIREWALL: {
      make: () =>
        caught(() =>
          probeOrFail(
            createNftablesBackend({
              runner: async (argv) => {
                throw notInstalled(argv);
              },
              timeoutMs: 1000,
            }),
          ),
        ),
      value: 'nftables',
      fix: /install it \(apt install nftables\)/,
    },
    ELOCK: {
      make: () =>
        caught(() =>
          withLock(
            { config: { ...DEFAULT_CONFIG, lockFile: '/run/moshwall.lock' }, lock: async () => undefined },
            async () => 1,
          ),
        ),
      value: '/run/moshwall.lock',
      fix: /raise lock_timeout_ms/,
    },
    ENOTROOT: {
      make: () => mainError({ uid: 1000, argv: ['sync'] }),
      value: 'moshwall sync',
      fix: /try: sudo moshwall sync/,
    },
    EUNSAFE: {
      make: () =>
        mainError({ uid: 0, argv: ['sync'], unsafe: 'moshwall /opt/m/moshwall.js is writable by uid 1000' }),
      value: '/opt/m/moshwall.js',
      fix: /owned by root and not writable by group or others/,
    },
    EEXEC: {
      make: () =>
        caught(() => runCommand(['/nonexistent/moshwall-test-tool', '--version'], { timeoutMs: 10_000 })),
      value: '/nonexistent/moshwall-test-tool',
      fix: /is it installed, on PATH and executable\?/,
    },
    EINSTALL: {
      make: () =>
        caught(() =>
          planInstall(
            {
              layout: layoutFor('/usr/local'),
              selfPath: '/tmp/moshwall.js',
              nodePath: '/usr/bin/node',
              state: (path) =>
                path === '/usr/local/bin/mosh-server' ? { kind: 'file' } : { kind: 'missing' },
              systemdRunning: false,
            },
            { sudoers: false },
          ),
        ),
      value: '/usr/local/bin/mosh-server',
      fix: /move it away first/,
    },
    EINTERNAL: {
      make: async () => new MoshwallError('EINTERNAL', 'the engine met a plan it cannot apply'),
      value: 'plan',
      fix: /./,
    },
  };

/** Codes whose messages give no fix yet, and why (each shows as a TODO in the test output, never passes quietly). */
const NO_FIX_YET: Partial<Record<ErrorCode, string>> = {};

/** The error runMain printed for `argv`, as an error-like value (its line and exit code). */
async function mainError(options: { uid: number; argv: string[]; unsafe?: string }): Promise<unknown> {
  const lines: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'moshwall-errors-'));
  const config = join(dir, 'moshwall.toml');
  writeFileSync(config, '# defaults\n');
  const edges = { unsafeFiles: () => options.unsafe } as unknown as Parameters<typeof runMain>[0]['edges'];
  const exit = await runMain({
    argv: ['--config', config, ...options.argv],
    env: {},
    uid: options.uid,
    invokedAs: 'moshwall',
    selfPath: '/opt/m/moshwall.js',
    stdout: () => {},
    stderr: (text) => lines.push(text),
    passThrough: async () => {},
    edges,
  }).finally(() => rmSync(dir, { recursive: true }));
  return { exit, message: lines.join('\n') };
}

/** The exit codes the README's "Exit codes" table lists. */
function readmeExitCodes(): Set<number> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Exit codes'));
  return new Set(
    [...section.slice(0, section.indexOf('\n## ', 3)).matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1])),
  );
}

describe('error codes', () => {
  it('every code has an exit code the README documents, and only EINTERNAL means a bug (70)', () => {
    const documented = readmeExitCodes();
    for (const [code, exit] of Object.entries(EXIT_CODES)) {
      assert.ok(Number.isInteger(exit) && exit > 0 && exit < 126, `${code}: ${exit}`);
      assert.ok(
        documented.has(exit),
        `${code} exits ${exit}, which the README's Exit codes table does not list`,
      );
      assert.equal(exit === 70, code === 'EINTERNAL', `${code} exits ${exit}`);
      assert.equal(exitCodeFor(new MoshwallError(code as ErrorCode, 'x')), exit);
    }
    assert.equal(exitCodeFor(new TypeError('a bug')), 70);
  });

  it('has an example for every code (a new code needs one)', () => {
    assert.deepEqual(Object.keys(EXAMPLES).sort(), Object.keys(EXIT_CODES).sort());
  });

  for (const [code, example] of Object.entries(EXAMPLES)) {
    const exit = EXIT_CODES[code as ErrorCode];
    /** The printed line of the example error (its code and exit code checked on the way). */
    const line = async (): Promise<string> => {
      const error = await example.make();
      if (error instanceof MoshwallError) {
        assert.equal(error.code, code);
        assert.equal(exitCodeFor(error), exit);
        return describeError(error);
      }
      // Through runMain: the line it printed and the exit code it returned.
      const printed = error as { exit: number; message: string };
      assert.equal(printed.exit, exit, printed.message);
      return printed.message;
    };
    it(`${code}: the real error names the value and exits ${exit}`, async () => {
      const text = await line();
      assert.ok(text.includes(example.value), `${text} does not name ${example.value}`);
    });
    const todo = NO_FIX_YET[code as ErrorCode];
    it(`${code}: the real error says what to do`, todo === undefined ? {} : { todo }, async () => {
      assert.ok(example.fix, `${code} has no fix to look for`);
      assert.match(await line(), example.fix);
    });
  }
});
