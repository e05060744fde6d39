import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProcessMemory } from '../../../src/discovery/memory.ts';
import { scanSessions } from '../../../src/discovery/scan.ts';
import { createFakeProc, type FakeProc } from './fake-proc.ts';
import { fixture, labNodes, pidOf } from './lab.ts';

const RANGE = { first: 60000, last: 61000 };
const SERVER_NAMES = ['mosh-server'];
const V4 = pidOf('mosh-v4');

/** The lab fake and a scan over it that keeps `memory`. */
function setUp() {
  const fake = createFakeProc(labNodes());
  const memory = createProcessMemory();
  const scan = () => scanSessions(fake.reader, { range: RANGE, serverNames: SERVER_NAMES, memory });
  return { fake, memory, scan };
}

/** A /proc/PID/stat text with the field at `index` after the comm (0 = state, 19 = start time, 20 = vsize) set. */
function withStatField(stat: string, index: number, value: string): string {
  const head = stat.slice(0, stat.lastIndexOf(')') + 2);
  const fields = stat.slice(head.length).split(' ');
  assert.ok(fields.length > index && fields[index] !== value);
  fields[index] = value;
  return `${head}${fields.join(' ')}`;
}

/** The calls a scan made on pid's files. */
function callsOn(fake: FakeProc, pid: number, run: () => void): string[] {
  fake.calls.length = 0;
  run();
  return fake.calls.filter((call) => call.includes(`/proc/${pid}/`));
}

describe('process memory across scans', () => {
  it('gives the same result as a scan without memory, first and second time', () => {
    const plain = scanSessions(createFakeProc(labNodes()).reader, {
      range: RANGE,
      serverNames: SERVER_NAMES,
    });
    const { scan, memory } = setUp();
    assert.deepEqual(scan(), plain);
    assert.ok(memory.size() >= 2, 'the genuine holders are remembered');
    assert.deepEqual(scan(), plain);
  });

  it('recalls an unchanged genuine process with stat, exe and status only', () => {
    const { fake, scan } = setUp();
    scan();
    const calls = callsOn(fake, V4, scan);
    assert.deepEqual(
      calls.filter((call) => !call.includes('/fd') && !call.endsWith('/task')),
      [`readText /proc/${V4}/stat`, `readLink /proc/${V4}/exe`, `readText /proc/${V4}/status`],
    );
  });

  it('compares the maps when the address space changed size, and recalls when they are the same', () => {
    const { fake, scan } = setUp();
    scan();
    fake.set(`/proc/${V4}/stat`, { text: withStatField(fixture('lab/pid/mosh-v4/stat'), 20, '1') });
    const calls = callsOn(fake, V4, scan).filter((call) => !call.includes('/fd'));
    assert.ok(calls.includes(`readText /proc/${V4}/maps`), 'the maps are read');
    assert.ok(!calls.includes(`stat /proc/${V4}/exe`), 'no full check');
  });

  it('checks in full again when the maps change (a new mapping), and refuses a user-owned one', () => {
    const { fake, scan } = setUp();
    scan();
    // A new mapping moves the size of the address space (vsize, field 23 of stat).
    fake.set(`/proc/${V4}/stat`, { text: withStatField(fixture('lab/pid/mosh-v4/stat'), 20, '1') });
    const maps = fixture('lab/pid/mosh-v4/maps');
    const injected = `${maps}7f0000000000-7f0000001000 r-xp 00000000 08:01 999999 /home/user/evil.so\n`;
    fake.set(`/proc/${V4}/maps`, { text: injected });
    fake.set('/home/user/evil.so', {
      facts: { uid: 1000, gid: 1000, mode: 0o755, isFile: true, isDirectory: false },
    });
    fake.set(`/proc/${V4}/map_files/7f0000000000-7f0000001000`, {
      facts: { uid: 1000, gid: 1000, mode: 0o755, isFile: true, isDirectory: false },
    });
    const result = scan();
    assert.ok(!result.sessions.some((session) => session.pid === V4), 'no longer a session');
    assert.match(result.refused.find((holder) => holder.pid === V4)?.reason ?? '', /evil\.so/);
  });

  it('checks in full again when the process is traced, or exec-ed another program', () => {
    const { fake, scan } = setUp();
    scan();
    const status = fixture('lab/pid/mosh-v4/status').replace(/^TracerPid:\s*0$/m, 'TracerPid:\t4242');
    fake.set(`/proc/${V4}/status`, { text: status });
    assert.match(scan().refused.find((holder) => holder.pid === V4)?.reason ?? '', /traced by pid 4242/);
    fake.set(`/proc/${V4}/status`, { text: fixture('lab/pid/mosh-v4/status') });
    assert.ok(scan().sessions.some((session) => session.pid === V4));
    fake.set(`/proc/${V4}/exe`, { link: '/usr/bin/socat' });
    assert.match(scan().refused.find((holder) => holder.pid === V4)?.reason ?? '', /not named mosh-server/);
  });

  it('does not recall a new process with the same pid (another start time)', () => {
    const { fake, scan } = setUp();
    scan();
    const stat = fixture('lab/pid/mosh-v4/stat');
    const changed = withStatField(stat, 19, '1');
    assert.notEqual(changed, stat);
    fake.set(`/proc/${V4}/stat`, { text: changed });
    const calls = callsOn(fake, V4, () => scan());
    assert.ok(calls.includes(`stat /proc/${V4}/exe`), 'the exe is examined again');
  });

  it('forgets processes that no longer hold a socket in range', () => {
    const { fake, memory, scan } = setUp();
    scan();
    const before = memory.size();
    fake.remove(`/proc/${V4}`);
    scan();
    assert.equal(memory.size(), before - 1);
    scanSessions(fake.reader, { range: { first: 1, last: 2 }, serverNames: SERVER_NAMES, memory });
    assert.equal(memory.size(), 0);
  });
});
