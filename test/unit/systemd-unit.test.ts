import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const UNIT = 'deploy/moshwall.service';
const text = readFileSync(UNIT, 'utf8');

/** The values of `key=` lines in the unit. */
const values = (key: string) =>
  text
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));

describe('deploy/moshwall.service', () => {
  it('runs the daemon, restarts on failure but not on config/firewall errors', () => {
    assert.match(values('ExecStart')[0] ?? '', /moshwall\.js daemon$/);
    assert.deepEqual(values('Restart'), ['on-failure']);
    assert.deepEqual(values('RestartPreventExitStatus'), ['3 4']);
    assert.deepEqual(values('ExecReload'), ['/bin/kill -HUP $MAINPID']);
  });

  it('is hardened and ordered after the firewalls', () => {
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'read-only'],
      ['PrivateTmp', 'yes'],
    ]) {
      assert.deepEqual(values(key ?? ''), [value], `${key}`);
    }
    const capabilities = (values('CapabilityBoundingSet')[0] ?? '').split(' ');
    assert.ok(capabilities.includes('CAP_NET_ADMIN') && capabilities.includes('CAP_SYS_PTRACE'));
    assert.ok(!capabilities.includes('CAP_SETUID'), 'no capability the job does not need');
    assert.match(values('After')[0] ?? '', /ufw\.service/);
  });

  it("lets conntrack(8) delete a closed port's flows: CAP_NET_ADMIN and netlink sockets", () => {
    const capabilities = (values('CapabilityBoundingSet')[0] ?? '').split(' ');
    assert.ok(capabilities.includes('CAP_NET_ADMIN'), 'conntrack -D needs CAP_NET_ADMIN');
    const families = (values('RestrictAddressFamilies')[0] ?? '').split(' ');
    assert.ok(families.includes('AF_NETLINK'), 'conntrack talks to the kernel over AF_NETLINK');
    assert.deepEqual(values('SystemCallFilter'), [], 'no syscall filter that could block its socket calls');
    assert.deepEqual(values('PrivateNetwork'), [], "the daemon's network namespace is the host's");
  });

  it('passes systemd-analyze verify where systemd is installed', (context) => {
    if (!existsSync('/usr/bin/systemd-analyze')) {
      context.skip('systemd-analyze is not installed');
      return;
    }
    const output = execFileSync('systemd-analyze', ['verify', UNIT], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(output.trim(), '');
  });
});
