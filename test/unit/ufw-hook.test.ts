import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MoshwallError } from '../../src/errors.ts';
import { layoutFor, planHookOnly } from '../../src/install/plan.ts';
import {
  BLOCK_BEGIN,
  BLOCK_END,
  findBlock,
  hookInstalled,
  planHookInstall,
  planHookRemoval,
  recordedInitMode,
  withInitBlock,
  withoutBlock,
  withRulesBlock,
} from '../../src/install/ufw-hook.ts';

const FIXTURES = new URL('../fixtures/ufw/hook/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');
const AFTER = fixture('after.rules');
const AFTER6 = fixture('after6.rules');
const INIT = fixture('before.init');

/** Asserts that adding then removing the block gives back exactly `text`, and that adding twice changes nothing. */
function roundTrip(text: string, add: (text: string) => string): string {
  const added = add(text);
  assert.notEqual(added, text);
  assert.equal(add(added), added, 'adding again is a no-op');
  assert.equal(withoutBlock(added, 'f'), text, 'removal gives back the file byte for byte');
  return added;
}

describe('after.rules block', () => {
  it('goes first in ufw-after-input (before the first -A line), and comes out byte-identical', () => {
    const added = roundTrip(AFTER, (text) => withRulesBlock(text, 'after.rules', 'v4'));
    const lines = added.split('\n');
    const begin = lines.findIndex((line) => line.startsWith(BLOCK_BEGIN));
    assert.deepEqual(lines.slice(begin + 1, begin + 4), [
      '-A ufw-after-input -p udp -m set --match-set moshwall-any4 dst -j ACCEPT',
      '-A ufw-after-input -p udp -m set --match-set moshwall-net4 src,dst -j ACCEPT',
      BLOCK_END,
    ]);
    assert.equal(lines[begin + 4], '-A ufw-after-input -p udp --dport 137 -j ufw-skip-to-policy-input');
    assert.ok(lines.slice(0, begin).some((line) => line === ':ufw-after-input - [0:0]'));
  });

  it('v6 uses ufw6-after-input and the v6 sets', () => {
    const added = roundTrip(AFTER6, (text) => withRulesBlock(text, 'after6.rules', 'v6'));
    assert.match(added, /^-A ufw6-after-input -p udp -m set --match-set moshwall-net6 src,dst -j ACCEPT$/m);
    assert.doesNotMatch(added, /moshwall-any4/);
  });

  it('keeps CRLF line endings and a missing final newline', () => {
    const crlf = AFTER.replaceAll('\n', '\r\n').replace(/\r\n$/, '');
    const added = roundTrip(crlf, (text) => withRulesBlock(text, 'after.rules', 'v4'));
    assert.ok(
      added
        .split('\n')
        .slice(0, -1)
        .every((line) => line.endsWith('\r')),
      'every line stays CRLF',
    );
    const bare = AFTER.replace(/\n$/, '');
    roundTrip(bare, (text) => withRulesBlock(text, 'after.rules', 'v4'));
  });

  it('a file whose *filter section has no rule gets the block before COMMIT', () => {
    const empty = '*filter\n:ufw-after-input - [0:0]\nCOMMIT';
    const added = roundTrip(empty, (text) => withRulesBlock(text, 'after.rules', 'v4'));
    assert.match(added, /# END moshwall fast path\nCOMMIT$/);
  });

  it('an admin edit around our block survives removal, and only the block goes', () => {
    const added = withRulesBlock(AFTER, 'after.rules', 'v4');
    const edited = added
      .replace(BLOCK_BEGIN, `-A ufw-after-input -p tcp --dport 8080 -j ACCEPT\n${BLOCK_BEGIN}`)
      .replace('COMMIT', '# admin was here\nCOMMIT');
    const removed = withoutBlock(edited, 'after.rules');
    assert.equal(
      removed,
      AFTER.replace(
        '-A ufw-after-input -p udp --dport 137',
        '-A ufw-after-input -p tcp --dport 8080 -j ACCEPT\n-A ufw-after-input -p udp --dport 137',
      ).replace('COMMIT', '# admin was here\nCOMMIT'),
    );
  });

  it('an edited block of ours is replaced, not duplicated', () => {
    const added = withRulesBlock(AFTER, 'after.rules', 'v4');
    const tampered = added.replace('moshwall-net4 src,dst', 'moshwall-net4 dst');
    assert.equal(withRulesBlock(tampered, 'after.rules', 'v4'), added);
  });

  it('refuses a file without the anchor, and a damaged block, naming the file', () => {
    const refuses = (text: string, pattern: RegExp) =>
      assert.throws(
        () => withRulesBlock(text, '/etc/ufw/after.rules', 'v4'),
        (error: unknown) =>
          error instanceof MoshwallError && error.code === 'EINSTALL' && pattern.test(error.message),
      );
    refuses('# nothing here\n', /\/etc\/ufw\/after\.rules does not look like UFW's file: no "\*filter"/);
    refuses('*filter\n:other - [0:0]\nCOMMIT\n', /does not declare :ufw-after-input/);
    const added = withRulesBlock(AFTER, 'x', 'v4');
    refuses(added.replace(BLOCK_END, ''), /damaged moshwall block \(1 .* and 0 /);
    refuses(`${added}\n${BLOCK_BEGIN}\n`, /damaged/);
    refuses(AFTER.replace('COMMIT', `${BLOCK_END}\n${BLOCK_BEGIN}\nCOMMIT`), /in that order/);
    assert.throws(() => withoutBlock(added.replace(BLOCK_END, ''), 'x'), /damaged/);
  });

  it('findBlock finds nothing in a pristine file', () => {
    assert.equal(findBlock(AFTER, 'after.rules'), undefined);
  });
});

describe('before.init block', () => {
  it('creates our sets in the start) branch, records the mode, and comes out byte-identical', () => {
    const added = roundTrip(INIT, (text) => withInitBlock(text, 'before.init', 0o640));
    const lines = added.split('\n');
    const start = lines.findIndex((line) => line.trim() === 'start)');
    assert.match(lines[start + 1] ?? '', /# BEGIN moshwall fast path \(file mode before: 0640;/);
    assert.equal(lines[start + 2], '    if command -v ipset >/dev/null 2>&1; then');
    assert.equal(
      lines[start + 3],
      '        ipset -exist create moshwall-any4 bitmap:port range 0-65535 || true',
    );
    assert.equal(
      lines[start + 6],
      '        ipset -exist create moshwall-net6 hash:net,port family inet6 || true',
    );
    assert.equal(recordedInitMode(added, 'before.init'), 0o640);
    assert.equal(recordedInitMode(INIT, 'before.init'), undefined);
  });

  it('refuses a before.init without a start) line', () => {
    assert.throws(() => withInitBlock('#!/bin/sh\nexit 0\n', '/etc/ufw/before.init', 0o640), /no `start\)`/);
  });
});

describe('hook plans', () => {
  const host = (files: Record<string, { text: string; mode: number }>) => ({
    ufwDir: '/etc/ufw',
    readText: (path: string) => files[path]?.text,
    modeOf: (path: string) => files[path]?.mode,
  });
  const pristine = {
    '/etc/ufw/after.rules': { text: AFTER, mode: 0o640 },
    '/etc/ufw/after6.rules': { text: AFTER6, mode: 0o640 },
    '/etc/ufw/before.init': { text: INIT, mode: 0o640 },
  };

  it('install: create our 4 sets, write the 3 files (before.init executable), reload with rollback', () => {
    const steps = planHookInstall(host(pristine));
    assert.deepEqual(
      steps.map((step) =>
        step.kind === 'run'
          ? step.argv.join(' ')
          : step.kind === 'write'
            ? `write ${step.path} ${step.mode.toString(8)}`
            : step.kind,
      ),
      [
        'ipset -exist create moshwall-any4 bitmap:port range 0-65535',
        'ipset -exist create moshwall-any6 bitmap:port range 0-65535',
        'ipset -exist create moshwall-net4 hash:net,port family inet',
        'ipset -exist create moshwall-net6 hash:net,port family inet6',
        'write /etc/ufw/after.rules 640',
        'write /etc/ufw/after6.rules 640',
        'write /etc/ufw/before.init 740',
        'ufw-reload',
      ],
    );
    const reload = steps.at(-1);
    assert.ok(reload?.kind === 'ufw-reload');
    assert.deepEqual(
      reload.rollback.map((file) => [file.path, file.content, file.mode]),
      Object.entries(pristine).map(([path, file]) => [path, file.text, file.mode]),
    );
  });

  it('install again changes no file and does not reload', () => {
    const installed = Object.fromEntries(
      planHookInstall(host(pristine)).flatMap((step) =>
        step.kind === 'write' ? [[step.path, { text: step.content, mode: step.mode }]] : [],
      ),
    );
    assert.ok(hookInstalled(host(installed)));
    assert.deepEqual(
      planHookInstall(host(installed)).map((step) => step.kind),
      ['run', 'run', 'run', 'run'],
    );
    const removal = planHookRemoval(host(installed));
    const restored = removal.flatMap((step) =>
      step.kind === 'write' ? [[step.path, step.content, step.mode]] : [],
    );
    assert.deepEqual(
      restored,
      Object.entries(pristine).map(([path, file]) => [path, file.text, file.mode]),
      'removal writes back every file byte for byte, before.init with its old mode',
    );
    assert.deepEqual(
      removal.slice(-2).map((step) => step.kind),
      ['ufw-reload', 'ipset-destroy'],
    );
  });

  it('install refuses when a hook file is missing', () => {
    const { '/etc/ufw/after6.rules': _gone, ...rest } = pristine;
    assert.throws(() => planHookInstall(host(rest)), /after6\.rules not found: is UFW installed/);
    assert.equal(hookInstalled(host(pristine)), false);
  });
});

describe('install/uninstall --ufw-hook-only', () => {
  const facts = (files: Record<string, string>) => ({
    layout: layoutFor(),
    state: () => ({ kind: 'missing' as const }),
    systemdRunning: false,
    readText: (path: string) => files[path],
    modeOf: (path: string) => (path in files ? 0o640 : undefined),
  });
  const pristine = {
    '/etc/ufw/after.rules': AFTER,
    '/etc/ufw/after6.rules': AFTER6,
    '/etc/ufw/before.init': INIT,
  };

  it('adds the hook when the config has it on, and only the hook', () => {
    const steps = planHookOnly(facts(pristine), 'install', true);
    assert.deepEqual(
      steps.map((step) => step.kind),
      ['run', 'run', 'run', 'run', 'write', 'write', 'write', 'ufw-reload'],
    );
  });

  it('with the config off, or on uninstall, removes a hook that is there and says when there is none', () => {
    const hooked = Object.fromEntries(
      planHookOnly(facts(pristine), 'install', true).flatMap((step) =>
        step.kind === 'write' ? [[step.path, step.content]] : [],
      ),
    );
    for (const action of ['install', 'uninstall'] as const) {
      assert.deepEqual(
        planHookOnly(facts(hooked), action, false).map((step) => step.kind),
        ['write', 'write', 'write', 'ufw-reload', 'ipset-destroy'],
      );
      assert.deepEqual(planHookOnly(facts(pristine), action, false), [
        { kind: 'note', text: 'no moshwall fast-path hook in /etc/ufw: nothing to do' },
      ]);
    }
  });
});
