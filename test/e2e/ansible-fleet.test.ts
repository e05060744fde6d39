// ansible/fleet-status.yml as ansible-playbook runs it, on the controller alone: the hosts of the inventory
// are local connections whose `moshwall` is a tiny fixture program first on PATH printing one host's
// `moshwall status --json` (one live session), plus a host whose SSH port is shut. What is proven is the
// playbook's shape, which the filter's unit test cannot see: the table comes once for the whole run, under
// --limit (a second play on localhost would be skipped by it and print nothing) and under --check (a
// command task without check_mode: false is skipped, and every host would read as "printed no JSON").
// guest-ansible.test.ts runs the same playbook over real SSH against booted guests.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO } from './_deb.ts';
import { BASE_ENV, type Result, run } from './_exec.ts';

const PLAYBOOK = join(REPO, 'ansible', 'fleet-status.yml');

/** What `moshwall status --json` prints on a host with one live session (the fields the table reads). */
const STATUS = {
  backend: 'ufw',
  firewall: { installed: true, active: true, ipv6: true, detail: [], problems: [] },
  sessions: [
    {
      pid: 4242,
      uid: 1001,
      user: 'alice',
      port: 60001,
      family: 'v4',
      localAddress: '0.0.0.0',
      clientAddress: '203.0.113.7',
      clientAddressFrom: 'login',
      ageSeconds: 75,
      openedAtMs: null,
      rule: 'open',
    },
  ],
  refused: [],
  uninspected: [],
  rules: [{ port: 60001, family: 'v4', source: '0.0.0.0/0', state: 'live' }],
  foreignInRange: [],
  warnings: [],
  conntrack: { available: true },
};

describe('ansible/fleet-status.yml on the controller: one table under --limit and --check', () => {
  let dir = '';
  let inventory = '';
  let report = '';
  let env: Record<string, string> = {};

  /** Runs the playbook with `extra` arguments; returns its result and the report file's table. */
  const fleet = async (extra: string[]): Promise<{ result: Result; table: string; output: string }> => {
    writeFileSync(report, '');
    const result = await run(
      ['ansible-playbook', '-i', inventory, '-e', `moshwall_fleet_report=${report}`, ...extra, PLAYBOOK],
      { env, timeoutMs: 120_000 },
    );
    return { result, table: readFileSync(report, 'utf8'), output: `${result.stdout}\n${result.stderr}` };
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'moshwall-fleet-'));
    const program = join(dir, 'bin', 'moshwall');
    writeFileSync(join(dir, 'status.json'), JSON.stringify(STATUS));
    mkdirSync(join(dir, 'bin'));
    // The fixture program: answers `moshwall status --json` with the fixture, anything else with an error.
    writeFileSync(
      program,
      `#!/bin/sh\n[ "$*" = "status --json" ] || { echo "unexpected: $*" >&2; exit 64; }\nexec cat ${join(dir, 'status.json')}\n`,
    );
    chmodSync(program, 0o755);
    const local = 'ansible_connection=local ansible_become=false ansible_python_interpreter=/usr/bin/python3';
    inventory = join(dir, 'inventory.ini');
    writeFileSync(
      inventory,
      [
        '[moshwall_hosts]',
        `shell-a ${local}`,
        `shell-b ${local}`,
        // Nothing listens on port 1: SSH cannot connect.
        'shell-gone ansible_host=127.0.0.1 ansible_port=1 ansible_user=nobody',
        '',
      ].join('\n'),
    );
    report = join(dir, 'fleet.txt');
    env = {
      ...BASE_ENV,
      PATH: `${join(dir, 'bin')}:${BASE_ENV.PATH}`,
      HOME: dir,
      ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_HOST_KEY_CHECKING: 'False',
      ANSIBLE_SSH_ARGS: '-F /dev/null -o UserKnownHostsFile=/dev/null -o BatchMode=yes',
      LANG: 'C.UTF-8',
    };
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('a full run: both hosts with the session, the unreachable one with its error, once', async () => {
    const { result, table, output } = await fleet([]);
    assert.equal(result.exitCode, 0, output);
    assert.equal(output.match(/TASK \[Show the table\]/g)?.length, 1, output);
    assert.match(
      result.stdout,
      /TASK \[Show the table\][\s\S]*?"msg": \[\n\s+"HOST /,
      'the table is printed too',
    );
    for (const host of ['shell-a', 'shell-b', 'shell-gone']) {
      assert.match(output, new RegExp(`^${host}\\s+: ok=\\d+\\s+changed=0 `, 'm'), `${host} read only`);
    }
    assert.match(table, /^shell-a {2,}ufw {2,}1 {2,}1 {2,}1 {2,}0$/m, table);
    assert.match(table, /^shell-b {2,}alice {2,}60001\/v4 {2,}203\.0\.113\.7 {2,}1m15s {2,}open$/m, table);
    assert.match(table, /^shell-gone {2,}unreachable: Failed to connect to the host via ssh/m, table);
  });

  test('--limit: the table comes, for the hosts of this run only', async () => {
    const { result, table, output } = await fleet(['--limit', 'shell-a']);
    assert.equal(result.exitCode, 0, output);
    assert.match(table, /^shell-a {2,}alice {2,}60001\/v4 {2,}203\.0\.113\.7 {2,}1m15s {2,}open$/m, output);
    assert.doesNotMatch(table, /^shell-(b|gone) /m, table);
  });

  test('--check: moshwall status still runs (read only) and the table shows the sessions', async () => {
    const { result, table, output } = await fleet(['--check', '--limit', 'shell-a,shell-b']);
    assert.equal(result.exitCode, 0, output);
    assert.doesNotMatch(table, /printed no JSON|failed/, table);
    assert.match(table, /^shell-a {2,}alice {2,}60001\/v4/m, table);
    assert.match(table, /^shell-b {2,}alice {2,}60001\/v4/m, table);
  });
});
