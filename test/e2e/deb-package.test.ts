// The .deb as a file (no install): packaging/build-deb.sh builds it from dist/moshwall.js; its control
// fields, every path with mode, owner and link target, conffiles and md5sums, the bytes of what it ships,
// the man page (current with the CLI's help and free of groff warnings), lintian, and reproducibility.
// Installing it on a real Debian 12 is deb-bookworm.test.ts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { renderManPage } from '../../packaging/manpage.ts';
import { buildDeb, debContents, EXPECTED_CONTENTS, REPO, VERSION } from './_deb.ts';
import { BASE_ENV, run, runOk } from './_exec.ts';

describe('the .deb built by packaging/build-deb.sh', () => {
  let work = '';
  let deb = '';
  /** The package unpacked with dpkg-deb -x (files) and -e (control). */
  let files = '';
  let control = '';
  const text = (path: string) => readFileSync(join(files, path), 'utf8');

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'moshwall-deb-test-'));
    deb = await buildDeb(join(work, 'out'));
    files = join(work, 'files');
    control = join(work, 'control');
    await runOk(['dpkg-deb', '-x', deb, files], { env: BASE_ENV });
    await runOk(['dpkg-deb', '-e', deb, control], { env: BASE_ENV });
  });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  test('control: name, version, architecture, dependencies', async () => {
    const field = async (name: string) =>
      (await runOk(['dpkg-deb', '--field', deb, name], { env: BASE_ENV })).stdout.trim();
    assert.equal(await field('Package'), 'moshwall');
    assert.equal(await field('Version'), VERSION);
    assert.equal(await field('Architecture'), 'all');
    assert.equal(await field('Depends'), 'nodejs (>= 18)');
    assert.equal(await field('Recommends'), 'mosh, conntrack, ipset, ufw | nftables | iptables | firewalld');
    assert.equal(await field('Section'), 'net');
    assert.match(await field('Maintainer'), /^.+ <[^@\s]+@[^@\s]+>$/);
    const info = (await runOk(['dpkg-deb', '--info', deb], { env: BASE_ENV })).stdout;
    for (const script of ['postinst', 'prerm', 'postrm']) {
      assert.match(
        info,
        new RegExp(`\\d+ bytes,\\s+\\d+ lines\\s+\\*\\s+${script}\\s+#!/bin/sh`),
        `${script}: ${info}`,
      );
    }
  });

  test('contents: exactly these paths, modes, owners and link targets', async () => {
    const expected = [...EXPECTED_CONTENTS].sort((a, b) => a.path.localeCompare(b.path));
    assert.deepEqual(await debContents(deb), expected);
  });

  test('conffiles and md5sums', () => {
    assert.equal(readFileSync(join(control, 'conffiles'), 'utf8'), '/etc/moshwall/moshwall.toml\n');
    const sums = readFileSync(join(control, 'md5sums'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => ({ md5: line.slice(0, 32), path: line.slice(34) }));
    const regular = EXPECTED_CONTENTS.filter((entry) => entry.type === '-' && !entry.path.startsWith('/etc/'))
      .map((entry) => entry.path.slice(1))
      .sort();
    assert.deepEqual(sums.map((sum) => sum.path).sort(), regular, 'every shipped file but the conffile');
    for (const { md5, path } of sums) {
      assert.equal(
        createHash('md5')
          .update(readFileSync(join(files, path)))
          .digest('hex'),
        md5,
        path,
      );
    }
  });

  test('ships the built bundle, the unit, the config and the docs unchanged', () => {
    const bundle = readFileSync(join(REPO, 'dist', 'moshwall.js'), 'utf8');
    const shipped = text('usr/lib/moshwall/moshwall.js');
    assert.equal(shipped.split('\n')[0], '#!/usr/bin/node', "run by Debian's node, whatever PATH says");
    assert.equal(shipped.slice(shipped.indexOf('\n')), bundle.slice(bundle.indexOf('\n')));
    assert.deepEqual(JSON.parse(text('usr/lib/moshwall/package.json')), { type: 'module' });
    assert.equal(
      text('usr/lib/moshwall/mosh-server'),
      readFileSync(join(REPO, 'src', 'shim', 'mosh-server.pl'), 'utf8'),
      'the perl shim',
    );
    assert.equal(
      text('lib/systemd/system/moshwall.service'),
      readFileSync(join(REPO, 'deploy', 'moshwall.service'), 'utf8'),
    );
    assert.match(
      text('lib/systemd/system/moshwall.service'),
      /^ExecStart=\/usr\/bin\/node \/usr\/lib\/moshwall\/moshwall\.js daemon$/m,
    );
    const example = readFileSync(join(REPO, 'docs', 'moshwall.example.toml'), 'utf8');
    assert.equal(text('etc/moshwall/moshwall.toml'), example);
    assert.equal(text('usr/share/doc/moshwall/moshwall.example.toml'), example);
    assert.equal(text('usr/share/doc/moshwall/README.md'), readFileSync(join(REPO, 'README.md'), 'utf8'));
    assert.match(
      text('usr/share/doc/moshwall/copyright'),
      /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\//,
    );
    assert.match(
      text('usr/share/doc/moshwall/copyright'),
      /^License: BSD-3-Clause$/m,
      'the bundled smol-toml',
    );
    const changelog = gunzipSync(readFileSync(join(files, 'usr/share/doc/moshwall/changelog.gz'))).toString(
      'utf8',
    );
    assert.match(
      changelog,
      new RegExp(`^moshwall \\(${VERSION.replaceAll('.', '\\.')}\\) unstable; urgency=medium$`, 'm'),
    );
    const man = gunzipSync(readFileSync(join(files, 'usr/share/man/man8/moshwall.8.gz'))).toString('utf8');
    assert.equal(man, readFileSync(join(REPO, 'packaging', 'moshwall.8'), 'utf8'));
  });

  test('the man page is current with the help texts and renders without warnings', async () => {
    assert.equal(
      await renderManPage(),
      readFileSync(join(REPO, 'packaging', 'moshwall.8'), 'utf8'),
      'packaging/moshwall.8 is stale: node --import tsx packaging/manpage.ts > packaging/moshwall.8',
    );
    const man = await run(
      ['man', '--warnings', '-E', 'UTF-8', '-l', '-Tutf8', '-Z', join(REPO, 'packaging', 'moshwall.8')],
      {
        env: { ...BASE_ENV, LC_ALL: 'C.UTF-8', MANROFFSEQ: '', MANWIDTH: '80' },
      },
    );
    assert.equal(man.exitCode, 0, man.stderr);
    assert.equal(man.stderr, '', 'groff warnings');
    for (const name of [
      'sync',
      'status',
      'flush',
      'doctor',
      'daemon',
      'shim',
      'hook',
      'install',
      'uninstall',
    ]) {
      assert.match(
        readFileSync(join(REPO, 'packaging', 'moshwall.8'), 'utf8'),
        new RegExp(`^\\.SS ${name}$`, 'm'),
      );
    }
  });

  test('lintian finds no error and no warning', async () => {
    // lintian leaves cache files (mldbm-elf-*) in its TMPDIR: give it one inside `work`, removed after.
    const lintianTmp = join(work, 'lintian-tmp');
    mkdirSync(lintianTmp);
    const result = await run(['lintian', '--pedantic', '--no-tag-display-limit', deb], {
      env: { ...BASE_ENV, LC_ALL: 'C.UTF-8', TMPDIR: lintianTmp },
      timeoutMs: 120_000,
    });
    const tags = result.stdout.split('\n').filter((line) => /^[EW]: /.test(line));
    assert.deepEqual(tags, [], result.stdout);
    assert.ok(result.exitCode === 0, `lintian exited ${result.exitCode}: ${result.stderr}`);
  });

  test('the same tree and SOURCE_DATE_EPOCH give the same bytes', async () => {
    const env = { SOURCE_DATE_EPOCH: '1767225600' };
    const first = readFileSync(await buildDeb(join(work, 'repro-1'), env));
    const second = readFileSync(await buildDeb(join(work, 'repro-2'), env));
    assert.ok(first.equals(second), 'two builds differ');
    assert.deepEqual(readdirSync(join(work, 'repro-1')), [`moshwall_${VERSION}_all.deb`]);
  });
});
