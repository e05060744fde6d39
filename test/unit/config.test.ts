import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG, loadConfig, parseConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';

/** The ConfigError parseConfig throws for a text, or a failure if it accepts it. */
function rejection(text: string): ConfigError {
  try {
    parseConfig(text, '/etc/moshwall/moshwall.toml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`accepted: ${text}`);
}

describe('parseConfig', () => {
  it('gives the defaults for an empty file, with the file as source', () => {
    assert.deepEqual(parseConfig('# nothing\n', '/x.toml'), { ...DEFAULT_CONFIG, source: '/x.toml' });
  });

  it('reads every key', () => {
    const config = parseConfig(
      [
        'backend = "ufw"',
        'port_range = "60001:60100"',
        'allow_users = ["alice", "bob"]',
        'allow_groups = ["mosh"]',
        'max_sessions_per_user = 3',
        'source_networks = ["192.0.2.0/24", "2001:DB8::/32"]',
        'mosh_server_names = ["mosh-server", "mosh-server-real"]',
        'mosh_server = "/usr/bin/mosh-server"',
        'lock_file = "/run/moshwall/lock"',
        'command_timeout_ms = 5000',
        'lock_timeout_ms = 1000',
      ].join('\n'),
      '/c.toml',
    );
    assert.deepEqual(config.portRange, { first: 60001, last: 60100 });
    assert.deepEqual(config.allowUsers, ['alice', 'bob']);
    assert.deepEqual(config.allowGroups, ['mosh']);
    assert.equal(config.maxSessionsPerUser, 3);
    assert.deepEqual(config.sourceNetworks, ['192.0.2.0/24', '2001:db8::/32']);
    assert.deepEqual(config.moshServerNames, ['mosh-server', 'mosh-server-real']);
    assert.equal(config.commandTimeoutMs, 5000);
    assert.equal(config.lockTimeoutMs, 1000);
  });

  it('reads the nftables and iptables placement keys', () => {
    const config = parseConfig(
      'backend = "nftables"\nnftables_table = "ip6 fw"\nnftables_chain = "in_put"\niptables_variant = "legacy"\n',
      '/c.toml',
    );
    assert.equal(config.backend, 'nftables');
    assert.deepEqual(config.nftablesTable, { family: 'ip6', name: 'fw' });
    assert.equal(config.nftablesChain, 'in_put');
    assert.equal(config.iptablesVariant, 'legacy');
  });

  it('reads backend firewalld and its zone', () => {
    const config = parseConfig('backend = "firewalld"\nfirewalld_zone = "my-zone_2"\n', '/c.toml');
    assert.equal(config.backend, 'firewalld');
    assert.equal(config.firewalldZone, 'my-zone_2');
    assert.equal(parseConfig('backend = "firewalld"\n', '/c.toml').firewalldZone, undefined);
  });

  it('reads ufw_fast_path: absence and "auto" leave the choice to the host, the rest are kept', () => {
    assert.equal(parseConfig('ufw_fast_path = "ipset"\n', '/c.toml').ufwFastPath, 'ipset');
    assert.equal(parseConfig('ufw_fast_path = "runtime"\n', '/c.toml').ufwFastPath, 'runtime');
    assert.equal(parseConfig('ufw_fast_path = "off"\n', '/c.toml').ufwFastPath, 'off');
    assert.equal(parseConfig('ufw_fast_path = "auto"\n', '/c.toml').ufwFastPath, undefined);
    assert.equal(parseConfig('', '/c.toml').ufwFastPath, undefined);
  });

  const cases: [string, string, RegExp, number | undefined, string | undefined][] = [
    [
      'unknown key',
      'port_range = "60000:61000"\nallow_user = ["x"]',
      /:2: allow_user: unknown key/,
      2,
      'allow_user',
    ],
    [
      'range order',
      'port_range = "61000:60000"',
      /:1: port_range: "61000:60000" is not a range/,
      1,
      'port_range',
    ],
    [
      'range syntax',
      '\n\nport_range = "60000-61000"',
      /:3: port_range: expected "first:last"/,
      3,
      'port_range',
    ],
    ['range type', 'port_range = 60000', /expected a string/, 1, 'port_range'],
    [
      'cap negative',
      'max_sessions_per_user = -1',
      /whole number from 0 to 65535, got -1/,
      1,
      'max_sessions_per_user',
    ],
    ['cap float', 'max_sessions_per_user = 1.5', /got 1\.5/, 1, 'max_sessions_per_user'],
    ['bad network', 'source_networks = ["10.0.0.1/8"]', /host bits set/, 1, 'source_networks'],
    ['bad user', 'allow_users = ["al ice"]', /"al ice" is not a valid name/, 1, 'allow_users'],
    ['user not string', 'allow_users = [1]', /expected strings/, 1, 'allow_users'],
    [
      'backend',
      'backend = "shorewall"',
      /backend: expected "ufw", "nftables", "iptables", "firewalld" or "auto"/,
      1,
      'backend',
    ],
    [
      'nftables table',
      'nftables_table = "filter"',
      /expected "<inet\|ip\|ip6> <table name>"/,
      1,
      'nftables_table',
    ],
    ['nftables chain', 'nftables_chain = "in put"', /expected a chain name/, 1, 'nftables_chain'],
    [
      'ufw fast path',
      'backend = "ufw"\nufw_fast_path = "nft"',
      /:2: ufw_fast_path: expected "auto", "runtime", "ipset" or "off", got "nft"/,
      2,
      'ufw_fast_path',
    ],
    ['iptables variant', 'iptables_variant = "xtables"', /expected "nft" or "legacy"/, 1, 'iptables_variant'],
    [
      'firewalld zone',
      'firewalld_zone = "public; reboot"',
      /expected a firewalld zone name/,
      1,
      'firewalld_zone',
    ],
    [
      'firewalld zone dash',
      'firewalld_zone = "--permanent"',
      /expected a firewalld zone name/,
      1,
      'firewalld_zone',
    ],
    [
      'firewalld zone long',
      `firewalld_zone = "${'z'.repeat(33)}"`,
      /expected a firewalld zone name/,
      1,
      'firewalld_zone',
    ],
    ['firewalld zone type', 'firewalld_zone = 1', /expected a firewalld zone name/, 1, 'firewalld_zone'],
    ['relative path', 'mosh_server = "mosh-server"', /absolute path/, 1, 'mosh_server'],
    ['dotdot path', 'lock_file = "/run/../tmp/x"', /absolute path/, 1, 'lock_file'],
    [
      'names with slash',
      'mosh_server_names = ["/usr/bin/mosh-server"]',
      /bare file name/,
      1,
      'mosh_server_names',
    ],
    ['empty names', 'mosh_server_names = []', /at least one/, 1, 'mosh_server_names'],
    ['table', '[ufw]\nx = 1', /ufw: unknown key/, 1, 'ufw'],
    [
      'syntax',
      'port_range = "60000:61000"\nallow_users = [',
      /moshwall\.toml:\d+: Invalid TOML/,
      undefined,
      undefined,
    ],
  ];
  for (const [name, text, message, line, key] of cases) {
    it(`rejects ${name} naming file, line and key`, () => {
      const error = rejection(text);
      assert.match(error.message, /^\/etc\/moshwall\/moshwall\.toml/);
      assert.match(error.message, message);
      assert.equal(error.context.file, '/etc/moshwall/moshwall.toml');
      if (line !== undefined) assert.equal(error.context.line, line);
      if (key !== undefined) assert.equal(error.context.key, key);
    });
  }
});

describe('loadConfig', () => {
  it('uses the defaults when no file is named and the default file is absent', () => {
    // The default path exists only on hosts where moshwall is installed; skip there.
    const config = loadConfig(undefined, {});
    if (config.source === '(defaults)') assert.deepEqual(config, DEFAULT_CONFIG);
    else assert.equal(config.source, '/etc/moshwall/moshwall.toml');
  });

  it('reads --config, then MOSHWALL_CONFIG, and fails on a named file that is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moshwall-config-'));
    try {
      const a = join(dir, 'a.toml');
      const b = join(dir, 'b.toml');
      writeFileSync(a, 'max_sessions_per_user = 1\n');
      writeFileSync(b, 'max_sessions_per_user = 2\n');
      assert.equal(loadConfig(a, { MOSHWALL_CONFIG: b }).maxSessionsPerUser, 1);
      assert.equal(loadConfig(undefined, { MOSHWALL_CONFIG: b }).maxSessionsPerUser, 2);
      assert.throws(
        () => loadConfig(join(dir, 'missing.toml'), {}),
        /Cannot read config file .*missing\.toml: ENOENT/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config: allow_foreign_namespaces (issue 10 #1)', () => {
  it('is false by default, takes a boolean, and refuses anything else with the key named', () => {
    assert.equal(parseConfig('', '/etc/moshwall/moshwall.toml').allowForeignNamespaces, false);
    assert.equal(parseConfig('allow_foreign_namespaces = true\n', 'f.toml').allowForeignNamespaces, true);
    assert.throws(
      () => parseConfig('allow_foreign_namespaces = "yes"\n', 'f.toml'),
      /allow_foreign_namespaces/,
    );
  });
});
