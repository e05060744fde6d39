import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PLUGIN_DIR = fileURLToPath(new URL('../../../ansible/filter_plugins/', import.meta.url));

/** The filter's text for these hostvars, run by python3 as Ansible would import it. */
function table(hostnames: string[], hostvars: Record<string, unknown>): string {
  const script = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(PLUGIN_DIR)})`,
    'from moshwall_fleet import FilterModule',
    'data = json.load(sys.stdin)',
    "print(FilterModule().filters()['moshwall_fleet_table'](data['hosts'], data['hostvars']))",
  ].join('\n');
  // -B: no __pycache__ written into the repository's ansible/filter_plugins.
  const result = spawnSync('python3', ['-B', '-c', script], {
    input: JSON.stringify({ hosts: hostnames, hostvars }),
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

const status = {
  backend: 'ufw',
  firewall: { installed: true, active: true, ipv6: true, detail: [], problems: [] },
  sessions: [
    {
      pid: 157,
      uid: 1000,
      user: 'alice',
      port: 60005,
      family: 'v4',
      clientAddress: '203.0.113.9',
      ageSeconds: 3725,
      rule: 'open',
    },
  ],
  refused: [{ pid: 99, uid: 1001, user: 'bob', port: 60010, family: 'v4', reason: 'not named mosh-server' }],
  uninspected: [
    { pid: 1, uids: [0], root: true, exe: '/sbin/init', path: '/proc/1/fd/0', code: 'EACCES' },
    { pid: 77, uids: [1002], root: false, exe: '/usr/bin/x', path: '/proc/77/fd', code: 'EACCES' },
  ],
  rules: [
    { port: 60005, family: 'v4', source: '0.0.0.0/0', state: 'live' },
    { port: 60011, family: 'v4', source: '0.0.0.0/0', state: 'stale' },
  ],
  warnings: [],
  conntrack: { available: false, problem: 'conntrack (the conntrack package) is not installed: …' },
};

test('one line per host, per session and per problem; a bad host is a row with its error, the others stay', () => {
  const text = table(['web2', 'web1', 'db1', 'gone', 'broken'], {
    web1: { moshwall_fleet_status: { rc: 0, stdout: JSON.stringify(status), stderr: '' } },
    web2: {
      moshwall_fleet_status: {
        rc: 0,
        stdout: JSON.stringify({
          ...status,
          sessions: [],
          refused: [],
          uninspected: [],
          rules: [],
          conntrack: { available: true },
        }),
      },
    },
    db1: {
      moshwall_fleet_status: { rc: 5, stdout: '', stderr: 'moshwall: error: ufw is not installed\nmore' },
    },
    gone: {
      moshwall_fleet_status: { unreachable: true, msg: 'Failed to connect to the host via ssh: timeout' },
    },
    broken: { moshwall_fleet_status: { rc: 0, stdout: 'not json' } },
  });
  const lines = text.split('\n');
  assert.match(lines[0] ?? '', /^HOST\s+BACKEND\s+SESSIONS\s+LIVE RULES\s+RULES OF OURS\s+PROBLEMS$/);
  assert.deepEqual(
    lines.slice(1, 6).map((line) => line.split(/\s+/)),
    [
      ['broken', '-', '-', '-', '-', '1'],
      ['db1', '-', '-', '-', '-', '1'],
      ['gone', '-', '-', '-', '-', '1'],
      ['web1', 'ufw', '1', '1', '2', '4'],
      ['web2', 'ufw', '0', '0', '0', '0'],
    ],
  );
  assert.match(text, /^web1\s+alice\s+60005\/v4\s+203\.0\.113\.9\s+1h02m\s+open$/m);
  assert.match(text, /^db1\s+moshwall status failed \(exit 5\): moshwall: error: ufw is not installed$/m);
  assert.match(text, /^gone\s+unreachable: Failed to connect to the host via ssh: timeout$/m);
  assert.match(text, /^broken\s+moshwall status printed no JSON: not json$/m);
  assert.match(text, /^web1\s+refused: port 60010\/v4 held by bob pid 99 \(not named mosh-server\)$/m);
  assert.match(text, /^web1\s+uninspected: pid 77 \/usr\/bin\/x \(\/proc\/77\/fd EACCES\)$/m);
  assert.doesNotMatch(text, /pid 1 /, 'a root process that cannot be read is no problem');
  assert.match(text, /^web1\s+stale rule: 60011\/v4 from 0\.0\.0\.0\/0$/m);
  assert.match(text, /^web1\s+conntrack: conntrack \(the conntrack package\) is not installed/m);
});

test('a host with no result at all (not in this run) and an empty fleet still give the three parts', () => {
  const text = table(['lost'], { lost: {} });
  assert.match(text, /^lost\s+no status gathered \(the host was not in this run\)$/m);
  assert.match(text, /^SESSIONS\n\(none\)$/m);
  const empty = table([], {});
  assert.match(empty, /^HOST\s+BACKEND/);
  assert.match(empty, /^PROBLEMS\n\(none\)$/m);
});

test("a host's values cannot forge rows or send escape sequences: every control character is escaped", () => {
  // A user names what their processes show: an exe path with a newline and a forged row after it, an ESC
  // sequence in a refusal's reason, a bidi override in a session's client address (its SSH_CONNECTION).
  const forged = 'web9  ufw  0  0  0  0';
  const hostile = {
    ...status,
    sessions: [{ ...status.sessions[0], clientAddress: '203.0.113.9\u202e' }],
    refused: [{ ...status.refused[0], reason: 'not named mosh-server: \u001b]0;owned\u0007\u001b[2J' }],
    uninspected: [
      { pid: 77, uids: [1002], root: false, exe: `/tmp/x\n${forged}`, path: '/proc/77/fd', code: 'EACCES' },
    ],
  };
  const text = table(['web1'], {
    web1: { moshwall_fleet_status: { rc: 0, stdout: JSON.stringify(hostile), stderr: '' } },
  });
  assert.doesNotMatch(
    text,
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/,
  );
  assert.ok(!text.split('\n').includes(forged), 'no forged row');
  assert.match(text, /^web1\s+uninspected: pid 77 \/tmp\/x\\nweb9 {2}ufw/m);
  assert.match(text, /\(not named mosh-server: \\u001b\]0;owned\\u0007\\u001b\[2J\)$/m);
  assert.match(text, /^web1\s+alice\s+60005\/v4\s+203\.0\.113\.9\\u202e\s+1h02m\s+open$/m);
});

test("a failing host's row names moshwall's error, not a warning printed before it", () => {
  // Node warns first when root's environment names a NODE_EXTRA_CA_CERTS file that is missing.
  const warning =
    'Warning: Ignoring extra certs from `/etc/ssl/certs/ca-certificates.crt`, load failed: error:80000002:system library::No such file or directory';
  const error =
    'moshwall: error: /etc/moshwall/moshwall.toml:3: port_range: "60000:70000" is not a range within 1:65535 with first <= last';
  const text = table(['db1', 'db2'], {
    db1: { moshwall_fleet_status: { rc: 3, stdout: '', stderr: `${warning}\n${error} [file=x]\n` } },
    db2: { moshwall_fleet_status: { rc: 1, stdout: '', stderr: `${warning}\nKilled\n` } },
  });
  assert.match(
    text,
    /^db1\s+moshwall status failed \(exit 3\): moshwall: error: \/etc\/moshwall\/moshwall\.toml:3: port_range/m,
  );
  assert.match(text, /^db2\s+moshwall status failed \(exit 1\): Killed$/m);
  assert.doesNotMatch(text, /Ignoring extra certs/);
});
