import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { EXAMPLE_CONFIG, systemdUnit } from '../../src/install/assets.ts';
import { PERL_SHIM } from '../../src/shim/perl-shim.generated.ts';

it('deploy/moshwall.service is the unit moshwall installs for /usr/lib/moshwall (the .deb layout)', () => {
  assert.equal(
    readFileSync('deploy/moshwall.service', 'utf8'),
    systemdUnit('/usr/bin/node', '/usr/lib/moshwall/moshwall.js'),
  );
});

it('docs/moshwall.example.toml is the config moshwall installs', () => {
  assert.equal(readFileSync('docs/moshwall.example.toml', 'utf8'), EXAMPLE_CONFIG);
});

it('the perl shim the bundle installs is src/shim/mosh-server.pl, byte for byte', () => {
  assert.equal(readFileSync('src/shim/mosh-server.pl', 'utf8'), PERL_SHIM);
});
