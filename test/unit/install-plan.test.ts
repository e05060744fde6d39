import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoshwallError } from '../../src/errors.ts';
import { withInterpreter } from '../../src/install/apply.ts';
import {
  layoutFor,
  type PathState,
  planInstall,
  planUninstall,
  type Step,
  sudoersText,
} from '../../src/install/plan.ts';

const layout = layoutFor();

/** Install facts for a host where `existing` paths are in the given state and all else is missing. */
function facts(existing: Record<string, PathState> = {}, systemdRunning = true) {
  return {
    layout,
    selfPath: '/home/admin/moshwall/dist/moshwall.js',
    nodePath: '/usr/bin/node',
    state: (path: string): PathState => existing[path] ?? { kind: 'missing' },
    systemdRunning,
  };
}

const kinds = (steps: Step[]) =>
  steps.map((step) =>
    `${step.kind} ${'path' in step ? step.path : 'argv' in step ? step.argv.join(' ') : 'to' in step ? step.to : ''}`.trim(),
  );

describe('planInstall', () => {
  it('installs bundle, command, shim, unit and a default config, then enables the service', () => {
    const steps = planInstall(facts(), { sudoers: false });
    assert.deepEqual(kinds(steps), [
      'mkdir /usr/local/lib/moshwall',
      'copy /usr/local/lib/moshwall/moshwall.js',
      'write /usr/local/lib/moshwall/package.json',
      'symlink /usr/local/sbin/moshwall',
      'symlink /usr/local/bin/mosh-server',
      'write /etc/systemd/system/moshwall.service',
      'mkdir /etc/moshwall',
      'write /etc/moshwall/moshwall.toml',
      'write /usr/local/lib/moshwall/installed.json',
      'run systemctl daemon-reload',
      'run systemctl enable --now moshwall.service',
    ]);
    const unit = steps.find((step) => step.kind === 'write' && step.path.endsWith('.service'));
    assert.match(
      unit && 'content' in unit ? unit.content : '',
      /^ExecStart=\/usr\/bin\/node \/usr\/local\/lib\/moshwall\/moshwall\.js daemon$/m,
    );
  });

  it('keeps an existing config, writes the sudoers drop-in on request, and explains when systemd is absent', () => {
    const steps = planInstall(facts({ '/etc/moshwall/moshwall.toml': { kind: 'file' } }, false), {
      sudoers: true,
    });
    const listed = kinds(steps);
    assert.ok(!listed.includes('write /etc/moshwall/moshwall.toml'));
    assert.ok(listed.includes('sudoers /etc/sudoers.d/moshwall'));
    assert.ok(!listed.some((line) => line.startsWith('run systemctl')));
    assert.ok(steps.some((step) => step.kind === 'note' && /systemd is not running/.test(step.text)));
    const manifest = steps.find((step) => step.kind === 'write' && step.path.endsWith('installed.json'));
    assert.deepEqual(JSON.parse(manifest && 'content' in manifest ? manifest.content : '{}'), {
      version: 1,
      paths: [layout.bundle, layout.moduleMarker, layout.command, layout.shim, layout.unit, layout.sudoers],
      configCreated: false,
    });
  });

  it('refuses to replace a mosh-server that is not ours, and accepts its own link (reinstall)', () => {
    assert.throws(
      () => planInstall(facts({ '/usr/local/bin/mosh-server': { kind: 'file' } }), { sudoers: false }),
      /\/usr\/local\/bin\/mosh-server exists and is not moshwall's/,
    );
    assert.throws(
      () =>
        planInstall(facts({ '/usr/local/bin/mosh-server': { kind: 'symlink', target: '/opt/other' } }), {
          sudoers: false,
        }),
      /refusing to overwrite/,
    );
    assert.doesNotThrow(() =>
      planInstall(facts({ '/usr/local/bin/mosh-server': { kind: 'symlink', target: layout.bundle } }), {
        sudoers: false,
      }),
    );
  });

  it('allows exactly `moshwall hook` in sudoers', () => {
    assert.match(
      sudoersText(layout.command),
      /^ALL ALL=\(root\) NOPASSWD: \/usr\/local\/sbin\/moshwall hook$/m,
    );
  });
});

describe('the shim: perl where there is perl, else the bundle', () => {
  it('writes the perl shim under the interpreter found and links mosh-server to it, recorded for uninstall', () => {
    const steps = planInstall({ ...facts(), perl: '/usr/bin/perl' }, { sudoers: false });
    const listed = kinds(steps);
    assert.ok(listed.includes('write /usr/local/lib/moshwall/mosh-server'), listed.join('\n'));
    const link = steps.find((step) => step.kind === 'symlink' && step.path === layout.shim);
    assert.deepEqual(link, { kind: 'symlink', target: layout.perlShim, path: layout.shim });
    const script = steps.find((step) => step.kind === 'write' && step.path === layout.perlShim);
    assert.ok(script && script.kind === 'write');
    assert.equal(script.mode, 0o755);
    assert.equal(script.content.split('\n')[0], '#!/usr/bin/perl');
    assert.match(script.content, /MOSH CONNECT/);
    const manifest = steps.find((step) => step.kind === 'write' && step.path.endsWith('installed.json'));
    assert.ok(manifest && manifest.kind === 'write');
    assert.ok((JSON.parse(manifest.content) as { paths: string[] }).paths.includes(layout.perlShim));
  });

  it('an older install whose shim links to the bundle is ours: reinstalled onto the perl shim', () => {
    const steps = planInstall(
      { ...facts({ [layout.shim]: { kind: 'symlink', target: layout.bundle } }), perl: '/usr/bin/perl' },
      { sudoers: false },
    );
    assert.ok(steps.some((step) => step.kind === 'symlink' && step.target === layout.perlShim));
    const uninstall = planUninstall(
      facts({ [layout.shim]: { kind: 'symlink', target: layout.perlShim } }),
      { version: 1, paths: [layout.perlShim, layout.shim], configCreated: true },
      { purge: false },
    );
    assert.ok(kinds(uninstall).includes(`remove ${layout.shim}`), 'a link to our perl shim is removed');
  });
});

describe('planUninstall', () => {
  const manifest = {
    version: 1 as const,
    paths: [layout.bundle, layout.command, layout.shim, layout.unit],
    configCreated: true,
  };
  const installed: Record<string, PathState> = {
    [layout.bundle]: { kind: 'file' },
    [layout.command]: { kind: 'symlink', target: layout.bundle },
    [layout.shim]: { kind: 'symlink', target: '/opt/admins-own-mosh-server' },
    [layout.unit]: { kind: 'file' },
    [layout.config]: { kind: 'file' },
  };

  it('stops, flushes, removes what it made, leaves what was replaced, keeps the config', () => {
    const steps = planUninstall(facts(installed), manifest, { purge: false });
    const listed = kinds(steps);
    assert.equal(listed[0], 'run systemctl disable --now moshwall.service');
    assert.equal(listed[1], 'flush');
    assert.ok(listed.includes(`remove ${layout.command}`));
    assert.ok(!listed.includes(`remove ${layout.shim}`), 'a mosh-server someone replaced is left alone');
    assert.ok(!listed.includes(`remove ${layout.config}`));
    assert.ok(listed.indexOf(`remove ${layout.bundle}`) > listed.indexOf(`remove ${layout.command}`));
  });

  it('removes the config with --purge', () => {
    assert.ok(
      kinds(planUninstall(facts(installed), manifest, { purge: true })).includes(`remove ${layout.config}`),
    );
  });
});

describe('the installed entry points run a fixed, verified interpreter', () => {
  it('copies the bundle with `#!<node>` as its first line, never `#!/usr/bin/env node`', () => {
    const copy = planInstall(facts(), { sudoers: false }).find((step) => step.kind === 'copy');
    assert.deepEqual(copy, {
      kind: 'copy',
      from: '/home/admin/moshwall/dist/moshwall.js',
      to: '/usr/local/lib/moshwall/moshwall.js',
      mode: 0o755,
      interpreter: '/usr/bin/node',
    });
    assert.equal(
      withInterpreter('#!/usr/bin/env node\nrun();\n', '/usr/bin/node'),
      '#!/usr/bin/node\nrun();\n',
    );
    assert.equal(withInterpreter('run();\n', '/usr/bin/node'), '#!/usr/bin/node\nrun();\n');
  });

  it('refuses to install (exit 7) when node could be changed by someone other than root', () => {
    const unsafe = {
      ...facts(),
      nodePath: '/home/admin/.nvm/node',
      nodeProblem: 'node /home/admin/.nvm/node is owned by uid 1000, not root',
    };
    assert.throws(
      () => planInstall(unsafe, { sudoers: true }),
      (error: unknown) =>
        error instanceof MoshwallError &&
        error.code === 'EUNSAFE' &&
        /refusing to install: node \/home\/admin\/\.nvm\/node is owned by uid 1000/.test(error.message),
    );
  });

  it('fixes PATH and the environment for our command in the sudoers drop-in', () => {
    const lines = sudoersText('/usr/local/sbin/moshwall')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    assert.deepEqual(lines, [
      'Defaults!/usr/local/sbin/moshwall secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", env_reset, !setenv',
      'ALL ALL=(root) NOPASSWD: /usr/local/sbin/moshwall hook',
    ]);
  });
});
