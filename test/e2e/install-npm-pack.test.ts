// The npm package: `npm pack` ships exactly the bundle, the README, the example config and
// package.json, and `npm install -g ./moshwall-<version>.tgz` into a throwaway prefix gives a working
// `moshwall` command (offline: the package has no dependencies). Nothing outside the temp dir changes.
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, VERSION } from './_deb.ts';
import { BASE_ENV, runOk } from './_exec.ts';

describe('npm pack → npm install -g in a throwaway prefix', () => {
  let work = '';
  let env: Record<string, string> = {};
  const tarball = () => join(work, `moshwall-${VERSION}.tgz`);

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'moshwall-npm-test-'));
    // npm's cache, config and logs all go to the temp dir.
    env = {
      ...BASE_ENV,
      HOME: work,
      npm_config_cache: join(work, 'cache'),
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    };
  });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  test('npm pack ships the bundle, the README, the example config and package.json', async () => {
    const dryRun = await runOk(['npm', 'pack', '--ignore-scripts', '--dry-run', '--json', REPO], {
      env,
      timeoutMs: 60_000,
    });
    const [pack] = JSON.parse(dryRun.stdout) as Array<{
      name: string;
      version: string;
      files: Array<{ path: string; mode: number }>;
    }>;
    assert.equal(pack?.name, 'moshwall');
    assert.equal(pack?.version, VERSION);
    assert.deepEqual(pack?.files.map((file) => `${file.path} ${file.mode.toString(8)}`).sort(), [
      'README.md 644',
      'dist/moshwall.js 755',
      'docs/moshwall.example.toml 644',
      'package.json 644',
    ]);
    const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
      type: string;
    };
    assert.deepEqual(manifest.bin, { moshwall: 'dist/moshwall.js' });
    assert.equal(
      manifest.type,
      'module',
      'the bundle is an ES module: Node reads it as one from package.json',
    );
    await runOk(['npm', 'pack', '--ignore-scripts', '--pack-destination', work, REPO], {
      env,
      timeoutMs: 60_000,
    });
    assert.ok(lstatSync(tarball()).size > 0);
  });

  test('npm install -g ./moshwall-*.tgz gives a moshwall command that runs', async () => {
    const prefix = join(work, 'prefix');
    await runOk(['npm', 'install', '--global', '--offline', '--prefix', prefix, tarball()], {
      env,
      timeoutMs: 120_000,
    });
    const bin = join(prefix, 'bin', 'moshwall');
    assert.equal(readlinkSync(bin), '../lib/node_modules/moshwall/dist/moshwall.js');
    const version = await runOk([bin, '--version'], { env: BASE_ENV });
    assert.equal(version.stdout, `${VERSION}\n`);
    const help = await runOk([bin, '--help'], { env: BASE_ENV });
    assert.match(help.stdout, /^Usage: moshwall /m);
    const checked = await runOk(
      [bin, '--config', join(prefix, 'lib/node_modules/moshwall/docs/moshwall.example.toml'), 'check-config'],
      {
        env: BASE_ENV,
      },
    );
    assert.match(checked.stdout, /^ok: /);
  });
});
